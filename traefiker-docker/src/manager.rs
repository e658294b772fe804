//! [`DockerManager`]: the core's [`ContainerManager`] contract over Docker containers.
//!
//! One narrative is one container on the `dock_net` network. Its Docker id is the
//! narrative's opaque id: it survives the rename that gives a waiting container to a user.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, HostConfig, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use traefiker_core::narrative::CAP_DROP;
use traefiker_core::{
    Assignment, BackendInfo, ContainerManager, ManagerError, Naming, Narrative, NarrativeKind,
    NarrativeState, Origin, Owner, ReplicaId, ServiceName, SessionId, SpawnSpec, OWNER_LABEL,
    REPLICA_LABEL, SESSION_LABEL,
};

use crate::config::{DockerConfig, Timeouts};
use crate::error::{classify, status, timed_out, DockerError, BACKEND};

/// Port Jupyter answers on inside a narrative.
pub const NARRATIVE_PORT: u16 = 8888;

/// Traefik's label naming the network it reaches a container on. It is also how this backend
/// tells its own narratives from those of another deployment on the same engine: each
/// deployment has its own `dock_net`.
pub const NETWORK_LABEL: &str = "traefik.docker.network";

/// Label naming the image a narrative was created from (`<image_name>:<tag>`). Docker's own
/// answer changes to the image id when the tag is later moved to another image; the label
/// does not, so an outdated waiting container is still recognised and replaced.
pub const IMAGE_LABEL: &str = "traefiker.image";

/// Label holding the description `client-ip:… timestamp:…` of a container created for a
/// user. Labels are fixed at creation, so an assignment's description lives in the process
/// that made it (see [`DockerManager`]).
pub const ORIGIN_LABEL: &str = "traefiker.origin";

/// A [`ContainerManager`] over one Docker engine and one network.
///
/// Docker labels cannot change after creation, so `mark_connected` is
/// [`ManagerError::Unsupported`], and the description an `assign` sets is kept in this
/// process (and reported by its `find` and `list`) until the container is removed: after a
/// restart, or on another replica, an assigned narrative has no known origin. Its owner is
/// durable: a label at creation, or a claim volume for an assigned one (module `owner`).
#[derive(Debug)]
pub struct DockerManager {
    docker: Docker,
    url: String,
    network: String,
    /// `<image_name>:`, the prefix of every narrative's image.
    image_prefix: String,
    naming: Naming,
    timeouts: Timeouts,
    /// Descriptions set by `assign`, by container id.
    origins: Mutex<HashMap<String, Origin>>,
    /// Pulls in progress, by image.
    pulls: Arc<Mutex<HashMap<String, Pull>>>,
}

/// A pull in progress, shared by every create that needs its image.
type Pull = Shared<BoxFuture<'static, Result<(), String>>>;

