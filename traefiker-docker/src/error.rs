//! What can go wrong with the Docker engine, and the one place where an engine answer becomes
//! the core's [`ManagerError`].
//!
//! [`DockerError`] is public: building a [`crate::DockerManager`] fails with it, naming the
//! setting to fix. Operations answer [`ManagerError`]s made by [`classify`], which keeps what
//! an operator needs (the call, the container, Docker's own message) and never a label value:
//! labels carry session ids.

use std::time::Duration;

use thiserror::Error;
use traefiker_core::ManagerError;

/// Short backend name used in every [`ManagerError`].
pub(crate) const BACKEND: &str = "docker";

/// Building a [`crate::DockerManager`] failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DockerError {
    /// A setting is missing or malformed.
    #[error("invalid {setting}: {reason}")]
    Config {
        /// The configuration key to fix, e.g. `docker_url`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The engine did not answer or did not say which API version it speaks.
    #[error("cannot reach the Docker engine at {url}: {detail}; check docker_url, that the engine runs, and that traefiker may use its socket (docs/docker.md)")]
    Unreachable {
        /// `docker_url`.
        url: String,
        /// What happened.
        detail: String,
    },
}

impl DockerError {
    /// The configuration key this error is about.
    pub fn setting(&self) -> &'static str {
        match self {
            Self::Config { setting, .. } => setting,
            Self::Unreachable { .. } => "docker_url",
        }
    }
}

/// The HTTP status of an engine error answer, if it was one.
pub(crate) fn status(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The one mapping to the core's error, for an engine call `call` (e.g. `create`) about
/// `subject` (a container name).
///
/// 404 is `NotFound` and 409 `NameTaken` (Docker's names are unique; callers for which a 409
/// means something else handle it first); no answer and 5xx are `Unavailable`; any other 4xx
/// and unreadable answers are `Rejected`: retrying will not help, an operator must.
pub(crate) fn classify(call: &str, subject: &str, err: bollard::errors::Error) -> ManagerError {
    classify_as(BACKEND, call, subject, err)
}

/// [`classify`] for the backend named `backend` (the Swarm backend shares the engine's
/// answers).
pub(crate) fn classify_as(
    backend: &str,
    call: &str,
    subject: &str,
    err: bollard::errors::Error,
) -> ManagerError {
    let backend = backend.to_owned();
    match status(&err) {
        Some(404) => ManagerError::NotFound {
            backend,
            name: subject.to_owned(),
        },
        Some(409) => ManagerError::NameTaken {
            backend,
            name: subject.to_owned(),
        },
        Some(s) if s >= 500 => ManagerError::Unavailable {
            backend,
            detail: format!("{call} {subject}: {err}"),
        },
        Some(_) => ManagerError::Rejected {
            backend,
            detail: format!("{call} {subject}: {err}"),
        },
        // An unreadable answer is named by where it broke, never quoted: the JSON around the
        // error is container labels, which carry session ids.
        None => match err {
            bollard::errors::Error::JsonDataError { column, .. } => ManagerError::Rejected {
                backend,
                detail: format!(
                    "{call} {subject}: unreadable answer (JSON column {column}); is the engine's \
                     API newer than this traefiker knows?"
                ),
            },
            bollard::errors::Error::JsonSerdeError { err } => ManagerError::Rejected {
                backend,
                detail: format!(
                    "{call} {subject}: unreadable answer ({:?} JSON error at line {} column {})",
                    err.classify(),
                    err.line(),
                    err.column()
                ),
            },
            _ => ManagerError::Unavailable {
                backend,
                detail: format!("{call} {subject}: {err}"),
            },
        },
    }
}

/// A call that got no answer within `limit`.
pub(crate) fn timed_out(call: &str, subject: &str, limit: Duration) -> ManagerError {
    timed_out_as(BACKEND, call, subject, limit)
}

/// [`timed_out`] for the backend named `backend`.
pub(crate) fn timed_out_as(
    backend: &str,
    call: &str,
    subject: &str,
    limit: Duration,
) -> ManagerError {
    ManagerError::Unavailable {
        backend: backend.to_owned(),
        detail: format!("{call} {subject}: no answer within {limit:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status_code: u16) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: "engine says".into(),
        }
    }

    #[test]
    fn answers_map_to_the_core_variants() {
        let check = |e| classify("create", "narrative-x", e);
        assert!(
            matches!(check(answer(404)), ManagerError::NotFound { name, .. } if name == "narrative-x")
        );
        assert!(matches!(check(answer(409)), ManagerError::NameTaken { .. }));
        assert!(matches!(check(answer(400)), ManagerError::Rejected { .. }));
        assert!(matches!(check(answer(403)), ManagerError::Rejected { .. }));
        assert!(matches!(
            check(answer(500)),
            ManagerError::Unavailable { .. }
        ));
        assert!(matches!(
            check(bollard::errors::Error::RequestTimeoutError),
            ManagerError::Unavailable { .. }
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(matches!(check(io.into()), ManagerError::Unavailable { .. }));
        let quoted = bollard::errors::Error::JsonDataError {
            message: "{\"session_id\":\"0123456789abcdef0123456789abcdef\"".into(),
            column: 42,
        };
        let detail = check(quoted).to_string();
        assert!(
            !detail.contains("0123456789abcdef") && detail.contains("column 42"),
            "an unreadable answer is not quoted: {detail}"
        );
        let serde = serde_json::from_str::<u8>("\"0123456789abcdef0123456789abcdef\"").unwrap_err();
        let detail = check(serde.into()).to_string();
        assert!(!detail.contains("0123456789abcdef"), "{detail}");
        let detail = check(answer(500)).to_string();
        assert!(detail.contains("create narrative-x"), "{detail}");
        assert!(detail.contains("engine says"), "{detail}");
    }
}
