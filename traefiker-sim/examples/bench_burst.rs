//! `cargo xtask bench-burst`: the workshop trace of issue 22 against five pools, side by side,
//! in one deterministic run.
//!
//! The trace, on a Monday: traefiker starts at 08:50 and fills its pool (the warm-up, with no
//! user), 40 new users arrive at 09:00:00, one every half second (the last at 09:00:19.5),
//! then nobody for an hour. The backend is the in-memory one renaming like Rancher (a read,
//! then a rename, 10 ms each) where a create takes 3 s more (the cold start). The real
//! `Lifecycle` and its pool filler run on a single-threaded tokio runtime with paused time:
//! virtual time advances only when every task waits, so a run is exact, repeatable and takes
//! well under a second.
//!
//! The pools: a fixed one of `num_prespawn` = 2 (the Python behaviour), a fixed one of
//! `num_prespawn` = `pool_max` = 20, the pool that follows demand between 2 and 20, the same
//! with `pool_schedule = mon-fri 09:00-09:15 UTC = 10`, and the same after two weeks of
//! weekday 09:00 bursts: those two weeks run first (with their own bursts, every weekday),
//! their arrivals go to an SQLite store, and a new traefiker process starts on that store on
//! the third Monday, without a schedule.
//!
//! For each: the share of the burst served from a waiting narrative, the time from a new
//! user's request to the 201 (p50, p95; nearest rank), the waiting-narrative seconds over the
//! whole trace (what the pool costs) and their ratio to the fixed pool of 2, the target at
//! 08:59:30 and its highest, and the creates of waiting narratives; then each target of the
//! issue, met or not.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Utc, Weekday};
use traefiker_core::testing::{AssignMode, InMemoryManager, Op};
use traefiker_core::{
    Clock, ConnectOutcome, Lifecycle, LifecycleConfig, Naming, Schedule, SqliteStore, UserId, Visit,
};

const USERS: usize = 40;
const EVERY: Duration = Duration::from_millis(500);
const COLD_START: Duration = Duration::from_secs(3);
const LATENCY: Duration = Duration::from_millis(10);
const FLOOR: usize = 2;
const MAX: usize = 20;
const IMAGE: &str = "kbase/narrative:5.4.3";

/// Wall-clock time that moves with tokio's (paused) time, from `base`.
#[derive(Debug)]
struct VirtualClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::Duration::from_std(self.start.elapsed()).unwrap_or_default()
    }
}

/// The third Monday of the weeks variant; every variant's workshop is on it.
fn workshop_day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 16, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn at(day: DateTime<Utc>, h: i64, m: i64) -> DateTime<Utc> {
    day + chrono::Duration::hours(h) + chrono::Duration::minutes(m)
}

struct Pool {
    name: &'static str,
    config: LifecycleConfig,
    /// Weeks of weekday bursts before the workshop, in the same store.
    history_weeks: i64,
}

/// What one run of the trace measured.
struct Figures {
    warm: usize,
    took: Vec<Duration>,
    cost: f64,
    before: usize,
    peak: usize,
    pool_creates: usize,
}

fn config(floor: usize, max: Option<usize>, schedule: &str) -> LifecycleConfig {
    LifecycleConfig {
        pool_size: floor,
        pool_max: max,
        pool_schedule: Schedule::parse(schedule).unwrap_or_default(),
        ..LifecycleConfig::default()
    }
}

fn backend(naming: &Naming) -> Arc<InMemoryManager> {
    Arc::new(
        InMemoryManager::new(naming.clone())
            .with_assign_mode(AssignMode::ReadThenRename)
            .with_latency(LATENCY)
            .with_cold_start(COLD_START),
    )
}

/// A traefiker process from `start` on `store`, with its pool filled and its filler running.
async fn start(
    config: &LifecycleConfig,
    store: &Arc<SqliteStore>,
    start: DateTime<Utc>,
) -> (Lifecycle, Arc<InMemoryManager>, tokio::task::JoinHandle<()>) {
    let manager = backend(&config.naming);
    let lifecycle = Lifecycle::builder(manager.clone(), config.clone())
        .clock(Arc::new(VirtualClock {
            base: start,
            start: tokio::time::Instant::now(),
        }))
        .store(store.clone())
        .arrivals(store.clone())
        .image(Some(IMAGE.to_owned()))
        .build();
    if let Err(e) = lifecycle.fill_pool().await {
        eprintln!("bench-burst: the first fill failed: {e}");
    }
    let filler = {
        let lifecycle = lifecycle.clone();
        tokio::spawn(async move { lifecycle.run_pool_filler(std::future::pending()).await })
    };
    (lifecycle, manager, filler)
}

/// The burst: `USERS` new users from now, one every `EVERY`, each its own request; their
/// outcomes and times to the answer, and the highest target meanwhile.
async fn burst(lifecycle: &Lifecycle, tag: &str) -> (Vec<(ConnectOutcome, Duration)>, usize) {
    let mut asked = Vec::new();
    let mut peak = lifecycle.pool_target().size;
    for i in 0..USERS {
        let one = lifecycle.clone();
        let user = UserId::new(format!("{tag}-user{i}")).ok();
        asked.push(tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let user = user?;
            let outcome = one.connect(&user, Visit::default()).await.ok()?;
            Some((outcome.outcome, started.elapsed()))
        }));
        tokio::time::sleep(EVERY).await;
        peak = peak.max(lifecycle.pool_target().size);
    }
    let mut answers = Vec::new();
    for a in asked {
        if let Ok(Some(answer)) = a.await {
            answers.push(answer);
        }
    }
    (answers, peak)
}

