//! What the backend needs to know: how to reach the API server, the namespace narratives run
//! in, this pod's name, the image, what each narrative pod asks for, and how long to wait.
//!
//! The server fills [`KubeConfig`] from its own configuration (`kube_namespace`, `POD_NAME`,
//! `image_name`, the name templates); this crate never reads a setting itself. How the API
//! server is found is kube-rs's business (the service account mount, `KUBECONFIG`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use traefiker_core::{Clock, Naming, SystemClock};

/// Where the API server and the credentials come from.
#[derive(Clone)]
#[non_exhaustive]
pub enum Cluster {
    /// In a pod (`KUBERNETES_SERVICE_HOST` set): its service account. Elsewhere: the
    /// kubeconfig `KUBECONFIG` or `~/.kube/config` names, at its current context.
    Infer,
    /// This kubeconfig file, at its current context.
    Kubeconfig(PathBuf),
    /// A client made elsewhere (the tests' fake API server).
    Client(kube::Client),
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Infer => f.write_str("Infer"),
            Self::Kubeconfig(p) => f.debug_tuple("Kubeconfig").field(p).finish(),
            Self::Client(_) => f.write_str("Client(..)"),
        }
    }
}

/// Everything [`crate::KubeManager`] is built from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KubeConfig {
    /// How to reach the API server.
    pub cluster: Cluster,
    /// `kube_namespace`: where narratives (and their claims) live; `None` = the client's
    /// default, which in a pod is the pod's own namespace (from the service account mount).
    pub namespace: Option<String>,
    /// `POD_NAME` (the downward API's `metadata.name`): this replica's pod, its identity
    /// among the pods of traefiker's Deployment.
    pub pod_name: Option<String>,
    /// `image_name`: the narrative image without a tag (default `kbase/narrative`).
    pub image_name: String,
    /// The container name templates, to tell users' narratives from waiting ones. On
    /// Kubernetes they must make lowercase DNS names (`narrative-{}`, the default, does).
    pub naming: Naming,
    /// What each narrative pod asks for and how it runs.
    pub pod: PodSettings,
    /// How long each call may take.
    pub timeouts: Timeouts,
    /// How long a user-named pod without a claim is left alone before it is reported as a
    /// zombie: an assignment whose claim was never made (a crash between its two writes).
    pub orphan_grace: Duration,
    /// Where "now" comes from (the simulation's clock in tests).
    pub clock: Arc<dyn Clock>,
}

impl KubeConfig {
    /// A configuration for `cluster`, everything else at its default.
    pub fn new(cluster: Cluster) -> Self {
        Self {
            cluster,
            namespace: None,
            pod_name: None,
            image_name: "kbase/narrative".to_owned(),
            naming: Naming::default(),
            pod: PodSettings::default(),
            timeouts: Timeouts::default(),
            orphan_grace: Duration::from_secs(300),
            clock: Arc::new(SystemClock),
        }
    }
}

/// What a narrative pod asks the scheduler for, and how it runs. The defaults follow the
/// Rancher service definition (one CPU) and give Jupyter room; embedders may change them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PodSettings {
    /// `resources.requests.cpu` (default `100m`).
    pub cpu_request: String,
    /// `resources.limits.cpu` (default `1`, Rancher's `vcpu: 1`).
    pub cpu_limit: String,
    /// `resources.requests.memory` (default `512Mi`).
    pub memory_request: String,
    /// `resources.limits.memory` (default `2Gi`).
    pub memory_limit: String,
    /// `securityContext.runAsUser`: needed where the image's `USER` is a name rather than a
    /// number, since the pod must run as non-root (default unset: the image's own user).
    pub run_as_user: Option<i64>,
    /// `terminationGracePeriodSeconds` of a narrative (default 10, as `docker stop`).
    pub termination_grace_secs: i64,
}

impl Default for PodSettings {
    fn default() -> Self {
        Self {
            cpu_request: "100m".to_owned(),
            cpu_limit: "1".to_owned(),
            memory_request: "512Mi".to_owned(),
            memory_limit: "2Gi".to_owned(),
            run_as_user: None,
            termination_grace_secs: 10,
        }
    }
}

/// How long each call to the API server may take (SPEC §6a).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting to the API server (default 5 s).
    pub connect: Duration,
    /// One API call (default 20 s).
    pub request: Duration,
    /// One listing, every page (default 60 s).
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
