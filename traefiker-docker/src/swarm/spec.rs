//! What a narrative is as a Swarm service, both ways: the service spec made from a
//! [`SpawnSpec`], the label changes of an assignment, a mark and a removal, and the
//! [`Narrative`] read back from a service and its tasks. Pure: no engine in sight.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, HealthConfig, NetworkAttachmentConfig, Service,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, Task, TaskSpec, TaskSpecContainerSpec,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use traefiker_core::narrative::CAP_DROP;
use traefiker_core::{
    Assignment, Naming, Narrative, NarrativeState, Origin, Owner, ReplicaId, ServiceName,
    SessionId, SpawnSpec, OWNER_LABEL, REPLICA_LABEL, SESSION_LABEL,
};

use crate::manager::{traefik_name, IMAGE_LABEL, NARRATIVE_PORT, ORIGIN_LABEL};

/// The narrative's name. A Swarm service cannot be renamed, so a waiting service given to a
/// user keeps its Swarm name and carries the user's name here: `find` looks this label up.
pub const NAME_LABEL: &str = "traefiker.name";

/// Set, by a conditional update, on a service about to be deleted: the reaper's claim.
/// `find` skips such a service, and a connect's mark on it fails, so a removal never
/// overtakes a connect (SPEC §12).
pub const REMOVING_LABEL: &str = "traefiker.removing";

/// The network Traefik's Swarm provider reaches a service on. It is also how this backend
/// tells its own narratives from another deployment's on the same swarm: each has its own
/// `dock_net`.
pub const SWARM_NETWORK_LABEL: &str = "traefik.swarm.network";

/// Traefik's label prefix of a service definition, `traefik.http.services.<name>.`.
const TRAEFIK_SERVICES: &str = "traefik.http.services.";

/// The Traefik label that names the narrative's port, under the Traefik service `service`.
fn port_label(service: &str) -> String {
    format!("{TRAEFIK_SERVICES}{service}.loadbalancer.server.port")
}

/// The labels of a service made from `spec` on `network`.
pub(crate) fn labels(spec: &SpawnSpec, network: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert(SESSION_LABEL.to_owned(), spec.session.expose().to_owned());
    labels.insert(NAME_LABEL.to_owned(), spec.name.to_string());
    labels.insert(SWARM_NETWORK_LABEL.to_owned(), network.to_owned());
    labels.insert(IMAGE_LABEL.to_owned(), spec.image.clone());
    // A Swarm service exposes no port Traefik could guess: the Traefik service is named after
    // the narrative, so metrics carry the name `traefik_service` gives (an assignment renames
    // it with the narrative).
    labels.insert(
        port_label(&traefik_name(spec.name.as_str())),
        NARRATIVE_PORT.to_string(),
    );
    if let Some(origin) = &spec.origin {
        labels.insert(ORIGIN_LABEL.to_owned(), origin.to_description());
    }
    if let Some(owner) = &spec.owner {
        labels.insert(OWNER_LABEL.to_owned(), owner.as_str().to_owned());
    }
    labels
}

/// The service spec of `spec`: one replica of the image with its environment, Rancher's
/// capability drops and a restart policy like Docker's `always` (SPEC §4), on `network`.
///
/// Only what a label update sends back unchanged is set: the engine answers an inspection
/// without its defaults, so a spec read and written back with other labels equals the one
/// the task runs, and Swarm does not restart the narrative for a label change.
pub(crate) fn service_spec(spec: &SpawnSpec, network: &str) -> ServiceSpec {
    ServiceSpec {
        name: Some(spec.name.to_string()),
        labels: Some(labels(spec, network)),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(spec.image.clone()),
                env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                // As Rancher starts narratives: the narrative image expects a terminal.
                tty: Some(true),
                open_stdin: Some(true),
                capability_drop: Some(CAP_DROP.iter().map(|c| (*c).to_owned()).collect()),
                health_check: Some(lenient_health()),
                ..TaskSpecContainerSpec::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                ..TaskSpecRestartPolicy::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(network.to_owned()),
                ..NetworkAttachmentConfig::default()
            }]),
            ..TaskSpec::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..ServiceSpecMode::default()
        }),
        // The name resolves to the task's own address on `dock_net` (no virtual IP): one task
        // needs no load balancer, and a virtual IP needs the host's IPVS, which not every
        // host has.
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ..EndpointSpec::default()
        }),
        ..ServiceSpec::default()
    }
}

/// How long one probe of the image's health check may take, on narrative services.
pub(crate) const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How many probes in a row must fail before a narrative is unhealthy, on narrative services.
pub(crate) const HEALTH_RETRIES: i64 = 100;

