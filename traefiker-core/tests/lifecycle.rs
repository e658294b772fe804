//! Lifecycle rules of SPEC §5 and §6 against the stateful in-memory backend.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use traefiker_core::testing::{InMemoryManager, ManualClock, Op, ScriptedActivity};
use traefiker_core::{
    Activity, ActivityError, ActivitySnapshot, ActivityStore, ConnectOutcome, ContainerManager,
    Lifecycle, LifecycleConfig, ManagerError, MemoryStore, Narrative, NarrativeKind, ReapMode,
    ReplicaId, SkipReason, SqliteStore, UserId, Visit,
};

const IMAGE: &str = "kbase/narrative:5.4.3";
const TIMEOUT: Duration = Duration::from_secs(600);

/// Long enough for an untouched narrative to be reaped: the idle timeout plus the interval at
/// which connects refresh their marks.
fn past_timeout() -> Duration {
    let config = LifecycleConfig {
        idle_timeout: TIMEOUT,
        ..LifecycleConfig::default()
    };
    TIMEOUT + config.mark_refresh() + Duration::from_secs(1)
}

struct World {
    manager: Arc<InMemoryManager>,
    clock: Arc<ManualClock>,
    traefik: Arc<ScriptedActivity>,
    store: Arc<dyn ActivityStore>,
    lifecycle: Lifecycle,
}

fn world_with(
    pool_size: usize,
    store: Arc<dyn ActivityStore>,
    manager: Arc<InMemoryManager>,
    clock: Arc<ManualClock>,
) -> World {
    let config = LifecycleConfig {
        pool_size,
        idle_timeout: TIMEOUT,
        ..LifecycleConfig::default()
    };
    let traefik = Arc::new(ScriptedActivity::new("traefik"));
    let lifecycle = Lifecycle::new(
        manager.clone(),
        vec![traefik.clone()],
        store.clone(),
        clock.clone(),
        config,
        Some(IMAGE.to_owned()),
    );
    World {
        manager,
        clock,
        traefik,
        store,
        lifecycle,
    }
}

fn world(pool_size: usize) -> World {
    world_with(
        pool_size,
        Arc::new(MemoryStore::new()),
        Arc::new(InMemoryManager::new(Default::default())),
        Arc::new(ManualClock::default()),
    )
}

/// A second traefiker over the same backend, with a store of its own.
fn another_replica(w: &World, pool_size: usize, image: &str) -> Lifecycle {
    replica_as(w, "replica-b", pool_size, image)
}

/// A traefiker with replica id `id` over the same backend, with a store of its own.
fn replica_as(w: &World, id: &str, pool_size: usize, image: &str) -> Lifecycle {
    Lifecycle::new(
        w.manager.clone(),
        vec![],
        Arc::new(MemoryStore::new()),
        w.clock.clone(),
        LifecycleConfig {
            pool_size,
            replica: ReplicaId::new(id).unwrap(),
            ..LifecycleConfig::default()
        },
        Some(image.to_owned()),
    )
}

fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

fn active(services: &[&str]) -> Result<ActivitySnapshot, ActivityError> {
    Ok(services
        .iter()
        .map(|s| (s.to_string(), Activity::Active))
        .collect())
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test step timed out")
}

