//! The typed values of the configuration that are more than a string or a number.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which sources tell the reaper who is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// Traefik's Prometheus metrics.
    Traefik,
    /// Each narrative's Jupyter `/api/status`.
    NarrativeStatus,
}

/// What tells that a waiting narrative may be handed to a user (`ready_check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadyCheck {
    /// Its Jupyter answers `narrative_status_path` (where the backend gives an address).
    Status,
    /// The backend reports it running (and healthy, where it has a health check).
    Backend,
}

impl std::str::FromStr for ReadyCheck {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "status" => Ok(Self::Status),
            "backend" => Ok(Self::Backend),
            _ => Err("must be `status` or `backend`"),
        }
    }
}

/// A value that must not be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `NARRENV_*` with the prefix stripped: what every narrative's environment gets. `Debug`
/// masks the values whose names say they are secret (see [`super::is_secret`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NarrativeEnv(BTreeMap<String, String>);

impl NarrativeEnv {
    /// Wraps the variables, prefix already stripped.
    pub fn new(vars: BTreeMap<String, String>) -> Self {
        Self(vars)
    }

    /// The variables, for the narratives' environment only.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl fmt::Debug for NarrativeEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if super::is_secret(&format!("NARRENV_{k}")) {
                    "***"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

/// `log_level` as the Python version accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// DEBUG, 10
    Debug,
    /// INFO, 20
    Info,
    /// WARNING, 30
    Warning,
    /// ERROR, 40
    Error,
    /// CRITICAL, 50
    Critical,
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "DEBUG" | "10" => Ok(Self::Debug),
            "INFO" | "20" => Ok(Self::Info),
            "WARNING" | "WARN" | "30" => Ok(Self::Warning),
            "ERROR" | "40" => Ok(Self::Error),
            "CRITICAL" | "50" => Ok(Self::Critical),
            _ => Err(format!(
                "{s:?} is not DEBUG, INFO, WARNING, ERROR, CRITICAL or 10..50"
            )),
        }
    }
}

impl LogLevel {
    /// The tracing filter directive for this level.
    pub fn directive(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warning => "warn",
            Self::Error | Self::Critical => "error",
        }
    }
}

/// Where containers run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Rancher 1.x, with what is known of the environment (the rest is discovered).
    Rancher {
        /// `rancher_url`
        url: String,
        /// `rancher_user`
        user: Option<String>,
        /// `rancher_password`
        password: Option<Secret>,
        /// `rancher_meta`
        meta: String,
        /// `rancher_env_url`
        env_url: Option<String>,
        /// `rancher_stack_id`
        stack_id: Option<String>,
        /// `rancher_stack_name`
        stack_name: Option<String>,
    },
    /// Local child processes running `command`.
    Local {
        /// `local_command`
        command: Vec<String>,
    },
    /// Pods on Kubernetes (the API server found from the service account or a kubeconfig).
    Kubernetes {
        /// `kube_namespace`; `None` = the pod's own namespace.
        namespace: Option<String>,
        /// `POD_NAME`, from the downward API.
        pod_name: Option<String>,
    },
    /// Services on a Docker Swarm, through one of its managers' engine (SPEC §12).
    Swarm {
        /// `docker_url`
        url: String,
        /// `dock_net`: an attachable overlay network.
        network: String,
    },
    /// Containers on a Docker engine.
    Docker {
        /// `docker_url`
        url: String,
        /// `dock_net`
        network: String,
    },
}

/// Timeouts of outbound calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connect timeout of every call.
    pub connect: Duration,
    /// auth2 requests.
    pub auth2: Duration,
    /// Rancher requests.
    pub rancher: Duration,
    /// A whole Rancher listing, every page.
    pub rancher_list: Duration,
    /// The version URL.
    pub version: Duration,
    /// The Traefik metrics page.
    pub metrics: Duration,
    /// Each narrative's `/api/status`.
    pub status: Duration,
}

/// Parses `local_command`: a JSON array of strings, or whitespace-separated words.
pub fn parse_command(text: &str) -> Result<Vec<String>, String> {
    let words: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(|e| format!("not a JSON array of strings: {e}"))?
    } else {
        text.split_whitespace().map(str::to_owned).collect()
    };
    if words.is_empty() {
        return Err("names no program".to_owned());
    }
    Ok(words)
}
