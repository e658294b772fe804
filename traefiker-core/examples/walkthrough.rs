//! A walk through traefiker's main job on the in-memory backend: fill the pool, connect three
//! users (from the pool, then cold), a returning user, and a reaper cycle after the idle
//! timeout. Run with `cargo run -p traefiker-core --example walkthrough`.

use std::sync::Arc;
use std::time::Duration;

use traefiker_core::testing::{InMemoryManager, ManualClock, ScriptedActivity};
use traefiker_core::{
    ActivitySnapshot, Lifecycle, LifecycleConfig, MemoryStore, ReapMode, UserId, Visit,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = LifecycleConfig {
        pool_size: 2,
        ..LifecycleConfig::default()
    };
    let manager = Arc::new(InMemoryManager::new(config.naming.clone()));
    let clock = Arc::new(ManualClock::default());
    let traefik = Arc::new(ScriptedActivity::new("traefik"));
    let lifecycle = Lifecycle::new(
        manager.clone(),
        vec![traefik.clone()],
        Arc::new(MemoryStore::new()),
        clock.clone(),
        config,
        Some("kbase/narrative:5.4.3".to_owned()),
    );

    let pool = lifecycle.fill_pool().await?;
    println!("pool filled: {} waiting containers started", pool.created);

    for user in ["alice", "bob_smith", "x.y__z-"] {
        let c = lifecycle
            .connect(&UserId::new(user)?, Visit::from_ip("192.0.2.7"))
            .await?;
        println!(
            "{user:>10} -> {} ({}), session cookie {}",
            c.name,
            c.outcome.as_str(),
            c.session
        );
    }
    let again = lifecycle
        .connect(&UserId::new("alice")?, Visit::default())
        .await?;
    println!(
        "     alice -> {} ({}) again",
        again.name,
        again.outcome.as_str()
    );

    let report = lifecycle.reap_cycle(ReapMode::Apply).await?;
    println!(
        "first reaper cycle: nothing idle yet, pool topped up by {}",
        report.pool.created
    );
    clock.advance(Duration::from_secs(601));
    traefik.set(Ok([(
        "narrative-alice-522b27".to_owned(),
        traefiker_core::Activity::Active,
    )]
    .into_iter()
    .collect::<ActivitySnapshot>()));
    let report = lifecycle.reap_cycle(ReapMode::Apply).await?;
    println!(
        "after 601 idle seconds (alice active): reaped {:?}, pool topped up by {}",
        report.idle.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        report.pool.created
    );
    println!(
        "containers now: {:?}",
        manager
            .containers()
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
    );
    Ok(())
}
