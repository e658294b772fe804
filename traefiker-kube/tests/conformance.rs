//! The core's conformance suite against the Kubernetes backend over the fake API server,
//! once with a kubelet and collector that act at once and once with terminating pods and a
//! late collector (as a real cluster's are); and, opt-in, against a real cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use traefiker_core::testing::conformance::{run_all, Caps, Context};
use traefiker_core::ContainerManager;
use traefiker_kube::testing::{Collection, Termination};
use traefiker_kube::{Cluster, KubeConfig, KubeManager};

fn context() -> Context {
    Context::new(
        support::IMAGE,
        Caps {
            reports_address: true,
            zombies: true,
            conditional_assign: true,
            marks_connected: true,
            conditional: true,
        },
    )
}

#[tokio::test]
async fn the_backend_passes_the_suite_against_the_fake() {
    let fake = support::cluster();
    let manager = support::manager(&fake).await;
    run_all(&manager, &context()).await;
}

#[tokio::test]
async fn the_backend_passes_the_suite_with_terminating_pods_and_a_late_collector() {
    let fake = support::cluster();
    fake.set_termination(Termination::Lingering);
    fake.set_collection(Collection::Deferred);
    let manager = support::manager(&fake).await;
    run_all(&manager, &context()).await;
}

/// The simulation runs on tokio's paused time: the fake's latency is virtual, so a suite of
/// a few hundred calls at 200 ms each takes no wall-clock time.
#[tokio::test(start_paused = true)]
async fn the_backend_passes_the_suite_on_paused_time_with_latency() {
    let fake = support::cluster();
    fake.set_latency(std::time::Duration::from_millis(200));
    let manager = support::manager(&fake).await;
    let (virtual_start, wall_start) = (tokio::time::Instant::now(), std::time::Instant::now());
    run_all(&manager, &context()).await;
    let calls = fake.calls().len() as u32;
    assert!(
        virtual_start.elapsed() >= std::time::Duration::from_millis(200) * calls / 2,
        "every call waited its latency on the virtual clock"
    );
    assert!(
        wall_start.elapsed() < std::time::Duration::from_secs(20),
        "and none on the wall clock: {:?}",
        wall_start.elapsed()
    );
}

/// `TRAEFIKER_KUBE_TEST=1` runs the suite on the cluster of the current kubeconfig context
/// (`KUBECONFIG`), in the namespace `TRAEFIKER_KUBE_NAMESPACE` (default
/// `traefiker-conformance`, which must exist); it makes and removes narrative pods there.
#[tokio::test]
async fn the_backend_passes_the_suite_on_a_real_cluster_when_asked() {
    if std::env::var("TRAEFIKER_KUBE_TEST").as_deref() != Ok("1") {
        println!(
            "SKIPPED: the conformance suite on a real cluster; set TRAEFIKER_KUBE_TEST=1 with a \
             kubeconfig (KUBECONFIG) whose context may use pods and leases in \
             TRAEFIKER_KUBE_NAMESPACE (default traefiker-conformance)"
        );
        return;
    }
    let mut config = KubeConfig::new(Cluster::Infer);
    config.namespace = Some(
        std::env::var("TRAEFIKER_KUBE_NAMESPACE")
            .unwrap_or_else(|_| "traefiker-conformance".into()),
    );
    // A real image that runs as non-root and listens on nothing: the suite needs pods, not
    // Jupyter. Any image works if TRAEFIKER_KUBE_IMAGE names one (`<name>:<tag>`).
    let image = std::env::var("TRAEFIKER_KUBE_IMAGE")
        .unwrap_or_else(|_| "registry.k8s.io/pause:3.10".into());
    let (name, _) = image
        .rsplit_once(':')
        .expect("TRAEFIKER_KUBE_IMAGE is <name>:<tag>");
    config.image_name = name.to_owned();
    config.pod.run_as_user = Some(65535);
    let manager = KubeManager::connect(config)
        .await
        .expect("connect to the cluster");
    let info = manager.verify().await.expect("verify");
    println!("running the conformance suite on {}", info.location);
    let mut ctx = context();
    ctx.image = image;
    // A real pod has an IP only once scheduled, and the suite does not wait for that.
    ctx.caps.reports_address = false;
    run_all(&manager, &ctx).await;
}
