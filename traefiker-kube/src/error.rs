//! What can go wrong with the Kubernetes API, and the one place where an API answer becomes
//! the core's [`ManagerError`].
//!
//! [`KubeError`] is public: building a [`crate::KubeManager`] fails with it, naming what to
//! fix. Operations answer [`ManagerError`]s made by [`classify`], which keeps what an
//! operator needs (the call, the object, apiserver's own message, which names the verb and
//! resource RBAC refused) and never an annotation value: annotations carry session ids.

use std::time::Duration;

use thiserror::Error;
use traefiker_core::ManagerError;

/// Short backend name used in every [`ManagerError`].
pub(crate) const BACKEND: &str = "kubernetes";

/// Where the Role traefiker needs is shipped; every RBAC error points there.
pub(crate) const ROLE_FILE: &str = "deploy/kubernetes/rbac.yaml";

/// Building a [`crate::KubeManager`] failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KubeError {
    /// Neither an in-cluster service account nor a kubeconfig could be loaded.
    #[error(
        "no Kubernetes API configuration: not in a pod with a service account \
         ({in_cluster}) and no usable kubeconfig ({kubeconfig}); run traefiker in the cluster \
         with a service account (deploy/kubernetes), or point KUBECONFIG at a kubeconfig"
    )]
    NoConfig {
        /// Why the in-cluster configuration failed.
        in_cluster: String,
        /// Why the kubeconfig failed.
        kubeconfig: String,
    },
    /// The kubeconfig given could not be read or used.
    #[error("kubeconfig {path}: {detail}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The client could not be built from the configuration (TLS material, proxy).
    #[error("cannot build a Kubernetes client: {0}")]
    Client(String),
    /// A setting is malformed.
    #[error("invalid {setting}: {reason}")]
    Config {
        /// The configuration key to fix, e.g. `kube_namespace`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl KubeError {
    /// The configuration key this error is about, if one is.
    pub fn setting(&self) -> Option<&'static str> {
        match self {
            Self::Config { setting, .. } => Some(setting),
            Self::NoConfig { .. } | Self::Kubeconfig { .. } | Self::Client(_) => None,
        }
    }
}

/// The one mapping to the core's error, for an API call `call` (e.g. `patch pod`) about
/// `subject` (a narrative's name).
///
/// 404 is `NotFound`; 409 `AlreadyExists` is `NameTaken` and 409 `Conflict` (a stale
/// `resourceVersion`, a failed delete precondition) is `Conflict`; 403 is `Rejected` naming
/// the Role to fix; no answer, 429 and 5xx are `Unavailable`; any other 4xx, and unreadable
/// answers, are `Rejected`: retrying will not help, an operator must.
pub(crate) fn classify(call: &str, subject: &str, err: kube::Error) -> ManagerError {
    let backend = BACKEND.to_owned();
    match err {
        kube::Error::Api(status) => match (status.code, status.reason.as_str()) {
            (404, _) => ManagerError::NotFound {
                backend,
                name: subject.to_owned(),
            },
            (409, "AlreadyExists") => ManagerError::NameTaken {
                backend,
                name: subject.to_owned(),
            },
            (409, _) => ManagerError::Conflict {
                backend,
                name: subject.to_owned(),
            },
            (403, _) => ManagerError::Rejected {
                backend,
                detail: format!(
                    "{call} {subject}: {}; grant it to traefiker's service account (the Role in \
                     {ROLE_FILE})",
                    status.message
                ),
            },
            (code, _) if code == 429 || code >= 500 || code == 410 => ManagerError::Unavailable {
                backend,
                detail: format!(
                    "{call} {subject}: {} ({code} {})",
                    status.message, status.reason
                ),
            },
            (code, reason) => ManagerError::Rejected {
                backend,
                detail: format!("{call} {subject}: {} ({code} {reason})", status.message),
            },
        },
        // An unreadable answer is named by where it broke, never quoted: pods' annotations
        // carry session ids.
        kube::Error::SerdeError(e) => ManagerError::Rejected {
            backend,
            detail: format!(
                "{call} {subject}: unreadable answer ({:?} JSON error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        },
        other => ManagerError::Unavailable {
            backend,
            detail: format!("{call} {subject}: {other}"),
        },
    }
}

/// A call that got no answer within `limit`.
pub(crate) fn timed_out(call: &str, subject: &str, limit: Duration) -> ManagerError {
    ManagerError::Unavailable {
        backend: BACKEND.to_owned(),
        detail: format!("{call} {subject}: no answer within {limit:?}"),
    }
}

/// A pod or claim the API returned that does not read back as this deployment's.
pub(crate) fn unreadable(what: &str, why: &str) -> ManagerError {
    ManagerError::Rejected {
        backend: BACKEND.to_owned(),
        detail: format!("{what} does not read back as a narrative of this deployment: {why}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn answers_map_to_the_core_variants() {
        let check = |e| classify("patch pod", "narrative-x", e);
        assert!(
            matches!(check(api(404, "NotFound", "")), ManagerError::NotFound { name, .. } if name == "narrative-x")
        );
        assert!(matches!(
            check(api(409, "AlreadyExists", "")),
            ManagerError::NameTaken { .. }
        ));
        assert!(matches!(
            check(api(409, "Conflict", "")),
            ManagerError::Conflict { .. }
        ));
        assert!(matches!(
            check(api(422, "Invalid", "")),
            ManagerError::Rejected { .. }
        ));
        assert!(matches!(
            check(api(500, "InternalError", "")),
            ManagerError::Unavailable { .. }
        ));
        assert!(matches!(
            check(api(429, "TooManyRequests", "")),
            ManagerError::Unavailable { .. }
        ));
        let forbidden = check(api(
            403,
            "Forbidden",
            "pods is forbidden: User \"u\" cannot list resource \"pods\"",
        ));
        let text = forbidden.to_string();
        assert!(
            text.contains("cannot list resource \"pods\"") && text.contains(ROLE_FILE),
            "{text}"
        );
        let serde = serde_json::from_str::<u8>("\"0123456789abcdef0123456789abcdef\"").unwrap_err();
        let text = check(kube::Error::SerdeError(serde)).to_string();
        assert!(
            !text.contains("0123456789abcdef"),
            "an unreadable answer is not quoted: {text}"
        );
    }
}