impl DockerManager {
    /// Connects to the engine at `config.url` and agrees on an API version with it (one
    /// call, bounded by the request timeout).
    pub async fn connect(config: DockerConfig) -> Result<Self, DockerError> {
        let docker = open(&config).await?;
        let t = config.timeouts;
        Ok(Self {
            docker,
            url: config.url,
            network: config.network,
            image_prefix: format!("{}:", config.image_name),
            naming: config.naming,
            timeouts: t,
            origins: Mutex::new(HashMap::new()),
            pulls: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Who else runs, from this engine (module `membership`): the running containers of
    /// traefiker's own Compose service, over this manager's client.
    pub fn membership(&self, own: crate::OwnContainer) -> crate::DockerMembership {
        crate::DockerMembership::new(self.docker.clone(), own, self.timeouts.request)
    }

    /// The network narratives join (`dock_net`).
    pub fn network(&self) -> &str {
        &self.network
    }

    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }

    pub(crate) fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    fn origins(&self) -> MutexGuard<'_, HashMap<String, Origin>> {
        self.origins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one engine call within `limit`: the outer error is the timeout, the inner result
    /// the engine's answer, for the caller to read statuses from.
    pub(crate) async fn within<T>(
        &self,
        call: &str,
        subject: &str,
        limit: Duration,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<Result<T, bollard::errors::Error>, ManagerError> {
        tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| timed_out(call, subject, limit))
    }

    /// Runs one whole operation of the contract (every engine call it makes) within the
    /// request timeout: the core's deadline on the call is then the backend's own, and
    /// nothing of it goes on after its caller was told it failed (but a pull it started,
    /// which has a deadline of its own: see [`Self::ensure_image`]).
    async fn bounded<T>(
        &self,
        operation: &str,
        subject: &str,
        fut: impl Future<Output = Result<T, ManagerError>>,
    ) -> Result<T, ManagerError> {
        let limit = self.timeouts.request;
        tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(timed_out(operation, subject, limit)))
    }

    /// [`Self::within`] with the request timeout, every error classified.
    pub(crate) async fn request<T>(
        &self,
        call: &str,
        subject: &str,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, ManagerError> {
        self.within(call, subject, self.timeouts.request, fut)
            .await?
            .map_err(|e| classify(call, subject, e))
    }

    /// The container `id_or_name` as the engine reports it now, or `None` if it is gone.
    async fn inspect(&self, id_or_name: &str) -> Result<Option<Seen>, ManagerError> {
        let answer = self
            .within(
                "inspect",
                id_or_name,
                self.timeouts.request,
                self.docker.inspect_container(id_or_name, None),
            )
            .await?;
        match answer {
            Ok(c) => Ok(Seen::from_inspect(c, &self.network)),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(classify("inspect", id_or_name, e)),
        }
    }

    /// The core's view of `seen`, or why it is not a narrative of this deployment.
    fn narrative(&self, seen: &Seen) -> Result<Narrative, &'static str> {
        if seen.labels.get(NETWORK_LABEL) != Some(&self.network) {
            return Err("not labelled for this dock_net");
        }
        let image = seen
            .labels
            .get(IMAGE_LABEL)
            .or(seen.image.as_ref())
            .filter(|i| i.starts_with(&self.image_prefix))
            .ok_or("not the narrative image")?;
        let kind = self
            .naming
            .kind_of(&seen.name)
            .ok_or("not a narrative name")?;
        let name = ServiceName::new(seen.name.clone()).map_err(|_| "not a valid name")?;
        let session = seen
            .labels
            .get(SESSION_LABEL)
            .and_then(|s| SessionId::parse(s).ok())
            .ok_or("no valid session_id label")?;
        let origin = self
            .origins()
            .get(&seen.id)
            .cloned()
            .or_else(|| seen.labels.get(ORIGIN_LABEL).and_then(|d| Origin::parse(d)));
        Ok(Narrative {
            id: seen.id.clone(),
            name,
            session,
            image: image.clone(),
            kind,
            state: seen.state.clone(),
            origin,
            owner: seen
                .labels
                .get(OWNER_LABEL)
                .and_then(|o| Owner::parse(o).ok()),
            version: None,
            replica: seen
                .labels
                .get(REPLICA_LABEL)
                .and_then(|r| ReplicaId::new(r.clone()).ok()),
            address: seen
                .ip
                .as_ref()
                .map(|ip| format!("http://{ip}:{NARRATIVE_PORT}")),
            public_endpoints: seen.public_endpoints.clone(),
            created: seen.created,
        })
    }

    /// Narratives among `containers`; the others are skipped, with a warning when they look
    /// like narratives of this deployment but cannot be used (never with a label's value: the
    /// session label is a secret).
    fn narratives(&self, containers: Vec<ContainerSummary>) -> Vec<Narrative> {
        containers
            .into_iter()
            .filter_map(|c| Seen::from_summary(c, &self.network))
            .filter_map(|seen| match self.narrative(&seen) {
                Ok(n) => Some(n),
                Err(why) => {
                    if self.naming.kind_of(&seen.name).is_some() {
                        tracing::warn!(container_id = %seen.id, name = %seen.name, reason = why,
                            "skipping a container traefiker cannot use as a narrative");
                    }
                    None
                }
            })
            .collect()
    }

    /// Containers carrying the session label and this deployment's network label, narrowed
    /// by `extra` filters.
    async fn list_labelled(
        &self,
        what: &str,
        extra: &[(&str, &[&str])],
    ) -> Result<Vec<ContainerSummary>, ManagerError> {
        let mut filters: HashMap<&str, Vec<String>> = HashMap::from([(
            "label",
            vec![
                SESSION_LABEL.to_owned(),
                format!("{NETWORK_LABEL}={}", self.network),
            ],
        )]);
        for (key, values) in extra {
            filters.insert(key, values.iter().map(|v| (*v).to_owned()).collect());
        }
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.request("list", what, self.docker.list_containers(Some(options)))
            .await
    }

    /// The container body of `spec`: its image, environment, labels, capability drops and
    /// restart policy (SPEC §4), on `dock_net`.
    fn container_body(&self, spec: &SpawnSpec) -> ContainerCreateBody {
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(SESSION_LABEL.to_owned(), spec.session.expose().to_owned());
        labels.insert(NETWORK_LABEL.to_owned(), self.network.clone());
        labels.insert(IMAGE_LABEL.to_owned(), spec.image.clone());
        if let Some(origin) = &spec.origin {
            labels.insert(ORIGIN_LABEL.to_owned(), origin.to_description());
        }
        if let Some(owner) = &spec.owner {
            labels.insert(OWNER_LABEL.to_owned(), owner.as_str().to_owned());
        }
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            // The one exposed port is how Traefik's Docker provider learns the service port:
            // a `traefik.http.services.<name>` label would fix the Traefik service's name at
            // creation, and a waiting container is renamed when it is assigned (see
            // `traefik_service`).
            exposed_ports: Some(vec![format!("{NARRATIVE_PORT}/tcp")]),
            // As Rancher starts narratives (SPEC §4): the narrative image expects a terminal.
            tty: Some(true),
            open_stdin: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::ALWAYS),
                    maximum_retry_count: None,
                }),
                cap_drop: Some(CAP_DROP.iter().map(|c| (*c).to_owned()).collect()),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        }
    }

    /// Creates (does not start) the container; `Ok(None)` when the engine answered 404, which
    /// is a missing image or network.
    async fn create_stopped(
        &self,
        spec: &SpawnSpec,
        body: ContainerCreateBody,
    ) -> Result<Option<String>, ManagerError> {
        let options = CreateContainerOptionsBuilder::default()
            .name(spec.name.as_str())
            .build();
        let answer = self
            .within(
                "create",
                spec.name.as_str(),
                self.timeouts.request,
                self.docker.create_container(Some(options), body),
            )
            .await?;
        match answer {
            Ok(created) => Ok(Some(created.id)),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(classify("create", spec.name.as_str(), e)),
        }
    }

    /// After a 404 on create: pulls `image` if the engine lacks it; if it has it, the 404 was
    /// about the network.
    async fn ensure_image(&self, image: &str, name: &ServiceName) -> Result<(), ManagerError> {
        let present = self
            .within(
                "inspect image",
                image,
                self.timeouts.request,
                self.docker.inspect_image(image),
            )
            .await?;
        match present {
            Ok(_) => {
                return Err(self.network_missing().await.unwrap_or_else(|| {
                    ManagerError::Rejected {
                        backend: BACKEND.to_owned(),
                        detail: format!("cannot create {name}: the engine answered 404"),
                    }
                }))
            }
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => return Err(classify("inspect image", image, e)),
        }
        match self.pull(image).await {
            Ok(()) => Ok(()),
            Err(detail) => Err(ManagerError::Rejected {
                backend: BACKEND.to_owned(),
                detail: format!(
                    "image {image} is not on the Docker engine at {} and pulling it failed: {detail}; \
                     build or load it there (docker load), or check image_name and image_tag",
                    self.url
                ),
            }),
        }
    }

    /// The pull of `image`: one task per image, whoever asks, bounded by the pull timeout
    /// alone. A create waiting for it stops waiting at its own deadline; the pull goes on,
    /// so a large image arrives however short the operations' deadline is, and the next
    /// create finds it (or joins the same pull).
    fn pull(&self, image: &str) -> Pull {
        let mut pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pull) = pulls.get(image) {
            return pull.clone();
        }
        tracing::info!(image, "pulling the narrative image");
        let (repo, tag) = split_image(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let docker = self.docker.clone();
        let limit = self.timeouts.pull;
        let all = self.pulls.clone();
        let key = image.to_owned();
        let task = tokio::spawn(async move {
            let pull = async {
                let mut progress = docker.create_image(Some(options), None, None);
                while let Some(step) = progress.next().await {
                    step?;
                }
                Ok::<(), bollard::errors::Error>(())
            };
            let result = match tokio::time::timeout(limit, pull).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no result within {limit:?}")),
            };
            all.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            result
        });
        let pull: Pull = task
            .map(|joined| joined.unwrap_or_else(|e| Err(format!("the pull stopped: {e}"))))
            .boxed()
            .shared();
        pulls.insert(image.to_owned(), pull.clone());
        pull
    }

    /// The error naming `dock_net` if the engine has no such network (`None` if it has, or
    /// cannot say).
    async fn network_missing(&self) -> Option<ManagerError> {
        let answer = self
            .within(
                "inspect network",
                &self.network,
                self.timeouts.request,
                self.docker.inspect_network(&self.network, None),
            )
            .await
            .ok()?;
        match answer {
            Err(e) if status(&e) == Some(404) => Some(ManagerError::Rejected {
                backend: BACKEND.to_owned(),
                detail: format!(
                    "the engine at {} has no network {}; create it (docker network create {}), \
                     or set dock_net to the network Traefik shares with the narratives",
                    self.url, self.network, self.network
                ),
            }),
            _ => None,
        }
    }

    /// Removes a container that was created but could not be started, so its name is free;
    /// a failure here is only logged, the start failure is what the caller reports.
    async fn discard(&self, id: &str, name: &ServiceName) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        let removed = self
            .within(
                "remove",
                name.as_str(),
                self.timeouts.request,
                self.docker.remove_container(id, Some(options)),
            )
            .await;
        if !matches!(removed, Ok(Ok(()))) {
            tracing::warn!(name = %name, container_id = id,
                "could not remove a container that failed to start; remove it by hand");
        }
    }
}