/// The image's own health check (its test, interval and start period are kept: the engine
/// fills what is left empty from the image), made lenient. Swarm, unlike a lone Docker
/// engine, replaces a task whose container turns unhealthy, and that is a user's live
/// kernel: a node busy for a few seconds (seen here: probes timing out at the stand-in's
/// 3 s while a hundred narratives were probed on two cores) must not restart narratives.
/// The check still holds a new narrative's task in `starting` until it first passes, so
/// Traefik routes a narrative only once it answers. One that fails [`HEALTH_RETRIES`]
/// probes in a row (minutes) is hung, and restarting it is what its user needs.
fn lenient_health() -> HealthConfig {
    // No test at all, rather than an empty one: the engine keeps an empty test as none,
    // so a spec read back and written (a label update) would differ from the one stored
    // and Swarm would replace the task.
    HealthConfig {
        timeout: Some(i64::try_from(HEALTH_TIMEOUT.as_nanos()).unwrap_or(i64::MAX)),
        retries: Some(HEALTH_RETRIES),
        ..HealthConfig::default()
    }
}

/// `spec` as read back from the engine, made ready to be written again: the engine answers
/// the health check under the key `Healthcheck`, which the API client reads under
/// `HealthCheck` and so drops. Written without it, the spec would differ from the one stored
/// and Swarm would replace the task (a user's kernel) on a mere label update; every narrative
/// service is created with [`lenient_health`], which this puts back.
pub(crate) fn as_read_back(mut spec: ServiceSpec) -> ServiceSpec {
    if let Some(container) = spec
        .task_template
        .as_mut()
        .and_then(|t| t.container_spec.as_mut())
    {
        container.health_check.get_or_insert_with(lenient_health);
    }
    spec
}

/// The labels of a waiting service given to a user: its name, owner and description, and
/// its Traefik service renamed with it. The session (and so the route) stays.
pub(crate) fn assigned(
    labels: &HashMap<String, String>,
    assignment: &Assignment,
) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = labels
        .iter()
        .filter(|(k, _)| !k.starts_with(TRAEFIK_SERVICES))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert(NAME_LABEL.to_owned(), assignment.name.to_string());
    out.insert(OWNER_LABEL.to_owned(), assignment.owner.as_str().to_owned());
    out.insert(ORIGIN_LABEL.to_owned(), assignment.origin.to_description());
    out.insert(
        port_label(&traefik_name(assignment.name.as_str())),
        NARRATIVE_PORT.to_string(),
    );
    out
}

/// The labels of a service that was briefly given the user's name by an assignment that
/// then lost the name to another service: waiting again under its own name.
pub(crate) fn waiting_again(
    labels: &HashMap<String, String>,
    waiting: &ServiceName,
) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = labels
        .iter()
        .filter(|(k, _)| !k.starts_with(TRAEFIK_SERVICES))
        .filter(|(k, _)| *k != OWNER_LABEL && *k != ORIGIN_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert(NAME_LABEL.to_owned(), waiting.to_string());
    out.insert(
        port_label(&traefik_name(waiting.as_str())),
        NARRATIVE_PORT.to_string(),
    );
    out
}

/// The name of the Swarm config that holds `name` for one service of the deployment on
/// `network`: config names are unique, at most 64 characters of `[a-zA-Z0-9-_.]`, so the
/// name is hashed (a narrative name can be longer).
pub(crate) fn claim_name(network: &str, name: &ServiceName) -> String {
    let digest = Sha256::digest(format!("{network}/{name}").as_bytes());
    format!("traefiker-claim-{}", &hex::encode(digest)[..40])
}

/// What this backend reads of a service: its id, version, labels, when it was made, its
/// virtual IP on `dock_net`, and the state of its tasks.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub id: String,
    pub swarm_name: String,
    pub version: u64,
    pub labels: HashMap<String, String>,
    pub created: Option<DateTime<Utc>>,
    pub address: Option<String>,
    /// The state of the task Swarm wants running, `None` when it wants none.
    pub task: Option<TaskState>,
}

impl Seen {
    /// `service` as this backend reads it, with its tasks among `tasks` (the tasks Swarm
    /// wants running).
    pub(crate) fn of(service: Service, tasks: &[Task]) -> Option<Self> {
        let id = service.id?;
        let spec = service.spec.unwrap_or_default();
        let newest = tasks
            .iter()
            .filter(|t| t.service_id.as_deref() == Some(id.as_str()))
            .max_by(|a, b| a.created_at.cmp(&b.created_at));
        let swarm_name = spec.name.unwrap_or_default();
        // Swarm's DNS on `dock_net` answers the service's name with its task's address.
        let address =
            (!swarm_name.is_empty()).then(|| format!("http://{swarm_name}:{NARRATIVE_PORT}"));
        Some(Self {
            swarm_name,
            version: service.version.and_then(|v| v.index)?,
            labels: spec.labels.unwrap_or_default(),
            created: service
                .created_at
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
            address,
            task: newest.map(|t| {
                t.status
                    .as_ref()
                    .and_then(|s| s.state)
                    .unwrap_or(TaskState::NEW)
            }),
            id,
        })
    }

