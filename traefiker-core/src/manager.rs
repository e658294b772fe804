//! The orchestrator contract: what the core needs from whatever runs narrative containers.

use async_trait::async_trait;

use crate::error::ManagerError;
use crate::names::{Owner, ServiceName};
use crate::narrative::{Assignment, Narrative, Origin, SpawnSpec};

/// What a backend says about itself once it has checked it can work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendInfo {
    /// Short backend name, e.g. `rancher`.
    pub backend: String,
    /// Where it works, e.g. the environment URL and stack, without credentials.
    pub location: String,
}

/// Runs narrative containers: Rancher in production, local processes on one machine, an
/// in-memory fake in tests.
///
/// # Contract
///
/// Every backend passes [`crate::testing::conformance::run_all`]; in words:
///
/// - Names are unique among live containers. `create` or `assign` to a name that is taken
///   fails with [`ManagerError::NameTaken`]: another replica or request won, and the caller
///   adopts the winner's container. This is what makes a request path of one round trip safe.
/// - `find` returns the container of that name, or `None`. If several share the name (left by
///   an old race), it returns the oldest, the same one every time, and never removes any.
///   Containers being removed are not returned.
/// - `list` returns every narrative of the configured image, all pages, users' and waiting.
/// - `assign` gives a waiting container the user's name, owner and description, keeping its
///   session; a candidate that is gone, or no longer has the name it was listed with, fails
///   with [`ManagerError::NotFound`]. Whether the rename is conditional (compare-and-rename) or
///   a read followed by an unconditional rename, as on Rancher and Docker, is the backend's
///   [`crate::testing::conformance::Caps::conditional_assign`]; on a non-conditional backend
///   the lifecycle stays safe because only one replica ever assigns a given waiting container,
///   on a conditional one because the assignment carries the version it listed.
/// - Owners (SPEC §10): every narrative made by `create` with [`SpawnSpec::owner`] or given by
///   `assign` records its owner, and `find` and `list` report it as [`Narrative::owner`]; the
///   record is in place before the user's name is (so no listing shows the name without it).
///   A narrative without a record (made by the Python version) is stamped once by
///   `stamp_owner`; a second stamp fails with [`ManagerError::OwnedByAnother`]. A backend that
///   keeps per-name claims may fail `create` or `assign` with `OwnedByAnother` too.
/// - Labels given at creation are read back: the session ([`crate::rules::SESSION_LABEL`])
///   and the replica ([`crate::rules::REPLICA_LABEL`]) of every listed narrative.
/// - `mark_connected` sets the narrative's description to `origin`, keeping its owner, and
///   returns it as it now reads, so the next listing reports it as [`Narrative::origin`]; or
///   answers [`ManagerError::Unsupported`] where containers have no mutable metadata.
/// - Where [`ContainerManager::conditional`] is true, `assign`, `mark_connected`,
///   `stamp_owner` and `remove` act only on the [`Narrative::version`] they are given: a
///   narrative changed since fails with [`ManagerError::Conflict`] and is left as it is
///   (`remove` of a narrative without a version is unconditional). Every successful write
///   makes a new version. A narrative being removed is not found nor listed, a write to it
///   fails with `NotFound` (or `Conflict`), and its name stays taken until it is gone: the
///   lifecycle relies on these to share one pool among replicas and to keep a reaper's
///   removal from overtaking a connect.
/// - A `create` that fails with [`ManagerError::Unavailable`] may have happened all the same
///   (its answer was lost): the caller looks the name up and adopts or removes what it finds.
///   A container the backend did create but cannot report as a narrative, it removes before
///   failing, so no failed create leaves behind a container no listing shows.
/// - `remove` is idempotent: a container already gone is success. Every operation may be
///   repeated after a crash, a timeout or a competing replica, and must converge.
/// - `zombies` lists containers that stopped after starting once, or answers
///   [`ManagerError::Unsupported`]; never a silent empty list.
/// - No method logs a session id or a credential.
#[async_trait]
pub trait ContainerManager: Send + Sync + std::fmt::Debug {
    /// Checks the backend is reachable and usable, and says where it works.
    async fn verify(&self) -> Result<BackendInfo, ManagerError>;

    /// The live container named `name`, if any.
    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError>;

    /// Every narrative container of the configured image.
    async fn list(&self) -> Result<Vec<Narrative>, ManagerError>;

    /// Starts a container from `spec` and returns it as the backend now reports it.
    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError>;

    /// Gives the waiting container `narrative` to a user: its new name and description.
    async fn assign(
        &self,
        narrative: &Narrative,
        assignment: &Assignment,
    ) -> Result<Narrative, ManagerError>;

    /// Records that its owner was connected to `narrative` now: its description becomes
    /// `origin`, which every replica's reaper reads as activity (SPEC §9). Returns the
    /// narrative as it now reads.
    async fn mark_connected(
        &self,
        narrative: &Narrative,
        origin: &Origin,
    ) -> Result<Narrative, ManagerError>;

    /// Records `owner` on `narrative`, which has no owner record (a user's narrative made by
    /// the Python version): the first user whose name matches adopts it (SPEC §10). Returns
    /// the narrative as it now reads. An owner recorded meanwhile (looked up again where
    /// writes are not conditional) fails with [`ManagerError::OwnedByAnother`], a narrative
    /// that is gone with [`ManagerError::NotFound`].
    async fn stamp_owner(
        &self,
        narrative: &Narrative,
        owner: &Owner,
    ) -> Result<Narrative, ManagerError>;

    /// Whether `assign`, `mark_connected`, `stamp_owner` and `remove` are compare-and-swap on
    /// [`Narrative::version`] (Swarm, Kubernetes), so several replicas may share one pool and
    /// a reaper's removal cannot overtake a connect. False for Rancher, Docker and local
    /// processes, whose writes are unconditional.
    fn conditional(&self) -> bool;

    /// Removes `narrative`; already gone is success.
    async fn remove(&self, narrative: &Narrative) -> Result<(), ManagerError>;

    /// Narrative containers (either naming template) that stopped after starting once.
    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError>;

    /// The name Traefik gives this narrative's service (without the `@provider` suffix):
    /// metrics and the activity store are keyed by it.
    fn traefik_service(&self, narrative_name: &ServiceName) -> String;
}