fn names(list: &[Narrative]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|n| n.name.to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_returning_user_costs_no_backend_call() {
    let w = world(0);
    let first = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(first.outcome, ConnectOutcome::Created);
    let calls_before = w.manager.all_calls();
    let again = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(again.outcome, ConnectOutcome::Existing);
    assert_eq!(again.session, first.session);
    assert_eq!(
        w.manager.all_calls(),
        calls_before,
        "no backend call at all"
    );
}

#[tokio::test]
async fn a_request_that_traefik_did_not_route_is_checked_with_one_find() {
    let w = world(0);
    let first = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    let routed_back = Visit {
        client_ip: None,
        session_cookie: Some(first.session.clone()),
    };
    // The container exists (its route was not loaded yet): same answer, one find.
    let finds = w.manager.calls(Op::Find);
    let again = bounded(w.lifecycle.connect(&user("alice"), routed_back.clone()))
        .await
        .unwrap();
    assert_eq!(again.session, first.session);
    assert_eq!(w.manager.calls(Op::Find), finds + 1);
    // The container is gone (removed behind this replica's back): a new one, never the old
    // session.
    let gone = w.manager.containers().pop().unwrap();
    w.manager.remove(&gone).await.unwrap();
    let fresh = bounded(w.lifecycle.connect(&user("alice"), routed_back))
        .await
        .unwrap();
    assert_eq!(fresh.outcome, ConnectOutcome::Created);
    assert_ne!(fresh.session, first.session);
    // A stale cookie of another session is answered from the index with the current one.
    let calls = w.manager.all_calls();
    let stale = Visit {
        client_ip: None,
        session_cookie: Some(first.session),
    };
    let current = bounded(w.lifecycle.connect(&user("alice"), stale))
        .await
        .unwrap();
    assert_eq!(current.session, fresh.session);
    assert_eq!(w.manager.all_calls(), calls);
}

#[tokio::test]
async fn fifty_concurrent_connects_of_a_new_user_make_one_container() {
    let w = world(0);
    let alice = user("alice");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let lifecycle = w.lifecycle.clone();
            let alice = alice.clone();
            tokio::spawn(async move { lifecycle.connect(&alice, Visit::default()).await })
        })
        .collect();
    let mut sessions = HashSet::new();
    for t in tasks {
        sessions.insert(bounded(t).await.unwrap().unwrap().session);
    }
    assert_eq!(sessions.len(), 1, "every request got the same session");
    assert_eq!(w.manager.calls(Op::Create), 1, "exactly one create");
    assert_eq!(w.manager.containers().len(), 1);
}

#[tokio::test]
async fn fifty_concurrent_connects_take_one_waiting_container() {
    let w = world(3);
    bounded(w.lifecycle.fill_pool()).await.unwrap();
    let creates = w.manager.calls(Op::Create);
    let alice = user("alice");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let lifecycle = w.lifecycle.clone();
            let alice = alice.clone();
            tokio::spawn(async move { lifecycle.connect(&alice, Visit::default()).await })
        })
        .collect();
    let mut outcomes = HashSet::new();
    let mut sessions = HashSet::new();
    for t in tasks {
        let c = bounded(t).await.unwrap().unwrap();
        outcomes.insert(c.outcome);
        sessions.insert(c.session);
    }
    assert_eq!(sessions.len(), 1);
    assert_eq!(outcomes, HashSet::from([ConnectOutcome::Assigned]));
    assert_eq!(w.manager.calls(Op::Assign), 1);
    assert_eq!(
        w.manager.calls(Op::Create),
        creates,
        "no create on the request path"
    );
}

#[tokio::test]
async fn twenty_new_users_against_a_pool_of_five() {
    let w = world(5);
    bounded(w.lifecycle.fill_pool()).await.unwrap();
    let waiting: HashSet<String> = w.manager.containers().into_iter().map(|n| n.id).collect();
    assert_eq!(waiting.len(), 5);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let lifecycle = w.lifecycle.clone();
            tokio::spawn(async move {
                lifecycle
                    .connect(&user(&format!("user{i}")), Visit::default())
                    .await
            })
        })
        .collect();
    let mut assigned = 0;
    let mut created = 0;
    for t in tasks {
        match bounded(t).await.unwrap().unwrap().outcome {
            ConnectOutcome::Assigned => assigned += 1,
            ConnectOutcome::Created => created += 1,
            ConnectOutcome::Existing => panic!("nobody existed"),
        }
    }
    assert_eq!((assigned, created), (5, 15));
    let all = w.manager.containers();
    let users: Vec<&Narrative> = all
        .iter()
        .filter(|n| n.kind == NarrativeKind::User)
        .collect();
    assert_eq!(users.len(), 20);
    let ids: HashSet<&str> = users.iter().map(|n| n.id.as_str()).collect();
    let sessions: HashSet<&str> = users.iter().map(|n| n.session.expose()).collect();
    assert_eq!(ids.len(), 20, "no container shared");
    assert_eq!(sessions.len(), 20, "no session shared");
    assert_eq!(
        users.iter().filter(|n| waiting.contains(&n.id)).count(),
        5,
        "the five waiting containers went to five users"
    );
}