    /// The name the service carries (not its Swarm name: see [`NAME_LABEL`]).
    pub(crate) fn name(&self) -> Option<&str> {
        self.labels.get(NAME_LABEL).map(String::as_str)
    }

    /// Whether a reaper has claimed it for removal.
    pub(crate) fn removing(&self) -> bool {
        self.labels.contains_key(REMOVING_LABEL)
    }

    /// Whether it is a narrative of the deployment on `network`.
    pub(crate) fn ours(&self, network: &str) -> bool {
        self.labels.get(SWARM_NETWORK_LABEL).map(String::as_str) == Some(network)
            && self.labels.contains_key(SESSION_LABEL)
    }

    /// The core's view, or why it is not a usable narrative.
    pub(crate) fn narrative(
        &self,
        naming: &Naming,
        image_prefix: &str,
    ) -> Result<Narrative, &'static str> {
        let image = self
            .labels
            .get(IMAGE_LABEL)
            .filter(|i| i.starts_with(image_prefix))
            .ok_or("not the narrative image")?;
        let name = self.name().ok_or("no traefiker.name label")?;
        let kind = naming.kind_of(name).ok_or("not a narrative name")?;
        let name = ServiceName::new(name).map_err(|_| "not a valid name")?;
        let session = self
            .labels
            .get(SESSION_LABEL)
            .and_then(|s| SessionId::parse(s).ok())
            .ok_or("no valid session_id label")?;
        Ok(Narrative {
            id: self.id.clone(),
            name,
            session,
            image: image.clone(),
            kind,
            state: self.state(),
            origin: self.labels.get(ORIGIN_LABEL).and_then(|d| Origin::parse(d)),
            owner: self
                .labels
                .get(OWNER_LABEL)
                .and_then(|o| Owner::parse(o).ok()),
            version: Some(self.version.to_string()),
            replica: self
                .labels
                .get(REPLICA_LABEL)
                .and_then(|r| ReplicaId::new(r.clone()).ok()),
            address: self.address.clone(),
            public_endpoints: Vec::new(),
            created: self.created,
        })
    }

    /// The narrative's state, from the task Swarm wants running: one that has not started
    /// yet, or whose health check has not passed (Swarm's `starting`), or that failed and is
    /// being replaced, is starting; none at all means Swarm gave up or was told to stop.
    pub(crate) fn state(&self) -> NarrativeState {
        if self.removing() {
            return NarrativeState::Removing;
        }
        match self.task {
            Some(TaskState::RUNNING) => NarrativeState::Running,
            Some(_) => NarrativeState::Starting,
            None => NarrativeState::Stopped,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use bollard::models::{ObjectVersion, TaskStatus};
    use traefiker_core::{NarrativeKind, Routing, UserId};

    use super::*;

    fn spawn(naming: &Naming) -> SpawnSpec {
        let session = SessionId::generate();
        let name = naming.prespawn_container(&session);
        SpawnSpec {
            labels: Routing::default().labels(&naming.router_for(&name), &session),
            name,
            session,
            image: "kbase/narrative:1".into(),
            kind: NarrativeKind::Prespawned,
            env: BTreeMap::from([("A".into(), "1".into())]),
            origin: None,
            owner: None,
        }
    }

    fn service(spec: ServiceSpec, version: u64) -> Service {
        Service {
            id: Some("svc1".into()),
            version: Some(ObjectVersion {
                index: Some(version),
            }),
            created_at: Some("2026-12-07T03:00:00.5Z".into()),
            spec: Some(spec),
            ..Service::default()
        }
    }

    fn task(state: TaskState, at: &str) -> Task {
        Task {
            service_id: Some("svc1".into()),
            created_at: Some(at.into()),
            status: Some(TaskStatus {
                state: Some(state),
                ..TaskStatus::default()
            }),
            ..Task::default()
        }
    }

    #[test]
    fn a_service_reads_back_as_the_narrative_it_was_made_from() {
        let naming = Naming::default();
        let spec = spawn(&naming);
        let svc = service(service_spec(&spec, "dock_net"), 12);
        let tasks = [
            task(TaskState::FAILED, "2026-12-07T03:00:01Z"),
            task(TaskState::RUNNING, "2026-12-07T03:00:09Z"),
        ];
        let seen = Seen::of(svc, &tasks).unwrap();
        assert!(seen.ours("dock_net") && !seen.ours("other_net"));
        let n = seen.narrative(&naming, "kbase/narrative:").unwrap();
        assert_eq!(n.name, spec.name);
        assert_eq!(n.session, spec.session);
        assert_eq!(n.kind, NarrativeKind::Prespawned);
        assert_eq!(n.version.as_deref(), Some("12"));
        assert_eq!(n.state, NarrativeState::Running, "the newest task decides");
        assert_eq!(
            n.address,
            Some(format!("http://{}:8888", spec.name)),
            "the service's name, which Swarm's DNS resolves on dock_net"
        );
        assert!(seen.narrative(&naming, "other/image:").is_err());
    }

    #[test]
    fn the_spec_carries_capability_drops_the_port_and_the_network() {
        let naming = Naming::default();
        let spec = spawn(&naming);
        let s = service_spec(&spec, "dock_net");
        let labels = s.labels.as_ref().unwrap();
        let port = port_label(&traefik_name(spec.name.as_str()));
        assert_eq!(labels.get(&port).map(String::as_str), Some("8888"));
        assert_eq!(
            labels.get(SWARM_NETWORK_LABEL).map(String::as_str),
            Some("dock_net")
        );
        let task = s.task_template.unwrap();
        let c = task.container_spec.unwrap();
        assert_eq!(c.capability_drop.unwrap().len(), CAP_DROP.len());
        assert_eq!(c.env.unwrap(), vec!["A=1".to_owned()]);
        assert_eq!(
            task.networks.unwrap()[0].target.as_deref(),
            Some("dock_net")
        );
    }

    #[test]
    fn a_spec_read_back_gets_the_health_check_the_client_dropped() {
        let spec = spawn(&Naming::default());
        let created = service_spec(&spec, "dock_net");
        let mut read = created.clone();
        if let Some(c) = read
            .task_template
            .as_mut()
            .and_then(|t| t.container_spec.as_mut())
        {
            c.health_check = None;
        }
        assert_eq!(as_read_back(read), created);
        assert_eq!(
            as_read_back(created.clone()),
            created,
            "nothing else changes"
        );
    }

    #[test]
    fn an_assignment_renames_the_narrative_and_its_traefik_service_but_keeps_the_route() {
        let naming = Naming::default();
        let spec = spawn(&naming);
        let before = labels(&spec, "dock_net");
        let user = UserId::new("alice").unwrap();
        let assignment = Assignment {
            name: naming.user_container(&user),
            owner: Owner::of(&user),
            origin: Origin::parse("client-ip:1.2.3.4 timestamp:2026-12-07T03:00:00.000000Z")
                .unwrap(),
        };
        let after = assigned(&before, &assignment);
        assert_eq!(after.get(NAME_LABEL), Some(&assignment.name.to_string()));
        assert_eq!(
            after.get(OWNER_LABEL).map(String::as_str),
            Some(assignment.owner.as_str())
        );
        assert_eq!(after.get(SESSION_LABEL), before.get(SESSION_LABEL));
        let routes = |l: &HashMap<String, String>| {
            l.iter()
                .filter(|(k, _)| k.starts_with("traefik.http.routers."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(routes(&after), routes(&before), "the session's route stays");
        assert!(after.contains_key(&port_label(&traefik_name(assignment.name.as_str()))));
        assert!(!after.contains_key(&port_label(&traefik_name(spec.name.as_str()))));
        let back = waiting_again(&after, &spec.name);
        assert_eq!(back, before, "a lost assignment leaves it as it was");
    }

    #[test]
    fn states_follow_the_task_swarm_wants_running() {
        let naming = Naming::default();
        let svc = || service(service_spec(&spawn(&naming), "n"), 1);
        let state = |tasks: &[Task]| Seen::of(svc(), tasks).unwrap().state();
        assert_eq!(
            state(&[task(TaskState::STARTING, "2026-12-07T03:00:01Z")]),
            NarrativeState::Starting
        );
        assert_eq!(
            state(&[task(TaskState::FAILED, "2026-12-07T03:00:01Z")]),
            NarrativeState::Starting
        );
        assert_eq!(state(&[]), NarrativeState::Stopped);
        let mut removing = Seen::of(svc(), &[]).unwrap();
        removing.labels.insert(REMOVING_LABEL.into(), "true".into());
        assert_eq!(removing.state(), NarrativeState::Removing);
        assert_eq!(
            removing
                .narrative(&naming, "kbase/narrative:")
                .unwrap()
                .state,
            NarrativeState::Removing
        );
    }

    #[test]
    fn claim_names_are_short_valid_and_per_deployment() {
        let long = ServiceName::new(format!("narrative-{}", "x".repeat(53))).unwrap();
        let a = claim_name("net_a", &long);
        assert!(a.len() <= 64 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert_ne!(a, claim_name("net_b", &long));
        assert_eq!(a, claim_name("net_a", &long));
    }
}