/// A client of the engine at `config.url` that agreed on an API version with it (one call,
/// bounded by the request timeout), after checking the settings every engine backend shares.
pub(crate) async fn open(config: &DockerConfig) -> Result<Docker, DockerError> {
    let image_name = config.image_name.as_str();
    let last = image_name.rsplit('/').next().unwrap_or(image_name);
    if image_name.is_empty() || last.contains(':') || last.contains('@') {
        return Err(DockerError::Config {
            setting: "image_name",
            reason: format!(
                "{image_name:?} must be an image name without a tag, e.g. kbase/narrative"
            ),
        });
    }
    let valid_network = !config.network.is_empty()
        && config
            .network
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !valid_network {
        return Err(DockerError::Config {
            setting: "dock_net",
            reason: format!("{:?} is not a Docker network name", config.network),
        });
    }
    let t = config.timeouts;
    // bollard's own limit is only a backstop: every call has its own, and stopping a container
    // legitimately takes the grace period.
    let backstop = (t.stop_grace + t.request).as_secs().max(1);
    let docker = client(&config.url, backstop)?;
    tokio::time::timeout(t.request, docker.negotiate_version())
        .await
        .map_err(|_| DockerError::Unreachable {
            url: config.url.clone(),
            detail: format!("no answer within {:?}", t.request),
        })?
        .map_err(|e| DockerError::Unreachable {
            url: config.url.clone(),
            detail: e.to_string(),
        })
}

