//! The pool that follows demand (SPEC §14) through the lifecycle: what it costs, what it aims
//! at, and what it says when waiting narratives never become ready.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use traefiker_core::testing::{InMemoryManager, ManualClock, Op};
use traefiker_core::{
    ArrivalLog, Clock, ConnectOutcome, Lifecycle, LifecycleConfig, MemoryStore, Narrative,
    Readiness, Reason, UserId, Visit,
};

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

/// A readiness check that never passes, as when traefiker cannot reach the narratives.
#[derive(Debug)]
struct Unreachable;

#[async_trait::async_trait]
impl Readiness for Unreachable {
    async fn check(&self, narrative: &Narrative) -> Result<(), String> {
        Err(format!("{}: connection refused", narrative.name))
    }

    fn likely_cause(&self) -> &str {
        "traefiker cannot reach the narratives"
    }
}

/// Counts the events whose message starts with a prefix.
struct Counter {
    prefix: &'static str,
    seen: Arc<AtomicUsize>,
}

struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Counter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        if message.starts_with(self.prefix) {
            self.seen.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn waiting_narratives_that_never_become_ready_are_counted_and_said_once() {
    let seen = Arc::new(AtomicUsize::new(0));
    let _quiet = tracing::subscriber::set_default(Counter {
        prefix: "waiting narratives do not become ready",
        seen: seen.clone(),
    });
    let clock = Arc::new(ManualClock::default());
    let config = LifecycleConfig {
        pool_size: 2,
        ready_timeout: Duration::from_secs(60),
        ..LifecycleConfig::default()
    };
    let manager = Arc::new(InMemoryManager::new(config.naming.clone()));
    let lc = Lifecycle::builder(manager, config)
        .clock(clock.clone())
        .readiness(Arc::new(Unreachable))
        .image(Some(IMAGE.to_owned()))
        .build();
    lc.fill_pool().await.unwrap();
    assert_eq!(lc.pool_unready(), 0, "not late yet");
    for round in 1..=5 {
        clock.advance(Duration::from_secs(61));
        let report = lc.fill_pool().await.unwrap();
        assert_eq!(report.excess_removed, 2, "round {round}: both replaced");
        assert_eq!(lc.pool_unready(), 2 * round);
    }
    assert_eq!(
        seen.load(Ordering::Relaxed),
        1,
        "said once, not every round"
    );
    let warning = lc.pool_unready_warning().unwrap();
    assert!(
        warning.answer.ends_with("connection refused"),
        "{warning:?}"
    );
    assert_eq!(
        warning.likely_cause,
        "traefiker cannot reach the narratives"
    );
    assert_eq!(warning.count, 10);
}

/// Wall-clock time that moves with tokio's (paused) time.
#[derive(Debug)]
struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    fn new() -> Self {
        Self {
            // A Monday, 08:00 UTC.
            base: Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::Duration::from_std(self.start.elapsed()).unwrap()
    }
}

/// `users` new users one every half second from now, each its own request; their outcomes.
async fn burst(lc: &Lifecycle, first: usize, users: usize) -> Vec<ConnectOutcome> {
    let mut asked = Vec::new();
    for i in first..first + users {
        let lc = lc.clone();
        asked.push(tokio::spawn(async move {
            let user = UserId::new(format!("user{i}")).unwrap();
            lc.connect(&user, Visit::default()).await.unwrap().outcome
        }));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut outcomes = Vec::new();
    for a in asked {
        outcomes.push(a.await.unwrap());
    }
    outcomes
}

fn served_warm(outcomes: &[ConnectOutcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| **o == ConnectOutcome::Assigned)
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_burst_raises_the_pool_which_falls_back_to_the_floor_when_quiet() {
    let clock = Arc::new(TokioClock::new());
    let config = LifecycleConfig {
        pool_size: 2,
        pool_max: Some(20),
        ..LifecycleConfig::default()
    };
    let manager = Arc::new(
        InMemoryManager::new(config.naming.clone())
            .with_latency(Duration::from_millis(10))
            .with_cold_start(Duration::from_secs(3)),
    );
    let lc = Lifecycle::builder(manager, config)
        .clock(clock)
        .image(Some(IMAGE.to_owned()))
        .build();
    lc.fill_pool().await.unwrap();
    assert_eq!(
        lc.cold_start(),
        Some(Duration::from_millis(3010)),
        "measured"
    );
    let filler = {
        let lc = lc.clone();
        tokio::spawn(async move { lc.run_pool_filler(std::future::pending()).await })
    };
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!((lc.pool_waiting(), lc.pool_target().size), (2, 2), "quiet");

    let outcomes = burst(&lc, 0, 40).await;
    let warm = served_warm(&outcomes);
    // From a quiet floor of 2, the users of the first cold start beyond the two waiting
    // cannot be warm (nothing started at the burst's first request is ready before them).
    assert!(warm >= 34, "{warm} of 40 served warm: {outcomes:?}");
    assert!(lc.pool_target().size > 2, "{:?}", lc.pool_target());

    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        (lc.pool_waiting(), lc.pool_target().size),
        (2, 2),
        "back to the floor"
    );
    filler.abort();
}

#[tokio::test(start_paused = true)]
async fn a_fixed_pool_serves_a_burst_mostly_cold() {
    let clock = Arc::new(TokioClock::new());
    let config = LifecycleConfig {
        pool_size: 2,
        ..LifecycleConfig::default()
    };
    let manager = Arc::new(
        InMemoryManager::new(config.naming.clone())
            .with_latency(Duration::from_millis(10))
            .with_cold_start(Duration::from_secs(3)),
    );
    let lc = Lifecycle::builder(manager, config)
        .clock(clock)
        .image(Some(IMAGE.to_owned()))
        .build();
    lc.fill_pool().await.unwrap();
    let filler = {
        let lc = lc.clone();
        tokio::spawn(async move { lc.run_pool_filler(std::future::pending()).await })
    };
    let warm = served_warm(&burst(&lc, 0, 40).await);
    assert!(warm <= 16, "{warm} of 40 served warm by a pool of 2");
    assert_eq!(lc.pool_target().size, 2);
    filler.abort();
}

#[tokio::test(start_paused = true)]
async fn the_weeks_in_the_store_raise_the_pool_before_a_busy_time_and_serve_it_warm() {
    // Two past Mondays with a workshop at 09:00, as a new process finds them in the store.
    let store = Arc::new(MemoryStore::new());
    let monday_9 = Utc.with_ymd_and_hms(2026, 3, 16, 9, 0, 0).unwrap();
    let past: Vec<DateTime<Utc>> = (1..=2)
        .flat_map(|week| {
            (0..40).map(move |i| {
                monday_9 - chrono::Duration::weeks(week) + chrono::Duration::milliseconds(500 * i)
            })
        })
        .collect();
    store
        .record_arrivals(&past, monday_9 - chrono::Duration::weeks(4))
        .unwrap();
    let clock = Arc::new(TokioClock {
        base: monday_9 - chrono::Duration::minutes(10),
        start: tokio::time::Instant::now(),
    });
    let config = LifecycleConfig {
        pool_size: 2,
        pool_max: Some(20),
        ..LifecycleConfig::default()
    };
    let manager = Arc::new(
        InMemoryManager::new(config.naming.clone())
            .with_latency(Duration::from_millis(10))
            .with_cold_start(Duration::from_secs(3)),
    );
    let lc = Lifecycle::builder(manager, config)
        .clock(clock)
        .store(store.clone())
        .arrivals(store.clone())
        .image(Some(IMAGE.to_owned()))
        .build();
    lc.fill_pool().await.unwrap();
    let filler = {
        let lc = lc.clone();
        tokio::spawn(async move { lc.run_pool_filler(std::future::pending()).await })
    };
    tokio::time::sleep(Duration::from_secs(3 * 60)).await;
    assert_eq!(lc.pool_target().size, 2, "08:53: not yet");
    tokio::time::sleep(Duration::from_secs(6 * 60)).await;
    let target = lc.pool_target();
    assert_eq!(target.reason, Reason::Learned, "08:59");
    assert!(target.size >= 9, "{target:?}");
    assert_eq!(lc.pool_waiting(), target.size, "ready before the workshop");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let outcomes = burst(&lc, 0, 40).await;
    assert_eq!(served_warm(&outcomes), 40, "{outcomes:?}");
    // And this Monday's arrivals are in the store for the weeks to come.
    let kept = store
        .arrivals_since(monday_9 - chrono::Duration::minutes(1))
        .unwrap();
    assert_eq!(kept.len(), 40);
    filler.abort();
}

#[tokio::test(start_paused = true)]
async fn wake_ups_during_a_step_make_one_more_step_not_a_queue() {
    // Every call, listings included, takes a second.
    let config = LifecycleConfig {
        pool_size: 1,
        ..LifecycleConfig::default()
    };
    let manager =
        Arc::new(InMemoryManager::new(config.naming.clone()).with_latency(Duration::from_secs(1)));
    let lc = Lifecycle::builder(manager.clone(), config)
        .image(Some(IMAGE.to_owned()))
        .build();
    lc.fill_pool().await.unwrap();
    let filler = {
        let lc = lc.clone();
        tokio::spawn(async move { lc.run_pool_filler(std::future::pending()).await })
    };
    let listed = manager.calls(Op::List);
    // A burst's worth of wake-ups, 50 ms apart, while steps take a second to list.
    for _ in 0..20 {
        lc.request_pool_fill();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = tokio::time::Instant::now();
    lc.fill_pool().await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(4),
        "a fill behind the filler's steps waited {waited:?}"
    );
    let steps = manager.calls(Op::List) - listed;
    assert!(steps <= 4, "{steps} listings for 20 wake-ups and one fill");
    filler.abort();
}