/// Sleeps until `clock` shows `when`.
async fn until(clock: &VirtualClock, when: DateTime<Utc>) {
    let wait = (when - clock.now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
}

async fn run(pool: &Pool, store: Arc<SqliteStore>) -> Figures {
    let day = workshop_day();
    if pool.history_weeks > 0 {
        // The weeks before, in one process: a burst at 09:00 every weekday.
        let from = day - chrono::Duration::weeks(pool.history_weeks);
        let (lifecycle, _, filler) = start(&pool.config, &store, from).await;
        let clock = VirtualClock {
            base: from,
            start: tokio::time::Instant::now(),
        };
        let mut d = from;
        while d < day {
            if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                until(&clock, at(d, 9, 0)).await;
                burst(&lifecycle, &format!("d{}", d.ordinal())).await;
            }
            d += chrono::Duration::days(1);
        }
        filler.abort();
    }
    // The workshop's day: a new process at 08:50.
    let began = at(day, 8, 50);
    let (lifecycle, manager, filler) = start(&pool.config, &store, began).await;
    let clock = VirtualClock {
        base: began,
        start: tokio::time::Instant::now(),
    };
    let creates_before = manager.calls(Op::Create);
    until(&clock, at(day, 8, 59) + chrono::Duration::seconds(30)).await;
    let before = lifecycle.pool_target().size;
    until(&clock, at(day, 9, 0)).await;
    let (answers, peak) = burst(&lifecycle, "workshop").await;
    let end = at(day, 9, 0) + chrono::Duration::seconds(20) + chrono::Duration::hours(1);
    until(&clock, end).await;
    let cost = lifecycle.pool_cost();
    filler.abort();
    let warm = answers
        .iter()
        .filter(|(o, _)| *o == ConnectOutcome::Assigned)
        .count();
    let cold = answers.len() - warm;
    let mut took: Vec<Duration> = answers.iter().map(|(_, t)| *t).collect();
    took.sort();
    Figures {
        warm,
        took,
        cost,
        before,
        peak,
        pool_creates: (manager.calls(Op::Create) - creates_before).saturating_sub(cold),
    }
}

/// The nearest-rank percentile `p` of sorted `values`.
fn percentile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

fn store_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "traefiker-bench-burst-{}-{name}.db",
        std::process::id()
    ))
}

fn main() {
    let pools = [
        Pool {
            name: "fixed, num_prespawn = 2",
            config: config(FLOOR, None, ""),
            history_weeks: 0,
        },
        Pool {
            name: "fixed, num_prespawn = 20",
            config: config(MAX, None, ""),
            history_weeks: 0,
        },
        Pool {
            name: "adaptive 2..20",
            config: config(FLOOR, Some(MAX), ""),
            history_weeks: 0,
        },
        Pool {
            name: "adaptive + schedule",
            config: config(FLOOR, Some(MAX), "mon-fri 09:00-09:15 UTC = 10"),
            history_weeks: 0,
        },
        Pool {
            name: "adaptive, 2 weeks learned",
            config: config(FLOOR, Some(MAX), ""),
            history_weeks: 2,
        },
    ];
    println!(
        "bench-burst: {USERS} new users at 2/s from 09:00:00 after a quiet warm-up from 08:50, then a quiet hour;\n\
         in-memory backend renaming like Rancher ({} ms a call), creates {} s more (the cold start); paused time",
        LATENCY.as_millis(),
        COLD_START.as_secs()
    );
    println!(
        "{:<27} {:>6} {:>8} {:>8} {:>10} {:>8} {:>10} {:>5} {:>8}",
        "pool", "warm", "p50 s", "p95 s", "waiting s", "x fixed", "@08:59:30", "peak", "creates"
    );
    let mut fixed_cost = None;
    let mut all = Vec::new();
    for pool in &pools {
        let path = store_path(pool.name.split(',').next().unwrap_or("pool").trim());
        let _ = std::fs::remove_file(&path);
        let store = match SqliteStore::open(&path) {
            Ok(store) => Arc::new(store),
            Err(e) => {
                eprintln!("bench-burst: {e}");
                std::process::exit(1);
            }
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("bench-burst: no runtime: {e}");
                std::process::exit(1);
            }
        };
        let f = runtime.block_on(run(pool, store));
        let _ = std::fs::remove_file(&path);
        let fixed = *fixed_cost.get_or_insert(f.cost);
        println!(
            "{:<27} {:>5.0}% {:>8.3} {:>8.3} {:>10.0} {:>7.2}x {:>10} {:>5} {:>8}",
            pool.name,
            100.0 * f.warm as f64 / USERS as f64,
            percentile(&f.took, 0.50).as_secs_f64(),
            percentile(&f.took, 0.95).as_secs_f64(),
            f.cost,
            f.cost / fixed,
            f.before,
            f.peak,
            f.pool_creates,
        );
        all.push((f, fixed));
    }
    let share = |f: &Figures| f.warm as f64 / USERS as f64;
    println!("targets (issue 22):");
    if let [_, _, (adaptive, fixed), (scheduled, _), (learned, _)] = &all[..] {
        for (what, met) in [
            ("adaptive: at least 90% served warm", share(adaptive) >= 0.9),
            (
                "adaptive: median time to the 201 under 0.2 s",
                percentile(&adaptive.took, 0.5) < Duration::from_millis(200),
            ),
            (
                "adaptive: p95 time to the 201 under 1 s",
                percentile(&adaptive.took, 0.95) < Duration::from_secs(1),
            ),
            (
                "adaptive: at most 1.5x the fixed pool's waiting-narrative seconds",
                adaptive.cost <= 1.5 * fixed,
            ),
            ("with a schedule: 100% served warm", scheduled.warm == USERS),
            (
                "after two weeks learned: 100% served warm",
                learned.warm == USERS,
            ),
        ] {
            println!("  {:<66} {}", what, if met { "met" } else { "NOT met" });
        }
    }
}
