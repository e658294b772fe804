//! What the backend needs to know: where Rancher is, who it is talking as, where the narratives
//! live, and how long to wait.
//!
//! The server fills [`RancherConfig`] from its own configuration (SPEC §8 keys in the field
//! docs); this crate never reads the environment itself.

use std::fmt;
use std::time::Duration;

use traefiker_core::Naming;

/// Everything [`crate::RancherManager`] is built from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RancherConfig {
    /// `rancher_url`: the API base, e.g. `http://rancher:8080/v2-beta` (a trailing slash is
    /// fine).
    pub url: String,
    /// `rancher_user` / `rancher_password`: the API key pair; `None` when Rancher's access
    /// control is off.
    pub credentials: Option<Credentials>,
    /// `rancher_env_url`: the environment (project) URL; learned by discovery if unset.
    pub env_url: Option<String>,
    /// `rancher_stack_id`: the stack holding the narratives; learned if unset.
    pub stack_id: Option<String>,
    /// `rancher_stack_name`: that stack's name; learned if unset.
    pub stack_name: Option<String>,
    /// `rancher_meta`: rancher-metadata's base URL (default `http://rancher-metadata/`).
    pub meta_url: String,
    /// `image_name`: the narrative image without a tag (default `kbase/narrative`).
    pub image_name: String,
    /// The container name templates, to tell users' narratives from waiting ones.
    pub naming: Naming,
    /// Connect timeout and the deadlines of operations and listings.
    pub timeouts: Timeouts,
    /// Retries of idempotent reads.
    pub retry: RetryPolicy,
    /// Services asked for per page when listing (Rancher caps it at 3000).
    pub page_size: u32,
    /// `ca_bundle`: extra CA certificates (PEM) trusted besides the system's and the bundled
    /// roots, for a Rancher behind an institution's own CA.
    pub ca_bundle_pem: Option<Vec<u8>>,
}

impl RancherConfig {
    /// A configuration for the API at `url` with every other setting at its default and
    /// nothing known about the environment yet (use [`crate::RancherManager::discover`]).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            credentials: None,
            env_url: None,
            stack_id: None,
            stack_name: None,
            meta_url: "http://rancher-metadata/".to_owned(),
            image_name: "kbase/narrative".to_owned(),
            naming: Naming::default(),
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            page_size: 1000,
            ca_bundle_pem: None,
        }
    }

    /// The same with the API key pair set.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The same with the environment URL, stack id and stack name set, so nothing needs
    /// discovering.
    pub fn with_stack(
        mut self,
        env_url: impl Into<String>,
        stack_id: impl Into<String>,
        stack_name: impl Into<String>,
    ) -> Self {
        self.env_url = Some(env_url.into());
        self.stack_id = Some(stack_id.into());
        self.stack_name = Some(stack_name.into());
        self
    }
}

/// An API key pair. Neither half appears in `Debug`: the access key is half a password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    /// The pair `rancher_user` / `rancher_password`.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }

    pub(crate) fn user(&self) -> &str {
        &self.user
    }

    pub(crate) fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// How long calls may take (SPEC §6a). The deadlines cover whole operations, retries
/// included: a hung Rancher costs an operation at most its deadline, never more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (default 5 s).
    pub connect: Duration,
    /// `rancher_timeout_secs`: one whole operation, every request and retry in it (default
    /// 20 s): `find`, `assign` (its read and its rename), `create`, `mark_connected`,
    /// `remove`, `verify`, one rancher-metadata question.
    pub request: Duration,
    /// `rancher_list_timeout_secs`: one whole listing, every page and retry (default 60 s):
    /// `list` and `zombies`, which may read many pages.
    pub list: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(20),
            list: Duration::from_secs(60),
        }
    }
}

/// Bounded retries with exponential backoff and jitter, for GETs only: a create, rename or
/// remove that timed out may have happened, and repeating it blindly could act twice. Retries
/// also stop at the operation's deadline ([`Timeouts`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after the first (default 2).
    pub max_retries: u32,
    /// Wait before the first retry; doubled each time, plus up to as much again of jitter
    /// (default 200 ms).
    pub initial_backoff: Duration,
    /// Longest wait between attempts before jitter (default 2 s).
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_in_debug() {
        let config = RancherConfig::new("http://rancher:8080/v2-beta")
            .with_credentials(Credentials::new("ACCESSKEY123", "s3cr3t-SECRET"));
        let shown = format!("{config:?}");
        assert!(!shown.contains("ACCESSKEY123"), "{shown}");
        assert!(!shown.contains("s3cr3t-SECRET"), "{shown}");
    }
}