/// A client for `url` (see [`DockerConfig::url`]).
pub(crate) fn client(url: &str, timeout_secs: u64) -> Result<Docker, DockerError> {
    let unreachable = |e: bollard::errors::Error| DockerError::Unreachable {
        url: url.to_owned(),
        detail: e.to_string(),
    };
    if let Some(path) = url.strip_prefix("unix://") {
        // The Python default `unix://var/run/docker.sock` names an absolute path, as
        // docker-py reads it.
        let path = format!("/{}", path.trim_start_matches('/'));
        Docker::connect_with_unix(&path, timeout_secs, API_DEFAULT_VERSION).map_err(unreachable)
    } else if url.starts_with("tcp://") || url.starts_with("http://") {
        Docker::connect_with_http(url, timeout_secs, API_DEFAULT_VERSION).map_err(unreachable)
    } else {
        Err(DockerError::Config {
            setting: "docker_url",
            reason: format!(
                "{url:?} must be unix:///path/to/docker.sock, or tcp://host:port or \
                 http://host:port of a socket proxy on a private network (TLS is not supported)"
            ),
        })
    }
}

/// `repo:tag` → (`repo`, `tag`); a colon before the last `/` is a registry port.
pub(crate) fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// Docker's container state and health, normalised: a health check still `starting` is not
/// yet ready (and Traefik does not route to it), `unhealthy` is reported as such.
fn state(status: &str, health: Option<&str>) -> NarrativeState {
    match (status, health) {
        ("running", Some("starting")) => NarrativeState::Starting,
        ("running", Some("unhealthy")) => NarrativeState::Other("unhealthy".to_owned()),
        ("running", _) => NarrativeState::Running,
        ("created" | "restarting", _) => NarrativeState::Starting,
        ("exited" | "dead", _) => NarrativeState::Stopped,
        ("removing", _) => NarrativeState::Removing,
        (other, _) => NarrativeState::Other(other.to_owned()),
    }
}

