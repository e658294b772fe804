//! [`SwarmManager`]: the core's [`ContainerManager`] contract over Swarm services, every
//! deciding write conditional on the service's version.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bollard::models::{Service, ServiceSpec, Task};
use bollard::query_parameters::{
    InspectNetworkOptions, InspectServiceOptionsBuilder, ListServicesOptionsBuilder,
    ListTasksOptionsBuilder, UpdateServiceOptionsBuilder,
};
use bollard::Docker;
use traefiker_core::{
    Assignment, BackendInfo, ContainerManager, ManagerError, Naming, Narrative, NarrativeState,
    Origin, Owner, ServiceName, SpawnSpec, OWNER_LABEL, SESSION_LABEL,
};

use super::claim::out_of_sequence;
use super::spec::{
    assigned, service_spec, waiting_again, Seen, NAME_LABEL, REMOVING_LABEL, SWARM_NETWORK_LABEL,
};
use super::{SwarmMembership, BACKEND};
use crate::config::{DockerConfig, Timeouts};
use crate::error::{classify_as, status, timed_out_as, DockerError};
use crate::manager::{open, traefik_name, ORIGIN_LABEL};
use crate::OwnContainer;

/// A [`ContainerManager`] over the Swarm the engine at `docker_url` manages, on one overlay
/// network. `conditional()` is true: assignment, the connect mark, stamping an owner and a
/// removal's claim are service updates at the version read (module docs of
/// [`crate::swarm`]).
#[derive(Debug)]
pub struct SwarmManager {
    docker: Docker,
    url: String,
    network: String,
    /// `<image_name>:`, the prefix of every narrative's image.
    image_prefix: String,
    naming: Naming,
    timeouts: Timeouts,
    /// Images this engine was seen to have, so a create checks each only once.
    images: Mutex<HashSet<String>>,
}

impl SwarmManager {
    /// Connects to the engine at `config.url` and agrees on an API version with it; whether it
    /// manages a swarm, and the network, are checked by `verify`.
    pub async fn connect(config: DockerConfig) -> Result<Self, DockerError> {
        let docker = open(&config).await?;
        Ok(Self {
            docker,
            url: config.url,
            network: config.network,
            image_prefix: format!("{}:", config.image_name),
            naming: config.naming,
            timeouts: config.timeouts,
            images: Mutex::new(HashSet::new()),
        })
    }

    /// Who else runs: the running tasks of traefiker's own Swarm service, over this manager's
    /// client.
    pub fn membership(&self, own: OwnContainer) -> SwarmMembership {
        SwarmMembership::new(self.docker.clone(), own, self.timeouts.request)
    }

    /// The network narratives join (`dock_net`).
    pub fn network(&self) -> &str {
        &self.network
    }

    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn classify(
        &self,
        call: &str,
        subject: &str,
        e: bollard::errors::Error,
    ) -> ManagerError {
        classify_as(BACKEND, call, subject, e)
    }

    /// One engine call within the request timeout: the outer error is the timeout, the inner
    /// result the engine's answer.
    pub(crate) async fn within<T>(
        &self,
        call: &str,
        subject: &str,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<Result<T, bollard::errors::Error>, ManagerError> {
        let limit = self.timeouts.request;
        tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| timed_out_as(BACKEND, call, subject, limit))
    }

    /// [`Self::within`], every error classified.
    async fn request<T>(
        &self,
        call: &str,
        subject: &str,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, ManagerError> {
        self.within(call, subject, fut)
            .await?
            .map_err(|e| self.classify(call, subject, e))
    }

    /// One operation of the contract, every call in it, within the request timeout.
    async fn bounded<T>(
        &self,
        operation: &str,
        subject: &str,
        fut: impl Future<Output = Result<T, ManagerError>>,
    ) -> Result<T, ManagerError> {
        let limit = self.timeouts.request;
        tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(timed_out_as(BACKEND, operation, subject, limit)))
    }

