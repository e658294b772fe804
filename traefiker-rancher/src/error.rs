//! What can go wrong talking to Rancher, in Rancher's own terms, and the one place where that
//! becomes the core's [`ManagerError`].
//!
//! [`RancherError`] stays private to the crate: it keeps the detail an operator needs (method,
//! URL without credentials, status, Rancher's `code`/`message`/`fieldName`), while the core
//! decides only by [`ManagerError`] variant. [`SetupError`] is public: construction and
//! discovery fail with it, naming the setting to fix.

use thiserror::Error;
use traefiker_core::ManagerError;

/// Short backend name used in every [`ManagerError`].
pub(crate) const BACKEND: &str = "rancher";

/// Why a request did not produce a usable answer.
#[derive(Clone, Debug, Error)]
pub(crate) enum RancherError {
    /// No HTTP answer: connect failure, timeout, broken connection.
    #[error("{method} {url}: {kind}: {detail}")]
    Transport {
        method: &'static str,
        url: String,
        kind: TransportKind,
        detail: String,
    },
    /// Rancher answered with an error status.
    #[error("{method} {url}: HTTP {status}{}", rancher_detail(.code, .message, .field_name))]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        field_name: Option<String>,
    },
    /// Rancher answered 2xx with a body we cannot read.
    #[error("{method} {url}: unreadable answer (HTTP {status}): {detail}")]
    Body {
        method: &'static str,
        url: String,
        status: u16,
        detail: String,
    },
    /// The answer was readable but cannot be acted on (e.g. a link to another host).
    #[error("{url}: {detail}")]
    Invalid { url: String, detail: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TransportKind {
    Timeout,
    Connect,
    Other,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timed out",
            Self::Connect => "cannot connect",
            Self::Other => "request failed",
        })
    }
}

fn rancher_detail(
    code: &Option<String>,
    message: &Option<String>,
    field: &Option<String>,
) -> String {
    let mut out = String::new();
    if let Some(code) = code {
        out.push_str(&format!(" {code}"));
    }
    if let Some(message) = message.as_ref().filter(|m| Some(*m) != code.as_ref()) {
        out.push_str(&format!(": {message}"));
    }
    if let Some(field) = field {
        out.push_str(&format!(" (field {field})"));
    }
    out
}

impl RancherError {
    /// Whether repeating the same idempotent request later may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 409,
            Self::Body { .. } | Self::Invalid { .. } => false,
        }
    }

    /// The HTTP status Rancher answered with, if it answered with an error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The one mapping to the core's error. `subject` is the container (or collection) the
    /// operation was about, for `NotFound` and `NameTaken`.
    ///
    /// 404 is `NotFound`; 422 `NotUnique` is `NameTaken` (another replica won); no answer,
    /// 5xx and 409 (resource busy in another Rancher process) are `Unavailable`; 401, 403,
    /// any other 4xx and unreadable bodies are `Rejected`: retrying will not help, an
    /// operator must.
    pub(crate) fn into_manager(self, subject: &str) -> ManagerError {
        let backend = BACKEND.to_owned();
        match &self {
            Self::Status { status: 404, .. } => ManagerError::NotFound {
                backend,
                name: subject.to_owned(),
            },
            Self::Status {
                status: 422,
                code: Some(code),
                ..
            } if code == "NotUnique" => ManagerError::NameTaken {
                backend,
                name: subject.to_owned(),
            },
            Self::Status {
                status: 401 | 403, ..
            } => ManagerError::Rejected {
                backend,
                detail: format!("{self} (check rancher_user and rancher_password and that the API key may use this environment)"),
            },
            err if err.is_transient() => ManagerError::Unavailable {
                backend,
                detail: self.to_string(),
            },
            _ => ManagerError::Rejected {
                backend,
                detail: self.to_string(),
            },
        }
    }
}

/// Building a [`crate::RancherManager`] failed: the setting named in `setting` needs fixing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A setting is missing or malformed.
    #[error("invalid {setting}: {reason}")]
    Config {
        /// The configuration key to fix, e.g. `rancher_url`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Rancher or rancher-metadata did not give what discovery needed.
    #[error("cannot learn {setting} ({reason}): {source}; set {setting}")]
    Discovery {
        /// The configuration key that would make this step unnecessary or correct.
        setting: &'static str,
        /// Which step failed.
        reason: String,
        /// What the backend said.
        source: ManagerError,
    },
}

impl SetupError {
    /// The configuration key this error is about.
    pub fn setting(&self) -> &'static str {
        match self {
            Self::Config { setting, .. } | Self::Discovery { setting, .. } => setting,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn status(status: u16, code: Option<&str>) -> RancherError {
        RancherError::Status {
            method: "GET",
            url: "http://rancher.example:8080/v2-beta".into(),
            status,
            code: code.map(str::to_owned),
            message: None,
            field_name: None,
        }
    }

    #[test]
    fn statuses_map_to_the_core_variants() {
        let check = |e: RancherError| e.into_manager("narrative-x");
        assert!(
            matches!(check(status(404, None)), ManagerError::NotFound { name, .. } if name == "narrative-x")
        );
        assert!(matches!(
            check(status(422, Some("NotUnique"))),
            ManagerError::NameTaken { .. }
        ));
        assert!(matches!(
            check(status(422, Some("InvalidReference"))),
            ManagerError::Rejected { .. }
        ));
        assert!(matches!(
            check(status(401, None)),
            ManagerError::Rejected { .. }
        ));
        assert!(matches!(
            check(status(403, None)),
            ManagerError::Rejected { .. }
        ));
        assert!(matches!(
            check(status(400, None)),
            ManagerError::Rejected { .. }
        ));
        assert!(matches!(
            check(status(409, None)),
            ManagerError::Unavailable { .. }
        ));
        assert!(matches!(
            check(status(500, None)),
            ManagerError::Unavailable { .. }
        ));
        assert!(matches!(
            check(status(503, None)),
            ManagerError::Unavailable { .. }
        ));
        let timeout = RancherError::Transport {
            method: "GET",
            url: "u".into(),
            kind: TransportKind::Timeout,
            detail: "d".into(),
        };
        assert!(matches!(check(timeout), ManagerError::Unavailable { .. }));
        let body = RancherError::Body {
            method: "GET",
            url: "u".into(),
            status: 200,
            detail: "d".into(),
        };
        assert!(matches!(check(body), ManagerError::Rejected { .. }));
    }
}
