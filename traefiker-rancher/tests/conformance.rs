//! The core's conformance suite against `RancherManager` over the fake Rancher.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use traefiker_core::testing::conformance::{run_all, Caps, Context};
use traefiker_rancher::testing::FakeRancher;
use traefiker_rancher::RancherManager;

#[tokio::test]
async fn rancher_manager_passes_the_conformance_suite() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let fake = FakeRancher::start().await;
        let manager = RancherManager::new(fake.config()).expect("config is complete");
        let ctx = Context::new(
            "kbase/narrative:5.4.3",
            Caps {
                reports_address: true,
                zombies: true,
                conditional_assign: false,
                marks_connected: true,
                conditional: false,
            },
        );
        run_all(&manager, &ctx).await;
    })
    .await
    .expect("the suite finishes within a minute");
}

#[tokio::test]
async fn the_suite_passes_with_small_pages_and_finished_removals() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let fake = FakeRancher::start().await;
        fake.set_page_size(Some(1));
        for i in 0..5 {
            fake.add_service(
                &format!("other-{i}"),
                "docker:kbase/narrative:5.4.3",
                None,
                "healthy",
            );
        }
        let mut config = fake.config();
        config.page_size = 2;
        let manager = RancherManager::new(config).expect("config is complete");
        let ctx = Context::new(
            "kbase/narrative:5.4.3",
            Caps {
                reports_address: true,
                zombies: true,
                conditional_assign: false,
                marks_connected: true,
                conditional: false,
            },
        );
        run_all(&manager, &ctx).await;
        fake.finish_removals();
        run_all(&manager, &ctx).await;
    })
    .await
    .expect("the suite finishes within a minute");
}