#[tokio::test]
async fn the_pool_is_refilled_in_the_background_not_on_the_request_path() {
    let w = world(2);
    bounded(w.lifecycle.fill_pool()).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let filler = {
        let lifecycle = w.lifecycle.clone();
        tokio::spawn(async move {
            lifecycle
                .run_pool_filler(async {
                    let _ = stop_rx.await;
                })
                .await
        })
    };
    let creates_before = w.manager.calls(Op::Create);
    let c = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(c.outcome, ConnectOutcome::Assigned);
    bounded(async {
        while w.lifecycle.pool_waiting() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(w.manager.calls(Op::Create), creates_before + 1);
    let waiting = w
        .manager
        .containers()
        .into_iter()
        .filter(|n| n.kind == NarrativeKind::Prespawned)
        .count();
    assert_eq!(waiting, 2, "the pool settles at exactly its size");
    stop_tx.send(()).unwrap();
    bounded(filler).await.unwrap();
}

#[tokio::test]
async fn a_failing_create_leaves_nothing_half_made() {
    let w = world(0);
    w.manager.fail_next(
        Op::Create,
        ManagerError::Unavailable {
            backend: "test".into(),
            detail: "down".into(),
        },
    );
    let err = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        traefiker_core::Error::Backend(ManagerError::Unavailable { .. })
    ));
    assert!(w.manager.containers().is_empty());
    let ok = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(ok.outcome, ConnectOutcome::Created);
    assert_eq!(w.manager.containers().len(), 1);
}

#[tokio::test]
async fn a_container_made_by_another_replica_is_adopted() {
    let w = world(0);
    let other = another_replica(&w, 0, IMAGE);
    let theirs = bounded(other.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    let ours = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(ours.session, theirs.session);
    assert_eq!(ours.outcome, ConnectOutcome::Existing);
    assert_eq!(w.manager.containers().len(), 1);
}

#[tokio::test]
async fn a_waiting_container_is_not_spent_when_the_user_already_has_one() {
    let w = world(1);
    bounded(w.lifecycle.fill_pool()).await.unwrap();
    let other = another_replica(&w, 0, IMAGE);
    // The other replica knows of no pool, so it creates alice's container.
    let theirs = bounded(other.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(theirs.outcome, ConnectOutcome::Created);
    let ours = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(ours.session, theirs.session);
    assert_eq!(
        w.lifecycle.pool_waiting(),
        1,
        "the candidate went back to the pool"
    );
}

#[tokio::test]
async fn idle_users_are_reaped_active_and_waiting_ones_are_not() {
    let w = world(1);
    bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    bounded(w.lifecycle.connect(&user("bob"), Visit::default()))
        .await
        .unwrap();
    let first = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert_eq!(first.removed(), 0, "new narratives are tracked from now");
    assert_eq!(first.pool.created, 1);

    w.clock.advance(past_timeout());
    w.traefik.set(active(&["narrative-alice-522b27"]));
    let second = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    let bob = w.lifecycle.config().naming.user_container(&user("bob"));
    assert_eq!(second.idle, vec![bob.clone()]);
    assert_eq!(second.removed(), 1);
    let left = names(&w.manager.containers());
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"narrative-alice-522b27".to_owned()));
    assert!(
        left.iter().any(|n| n.starts_with("narrativepre-")),
        "the waiting one stays"
    );
    let records = w.store.load().unwrap();
    assert!(
        !records.contains_key(bob.as_str()),
        "the reaped record is dropped"
    );
    assert_eq!(records.len(), 1);
}

#[tokio::test]
async fn activity_unavailable_means_no_idle_reap_but_the_rest_runs() {
    let w = world(1);
    bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    let zombie = w
        .manager
        .containers()
        .into_iter()
        .find(|n| n.kind == NarrativeKind::Prespawned)
        .unwrap();
    w.manager.make_zombie(zombie.name.as_str());

    w.clock.advance(TIMEOUT * 10);
    w.traefik.set(Err(ActivityError::new(
        "traefik",
        "http://traefik:8080/metrics answered 502",
    )));
    let report = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert!(
        report.idle.is_empty(),
        "an outage never looks like idleness"
    );
    assert!(report.activity_error().unwrap().contains("502"));
    assert_eq!(
        report.skipped,
        vec![(
            w.lifecycle.config().naming.user_container(&user("alice")),
            SkipReason::ActivityUnknown
        )]
    );
    assert_eq!(
        report.zombies,
        vec![zombie.name.clone()],
        "zombies are still removed"
    );
    assert_eq!(report.pool.created, 1, "the pool is still topped up");
    assert!(w
        .manager
        .containers()
        .iter()
        .any(|n| n.name.as_str() == "narrative-alice-522b27"));
}

