//! traefiker's container backend for the Docker Engine API: the core's
//! [`ContainerManager`](traefiker_core::ContainerManager) over one engine (its unix socket, or
//! a socket proxy) with [`bollard`].
//!
//! A narrative is a container named like on Rancher (`narrative-<user>`,
//! `narrativepre-<session>`), started from `<image_name>:<tag>` on the network `dock_net`,
//! with the `NARRENV_*` environment, Rancher's capability drops and restart policy (SPEC §4),
//! and the labels Traefik's **Docker provider** routes by: `traefik.enable`, the router's rule
//! and entrypoints, and `traefik.docker.network`. Its one exposed port, 8888, is the service
//! port. traefiker reads back the `session_id` label, the replica label, and its own
//! `traefiker.image` and `traefiker.origin` labels.
//!
//! # How it differs from Rancher
//!
//! - Labels are fixed when a container is created, so a waiting container carries its session
//!   from birth and an assignment is a rename, as on Rancher, and like Rancher's not
//!   conditional (the lifecycle lets only the replica that made a waiting container assign
//!   it).
//! - There is no mutable description: `mark_connected` answers
//!   [`ManagerError::Unsupported`](traefiker_core::ManagerError::Unsupported), and the
//!   description an assignment sets is known only to the process that made it. With several
//!   replicas, a connect through one is visible to the others' reapers only through Traefik's
//!   metrics.
//! - Owners (SPEC §10): a container made for a user carries its owner in a label; a waiting
//!   container, whose labels cannot change, gets an owner record when it is assigned: a claim
//!   volume `traefiker-owner-<container id>` created before the rename and removed with the
//!   container (module `owner`).
//! - Names are unique: a 409 on create or rename is `NameTaken`. An exited container is a
//!   zombie. Removal stops the container (SIGTERM, then SIGKILL after the grace period) and
//!   removes it; a container already gone is success.
//! - A missing image is pulled; a failed pull is an error naming the image.
//! - A narrative's address is its IP on `dock_net`, port 8888. Its state follows Docker's
//!   health check where the image has one: `starting` is
//!   [`NarrativeState::Starting`](traefiker_core::NarrativeState::Starting) (Traefik does not
//!   route to it yet), `unhealthy` is `Other("unhealthy")`.
//!
//! Access to the engine's socket is access to root on its host: see `docs/docker.md` for a
//! socket proxy that allows only the calls this crate makes.
//!
//! # Constructing it
//!
//! ```no_run
//! use std::sync::Arc;
//! use traefiker_core::ContainerManager;
//! use traefiker_docker::{DockerConfig, DockerManager};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = DockerConfig::new("unix:///var/run/docker.sock", "narrative-traefiker_default");
//! config.image_name = "kbase/narrative".into();
//! let manager: Arc<dyn ContainerManager> = Arc::new(DockerManager::connect(config).await?);
//! println!("{}", manager.verify().await?.location);
//! # Ok(()) }
//! ```

mod config;
mod error;
mod manager;
mod membership;
mod owner;
pub mod swarm;

pub use config::{DockerConfig, Timeouts, DEFAULT_DOCKER_URL, DEFAULT_NETWORK};
pub use error::DockerError;
pub use manager::{DockerManager, IMAGE_LABEL, NARRATIVE_PORT, NETWORK_LABEL, ORIGIN_LABEL};
pub use membership::{
    container_id_in_mountinfo, DockerMembership, OwnContainer, COMPOSE_PROJECT, COMPOSE_SERVICE,
};
pub use owner::CLAIM_LABEL;
pub use swarm::{SwarmManager, SwarmMembership};
