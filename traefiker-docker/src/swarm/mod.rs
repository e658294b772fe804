//! The Swarm backend (`backend = swarm`, SPEC §12): narratives as Swarm services on an
//! overlay network, routed by Traefik's **Swarm provider**, several traefiker replicas sharing
//! one pool.
//!
//! A module of this crate rather than a crate of its own: it speaks to the same engine API
//! with the same client, settings ([`crate::DockerConfig`]), error mapping and container
//! discovery as the Docker backend; only what a narrative is differs.
//!
//! # How a narrative is a service
//!
//! - One service per narrative, one replica, created under the narrative's name, with the
//!   Docker backend's environment, capability drops and restart policy (`any`, Docker's
//!   `always`), on `dock_net` (an attachable overlay network). Its labels are the service's:
//!   the session, the router rule and entry points, `traefik.swarm.network`, a Traefik
//!   service named after the narrative with port 8888, and traefiker's own (`traefiker.name`,
//!   image, owner, replica, origin) — module `spec`.
//! - Every write is conditional: a service update carries the version read, and Swarm
//!   refuses a stale one ("update out of sequence" → [`ManagerError::Conflict`]). A label
//!   change does not restart the task (the spec is read without the engine's defaults and
//!   written back as read). So `conditional()` is true: an assignment (the user's name,
//!   owner and description on a waiting service), the connect mark (the description), an
//!   owner's stamp and a reaper's claim before removal (`traefiker.removing`) each succeed
//!   only on the service as it was read. Replicas share one pool, and a removal cannot
//!   overtake a connect.
//! - A service cannot be renamed, so the name a narrative answers to is its
//!   `traefiker.name` label, and one service per name is made unconditional by a **claim**,
//!   a Swarm config per name (module `claim`).
//! - Its address is the service's virtual IP on `dock_net`; its state the task Swarm wants
//!   running (`starting` until the image's health check passes). A service with no such task,
//!   or left claimed by an unfinished removal, is a zombie.
//! - Replica identity and peers: the running tasks of traefiker's own service
//!   ([`SwarmMembership`]).
//!
//! [`ManagerError::Conflict`]: traefiker_core::ManagerError::Conflict

mod claim;
mod manager;
mod membership;
mod spec;

pub use claim::{CLAIMED_LABEL, HOLDER_LABEL};
pub use manager::SwarmManager;
pub use membership::{SwarmMembership, SWARM_SERVICE_ID, SWARM_SERVICE_NAME};
pub use spec::{NAME_LABEL, REMOVING_LABEL, SWARM_NETWORK_LABEL};

/// Short backend name used in every error.
pub(crate) const BACKEND: &str = "swarm";
