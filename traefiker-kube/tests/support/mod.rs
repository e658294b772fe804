//! What the tests share: a manager over a fresh fake cluster, and the image they use.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use traefiker_core::Clock;
use traefiker_kube::testing::FakeCluster;
use traefiker_kube::{Cluster, KubeConfig, KubeManager};

/// The namespace of every fake cluster here.
pub const NS: &str = "narratives";

/// The image the tests' narratives run.
pub const IMAGE: &str = "kbase/narrative:5.4.3";

/// A manager over `fake`, its clock `clock`.
pub async fn manager_with(fake: &FakeCluster, clock: Arc<dyn Clock>) -> KubeManager {
    let mut config = KubeConfig::new(Cluster::Client(fake.client()));
    config.namespace = Some(NS.to_owned());
    config.pod_name = Some("traefiker-7d9c-abcde".to_owned());
    config.orphan_grace = Duration::from_secs(300);
    config.clock = clock;
    KubeManager::connect(config)
        .await
        .expect("connect to the fake")
}

/// A manager over `fake` on the system clock.
pub async fn manager(fake: &FakeCluster) -> KubeManager {
    manager_with(fake, Arc::new(traefiker_core::SystemClock)).await
}

/// A fresh fake cluster with the namespace [`NS`].
pub fn cluster() -> FakeCluster {
    FakeCluster::new(NS)
}
