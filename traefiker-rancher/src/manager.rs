//! [`RancherManager`]: the core's [`ContainerManager`] contract over Rancher services.
//!
//! One narrative is one Rancher service of scale 1 in the configured stack. Its Rancher id is
//! the narrative's opaque id, and `{env_url}/services/{id}` is its `links.self`.
//!
//! Every operation runs under one [`Deadline`]: [`Timeouts::request`] for a single operation
//! (all its requests and retries), [`Timeouts::list`] for a listing across all its pages.

use std::cmp::Ordering;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use traefiker_core::{
    Assignment, BackendInfo, ContainerManager, ManagerError, Naming, Narrative, NarrativeState,
    Origin, Owner, ReplicaId, ServiceName, SessionId, SpawnSpec, REPLICA_LABEL, SESSION_LABEL,
};
use url::Url;

use crate::client::{join, parse_setting, shown, Client, Deadline};
use crate::config::{RancherConfig, Timeouts};
use crate::discovery::{discover, Location};
use crate::error::{SetupError, BACKEND};
use crate::wire::{
    CreateService, DescribeService, LaunchConfigOut, RenameService, RestartPolicy, Service,
    CAP_DROP,
};

/// Port Jupyter answers on inside a narrative.
const NARRATIVE_PORT: u16 = 8888;

/// A [`ContainerManager`] over one Rancher 1.x stack.
#[derive(Clone, Debug)]
pub struct RancherManager {
    client: Client,
    rancher_url: Url,
    location: Location,
    /// `docker:<image_name>:`, the prefix of every narrative's `imageUuid`.
    image_prefix: String,
    naming: Naming,
    page_size: u32,
    timeouts: Timeouts,
}

impl RancherManager {
    /// A manager for a fully configured location: `env_url`, `stack_id` and `stack_name` must
    /// all be set (see [`RancherManager::discover`] otherwise). Makes no call.
    pub fn new(config: RancherConfig) -> Result<Self, SetupError> {
        let (env_url, stack_id, stack_name) =
            match (&config.env_url, &config.stack_id, &config.stack_name) {
                (Some(e), Some(i), Some(n)) => (e.clone(), i.clone(), n.clone()),
                (None, _, _) => return Err(unset("rancher_env_url")),
                (_, None, _) => return Err(unset("rancher_stack_id")),
                (_, _, None) => return Err(unset("rancher_stack_name")),
            };
        let location = Location {
            env_url: parse_setting("rancher_env_url", &env_url)?,
            stack_id,
            stack_name,
        };
        Self::build(config, location)
    }

    /// A manager that learns whatever of `env_url`, `stack_id` and `stack_name` is unset
    /// (SPEC §7): rancher-metadata for the environment and stack names, the projects
    /// collection for the environment URL, the stacks collection for the stack id. Checks the
    /// credentials and the environment on the way.
    pub async fn discover(config: RancherConfig) -> Result<Self, SetupError> {
        let (client, rancher_url) = client_for(&config)?;
        let env_url = config
            .env_url
            .as_deref()
            .map(|u| parse_setting("rancher_env_url", u))
            .transpose()?;
        let location = discover(
            &client,
            config.timeouts,
            &rancher_url,
            &config.meta_url,
            env_url,
            config.stack_id.clone(),
            config.stack_name.clone(),
        )
        .await?;
        Self::build(config, location)
    }