#[tokio::test]
async fn a_restart_keeps_idle_clocks() {
    let dir = std::env::temp_dir().join(format!("traefiker-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("reaper.db");
    let _ = std::fs::remove_file(&path);
    let manager = Arc::new(InMemoryManager::new(Default::default()));
    let clock = Arc::new(ManualClock::default());

    let before = world_with(
        0,
        Arc::new(SqliteStore::open(&path).unwrap()),
        manager.clone(),
        clock.clone(),
    );
    bounded(before.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    bounded(before.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    drop(before);

    clock.advance(TIMEOUT - Duration::from_secs(60));
    let after = world_with(
        0,
        Arc::new(SqliteStore::open(&path).unwrap()),
        manager.clone(),
        clock.clone(),
    );
    assert_eq!(
        bounded(after.lifecycle.track_existing()).await.unwrap(),
        0,
        "known clocks are kept"
    );
    clock.advance(past_timeout() - TIMEOUT + Duration::from_secs(60));
    let report = bounded(after.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert_eq!(report.idle.len(), 1, "idle time before the restart counts");
    assert!(manager.containers().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn records_of_vanished_containers_are_pruned_and_failed_removals_not_counted() {
    let w = world(0);
    // Left by an earlier run.
    w.store
        .record(&[("narrative-gone-000000".into(), w.clock.now_for_test())])
        .unwrap();
    bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    bounded(w.lifecycle.connect(&user("bob"), Visit::default()))
        .await
        .unwrap();
    w.clock.advance(past_timeout());
    w.manager.fail_next(
        Op::Remove,
        ManagerError::Unavailable {
            backend: "test".into(),
            detail: "busy".into(),
        },
    );
    let report = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert_eq!(report.pruned, 1);
    assert_eq!(report.idle.len(), 1, "only the real removal counts");
    assert_eq!(report.removed(), 1);
    assert!(matches!(
        report.skipped[..],
        [(_, SkipReason::RemoveFailed(_))]
    ));
    let records = w.store.load().unwrap();
    assert!(!records.contains_key("narrative-gone-000000"));
    assert_eq!(
        records.len(),
        1,
        "the one that failed to go keeps its record"
    );
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let w = world(2);
    bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    let records = w.store.load().unwrap();
    w.clock.advance(TIMEOUT * 2);
    let before = names(&w.manager.containers());
    let report = bounded(w.lifecycle.reap_cycle(ReapMode::DryRun))
        .await
        .unwrap();
    assert_eq!(report.idle.len(), 1, "it says what it would remove");
    assert_eq!(names(&w.manager.containers()), before);
    assert_eq!(w.store.load().unwrap(), records);
}

#[tokio::test]
async fn a_new_image_replaces_waiting_containers_and_the_pool_never_overshoots() {
    let w = world(3);
    bounded(w.lifecycle.fill_pool()).await.unwrap();
    let old: HashSet<String> = w.manager.containers().into_iter().map(|n| n.id).collect();
    assert!(w.lifecycle.set_image("kbase/narrative:5.4.4".into()));
    let report = bounded(w.lifecycle.fill_pool()).await.unwrap();
    assert_eq!((report.outdated_removed, report.created), (3, 3));
    let now = w.manager.containers();
    assert_eq!(now.len(), 3);
    assert!(now
        .iter()
        .all(|n| n.image == "kbase/narrative:5.4.4" && !old.contains(&n.id)));

    // An earlier run of this replica left extra waiting containers: the pool settles back.
    let earlier = replica_as(&w, "traefiker", 5, "kbase/narrative:5.4.4");
    bounded(earlier.fill_pool()).await.unwrap();
    assert_eq!(w.manager.containers().len(), 5);
    let report = bounded(w.lifecycle.fill_pool()).await.unwrap();
    assert_eq!(report.excess_removed, 2);
    assert_eq!(w.manager.containers().len(), 3);
}

#[tokio::test]
async fn shutdown_removes_the_users_narrative_and_record() {
    let w = world(0);
    assert_eq!(
        bounded(w.lifecycle.shutdown(&user("alice"))).await.unwrap(),
        None
    );
    bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert_eq!(w.store.load().unwrap().len(), 1);
    let gone = bounded(w.lifecycle.shutdown(&user("alice"))).await.unwrap();
    assert_eq!(gone.unwrap().as_str(), "narrative-alice-522b27");
    assert!(w.manager.containers().is_empty());
    assert!(w.store.load().unwrap().is_empty());
    let again = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(
        again.outcome,
        ConnectOutcome::Created,
        "a later visit starts afresh"
    );
}

#[tokio::test]
async fn duplicates_are_reported_never_removed() {
    let w = world(0);
    let first = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    let mut dup = w.manager.find(&first.name).await.unwrap().unwrap();
    dup.session = traefiker_core::SessionId::generate();
    w.manager.insert(dup);
    let report = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert_eq!(report.duplicates, vec![first.name.clone()]);
    assert_eq!(w.manager.containers().len(), 2);
    let again = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(again.session, first.session, "find returns the oldest");
}

#[tokio::test]
async fn status_lists_every_narrative_with_its_last_seen() {
    let w = world(1);
    bounded(
        w.lifecycle
            .connect(&user("alice"), Visit::from_ip("192.0.2.9")),
    )
    .await
    .unwrap();
    bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    let status = w.lifecycle.status();
    assert_eq!(status.len(), 2);
    let alice = status
        .iter()
        .find(|s| s.narrative.kind == NarrativeKind::User)
        .unwrap();
    assert_eq!(alice.last_seen, Some(w.clock.now_for_test()));
    assert_eq!(
        alice
            .narrative
            .origin
            .as_ref()
            .unwrap()
            .client_ip
            .as_deref(),
        Some("192.0.2.9")
    );
    let waiting = status
        .iter()
        .find(|s| s.narrative.kind == NarrativeKind::Prespawned)
        .unwrap();
    assert_eq!(waiting.last_seen, None);
}

trait NowForTest {
    fn now_for_test(&self) -> chrono::DateTime<chrono::Utc>;
}

impl NowForTest for ManualClock {
    fn now_for_test(&self) -> chrono::DateTime<chrono::Utc> {
        traefiker_core::Clock::now(self)
    }
}

#[tokio::test]
async fn a_stopped_container_holding_a_users_name_is_replaced() {
    // A waiting container handed out after it died (no listing showed it yet) leaves the
    // user's name on a stopped container: the next connect clears it and starts a new one.
    let w = world(0);
    let first = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    w.manager.make_zombie(first.name.as_str());
    bounded(w.lifecycle.narratives()).await.unwrap();
    let again = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(again.outcome, ConnectOutcome::Created);
    assert_ne!(again.session, first.session);
    let left = w.manager.containers();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].session, again.session);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_kept_not_left_behind() {
    // Issue 10 point 6: the create happened, the answer did not come back.
    let w = world(2);
    w.manager.lose_next_answer(Op::Create);
    let report = bounded(w.lifecycle.fill_pool()).await.unwrap();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(w.manager.containers().len(), 2, "found by name and kept");
    assert_eq!(w.lifecycle.pool_waiting(), 2);
    // Nothing more is made: the pool already holds exactly its size.
    let report = bounded(w.lifecycle.fill_pool()).await.unwrap();
    assert_eq!(report.created, 0);
    assert_eq!(w.manager.containers().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_pool_filler_backs_off_while_fills_fail() {
    // Issue 10 point 6: a backend that keeps failing is not asked every 5 s forever.
    let w = world(1);
    for _ in 0..100 {
        w.manager.fail_next(
            Op::List,
            ManagerError::Unavailable {
                backend: "test".into(),
                detail: "down".into(),
            },
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let filler = {
        let lifecycle = w.lifecycle.clone();
        tokio::spawn(async move {
            lifecycle
                .run_pool_filler(async {
                    let _ = stop_rx.await;
                })
                .await
        })
    };
    w.lifecycle.request_pool_fill();
    tokio::time::sleep(Duration::from_secs(120)).await;
    let attempts = w.manager.calls(Op::List);
    // Waits of 1, 2, 4, 8, 16, 32, 60 s (each with jitter up to as much again): at most about
    // eight attempts in two minutes, where a fixed 5 s retry makes 24.
    assert!((3..=9).contains(&attempts), "{attempts} attempts");
    stop_tx.send(()).unwrap();
    filler.await.unwrap();
}

#[tokio::test]
async fn zombie_removals_forget_their_records_and_a_new_container_starts_a_fresh_clock() {
    // Issue 10 point 3.
    let w = world(0);
    let alice = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert!(w.store.load().unwrap().contains_key(alice.name.as_str()));
    w.manager.make_zombie(alice.name.as_str());
    w.clock.advance(past_timeout() * 3);
    let report = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert_eq!(report.zombies, vec![alice.name.clone()]);
    assert!(
        !w.store.load().unwrap().contains_key(alice.name.as_str()),
        "a removed zombie's record is forgotten"
    );
    // Alice comes back: a new container under the old name is not reaped on the old clock.
    let again = bounded(w.lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(again.outcome, ConnectOutcome::Created);
    let report = bounded(w.lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    assert!(report.idle.is_empty(), "{report:?}");
}

/// The in-memory backend whose `find` waits until the test lets it through.
#[derive(Debug)]
struct GatedFind {
    inner: InMemoryManager,
    gate: tokio::sync::Semaphore,
    waiting: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl ContainerManager for GatedFind {
    async fn verify(&self) -> Result<traefiker_core::BackendInfo, ManagerError> {
        self.inner.verify().await
    }
    async fn find(
        &self,
        name: &traefiker_core::ServiceName,
    ) -> Result<Option<Narrative>, ManagerError> {
        self.waiting.notify_one();
        let _permit = self.gate.acquire().await.unwrap();
        self.inner.find(name).await
    }
    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        self.inner.list().await
    }
    async fn create(&self, spec: &traefiker_core::SpawnSpec) -> Result<Narrative, ManagerError> {
        self.inner.create(spec).await
    }
    async fn assign(
        &self,
        n: &Narrative,
        a: &traefiker_core::Assignment,
    ) -> Result<Narrative, ManagerError> {
        self.inner.assign(n, a).await
    }
    async fn mark_connected(
        &self,
        n: &Narrative,
        o: &traefiker_core::Origin,
    ) -> Result<Narrative, ManagerError> {
        self.inner.mark_connected(n, o).await
    }
    async fn stamp_owner(
        &self,
        n: &Narrative,
        o: &traefiker_core::Owner,
    ) -> Result<Narrative, ManagerError> {
        self.inner.stamp_owner(n, o).await
    }
    fn conditional(&self) -> bool {
        self.inner.conditional()
    }
    async fn remove(&self, n: &Narrative) -> Result<(), ManagerError> {
        self.inner.remove(n).await
    }
    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        self.inner.zombies().await
    }
    fn traefik_service(&self, name: &traefiker_core::ServiceName) -> String {
        self.inner.traefik_service(name)
    }
}

#[tokio::test]
async fn a_user_connected_after_the_cycle_read_activity_keeps_the_narrative() {
    // Issue 10 point 3: the cycle decides from a read taken before the connect; the removal
    // looks again under the narrative's lane, and the connect wins.
    let manager = Arc::new(GatedFind {
        inner: InMemoryManager::new(Default::default()),
        gate: tokio::sync::Semaphore::new(0),
        waiting: tokio::sync::Notify::new(),
    });
    let clock = Arc::new(ManualClock::default());
    let traefik = Arc::new(ScriptedActivity::new("traefik"));
    let lifecycle = Lifecycle::new(
        manager.clone(),
        vec![traefik.clone()],
        Arc::new(MemoryStore::new()),
        clock.clone(),
        LifecycleConfig {
            pool_size: 0,
            idle_timeout: TIMEOUT,
            ..LifecycleConfig::default()
        },
        Some(IMAGE.to_owned()),
    );
    let alice = bounded(lifecycle.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    bounded(lifecycle.reap_cycle(ReapMode::Apply))
        .await
        .unwrap();
    clock.advance(past_timeout());
    // The cycle reads activity (alice idle) and stops at its second look before removing.
    let cycle = tokio::spawn({
        let lifecycle = lifecycle.clone();
        async move { lifecycle.reap_cycle(ReapMode::Apply).await }
    });
    bounded(manager.waiting.notified()).await;
    // Alice comes back now; her connect marks the narrative, so it waits for the cycle's
    // look, but is recorded as a visit before it does.
    let again = tokio::spawn({
        let lifecycle = lifecycle.clone();
        async move { lifecycle.connect(&user("alice"), Visit::default()).await }
    });
    // Let the connect reach the lane (its flight is a task of its own).
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    manager.gate.add_permits(100);
    let again = bounded(again).await.unwrap().unwrap();
    assert_eq!(
        again.session, alice.session,
        "her own narrative, not a new one"
    );
    let report = bounded(cycle).await.unwrap().unwrap();
    assert!(report.idle.is_empty(), "{report:?}");
    assert_eq!(
        report.skipped,
        vec![(alice.name.clone(), SkipReason::ConnectedSince)]
    );
    assert_eq!(
        manager.inner.containers().len(),
        1,
        "alice keeps her narrative"
    );
}
