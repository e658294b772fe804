//! What the backend needs to know: where the Docker engine is, which network the narratives
//! share with Traefik, the image, and how long to wait.
//!
//! The server fills [`DockerConfig`] from its own configuration (SPEC §8 keys in the field
//! docs); this crate never reads the environment itself.

use std::time::Duration;

use traefiker_core::Naming;

/// The Python version's `docker_url` default.
pub const DEFAULT_DOCKER_URL: &str = "unix://var/run/docker.sock";

/// The Python version's `dock_net` default: the network Compose makes for a project named
/// `narrative-traefiker`.
pub const DEFAULT_NETWORK: &str = "narrative-traefiker_default";

/// Everything [`crate::DockerManager`] is built from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DockerConfig {
    /// `docker_url`: `unix://<socket path>` (the Python form `unix://var/run/docker.sock` is
    /// read as `/var/run/docker.sock`), or `tcp://host:port` / `http://host:port` for a
    /// socket proxy.
    pub url: String,
    /// `dock_net`: the Docker network narratives join, and the one Traefik reaches them on.
    pub network: String,
    /// `image_name`: the narrative image without a tag (default `kbase/narrative`).
    pub image_name: String,
    /// The container name templates, to tell users' narratives from waiting ones.
    pub naming: Naming,
    /// How long each call may take.
    pub timeouts: Timeouts,
}

impl DockerConfig {
    /// A configuration for the engine at `url` and the network `network`, everything else at
    /// its default.
    pub fn new(url: impl Into<String>, network: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            network: network.into(),
            image_name: "kbase/narrative".to_owned(),
            naming: Naming::default(),
            timeouts: Timeouts::default(),
        }
    }
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self::new(DEFAULT_DOCKER_URL, DEFAULT_NETWORK)
    }
}

/// How long each call to the engine may take (SPEC §6a).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// One operation of the contract, every engine call in it (connecting included, and a
    /// removal's stop), default 20 s: past it the operation fails with `Unavailable` and
    /// nothing of it goes on, but a pull it started (see `pull`). traefiker sets it from
    /// `rancher_timeout_secs`.
    pub request: Duration,
    /// Pulling a missing image (default 10 min: a narrative image is large). The pull runs
    /// on its own: a create that needs it waits at most `request`, fails, and a later
    /// create finds the image (or joins the same pull).
    pub pull: Duration,
    /// Between SIGTERM and SIGKILL when a narrative is removed (default 10 s, Docker's own),
    /// at most half of `request`, which the stop and the removal share.
    pub stop_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(20),
            pull: Duration::from_secs(600),
            stop_grace: Duration::from_secs(10),
        }
    }
}