    fn build(config: RancherConfig, location: Location) -> Result<Self, SetupError> {
        let (client, rancher_url) = client_for(&config)?;
        if config.image_name.is_empty() || config.image_name.contains(':') {
            return Err(SetupError::Config {
                setting: "image_name",
                reason: "must be an image name without a tag, e.g. kbase/narrative".into(),
            });
        }
        if config.page_size == 0 {
            return Err(SetupError::Config {
                setting: "page_size",
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            client,
            rancher_url,
            image_prefix: format!("docker:{}:", config.image_name),
            naming: config.naming,
            page_size: config.page_size.min(3000),
            timeouts: config.timeouts,
            location,
        })
    }

    /// The environment (project) URL in use.
    pub fn env_url(&self) -> &str {
        self.location.env_url.as_str()
    }

    /// The id of the stack holding the narratives.
    pub fn stack_id(&self) -> &str {
        &self.location.stack_id
    }

    /// The name of that stack.
    pub fn stack_name(&self) -> &str {
        &self.location.stack_name
    }

    fn services_url(&self) -> Url {
        join(&self.location.env_url, &["services"])
    }

    fn service_url(&self, id: &str) -> Url {
        join(&self.location.env_url, &["services", id])
    }

    /// `{env_url}/service?<key>=<value>`: the filtered collection the Python version used.
    fn filtered(&self, key: &str, value: &str) -> Url {
        let mut url = join(&self.location.env_url, &["service"]);
        url.query_pairs_mut().append_pair(key, value);
        url
    }

    /// The core's view of `service`, or why it is not a narrative of ours.
    fn narrative(&self, service: &Service) -> Result<Narrative, &'static str> {
        if service.stack_id.as_deref() != Some(self.location.stack_id.as_str()) {
            return Err("in another stack");
        }
        let image = service
            .image_uuid()
            .filter(|i| i.starts_with(&self.image_prefix))
            .and_then(|i| i.strip_prefix("docker:"))
            .ok_or("not the narrative image")?;
        let raw_name = service.name.as_deref().ok_or("no name")?;
        let kind = self
            .naming
            .kind_of(raw_name)
            .ok_or("not a narrative name")?;
        let name = ServiceName::new(raw_name).map_err(|_| "not a valid service name")?;
        let session = service
            .label(SESSION_LABEL)
            .and_then(|s| SessionId::parse(s).ok())
            .ok_or("no valid session_id label")?;
        let created = service
            .created_ts
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .or_else(|| {
                service
                    .created
                    .as_deref()
                    .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                    .map(|c| c.with_timezone(&Utc))
            });
        let description = service
            .description
            .as_deref()
            .map(read_description)
            .unwrap_or_default();
        Ok(Narrative {
            id: service.id.clone(),
            address: Some(self.address(&name)),
            name,
            session,
            image: image.to_owned(),
            kind,
            state: state(service.state.as_deref(), service.health_state.as_deref()),
            origin: description.0,
            owner: description.1,
            version: None,
            replica: service
                .label(REPLICA_LABEL)
                .and_then(|r| ReplicaId::new(r).ok()),
            public_endpoints: service
                .public_endpoints
                .iter()
                .flatten()
                .filter_map(|e| Some(format!("{}:{}", e.ip_address.as_deref()?, e.port?)))
                .collect(),
            created,
        })
    }

    /// Rancher 1.x's internal DNS resolves `<service>.<stack>` to the service's containers on
    /// the managed network, which Traefik and traefiker share with the narratives.
    fn address(&self, name: &ServiceName) -> String {
        format!(
            "http://{name}.{}:{NARRATIVE_PORT}",
            self.location.stack_name
        )
    }

    /// Narratives among `services`; the others are skipped with a warning when they look like
    /// narratives but cannot be used (never with the label's value: it is a session id).
    fn narratives(&self, services: Vec<Service>) -> Vec<Narrative> {
        services.iter().filter_map(|s| self.usable(s)).collect()
    }

    /// The narrative `s` is, if it is a live one traefiker can use; see
    /// [`RancherManager::narratives`].
    fn usable(&self, s: &Service) -> Option<Narrative> {
        if s.is_removed() {
            return None;
        }
        match self.narrative(s) {
            Ok(n) => Some(n),
            Err(why) => {
                let named = s.name.as_deref().and_then(|n| self.naming.kind_of(n));
                let ours = s
                    .image_uuid()
                    .is_some_and(|i| i.starts_with(&self.image_prefix));
                if named.is_some() && ours {
                    tracing::warn!(service_id = %s.id, name = ?s.name, reason = why,
                        "skipping a narrative service traefiker cannot use");
                }
                None
            }
        }
    }

    /// A deadline for one operation from now.
    fn operation(&self) -> Deadline {
        Deadline::after(self.timeouts.request)
    }

    /// The live service of `id`, or `NotFound` for `subject`.
    async fn live_service(
        &self,
        id: &str,
        subject: &str,
        deadline: Deadline,
    ) -> Result<(Url, Service), ManagerError> {
        let url = self.service_url(id);
        let service: Service = self
            .client
            .get(&url, deadline)
            .await
            .map_err(|e| e.into_manager(subject))?;
        if service.is_removed() {
            return Err(ManagerError::NotFound {
                backend: BACKEND.to_owned(),
                name: subject.to_owned(),
            });
        }
        Ok((url, service))
    }

