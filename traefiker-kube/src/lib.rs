//! traefiker's container backend for Kubernetes: the core's
//! [`ContainerManager`](traefiker_core::ContainerManager) over bare pods in one namespace,
//! with [`kube`] (kube-rs) and the API's types from `k8s-openapi`.
//!
//! A narrative is a bare pod, as JupyterHub's KubeSpawner makes them (a Deployment or a
//! StatefulSet cannot be given to a user): the image `<image_name>:<tag>` on port 8888, the
//! `NARRENV_*` environment, non-root, every capability dropped, no privilege escalation, no
//! service-account token, CPU and memory requests and limits, a readiness probe, and
//! `restartPolicy: Never`, so a narrative that stops is a zombie (`Failed` or `Succeeded`),
//! as Rancher's start-once services were. Traefik reaches it at its pod IP through
//! traefiker's own HTTP provider (`/traefik/dynamic`).
//!
//! # Names, claims and compare-and-swap
//!
//! - A pod's name cannot change, so a narrative's name (`narrative-<user>`,
//!   `narrativepre-<session>`) is its `traefiker.name` label, and
//!   [`Narrative::id`](traefiker_core::Narrative::id) is `<pod name>/<uid>`.
//! - A waiting pod is assigned by a merge patch that carries the `resourceVersion` it was
//!   listed with: a true compare-and-swap (409 Conflict if anything changed), so every
//!   replica may assign from one shared pool. Marking a connection, stamping an owner and a
//!   reaper's claim before it deletes are the same; the delete then carries the claim's
//!   version and the pod's uid as preconditions.
//! - A user's name is held by a `coordination.k8s.io` Lease named after it
//!   (`traefiker-claim.<name>`), written after the pod carries the name and owned by the pod:
//!   apiserver's unique names make "one narrative per user" unconditional, the garbage
//!   collector removes the claim with its pod, and `find` goes through it. A claim whose pod
//!   no longer carries the name is stale and is cleared, under preconditions, by the next
//!   create or assignment of that name.
//! - The owner (SHA-256 of the user id, 64 hex characters) and the session id are
//!   annotations: label values hold 63 characters.
//!
//! Identity and peers come from the cluster ([`KubeMembership`]): this pod's name, and the
//! pods of traefiker's Deployment. The verbs traefiker needs are [`access::REQUIRED`], which
//! `deploy/kubernetes/rbac.yaml` grants exactly; [`ContainerManager::verify`]
//! (traefiker_core::ContainerManager::verify) asks the API server for each of them and names
//! every one missing.
//!
//! # Constructing it
//!
//! ```no_run
//! use traefiker_core::ContainerManager;
//! use traefiker_kube::{Cluster, KubeConfig, KubeManager};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = KubeConfig::new(Cluster::Infer);
//! config.namespace = Some("narratives".into());
//! let manager = KubeManager::connect(config).await?;
//! println!("{}", manager.verify().await?.location);
//! # Ok(()) }
//! ```
//!
//! Its tests run against [`testing::FakeCluster`], a stateful fake API server (no API server
//! can be installed where traefiker is built), and, with `TRAEFIKER_KUBE_TEST=1` and a
//! kubeconfig, against a real cluster: see `docs/kubernetes.md` for what ran where.

pub mod access;
mod config;
mod error;
mod manager;
mod membership;
mod wire;

#[cfg(any(feature = "testing", test))]
pub mod testing;

pub use config::{Cluster, KubeConfig, PodSettings, Timeouts};
pub use error::KubeError;
pub use manager::KubeManager;
pub use membership::{KubeMembership, PEER_SELECTOR};
pub use wire::{
    claim_name, APP_NAME, CONTAINER, MANAGED_BY, NAME_LABEL, NARRATIVE_PORT, ORIGIN_ANNOTATION,
    OWNER_ANNOTATION, REMOVING_LABEL,
};