    /// The service `id` as stored, without the engine's defaults: written back with other
    /// labels, it equals what the task runs, so Swarm does not restart it.
    async fn service(&self, id: &str) -> Result<Option<Service>, ManagerError> {
        let options = InspectServiceOptionsBuilder::default()
            .insert_defaults(false)
            .build();
        match self
            .within(
                "inspect",
                id,
                self.docker.inspect_service(id, Some(options)),
            )
            .await?
        {
            Ok(s) => Ok(Some(s)),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.classify("inspect", id, e)),
        }
    }

    /// The tasks Swarm wants running, of the service `id` or (`None`) of every service.
    async fn tasks(&self, id: Option<&str>) -> Result<Vec<Task>, ManagerError> {
        let mut filters = HashMap::from([("desired-state", vec!["running".to_owned()])]);
        if let Some(id) = id {
            filters.insert("service", vec![id.to_owned()]);
        }
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        self.request(
            "list tasks",
            id.unwrap_or("of narratives"),
            self.docker.list_tasks(Some(options)),
        )
        .await
    }

    /// The services of this deployment carrying `label` (a key, or `key=value`).
    async fn services(&self, label: String) -> Result<Vec<Service>, ManagerError> {
        let filters = HashMap::from([(
            "label",
            vec![format!("{SWARM_NETWORK_LABEL}={}", self.network), label],
        )]);
        let options = ListServicesOptionsBuilder::default()
            .filters(&filters)
            .build();
        self.request(
            "list",
            "narratives",
            self.docker.list_services(Some(options)),
        )
        .await
    }

    /// Every narrative of this deployment, those being removed included.
    async fn all(&self) -> Result<Vec<Narrative>, ManagerError> {
        let services = self.services(SESSION_LABEL.to_owned()).await?;
        let tasks = self.tasks(None).await?;
        Ok(self.narratives(services, &tasks))
    }

    /// The service `id` with its tasks, or `None` if it is gone.
    pub(crate) async fn inspect(&self, id: &str) -> Result<Option<Seen>, ManagerError> {
        let Some(service) = self.service(id).await? else {
            return Ok(None);
        };
        let tasks = self.tasks(Some(id)).await?;
        Ok(Seen::of(service, &tasks))
    }

    fn narrative(&self, seen: &Seen) -> Result<Narrative, ManagerError> {
        seen.narrative(&self.naming, &self.image_prefix)
            .map_err(|why| ManagerError::Rejected {
                backend: BACKEND.to_owned(),
                detail: format!(
                    "service {} ({}) is not a usable narrative of this deployment: {why}; remove it",
                    seen.swarm_name, seen.id
                ),
            })
    }

    /// Narratives among `services`; the others are skipped with a warning naming them (never
    /// a label's value: the session label is a secret).
    fn narratives(&self, services: Vec<Service>, tasks: &[Task]) -> Vec<Narrative> {
        services
            .into_iter()
            .filter_map(|s| Seen::of(s, tasks))
            .filter(|seen| seen.ours(&self.network))
            .filter_map(|seen| match self.narrative(&seen) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(service_id = %seen.id, error = %e, "skipping a service traefiker cannot use as a narrative");
                    None
                }
            })
            .collect()
    }

    /// Writes `labels` on the service read as `service`, at the version read: `Conflict` if it
    /// changed since, `NotFound` if it is gone.
    async fn relabel(
        &self,
        service: Service,
        labels: HashMap<String, String>,
        name: &str,
    ) -> Result<(), ManagerError> {
        let id = service.id.clone().unwrap_or_default();
        let version = service.version.and_then(|v| v.index).unwrap_or_default();
        let version = i32::try_from(version).map_err(|_| ManagerError::Rejected {
            backend: BACKEND.to_owned(),
            detail: format!(
                "service {name}'s version {version} is beyond what the engine's API client can send"
            ),
        })?;
        let spec = ServiceSpec {
            labels: Some(labels),
            ..super::spec::as_read_back(service.spec.unwrap_or_default())
        };
        let options = UpdateServiceOptionsBuilder::default()
            .version(version)
            .build();
        match self
            .within(
                "update",
                name,
                self.docker.update_service(&id, spec, options, None),
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(e) if out_of_sequence(&e) => Err(ManagerError::Conflict {
                backend: BACKEND.to_owned(),
                name: name.to_owned(),
            }),
            Err(e) => Err(self.classify("update", name, e)),
        }
    }

    /// The service behind `narrative` as stored now, checked against what the caller read:
    /// gone or renamed is `NotFound`, being removed or changed since `Conflict`.
    ///
    /// Changed means changed as a narrative ([`same`]): Swarm bumps a service's version
    /// itself (its allocator right after a create, for one), which changes nothing the
    /// caller decided on.
    async fn current(&self, narrative: &Narrative) -> Result<(Service, Seen), ManagerError> {
        let gone = || ManagerError::NotFound {
            backend: BACKEND.to_owned(),
            name: narrative.name.to_string(),
        };
        let changed = || ManagerError::Conflict {
            backend: BACKEND.to_owned(),
            name: narrative.name.to_string(),
        };
        let service = self.service(&narrative.id).await?.ok_or_else(gone)?;
        let seen = Seen::of(service.clone(), &[]).ok_or_else(gone)?;
        if seen.name() != Some(narrative.name.as_str()) {
            return Err(gone());
        }
        if seen.removing() {
            return Err(changed());
        }
        let moved = narrative
            .version
            .as_ref()
            .is_some_and(|v| *v != seen.version.to_string());
        if moved && !self.narrative(&seen).is_ok_and(|now| same(narrative, &now)) {
            return Err(changed());
        }
        Ok((service, seen))
    }

    /// Writes the labels `change` makes of the narrative's current ones, at the version read,
    /// while it is still the narrative the caller read ([`Self::current`]). A write that
    /// loses to one of Swarm's own version bumps looks again (at most three times); one that
    /// loses to a change of the narrative is a `Conflict`.
    async fn write(
        &self,
        narrative: &Narrative,
        change: impl Fn(&Seen) -> HashMap<String, String>,
    ) -> Result<Seen, ManagerError> {
        let mut lost = None;
        for _ in 0..3 {
            let (service, seen) = self.current(narrative).await?;
            match self
                .relabel(service, change(&seen), narrative.name.as_str())
                .await
            {
                Ok(()) => return Ok(seen),
                Err(e @ ManagerError::Conflict { .. }) => lost = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(lost.unwrap_or_else(|| ManagerError::Conflict {
            backend: BACKEND.to_owned(),
            name: narrative.name.to_string(),
        }))
    }

    /// The narrative `id` as it now reads, after a write.
    async fn reread(&self, id: &str, name: &ServiceName) -> Result<Narrative, ManagerError> {
        let seen = self
            .inspect(id)
            .await?
            .ok_or_else(|| ManagerError::Unavailable {
                backend: BACKEND.to_owned(),
                detail: format!("{name} was removed right after it was written"),
            })?;
        self.narrative(&seen)
    }

    /// Whether the engine has `image`; a missing one is an error naming it (Swarm would only
    /// reject the task, again and again, out of sight).
    async fn image_present(&self, image: &str, name: &ServiceName) -> Result<(), ManagerError> {
        if Self::lock(&self.images).contains(image) {
            return Ok(());
        }
        match self.within("inspect image", image, self.docker.inspect_image(image)).await? {
            Ok(_) => {
                Self::lock(&self.images).insert(image.to_owned());
                Ok(())
            }
            Err(e) if status(&e) == Some(404) => Err(ManagerError::Rejected {
                backend: BACKEND.to_owned(),
                detail: format!(
                    "cannot create {name}: image {image} is not on the engine at {}; build or load it \
                     on every node that may run narratives (docker load), or check image_name and image_tag",
                    self.url
                ),
            }),
            Err(e) => Err(self.classify("inspect image", image, e)),
        }
    }

    /// What is wrong with `dock_net` for Swarm services, if anything.
    async fn network_problem(&self) -> Result<Option<String>, ManagerError> {
        let net = match self
            .within(
                "inspect network",
                &self.network,
                self.docker.inspect_network(&self.network, Some(InspectNetworkOptions::default())),
            )
            .await?
        {
            Ok(net) => net,
            Err(e) if status(&e) == Some(404) => {
                return Ok(Some(format!(
                    "the swarm has no network {0}; create it (docker network create --driver overlay --attachable {0}), \
                     or set dock_net to the overlay network Traefik shares with the narratives",
                    self.network
                )))
            }
            Err(e) => return Err(self.classify("inspect network", &self.network, e)),
        };
        if net.scope.as_deref() != Some("swarm") {
            return Ok(Some(format!(
                "network {0} is {1}-scoped, not a swarm (overlay) network; create one with \
                 docker network create --driver overlay --attachable {0}",
                self.network,
                net.scope.as_deref().unwrap_or("unknown")
            )));
        }
        if net.attachable != Some(true) {
            return Ok(Some(format!(
                "network {0} is not attachable, so Traefik or a container outside the swarm's \
                 services cannot join it; recreate it with --attachable",
                self.network
            )));
        }
        Ok(None)
    }

    /// Deletes the service `id` made for `name` (a failed create); failures are only logged.
    async fn discard(&self, id: &str, name: &ServiceName) {
        let deleted = self
            .within("delete", name.as_str(), self.docker.delete_service(id))
            .await;
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::warn!(name = %name, service_id = id,
                "could not remove a service that failed to become a narrative; remove it by hand");
        }
    }

    fn rejected(&self, detail: String) -> ManagerError {
        ManagerError::Rejected {
            backend: BACKEND.to_owned(),
            detail,
        }
    }
}