    /// Sets the description of the service at `url` (`narrative`) and returns it as it now
    /// reads.
    async fn describe_service(
        &self,
        url: &Url,
        narrative: &Narrative,
        description: String,
        deadline: Deadline,
    ) -> Result<Narrative, ManagerError> {
        let body = DescribeService { description };
        let service: Service = self
            .client
            .put(url, &body, deadline)
            .await
            .map_err(|e| e.into_manager(narrative.name.as_str()))?;
        self.readable(&service)
    }

    /// `service` as a narrative, or a `Rejected` error saying why it no longer reads as one.
    fn readable(&self, service: &Service) -> Result<Narrative, ManagerError> {
        self.narrative(service)
            .map_err(|why| ManagerError::Rejected {
                backend: BACKEND.to_owned(),
                detail: format!(
                    "service {} does not read back as a narrative: {why}",
                    service.id
                ),
            })
    }

    /// Removes a service this manager has just created but cannot report as a narrative (an
    /// image that is not `image_name`, a label Rancher dropped...), so nothing is left running
    /// that no listing would ever show; then the error saying why. Uses what is left of the
    /// create's deadline.
    async fn discard_created(
        &self,
        spec: &SpawnSpec,
        service: &Service,
        why: &str,
        deadline: Deadline,
    ) -> ManagerError {
        let image = self
            .image_prefix
            .trim_start_matches("docker:")
            .trim_end_matches(':');
        let cleanup = match self
            .client
            .delete_when_idle(&self.service_url(&service.id), deadline)
            .await
        {
            Ok(()) => "it was removed".to_owned(),
            Err(e) if e.status() == Some(404) => "it is gone".to_owned(),
            Err(e) => {
                tracing::error!(name = %spec.name, service_id = %service.id, error = %e,
                    "cannot remove a created service that is not a narrative: remove it by hand");
                format!(
                    "removing it failed ({e}): remove service {} by hand",
                    service.id
                )
            }
        };
        ManagerError::Rejected {
            backend: BACKEND.to_owned(),
            detail: format!(
                "created service {} ({}) does not read back as a narrative: {why} \
                 (is image_name {image:?} the image being started?); {cleanup}",
                spec.name, service.id
            ),
        }
    }
}

fn unset(setting: &'static str) -> SetupError {
    SetupError::Config {
        setting,
        reason: "is not set; set it, or build the manager with RancherManager::discover".into(),
    }
}

fn client_for(config: &RancherConfig) -> Result<(Client, Url), SetupError> {
    let rancher_url = parse_setting("rancher_url", &config.url)?;
    let client = Client::new(
        config.credentials.clone(),
        config.timeouts,
        config.retry,
        config.ca_bundle_pem.as_deref(),
    )?;
    Ok((client, rancher_url))
}

/// Rancher's service states, normalised. An `active` service is `Running` only when its
/// health says its container is up: a waiting narrative is handed to a user only when
/// `Running`, so one that is still starting or failing its checks must not look ready.
/// (`healthState` values: rancher/cattle `HealthcheckConstants`, the service's computed in
/// `ServiceDiscoveryServiceImpl.calculateServiceHealthState`.)
fn state(state: Option<&str>, health: Option<&str>) -> NarrativeState {
    match state.unwrap_or("") {
        "active" => match health.unwrap_or("") {
            "initializing" | "reinitializing" => NarrativeState::Starting,
            // Every container of the service stopped after starting once: the zombie case.
            "started-once" => NarrativeState::Stopped,
            h @ ("unhealthy" | "updating-unhealthy" | "degraded") => {
                NarrativeState::Other(h.to_owned())
            }
            // `healthy`, `updating-healthy`, or none: no health check to fail.
            _ => NarrativeState::Running,
        },
        "registering" | "activating" => NarrativeState::Starting,
        "updating-active" | "updating-inactive" | "upgrading" | "upgraded" | "restarting"
        | "rolling-back" | "canceling-upgrade" | "canceled-upgrade" | "finishing-upgrade" => {
            NarrativeState::Updating
        }
        "inactive" | "deactivating" => NarrativeState::Stopped,
        "removing" | "removed" | "purging" | "purged" => NarrativeState::Removing,
        other => NarrativeState::Other(other.to_owned()),
    }
}

