//! The core's conformance suite against real child processes.

use std::time::Duration;

use traefiker_core::testing::conformance::{run_all, Caps, Context};
use traefiker_local::{LocalConfig, LocalManager};

#[tokio::test]
async fn local_manager_passes_the_conformance_suite() {
    // A long-running program that takes a port argument and ignores it: the suite tests
    // bookkeeping and signals, not HTTP.
    let mut config = LocalConfig::new(["sh", "-c", "exec sleep 300", "{port}"]);
    config.grace = Duration::from_secs(5);
    let image = config.image.clone();
    let manager = LocalManager::new(config).expect("valid config");
    let ctx = Context::new(
        image,
        Caps {
            reports_address: true,
            zombies: true,
            conditional_assign: true,
            marks_connected: true,
            conditional: false,
        },
    );
    tokio::time::timeout(Duration::from_secs(60), run_all(&manager, &ctx))
        .await
        .expect("the suite finishes within 60 s");
    let left = tokio::time::timeout(Duration::from_secs(30), manager.shutdown_all())
        .await
        .expect("shutdown within 30 s")
        .expect("shutdown succeeds");
    assert_eq!(left, 0, "the suite removes everything it creates");
}
