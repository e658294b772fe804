//! Unknown for ever is a state, not a shield: with Traefik and the narratives' own status as
//! sources, a narrative whose Jupyter never answers (paused, hung) while Traefik shows no
//! traffic is reaped once that has lasted the idle timeout; one whose activity cannot be read
//! because a source is down never is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use traefiker_core::testing::{InMemoryManager, ManualClock, ScriptedActivity};
use traefiker_core::{
    Activity, ActivityError, ActivitySnapshot, Lifecycle, LifecycleConfig, MemoryStore, ReapMode,
    SkipReason, UserId, Visit,
};

const TIMEOUT: Duration = Duration::from_secs(600);
const ALICE: &str = "narrative-alice-522b27";

struct World {
    manager: Arc<InMemoryManager>,
    clock: Arc<ManualClock>,
    traefik: Arc<ScriptedActivity>,
    status: Arc<ScriptedActivity>,
    lifecycle: Lifecycle,
}

fn world() -> World {
    let config = LifecycleConfig {
        pool_size: 0,
        idle_timeout: TIMEOUT,
        ..LifecycleConfig::default()
    };
    let manager = Arc::new(InMemoryManager::new(config.naming.clone()));
    let clock = Arc::new(ManualClock::default());
    let traefik = Arc::new(ScriptedActivity::new("traefik"));
    let status = Arc::new(ScriptedActivity::new("narrative_status"));
    // Traefik shows no traffic for anyone.
    traefik.set(Ok(ActivitySnapshot::new()));
    let lifecycle = Lifecycle::builder(manager.clone(), config)
        .sources(vec![traefik.clone(), status.clone()])
        .store(Arc::new(MemoryStore::new()))
        .clock(clock.clone())
        .image(Some("kbase/narrative:5.4.3".to_owned()))
        .build();
    World {
        manager,
        clock,
        traefik,
        status,
        lifecycle,
    }
}

/// alice's Jupyter does not answer its status.
fn unanswered() -> Result<ActivitySnapshot, ActivityError> {
    Ok([(ALICE.to_owned(), Activity::Unknown)]
        .into_iter()
        .collect())
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test step timed out")
}

async fn alice_connects(w: &World) {
    bounded(
        w.lifecycle
            .connect(&UserId::new("alice").unwrap(), Visit::default()),
    )
    .await
    .unwrap();
}

fn alice_lives(w: &World) -> bool {
    w.manager
        .containers()
        .iter()
        .any(|n| n.name.as_str() == ALICE)
}

/// Past the idle timeout plus the mark interval.
fn past_timeout() -> Duration {
    TIMEOUT * 11 / 10 + Duration::from_secs(1)
}

#[tokio::test]
async fn a_narrative_that_never_answers_is_reaped_once_quiet_for_the_timeout() {
    let w = world();
    alice_connects(&w).await;
    w.status.set(unanswered());
    // The first cycle sees her quiet; she is not reaped on sight.
    let first = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert!(first.idle.is_empty());
    assert_eq!(first.skipped.len(), 1);
    assert_eq!(first.skipped[0].1, SkipReason::ActivityUnknown);
    w.clock.advance(past_timeout());
    let later = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert_eq!(later.idle.len(), 1, "{later:?}");
    assert_eq!(
        later.idle_quiet, later.idle,
        "counted as reaped while quiet"
    );
    assert!(!alice_lives(&w));
}

#[tokio::test]
async fn quiet_only_lately_is_not_enough() {
    let w = world();
    alice_connects(&w).await;
    // Her Jupyter answered (idle) for a long time, then stops answering.
    w.status.set(Ok(ActivitySnapshot::new()));
    w.clock.advance(TIMEOUT / 2);
    bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    w.clock.advance(TIMEOUT / 2 + Duration::from_secs(120));
    w.status.set(unanswered());
    let report = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert!(report.idle.is_empty(), "quiet since only now: {report:?}");
    assert!(alice_lives(&w));
    // A sign of life in between starts the bound again.
    w.clock.advance(TIMEOUT / 2);
    w.traefik.set(Ok([(ALICE.to_owned(), Activity::Active)]
        .into_iter()
        .collect()));
    bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    w.traefik.set(Ok(ActivitySnapshot::new()));
    w.clock.advance(past_timeout());
    let first_quiet = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert!(first_quiet.idle.is_empty(), "{first_quiet:?}");
    w.clock.advance(past_timeout());
    let report = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert_eq!(report.idle.len(), 1);
}

#[tokio::test]
async fn a_source_down_is_still_never_idleness() {
    let w = world();
    alice_connects(&w).await;
    w.status.set(Err(ActivityError::new(
        "narrative_status",
        "every narrative timed out",
    )));
    for _ in 0..10 {
        let report = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
            .await
            .unwrap();
        assert!(report.idle.is_empty());
        assert!(report.activity_error().is_some());
        w.clock.advance(past_timeout());
    }
    assert!(alice_lives(&w));
}

#[tokio::test]
async fn with_no_source_nothing_is_reaped_for_idleness() {
    let manager = Arc::new(InMemoryManager::new(Default::default()));
    let clock = Arc::new(ManualClock::default());
    let lifecycle = Lifecycle::builder(
        manager.clone(),
        LifecycleConfig {
            pool_size: 0,
            idle_timeout: TIMEOUT,
            ..LifecycleConfig::default()
        },
    )
    .clock(clock.clone())
    .image(Some("kbase/narrative:5.4.3".to_owned()))
    .build();
    bounded(lifecycle.connect(&UserId::new("alice").unwrap(), Visit::default()))
        .await
        .unwrap();
    for _ in 0..3 {
        clock.advance(past_timeout());
        let report = bounded(lifecycle.reap_cycle(ReapMode::Apply))
            .await
            .unwrap();
        assert!(report.idle.is_empty(), "{report:?}");
    }
    assert_eq!(manager.containers().len(), 1);
}