/// The health in a listing's status text (`Up 3 seconds (health: starting)`): the list answer
/// of the API versions engines speak today has no structured health.
fn health_in_status_text(text: &str) -> Option<&'static str> {
    if text.contains("(health: starting)") {
        Some("starting")
    } else if text.contains("(unhealthy)") {
        Some("unhealthy")
    } else if text.contains("(healthy)") {
        Some("healthy")
    } else {
        None
    }
}

/// The name Traefik's Docker provider gives a container's default service: its name with
/// every run of characters other than letters and digits made one `-`.
pub(crate) fn traefik_name(name: &str) -> String {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// What this backend reads of a container, from a listing or an inspection.
#[derive(Debug)]
struct Seen {
    id: String,
    name: String,
    labels: HashMap<String, String>,
    image: Option<String>,
    state: NarrativeState,
    ip: Option<String>,
    created: Option<DateTime<Utc>>,
    public_endpoints: Vec<String>,
}

impl Seen {
    fn from_summary(c: ContainerSummary, network: &str) -> Option<Self> {
        let name = c.names?.first()?.trim_start_matches('/').to_owned();
        let text = c.status.unwrap_or_default();
        let health = c
            .health
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none");
        let health = health.as_deref().or_else(|| health_in_status_text(&text));
        Some(Self {
            id: c.id?,
            name,
            labels: c.labels.unwrap_or_default(),
            image: c.image,
            state: state(&c.state.map(|s| s.to_string()).unwrap_or_default(), health),
            ip: c
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|mut n| n.remove(network))
                .and_then(|e| e.ip_address)
                .filter(|ip| !ip.is_empty()),
            created: c.created.and_then(|s| DateTime::from_timestamp(s, 0)),
            public_endpoints: c
                .ports
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| Some(format!("{}:{}", p.ip?, p.public_port?)))
                .collect(),
        })
    }

    fn from_inspect(c: ContainerInspectResponse, network: &str) -> Option<Self> {
        let (status, health) = match c.state {
            Some(s) => (
                s.status.map(|s| s.to_string()).unwrap_or_default(),
                s.health
                    .and_then(|h| h.status)
                    .map(|h| h.to_string())
                    .filter(|h| !h.is_empty() && h != "none"),
            ),
            None => (String::new(), None),
        };
        let config = c.config.unwrap_or_default();
        let settings = c.network_settings.unwrap_or_default();
        Some(Self {
            id: c.id?,
            name: c.name?.trim_start_matches('/').to_owned(),
            labels: config.labels.unwrap_or_default(),
            image: config.image,
            state: state(&status, health.as_deref()),
            ip: settings
                .networks
                .and_then(|mut n| n.remove(network))
                .and_then(|e| e.ip_address)
                .filter(|ip| !ip.is_empty()),
            created: c
                .created
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
            public_endpoints: settings
                .ports
                .unwrap_or_default()
                .into_values()
                .flatten()
                .flatten()
                .filter_map(|b| Some(format!("{}:{}", b.host_ip?, b.host_port?)))
                .collect(),
        })
    }
}

