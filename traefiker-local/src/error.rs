//! What goes wrong with local processes, and how each failure maps onto the core's
//! [`ManagerError`] the lifecycle decides by.

use thiserror::Error;
use traefiker_core::{InvalidInput, ManagerError};

/// The backend name in every error and in [`traefiker_core::BackendInfo`].
pub(crate) const BACKEND: &str = "local";

/// A failure of the local backend, with the detail an operator needs.
#[derive(Debug, Error)]
pub(crate) enum LocalError {
    #[error("no narrative named {0}")]
    NotFound(String),
    #[error("the name {0} is already taken")]
    NameTaken(String),
    #[error(transparent)]
    Config(#[from] InvalidInput),
    #[error("no free port on {host}: {source}; check that {host} is an address of this machine")]
    NoPort {
        host: String,
        source: std::io::Error,
    },
    #[error("could not start {program:?} for {name}: {source}; check local_command (is the program installed and on PATH?)")]
    Spawn {
        program: String,
        name: String,
        source: std::io::Error,
    },
    #[error("{name} exited ({status}) before listening on port {port}; run local_command by hand to see why")]
    ExitedEarly {
        name: String,
        status: String,
        port: u16,
    },
    #[error("{name} did not listen on port {port} within {seconds} s; raise local ready_timeout or check the command uses {{port}}")]
    NotReady {
        name: String,
        port: u16,
        seconds: u64,
    },
    #[error(
        "could not write the name file {path}: {source}; check the temporary directory is writable"
    )]
    NameFile {
        path: String,
        source: std::io::Error,
    },
    #[error("could not signal process group {pgid} of {name}: {source}")]
    Signal {
        name: String,
        pgid: i32,
        source: nix::Error,
    },
    #[error("{name} (process group {pgid}) did not exit even after SIGKILL; look for a process stuck in the kernel (state D)")]
    Unkillable { name: String, pgid: i32 },
}

impl From<LocalError> for ManagerError {
    fn from(e: LocalError) -> Self {
        let backend = BACKEND.to_owned();
        match e {
            LocalError::NotFound(name) => ManagerError::NotFound { backend, name },
            LocalError::NameTaken(name) => ManagerError::NameTaken { backend, name },
            // Configuration needs an operator; retrying cannot help.
            e @ (LocalError::Config(_)
            | LocalError::Spawn { .. }
            | LocalError::ExitedEarly { .. }) => ManagerError::Rejected {
                backend,
                detail: e.to_string(),
            },
            // The machine may recover: a port frees up, a slow start finishes, a process exits.
            e @ (LocalError::NoPort { .. }
            | LocalError::NameFile { .. }
            | LocalError::NotReady { .. }
            | LocalError::Signal { .. }
            | LocalError::Unkillable { .. }) => ManagerError::Unavailable {
                backend,
                detail: e.to_string(),
            },
        }
    }
}
