//! The pool that follows demand (SPEC §14) through the lifecycle: what it costs, what it aims
//! at, and what it says when waiting narratives never become ready.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use traefiker_core::testing::{InMemoryManager, ManualClock};
use traefiker_core::{Lifecycle, LifecycleConfig, UserId, Visit};

const IMAGE: &str = "kbase/narrative:5.4.3";

fn lifecycle(config: LifecycleConfig, clock: Arc<ManualClock>) -> Lifecycle {
    let manager = Arc::new(InMemoryManager::new(config.naming.clone()));
    Lifecycle::builder(manager, config)
        .clock(clock)
        .image(Some(IMAGE.to_owned()))
        .build()
}

#[tokio::test]
async fn the_pool_costs_its_waiting_narratives_seconds() {
    let clock = Arc::new(ManualClock::default());
    let config = LifecycleConfig {
        pool_size: 2,
        ..LifecycleConfig::default()
    };
    let lc = lifecycle(config, clock.clone());
    assert_eq!(lc.pool_cost(), 0.0);
    lc.fill_pool().await.unwrap();
    clock.advance(Duration::from_secs(10));
    assert_eq!(lc.pool_cost(), 20.0, "two waiting for 10 s");
    lc.connect(&UserId::new("alice").unwrap(), Visit::default())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(5));
    assert_eq!(lc.pool_cost(), 25.0, "one left waiting for 5 s more");
    lc.fill_pool().await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(lc.pool_cost(), 27.0, "two again");
}