/// Oldest first (`createdTS`, then id as a number where it is one), so duplicate names
/// resolve to the same service every time.
fn oldest_first(a: &Narrative, b: &Narrative) -> Ordering {
    let key = |n: &Narrative| {
        let digits: String = n.id.chars().filter(char::is_ascii_digit).collect();
        (
            n.created.unwrap_or(DateTime::<Utc>::MAX_UTC),
            digits.parse::<u64>().unwrap_or(u64::MAX),
            n.id.clone(),
        )
    };
    key(a).cmp(&key(b))
}

#[async_trait]
impl ContainerManager for RancherManager {
    async fn verify(&self) -> Result<BackendInfo, ManagerError> {
        let deadline = self.operation();
        let subject = "the Rancher API";
        self.client
            .get::<serde_json::Value>(&self.rancher_url, deadline)
            .await
            .map_err(|e| e.into_manager(subject))?;
        self.client
            .get::<serde_json::Value>(&self.location.env_url, deadline)
            .await
            .map_err(|e| e.into_manager("the environment (rancher_env_url)"))?;
        let stack = join(&self.location.env_url, &["stacks", &self.location.stack_id]);
        self.client
            .get::<serde_json::Value>(&stack, deadline)
            .await
            .map_err(|e| e.into_manager("the stack (rancher_stack_id)"))?;
        Ok(BackendInfo {
            backend: BACKEND.to_owned(),
            location: format!(
                "{} stack {} ({})",
                shown(&self.location.env_url),
                self.location.stack_name,
                self.location.stack_id
            ),
        })
    }

    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
        let url = self.filtered("name", name.as_str());
        let services: Vec<Service> = self
            .client
            .list_all(url, self.operation())
            .await
            .map_err(|e| e.into_manager(name.as_str()))?;
        // Filters Rancher does not know are silently ignored, so check the answer really is
        // this name, in this stack, and alive.
        let same: Vec<Service> = services
            .into_iter()
            .filter(|s| {
                s.name.as_deref() == Some(name.as_str())
                    && s.stack_id.as_deref() == Some(self.location.stack_id.as_str())
                    && !s.is_removed()
            })
            .collect();
        let mut found = Vec::with_capacity(same.len());
        for service in &same {
            match self.narrative(service) {
                Ok(n) => found.push(n),
                Err(why) => {
                    return Err(ManagerError::Rejected {
                        backend: BACKEND.to_owned(),
                        detail: format!(
                            "service {name} ({}) in stack {} is not a usable narrative: {why}; \
                             remove or rename it",
                            service.id, self.location.stack_name
                        ),
                    })
                }
            }
        }
        found.sort_by(oldest_first);
        let mut found = found.into_iter();
        let oldest = found.next();
        let others: Vec<String> = found.map(|n| n.id).collect();
        if let Some(kept) = &oldest {
            if !others.is_empty() {
                tracing::warn!(name = %name, kept = %kept.id, duplicates = ?others,
                    "several services share this name; using the oldest, remove the others");
            }
        }
        Ok(oldest)
    }

    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        let mut url = self.services_url();
        url.query_pairs_mut()
            .append_pair("stackId", &self.location.stack_id)
            .append_pair("limit", &self.page_size.to_string());
        self.client
            .list_map(url, Deadline::after(self.timeouts.list), |s: Service| {
                self.usable(&s)
            })
            .await
            .map_err(|e| e.into_manager("the stack's services"))
    }

    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        let mut labels = spec.labels.clone();
        labels.insert("io.rancher.container.pull_image".into(), "always".into());
        labels.insert("io.rancher.container.start_once".into(), "true".into());
        labels.insert(SESSION_LABEL.into(), spec.session.expose().to_owned());
        let body = CreateService {
            type_: "service",
            name: spec.name.as_str(),
            stack_id: &self.location.stack_id,
            scale: 1,
            start_on_create: true,
            assign_service_ip_address: false,
            description: describe(spec.origin.as_ref(), spec.owner.as_ref()),
            launch_config: LaunchConfigOut {
                type_: "launchConfig",
                kind: "container",
                image_uuid: format!("docker:{}", spec.image),
                labels,
                environment: &spec.env,
                ports: ["8888/tcp"],
                restart_policy: RestartPolicy { name: "always" },
                network_mode: "managed",
                tty: true,
                stdin_open: true,
                vcpu: 1,
                privileged: false,
                cap_add: [],
                cap_drop: CAP_DROP,
                instance_triggered_stop: "stop",
                start_on_create: true,
            },
        };
        let deadline = self.operation();
        let url = join(&self.location.env_url, &["service"]);
        // A POST whose answer is lost (timeout, broken connection, 5xx) may have created the
        // service: that is `Unavailable`, and the caller looks the name up (trait contract).
        let service: Service = self
            .client
            .post(&url, &body, deadline)
            .await
            .map_err(|e| e.into_manager(spec.name.as_str()))?;
        tracing::info!(name = %spec.name, service_id = %service.id, "created narrative service");
        match self.narrative(&service) {
            Ok(narrative) => Ok(narrative),
            Err(why) => Err(self.discard_created(spec, &service, why, deadline).await),
        }
    }

    async fn assign(
        &self,
        narrative: &Narrative,
        assignment: &Assignment,
    ) -> Result<Narrative, ManagerError> {
        // Read first: Rancher would happily rename a service that is being removed, or one
        // that another replica has just given to someone else. Renaming is not conditional in
        // Rancher, so this read (one extra round trip on a new user's path) is the only guard
        // against two users sharing one container.
        let deadline = self.operation();
        let (url, service) = self
            .live_service(&narrative.id, narrative.name.as_str(), deadline)
            .await?;
        if service.name.as_deref() != Some(narrative.name.as_str()) {
            return Err(ManagerError::NotFound {
                backend: BACKEND.to_owned(),
                name: narrative.name.to_string(),
            });
        }
        let target = match service.links.self_.as_deref() {
            Some(link) => self
                .client
                .follow(&url, link)
                .map_err(|e| e.into_manager(narrative.name.as_str()))?,
            None => url,
        };
        // The owner rides in the same PUT as the name: no listing ever shows the user's name
        // without it.
        let body = RenameService {
            name: assignment.name.as_str(),
            description: describe(Some(&assignment.origin), Some(&assignment.owner))
                .unwrap_or_default(),
        };
        let renamed: Service =
            self.client
                .put(&target, &body, deadline)
                .await
                .map_err(|e| match e.status() {
                    Some(404) => e.into_manager(narrative.name.as_str()),
                    _ => e.into_manager(assignment.name.as_str()),
                })?;
        tracing::info!(from = %narrative.name, to = %assignment.name, service_id = %renamed.id,
            "assigned a waiting narrative");
        self.narrative(&renamed)
            .map_err(|why| ManagerError::Rejected {
                backend: BACKEND.to_owned(),
                detail: format!(
                    "renamed service {} does not read back as a narrative: {why}",
                    renamed.id
                ),
            })
    }

    async fn mark_connected(
        &self,
        narrative: &Narrative,
        origin: &Origin,
    ) -> Result<Narrative, ManagerError> {
        // The description is the one piece of mutable metadata a Rancher service has; every
        // replica's listing reads it back, so it is where a connection becomes visible to
        // every reaper (SPEC §9). It carries the owner too, kept as it was read.
        let url = self.service_url(&narrative.id);
        self.describe_service(
            &url,
            narrative,
            describe(Some(origin), narrative.owner.as_ref()).unwrap_or_default(),
            self.operation(),
        )
        .await
    }

    async fn stamp_owner(
        &self,
        narrative: &Narrative,
        owner: &Owner,
    ) -> Result<Narrative, ManagerError> {
        // Rancher has no conditional update: read the description again just before writing
        // it, so an owner another replica recorded since this one listed is seen. Two
        // replicas stamping one Python-made service within that read-then-write window remain
        // possible (docs/rancher.md).
        let deadline = self.operation();
        let subject = narrative.name.as_str();
        let (url, service) = self.live_service(&narrative.id, subject, deadline).await?;
        let (origin, recorded) = service
            .description
            .as_deref()
            .map(read_description)
            .unwrap_or_default();
        match recorded {
            Some(other) if other != *owner => Err(ManagerError::OwnedByAnother {
                backend: BACKEND.to_owned(),
                name: subject.to_owned(),
            }),
            Some(_) => self.readable(&service),
            None => {
                let origin = origin.unwrap_or(Origin {
                    client_ip: None,
                    at: Utc::now(),
                });
                let description = describe(Some(&origin), Some(owner)).unwrap_or_default();
                let stamped = self
                    .describe_service(&url, narrative, description, deadline)
                    .await?;
                tracing::info!(name = %narrative.name, service_id = %narrative.id,
                    "recorded the owner of a narrative made without one");
                Ok(stamped)
            }
        }
    }

    fn conditional(&self) -> bool {
        false
    }

    async fn remove(&self, narrative: &Narrative) -> Result<(), ManagerError> {
        let deadline = self.operation();
        let url = self.service_url(&narrative.id);
        let subject = narrative.name.as_str();
        match self.client.delete(&url, deadline).await {
            Ok(()) => {
                tracing::info!(name = %narrative.name, service_id = %narrative.id,
                    "removing narrative service");
                Ok(())
            }
            Err(e) if e.status() == Some(404) => Ok(()),
            // Busy or refused: fine if it is already on its way out.
            Err(e) if matches!(e.status(), Some(409 | 422)) => {
                match self.live_service(&narrative.id, subject, deadline).await {
                    Err(ManagerError::NotFound { .. }) => Ok(()),
                    _ => Err(e.into_manager(subject)),
                }
            }
            Err(e) => Err(e.into_manager(subject)),
        }
    }

    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        let url = self.filtered("healthState", "started-once");
        // Environment-wide and paginated like `list`, so a listing's deadline.
        let services: Vec<Service> = self
            .client
            .list_all(url, Deadline::after(self.timeouts.list))
            .await
            .map_err(|e| e.into_manager("started-once services"))?;
        // The list is environment-wide; keep narratives of our stack only.
        let zombies = services
            .into_iter()
            .filter(|s| s.health_state.as_deref() == Some("started-once"))
            .collect();
        Ok(self.narratives(zombies))
    }

    fn traefik_service(&self, narrative_name: &ServiceName) -> String {
        format!("{narrative_name}_{}", self.location.stack_name)
    }
}

