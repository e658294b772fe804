//! Which replica this is and which others run (SPEC §9), from the cluster: this pod's name
//! (the downward API's `metadata.name`, given as `POD_NAME`) and the pods of traefiker's own
//! Deployment, selected by [`PEER_SELECTOR`].
//!
//! Why pods rather than a Lease per replica: the kubelet already keeps a pod's phase, a pod
//! that is gone is gone without a renewal loop or an expiry clock to tune, and listing pods
//! is a verb traefiker holds anyway. A hung replica whose pod still runs counts as alive,
//! which only delays the removal of its waiting narratives (its liveness probe restarts it).

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use traefiker_core::{ManagerError, Membership, ReplicaId};

use crate::error::{classify, timed_out, BACKEND};

/// The label selector of traefiker's own pods: the manifests under `deploy/kubernetes/` label
/// its Deployment's pods so, and narratives never carry it.
pub const PEER_SELECTOR: &str = "app.kubernetes.io/name=traefiker";

/// Replica identity and peers from the pods of traefiker's Deployment.
#[derive(Clone)]
pub struct KubeMembership {
    pods: Api<Pod>,
    pod_name: Option<String>,
    limit: std::time::Duration,
}

impl std::fmt::Debug for KubeMembership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeMembership")
            .field("pod_name", &self.pod_name)
            .finish_non_exhaustive()
    }
}

impl KubeMembership {
    pub(crate) fn new(
        pods: Api<Pod>,
        pod_name: Option<String>,
        limit: std::time::Duration,
    ) -> Self {
        Self {
            pods,
            pod_name,
            limit,
        }
    }
}

#[async_trait]
impl Membership for KubeMembership {
    /// This pod's name; `None` without `POD_NAME` (the server then takes the host name, which
    /// in a pod is the pod's name too unless the pod sets `hostname`).
    async fn identity(&self) -> Result<Option<ReplicaId>, ManagerError> {
        self.pod_name
            .as_ref()
            .map(|n| {
                ReplicaId::new(n.clone()).map_err(|e| ManagerError::Rejected {
                    backend: BACKEND.to_owned(),
                    detail: format!("POD_NAME {n:?} cannot be a replica id: {}", e.reason),
                })
            })
            .transpose()
    }

    /// The pods of traefiker's Deployment that have not stopped, terminating ones included
    /// (they are still retiring their pool).
    async fn peers(&self) -> Result<Vec<ReplicaId>, ManagerError> {
        let params = ListParams::default().labels(PEER_SELECTOR);
        let pods = tokio::time::timeout(self.limit, self.pods.list(&params))
            .await
            .map_err(|_| timed_out("list", "traefiker's pods", self.limit))?
            .map_err(|e| classify("list", "traefiker's pods", e))?;
        Ok(pods
            .items
            .iter()
            .filter(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                !matches!(phase, Some("Succeeded" | "Failed"))
            })
            .filter_map(|p| ReplicaId::new(p.metadata.name.clone()?).ok())
            .collect())
    }
}
