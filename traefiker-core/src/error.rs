//! Errors of the core: one enum for each contract a backend implements, and [`Error`] for
//! what the lifecycle reports to its caller.
//!
//! Every variant carries the context an operator needs to act (the name, the backend, the
//! reason), and none carries a secret: session ids and credentials never enter an error.

use thiserror::Error;

/// Input that failed validation at the edge: which thing, and why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid {what}: {reason}")]
pub struct InvalidInput {
    /// What was being validated, e.g. `user id` or the configuration key `hostname`.
    pub what: &'static str,
    /// Why it was refused, in words that say what to fix.
    pub reason: String,
}

impl InvalidInput {
    /// An error about `what`, explained by `reason`.
    pub fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self {
            what,
            reason: reason.into(),
        }
    }
}

/// What a [`crate::ContainerManager`] reports when an operation fails.
///
/// The lifecycle decides by variant: `NameTaken` means another replica won a race and its
/// container is adopted, `NotFound` during an assignment means try the next candidate,
/// `Unavailable` is worth retrying later, `Rejected` needs an operator.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The container does not exist (any more).
    #[error("{backend}: no container named {name}")]
    NotFound {
        /// Backend that answered.
        backend: String,
        /// The container asked for.
        name: String,
    },
    /// The name is already used: another replica or request created it first.
    #[error("{backend}: the name {name} is already taken")]
    NameTaken {
        /// Backend that answered.
        backend: String,
        /// The contested name.
        name: String,
    },
    /// A conditional write lost: the narrative changed since it was read (another
    /// replica assigned, marked or claimed it). Read it again before deciding.
    #[error("{backend}: {name} changed since it was read")]
    Conflict {
        /// Backend that answered.
        backend: String,
        /// The narrative's name.
        name: String,
    },
    /// The name is recorded as another user's narrative (SPEC §10): it is never handed to
    /// this user, who gets a name of their own.
    #[error("{backend}: {name} belongs to another user")]
    OwnedByAnother {
        /// Backend that answered.
        backend: String,
        /// The narrative's name.
        name: String,
    },
    /// The backend could not be reached or failed on its side; retrying later may work.
    #[error("{backend} unavailable: {detail}")]
    Unavailable {
        /// Backend that failed.
        backend: String,
        /// What happened, with the URL and status where there is one.
        detail: String,
    },
    /// The backend refused the request: configuration or input needs fixing.
    #[error("{backend} rejected the request: {detail}")]
    Rejected {
        /// Backend that refused.
        backend: String,
        /// What it said, with the URL and status where there is one.
        detail: String,
    },
    /// The backend cannot do this at all (e.g. it has no notion of zombies).
    #[error("{backend} does not support {operation}")]
    Unsupported {
        /// Backend asked.
        backend: String,
        /// The operation it lacks.
        operation: &'static str,
    },
}

/// Activity could not be read: the source does not know who is active.
///
/// This is never the same as "nobody is active": the reaper reaps nothing for idleness when a
/// source fails.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{source_name}: {reason}")]
pub struct ActivityError {
    /// The source that failed, e.g. `traefik http://traefik:8080/metrics`.
    pub source_name: String,
    /// Why, in words that say what to check.
    pub reason: String,
}

impl ActivityError {
    /// An error of `source_name`, explained by `reason`.
    pub fn new(source_name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            source_name: source_name.into(),
            reason: reason.into(),
        }
    }
}

/// The activity store failed to read or write.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("activity store {location}: {detail}")]
pub struct StoreError {
    /// Where the store lives, e.g. the SQLite path.
    pub location: String,
    /// What failed.
    pub detail: String,
}

/// What the lifecycle reports to its caller.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The container backend failed.
    #[error(transparent)]
    Backend(#[from] ManagerError),
    /// The activity store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Input or configuration was invalid.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// No image to start narratives from is known yet (the version URL has not answered).
    #[error(
        "no narrative image is known yet: set image_tag or make narrative_version_url reachable"
    )]
    NoImage,
    /// A new user would pass `max_narratives`: nothing was created.
    #[error("at capacity: {limit} user narratives exist (max_narratives)")]
    AtCapacity {
        /// The configured cap.
        limit: usize,
    },
}
