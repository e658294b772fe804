//! Who else is running: a replica's identity and its live peers, as the orchestrator knows
//! them (SPEC §9). Replicas share nothing but the orchestrator, so this is how one replica
//! learns that another is gone and its waiting containers may be removed.

use async_trait::async_trait;

use crate::error::ManagerError;
use crate::names::ReplicaId;

/// The orchestrator's view of traefiker's own replicas.
///
/// # Contract
///
/// - `identity` is this process's id as the orchestrator names it (Rancher: rancher-metadata
///   `self/container/name`), or `None` where the orchestrator has no notion of it.
/// - `peers` lists the replicas alive now. An error means *unknown*: the caller then takes
///   every replica as alive and removes nothing on the strength of membership.
#[async_trait]
pub trait Membership: Send + Sync + std::fmt::Debug {
    /// This replica's id, if the orchestrator tells.
    async fn identity(&self) -> Result<Option<ReplicaId>, ManagerError>;

    /// The replicas alive now (this one may or may not be listed).
    async fn peers(&self) -> Result<Vec<ReplicaId>, ManagerError>;
}

/// No orchestrator to ask (an embedder, the tests, the local backend, whose narratives are
/// children only their own process sees): no identity, and the peers are *unknown*, never
/// "none". So no replica's waiting containers are ever removed as abandoned on its word: a
/// second process over the same backend (a one-off `traefiker reap`) cannot take a live
/// replica's pool for a dead one's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

#[async_trait]
impl Membership for Solo {
    async fn identity(&self) -> Result<Option<ReplicaId>, ManagerError> {
        Ok(None)
    }

    async fn peers(&self) -> Result<Vec<ReplicaId>, ManagerError> {
        Err(ManagerError::Unsupported {
            backend: "membership".into(),
            operation: "peers (no orchestrator says which replicas run)",
        })
    }
}