/// Whether `a` and `b` are the same narrative as traefiker decides on it: what changes only
/// when traefiker writes (its name, session, owner, description, replica and image), not its
/// state or the orchestrator's own bookkeeping.
fn same(a: &Narrative, b: &Narrative) -> bool {
    a.id == b.id
        && a.name == b.name
        && a.session == b.session
        && a.owner == b.owner
        && a.origin == b.origin
        && a.replica == b.replica
        && a.image == b.image
}

#[async_trait]
impl ContainerManager for SwarmManager {
    async fn verify(&self) -> Result<BackendInfo, ManagerError> {
        self.bounded("verify", "of the swarm", async {
            let info = self
                .request("info", "of the engine", self.docker.info())
                .await?;
            let swarm = info.swarm.unwrap_or_default();
            let state = swarm
                .local_node_state
                .map(|s| s.to_string())
                .unwrap_or_default();
            if state != "active" {
                return Err(self.rejected(format!(
                    "the engine at {} is not in a swarm (its state: {}); run docker swarm init \
                     (or join it to one as a manager), or use backend = docker",
                    self.url,
                    if state.is_empty() { "unknown" } else { &state }
                )));
            }
            if swarm.control_available != Some(true) {
                return Err(self.rejected(format!(
                    "the engine at {} is a swarm worker; services are managed only on managers: \
                     run traefiker on a manager node (placement constraint node.role == manager)",
                    self.url
                )));
            }
            if let Some(problem) = self.network_problem().await? {
                return Err(self.rejected(problem));
            }
            Ok(BackendInfo {
                backend: BACKEND.to_owned(),
                location: format!(
                    "{} network {} (Docker {}, swarm {} managers / {} nodes, API {})",
                    self.url,
                    self.network,
                    info.server_version.as_deref().unwrap_or("?"),
                    swarm.managers.unwrap_or_default(),
                    swarm.nodes.unwrap_or_default(),
                    self.docker.client_version()
                ),
            })
        })
        .await
    }

    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
        self.bounded("find", name.as_str(), async {
            let services = self.services(format!("{NAME_LABEL}={name}")).await?;
            let mut candidates: Vec<(Service, Seen)> = services
                .into_iter()
                .filter_map(|s| Some((s.clone(), Seen::of(s, &[])?)))
                .filter(|(_, s)| {
                    s.ours(&self.network) && !s.removing() && s.name() == Some(name.as_str())
                })
                .collect();
            let (service, _) = match candidates.len() {
                0 => return Ok(None),
                1 => candidates.remove(0),
                _ => {
                    // Two services carry the name only while one loses it (an assignment's
                    // claim failed): the claim says which one holds it, else the oldest.
                    let holder = self.holder(name).await?;
                    candidates
                        .sort_by(|(_, a), (_, b)| (a.created, &a.id).cmp(&(b.created, &b.id)));
                    let at = candidates
                        .iter()
                        .position(|(_, s)| Some(&s.id) == holder.as_ref())
                        .unwrap_or(0);
                    candidates.remove(at)
                }
            };
            let id = service.id.clone().unwrap_or_default();
            let tasks = self.tasks(Some(&id)).await?;
            Seen::of(service, &tasks)
                .map(|s| self.narrative(&s))
                .transpose()
        })
        .await
    }

    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        self.bounded("list", "narratives", async {
            let mut all = self.all().await?;
            all.retain(|n| n.state != NarrativeState::Removing);
            Ok(all)
        })
        .await
    }

    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        self.bounded("create", spec.name.as_str(), async {
            self.image_present(&spec.image, &spec.name).await?;
            let body = service_spec(spec, &self.network);
            let created = self
                .within(
                    "create",
                    spec.name.as_str(),
                    self.docker.create_service(body, None),
                )
                .await?;
            let id = match created {
                Ok(answer) => answer.id.unwrap_or_default(),
                Err(e) if matches!(status(&e), Some(400 | 404)) => {
                    return Err(match self.network_problem().await? {
                        Some(problem) => self.rejected(problem),
                        None => self.classify("create", spec.name.as_str(), e),
                    })
                }
                Err(e) => return Err(self.classify("create", spec.name.as_str(), e)),
            };
            // The service carries the name; now it must hold it (module `claim`).
            if let Err(e) = self.claim(&spec.name, &id).await {
                self.discard(&id, &spec.name).await;
                return Err(e);
            }
            tracing::info!(name = %spec.name, service_id = %id, "created narrative service");
            match self.reread(&id, &spec.name).await {
                Ok(n) => Ok(n),
                Err(e @ ManagerError::Rejected { .. }) => {
                    self.discard(&id, &spec.name).await;
                    Err(e)
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn assign(
        &self,
        narrative: &Narrative,
        assignment: &Assignment,
    ) -> Result<Narrative, ManagerError> {
        self.bounded("assign", assignment.name.as_str(), async {
            let (service, seen) = self.current(narrative).await?;
            let labels = assigned(&seen.labels, assignment);
            self.relabel(service, labels, narrative.name.as_str()).await?;
            if let Err(e) = self.claim(&assignment.name, &narrative.id).await {
                // Another service holds the name: this one waits again, as it was.
                let back = async {
                    let service = self.service(&narrative.id).await?.ok_or_else(|| ManagerError::NotFound {
                        backend: BACKEND.to_owned(),
                        name: narrative.name.to_string(),
                    })?;
                    let seen = Seen::of(service.clone(), &[]).unwrap_or_else(|| seen.clone());
                    self.relabel(service, waiting_again(&seen.labels, &narrative.name), assignment.name.as_str())
                        .await
                };
                if let Err(back) = back.await {
                    tracing::warn!(name = %narrative.name, service_id = %narrative.id, error = %back,
                        "a waiting narrative that lost a name could not be made waiting again; the reaper removes it as a duplicate");
                }
                return Err(e);
            }
            tracing::info!(from = %narrative.name, to = %assignment.name, service_id = %narrative.id,
                "assigned a waiting narrative");
            self.reread(&narrative.id, &assignment.name).await
        })
        .await
    }

    async fn mark_connected(
        &self,
        narrative: &Narrative,
        origin: &Origin,
    ) -> Result<Narrative, ManagerError> {
        self.bounded("mark", narrative.name.as_str(), async {
            self.write(narrative, |seen| {
                let mut labels = seen.labels.clone();
                labels.insert(ORIGIN_LABEL.to_owned(), origin.to_description());
                labels
            })
            .await?;
            self.reread(&narrative.id, &narrative.name).await
        })
        .await
    }

    async fn stamp_owner(
        &self,
        narrative: &Narrative,
        owner: &Owner,
    ) -> Result<Narrative, ManagerError> {
        self.bounded("stamp owner", narrative.name.as_str(), async {
            let theirs = || ManagerError::OwnedByAnother {
                backend: BACKEND.to_owned(),
                name: narrative.name.to_string(),
            };
            let whose = || async {
                // Changed since: if what changed is its owner, say whose it is.
                let now = self.inspect(&narrative.id).await?;
                Err(match now.and_then(|s| s.labels.get(OWNER_LABEL).cloned()) {
                    Some(o) if o != owner.as_str() => theirs(),
                    _ => ManagerError::Conflict {
                        backend: BACKEND.to_owned(),
                        name: narrative.name.to_string(),
                    },
                })
            };
            let seen = match self.current(narrative).await {
                Ok((_, seen)) => seen,
                Err(ManagerError::Conflict { .. }) => return whose().await,
                Err(e) => return Err(e),
            };
            match seen.labels.get(OWNER_LABEL) {
                Some(o) if o != owner.as_str() => return Err(theirs()),
                Some(_) => return self.reread(&narrative.id, &narrative.name).await,
                None => {}
            }
            let stamped = self
                .write(narrative, |seen| {
                    let mut labels = seen.labels.clone();
                    labels.insert(OWNER_LABEL.to_owned(), owner.as_str().to_owned());
                    labels
                })
                .await;
            match stamped {
                Ok(_) => {}
                Err(ManagerError::Conflict { .. }) => return whose().await,
                Err(e) => return Err(e),
            }
            tracing::info!(name = %narrative.name, service_id = %narrative.id,
                "recorded the owner of a narrative made without one");
            self.reread(&narrative.id, &narrative.name).await
        })
        .await
    }

    fn conditional(&self) -> bool {
        true
    }

    async fn remove(&self, narrative: &Narrative) -> Result<(), ManagerError> {
        self.bounded("remove", narrative.name.as_str(), async {
            let subject = narrative.name.as_str();
            let Some(service) = self.service(&narrative.id).await? else {
                return Ok(());
            };
            let Some(seen) = Seen::of(service.clone(), &[]) else {
                return Ok(());
            };
            let mut service = service;
            let mut seen = seen;
            if !seen.removing() {
                // The claim: from here no connect marks it, and a connect that marked it
                // first made this update fail. Only a change of the narrative loses (see
                // `current`); Swarm's own version bumps are looked past.
                let mut claimed = false;
                for _ in 0..3 {
                    let moved = narrative
                        .version
                        .as_ref()
                        .is_some_and(|v| *v != seen.version.to_string());
                    if moved && !self.narrative(&seen).is_ok_and(|now| same(narrative, &now)) {
                        return Err(ManagerError::Conflict {
                            backend: BACKEND.to_owned(),
                            name: subject.to_owned(),
                        });
                    }
                    let mut labels = seen.labels.clone();
                    labels.insert(REMOVING_LABEL.to_owned(), "true".to_owned());
                    match self.relabel(service, labels, subject).await {
                        Ok(()) => {
                            claimed = true;
                            break;
                        }
                        Err(ManagerError::NotFound { .. }) => return Ok(()),
                        Err(ManagerError::Conflict { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    let Some(again) = self.service(&narrative.id).await? else {
                        return Ok(());
                    };
                    let Some(read) = Seen::of(again.clone(), &[]) else {
                        return Ok(());
                    };
                    (service, seen) = (again, read);
                    if seen.removing() {
                        claimed = true;
                        break;
                    }
                }
                if !claimed {
                    return Err(ManagerError::Conflict {
                        backend: BACKEND.to_owned(),
                        name: subject.to_owned(),
                    });
                }
            }
            match self
                .within("delete", subject, self.docker.delete_service(&narrative.id))
                .await?
            {
                Ok(()) => {}
                Err(e) if status(&e) == Some(404) => {}
                Err(e) => return Err(self.classify("delete", subject, e)),
            }
            if let Some(name) = seen.name().and_then(|n| ServiceName::new(n).ok()) {
                self.release(&name, &narrative.id).await;
            }
            tracing::info!(name = %narrative.name, service_id = %narrative.id, "removed narrative service");
            Ok(())
        })
        .await
    }

    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        // Swarm restarts a narrative that stops; one with no task Swarm wants running (its
        // replicas set to 0, or its update paused) or left claimed by a removal that did not
        // finish (listed by nothing else) is a zombie.
        self.bounded("zombies", "narratives", async {
            let mut all = self.all().await?;
            all.retain(|n| matches!(n.state, NarrativeState::Stopped | NarrativeState::Removing));
            Ok(all)
        })
        .await
    }

    fn traefik_service(&self, narrative_name: &ServiceName) -> String {
        // Each narrative's Traefik service is named by a label after its name (module `spec`),
        // and renamed with it by an assignment.
        traefik_name(narrative_name.as_str())
    }
}