/// The service description: the Python version's `client-ip:… timestamp:…`, then the owner
/// record (SPEC §10) as ` owner:<sha256 hex>`. Rancher labels are fixed at creation and a
/// waiting service gets its owner only when it is assigned, so the owner lives in the one
/// field a rename's PUT can set with the name. `None` when there is nothing to say.
fn describe(origin: Option<&Origin>, owner: Option<&Owner>) -> Option<String> {
    match (origin, owner) {
        (Some(origin), Some(owner)) => Some(format!("{} owner:{owner}", origin.to_description())),
        (Some(origin), None) => Some(origin.to_description()),
        (None, Some(owner)) => Some(format!("owner:{owner}")),
        (None, None) => None,
    }
}

/// Reads a description written by [`describe`] or by the Python version.
fn read_description(description: &str) -> (Option<Origin>, Option<Owner>) {
    let (rest, owner) = match description.rsplit_once("owner:") {
        Some((rest, owner)) => (rest, Owner::parse(owner.trim()).ok()),
        None => (description, None),
    };
    (Origin::parse(rest.trim_end()), owner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rancher_states_are_normalised() {
        let healthy = Some("healthy");
        assert_eq!(state(Some("active"), healthy), NarrativeState::Running);
        assert_eq!(state(Some("active"), None), NarrativeState::Running);
        assert_eq!(
            state(Some("registering"), healthy),
            NarrativeState::Starting
        );
        assert_eq!(
            state(Some("updating-active"), healthy),
            NarrativeState::Updating
        );
        assert_eq!(state(Some("inactive"), healthy), NarrativeState::Stopped);
        assert_eq!(state(Some("removing"), healthy), NarrativeState::Removing);
        assert_eq!(
            state(Some("error"), healthy),
            NarrativeState::Other("error".into())
        );
    }

    #[test]
    fn new_names_the_missing_setting() {
        let config = RancherConfig::new("http://r:8080/v2-beta");
        let err = RancherManager::new(config).unwrap_err();
        assert_eq!(err.setting(), "rancher_env_url");
        let config = RancherConfig::new("http://r:8080/v2-beta").with_stack(
            "http://r:8080/v2-beta/projects/1a5",
            "1st5",
            "narratives",
        );
        let m = RancherManager::new(config).unwrap();
        let name = ServiceName::new("narrative-alice-522b27").unwrap();
        assert_eq!(
            m.traefik_service(&name),
            "narrative-alice-522b27_narratives"
        );
        assert_eq!(
            m.address(&name),
            "http://narrative-alice-522b27.narratives:8888"
        );
        let bad = RancherConfig::new("ftp://r").with_stack("http://r/p", "1", "n");
        assert_eq!(
            RancherManager::new(bad).unwrap_err().setting(),
            "rancher_url"
        );
    }
}