#[async_trait]
impl ContainerManager for DockerManager {
    async fn verify(&self) -> Result<BackendInfo, ManagerError> {
        self.bounded("verify", "of the engine", async {
            let version = self
                .request("version", "of the engine", self.docker.version())
                .await?;
            if let Some(missing) = self.network_missing().await {
                return Err(missing);
            }
            Ok(BackendInfo {
                backend: BACKEND.to_owned(),
                location: format!(
                    "{} network {} (Docker {}, API {})",
                    self.url,
                    self.network,
                    version.version.as_deref().unwrap_or("?"),
                    self.docker.client_version()
                ),
            })
        })
        .await
    }

    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
        self.bounded("find", name.as_str(), async {
            let Some(seen) = self.inspect(name.as_str()).await? else {
                return Ok(None);
            };
            // Inspecting by name also matches an id prefix; only the exact name is this one.
            if seen.name != name.as_str() || seen.state == NarrativeState::Removing {
                return Ok(None);
            }
            let mut narrative = self
                .narrative(&seen)
                .map_err(|why| ManagerError::Rejected {
                    backend: BACKEND.to_owned(),
                    detail: format!(
                        "container {name} ({}) is not a usable narrative of this deployment: {why}; \
                     remove or rename it",
                        seen.id
                    ),
                })?;
            if narrative.kind == NarrativeKind::User && narrative.owner.is_none() {
                narrative.owner = self.claimed_owner(&narrative.id).await?;
            }
            Ok(Some(narrative))
        })
        .await
    }

    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        self.bounded("list", "narratives", async {
            // Claims first: one made after this listing of claims belongs to a container that
            // existed before it, so the listing of containers below shows it (module `owner`).
            let claims = self.claims().await?;
            let containers = self.list_labelled("narratives", &[]).await?;
            let live: std::collections::HashSet<String> =
                containers.iter().filter_map(|c| c.id.clone()).collect();
            self.drop_orphans(&claims, |id| live.contains(id)).await;
            let mut all = self.narratives(containers);
            for n in &mut all {
                if n.kind == NarrativeKind::User && n.owner.is_none() {
                    n.owner = claims.get(&n.id).cloned();
                }
            }
            // Forget the descriptions of containers that are gone, so the map stays as small as
            // the set of live narratives.
            self.origins()
                .retain(|id, _| all.iter().any(|n| &n.id == id));
            Ok(all)
        })
        .await
    }

    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        self.bounded("create", spec.name.as_str(), async {
            let body = self.container_body(spec);
            let id = match self.create_stopped(spec, body.clone()).await? {
                Some(id) => id,
                None => {
                    self.ensure_image(&spec.image, &spec.name).await?;
                    self.create_stopped(spec, body).await?.ok_or_else(|| {
                        ManagerError::Rejected {
                            backend: BACKEND.to_owned(),
                            detail: format!(
                                "cannot create {}: the engine still lacks image {} or network {}",
                                spec.name, spec.image, self.network
                            ),
                        }
                    })?
                }
            };
            let started = self
                .within(
                    "start",
                    spec.name.as_str(),
                    self.timeouts.request,
                    self.docker.start_container(&id, None),
                )
                .await
                .and_then(|answer| match answer {
                    Ok(()) => Ok(()),
                    Err(e) if status(&e) == Some(404) => Err(ManagerError::Unavailable {
                        backend: BACKEND.to_owned(),
                        detail: format!(
                            "{} vanished, or its network did, while starting",
                            spec.name
                        ),
                    }),
                    Err(e) => Err(classify("start", spec.name.as_str(), e)),
                });
            if let Err(e) = started {
                self.discard(&id, &spec.name).await;
                // Engines check the network only when a container starts.
                return Err(match self.network_missing().await {
                    Some(missing) => missing,
                    None => e,
                });
            }
            tracing::info!(name = %spec.name, container_id = %id, "created narrative container");
            let seen = self
                .inspect(&id)
                .await?
                .ok_or_else(|| ManagerError::Unavailable {
                    backend: BACKEND.to_owned(),
                    detail: format!("{} was removed right after it started", spec.name),
                })?;
            self.narrative(&seen).map_err(|why| ManagerError::Rejected {
                backend: BACKEND.to_owned(),
                detail: format!(
                    "created container {} ({id}) does not read back as a narrative: {why} (is \
                     image_name {:?} the image being started?)",
                    spec.name,
                    self.image_prefix.trim_end_matches(':')
                ),
            })
        })
        .await
    }

    async fn assign(
        &self,
        narrative: &Narrative,
        assignment: &Assignment,
    ) -> Result<Narrative, ManagerError> {
        self.bounded("assign", assignment.name.as_str(), async {
            let gone = || ManagerError::NotFound {
                backend: BACKEND.to_owned(),
                name: narrative.name.to_string(),
            };
            // Read first: a rename is not conditional in Docker, and this read is the only guard
            // against giving one container to two users (another request or replica may have
            // renamed it since it was listed).
            let seen = self.inspect(&narrative.id).await?.ok_or_else(gone)?;
            if seen.name != narrative.name.as_str() || seen.state == NarrativeState::Removing {
                return Err(gone());
            }
            // The owner record before the name: no listing shows the user's name without it. A
            // claim left by an earlier attempt on this still-waiting container is replaced.
            if self.claim(&narrative.id, &assignment.owner).await? != assignment.owner {
                self.drop_claim(&narrative.id).await;
                if self.claim(&narrative.id, &assignment.owner).await? != assignment.owner {
                    return Err(ManagerError::Unavailable {
                        backend: BACKEND.to_owned(),
                        detail: format!(
                            "could not replace the owner record of waiting container {}",
                            narrative.name
                        ),
                    });
                }
            }
            let options = RenameContainerOptionsBuilder::default()
                .name(assignment.name.as_str())
                .build();
            let renamed = self
                .within(
                    "rename",
                    assignment.name.as_str(),
                    self.timeouts.request,
                    self.docker.rename_container(&narrative.id, options),
                )
                .await?;
            match renamed {
                Ok(()) => {}
                // The container is still waiting under its name: it has no owner.
                Err(e) if status(&e) == Some(404) => {
                    self.drop_claim(&narrative.id).await;
                    return Err(gone());
                }
                Err(e) if status(&e) == Some(409) => {
                    self.drop_claim(&narrative.id).await;
                    return Err(classify("rename", assignment.name.as_str(), e));
                }
                // Anything else may have renamed it after all: the claim stays with it.
                Err(e) => return Err(classify("rename", assignment.name.as_str(), e)),
            }
            self.origins()
                .insert(narrative.id.clone(), assignment.origin.clone());
            tracing::info!(from = %narrative.name, to = %assignment.name, container_id = %narrative.id,
                "assigned a waiting narrative");
            let renamed = Seen {
                name: assignment.name.to_string(),
                ..seen
            };
            self.narrative(&renamed)
                .map(|n| Narrative {
                    owner: Some(assignment.owner.clone()),
                    ..n
                })
                .map_err(|why| ManagerError::Rejected {
                    backend: BACKEND.to_owned(),
                    detail: format!(
                        "renamed container {} does not read back as a narrative: {why}",
                        narrative.id
                    ),
                })
        })
        .await
    }

    async fn mark_connected(
        &self,
        _narrative: &Narrative,
        _origin: &Origin,
    ) -> Result<Narrative, ManagerError> {
        // Labels are the only metadata a container has, and they are fixed at creation.
        Err(ManagerError::Unsupported {
            backend: BACKEND.to_owned(),
            operation: "mark_connected",
        })
    }

    async fn stamp_owner(
        &self,
        narrative: &Narrative,
        owner: &Owner,
    ) -> Result<Narrative, ManagerError> {
        self.bounded("stamp owner", narrative.name.as_str(), async {
            let gone = || ManagerError::NotFound {
                backend: BACKEND.to_owned(),
                name: narrative.name.to_string(),
            };
            let theirs = || ManagerError::OwnedByAnother {
                backend: BACKEND.to_owned(),
                name: narrative.name.to_string(),
            };
            let seen = self.inspect(&narrative.id).await?.ok_or_else(gone)?;
            if seen.name != narrative.name.as_str() || seen.state == NarrativeState::Removing {
                return Err(gone());
            }
            let found = self.narrative(&seen).map_err(|_| gone())?;
            match &found.owner {
                Some(recorded) if recorded != owner => return Err(theirs()),
                Some(_) => return Ok(found),
                None => {}
            }
            // Create-or-get: if another replica claimed it first, its claim is the answer.
            if self.claim(&narrative.id, owner).await? != *owner {
                return Err(theirs());
            }
            tracing::info!(name = %narrative.name, container_id = %narrative.id,
                "recorded the owner of a narrative made without one");
            Ok(Narrative {
                owner: Some(owner.clone()),
                ..found
            })
        })
        .await
    }

    fn conditional(&self) -> bool {
        false
    }

    async fn remove(&self, narrative: &Narrative) -> Result<(), ManagerError> {
        self.bounded("remove", narrative.name.as_str(), async {
            let subject = narrative.name.as_str();
            // The stop and the removal share the operation's deadline: the grace leaves half of
            // it for the calls.
            let grace = self.timeouts.stop_grace.min(self.timeouts.request / 2);
            let options = StopContainerOptionsBuilder::default()
                .t(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX))
                .build();
            let stopped = self
                .within(
                    "stop",
                    subject,
                    grace + self.timeouts.request,
                    self.docker.stop_container(&narrative.id, Some(options)),
                )
                .await?;
            match stopped {
                // 304 (already stopped) arrives as success.
                Ok(()) => {}
                Err(e) if status(&e) == Some(404) => {
                    self.origins().remove(&narrative.id);
                    self.drop_claim(&narrative.id).await;
                    return Ok(());
                }
                Err(e) => return Err(classify("stop", subject, e)),
            }
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            let removed = self
                .within(
                    "remove",
                    subject,
                    self.timeouts.request,
                    self.docker.remove_container(&narrative.id, Some(options)),
                )
                .await?;
            match removed {
                // 404: gone already; 409: another caller's removal is in progress.
                Err(e) if !matches!(status(&e), Some(404 | 409)) => {
                    return Err(classify("remove", subject, e))
                }
                _ => {}
            }
            self.origins().remove(&narrative.id);
            self.drop_claim(&narrative.id).await;
            tracing::info!(name = %narrative.name, container_id = %narrative.id,
                "removed narrative container");
            Ok(())
        })
        .await
    }

    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        self.bounded("zombies", "exited narratives", async {
            let containers = self
                .list_labelled("exited narratives", &[("status", &["exited", "dead"])])
                .await?;
            Ok(self.narratives(containers))
        })
        .await
    }

    fn traefik_service(&self, narrative_name: &ServiceName) -> String {
        // A container made outside Compose, with no service label, gets a default Traefik
        // service named after the container's current name. Traefik's Docker provider
        // re-reads names when a container starts or dies, so after a rename the metrics carry
        // the new name from the next such event on (the pool's replacement starts right after
        // an assignment).
        traefik_name(narrative_name.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn docker_states_and_health_are_normalised() {
        assert_eq!(state("running", None), NarrativeState::Running);
        assert_eq!(state("running", Some("healthy")), NarrativeState::Running);
        assert_eq!(state("running", Some("starting")), NarrativeState::Starting);
        assert_eq!(
            state("running", Some("unhealthy")),
            NarrativeState::Other("unhealthy".into())
        );
        assert_eq!(state("created", None), NarrativeState::Starting);
        assert_eq!(state("restarting", None), NarrativeState::Starting);
        assert_eq!(state("exited", None), NarrativeState::Stopped);
        assert_eq!(state("dead", None), NarrativeState::Stopped);
        assert_eq!(state("removing", None), NarrativeState::Removing);
        assert_eq!(
            state("paused", None),
            NarrativeState::Other("paused".into())
        );
    }

    #[test]
    fn listing_status_text_carries_the_health() {
        for (text, health) in [
            ("Up 3 seconds (health: starting)", Some("starting")),
            ("Up 2 minutes (healthy)", Some("healthy")),
            ("Up 2 minutes (unhealthy)", Some("unhealthy")),
            ("Up 2 minutes", None),
            ("Exited (0) 5 seconds ago", None),
        ] {
            assert_eq!(health_in_status_text(text), health, "{text}");
        }
    }

    #[test]
    fn traefik_names_services_like_its_docker_provider() {
        assert_eq!(
            traefik_name("narrative-alice-522b27"),
            "narrative-alice-522b27"
        );
        assert_eq!(traefik_name("narrative--x_y.z-"), "narrative-x-y-z");
    }

    #[test]
    fn image_references_split_at_the_tag() {
        assert_eq!(
            split_image("kbase/narrative:5.4.3"),
            ("kbase/narrative", "5.4.3")
        );
        assert_eq!(
            split_image("registry:5000/kbase/narrative"),
            ("registry:5000/kbase/narrative", "latest")
        );
        assert_eq!(split_image("registry:5000/n:1"), ("registry:5000/n", "1"));
    }

    #[test]
    fn urls_name_what_to_fix() {
        let err = client("https://docker.example:2376", 5).unwrap_err();
        assert_eq!(err.setting(), "docker_url");
        let err = client("unix:///nonexistent/docker.sock", 5).unwrap_err();
        assert!(
            matches!(err, DockerError::Unreachable { .. }),
            "a missing socket: {err}"
        );
        assert!(client("tcp://127.0.0.1:2375", 5).is_ok());
    }
}
