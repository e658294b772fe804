//! traefiker's container backend for Kubernetes: narratives as bare pods in one namespace,
//! assigned by compare-and-swap on `metadata.resourceVersion`.
//!
//! The backend itself lands with contract v2 of `traefiker-core`; for now the crate holds
//! [`testing::FakeCluster`], the stateful fake API server its tests run against.

#[cfg(any(feature = "testing", test))]
pub mod testing;
