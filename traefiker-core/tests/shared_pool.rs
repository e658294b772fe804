//! Several replicas on a backend whose writes are compare-and-swap on the narrative's version
//! (SPEC §12: Swarm, Kubernetes), against the in-memory backend's versioned mode: the pool is
//! shared, two replicas never hand one narrative to two users, and a reaper's removal never
//! overtakes a connect's mark. Each rule is also run on the Rancher-like mode where the
//! difference shows, so the test would fail if the lifecycle behaved there as it does here.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use traefiker_core::testing::{AssignMode, InMemoryManager, ManualClock, Op, ScriptedActivity};
use traefiker_core::{
    ActivitySource, Assignment, BackendInfo, ConnectOutcome, ContainerManager, Lifecycle,
    LifecycleConfig, ManagerError, MemoryStore, Narrative, NarrativeKind, Origin, Owner, ReapMode,
    ReplicaId, ServiceName, SkipReason, SpawnSpec, UserId, Visit,
};

const IMAGE: &str = "kbase/narrative:5.4.3";
const TIMEOUT: Duration = Duration::from_secs(600);

/// The in-memory backend, whose removals can be held at the door: once armed, every `remove`
/// says it has arrived and waits for a permit before it reaches the backend.
#[derive(Debug)]
struct Gated {
    inner: InMemoryManager,
    armed: AtomicBool,
    arrived: tokio::sync::Notify,
    gate: tokio::sync::Semaphore,
}

impl Gated {
    fn new(mode: AssignMode, latency: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner: InMemoryManager::new(Default::default())
                .with_assign_mode(mode)
                .with_latency(latency),
            armed: AtomicBool::new(false),
            arrived: tokio::sync::Notify::new(),
            gate: tokio::sync::Semaphore::new(0),
        })
    }

    /// Holds every removal from now on.
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Lets the held removals through, and every later one.
    fn open(&self) {
        self.armed.store(false, Ordering::SeqCst);
        self.gate.add_permits(1000);
    }

    fn users(&self) -> Vec<Narrative> {
        self.inner
            .containers()
            .into_iter()
            .filter(|n| n.kind == NarrativeKind::User)
            .collect()
    }
}

#[async_trait::async_trait]
impl ContainerManager for Gated {
    async fn verify(&self) -> Result<BackendInfo, ManagerError> {
        self.inner.verify().await
    }
    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
        self.inner.find(name).await
    }
    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        self.inner.list().await
    }
    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        self.inner.create(spec).await
    }
    async fn assign(&self, n: &Narrative, a: &Assignment) -> Result<Narrative, ManagerError> {
        self.inner.assign(n, a).await
    }
    async fn mark_connected(&self, n: &Narrative, o: &Origin) -> Result<Narrative, ManagerError> {
        self.inner.mark_connected(n, o).await
    }
    async fn stamp_owner(&self, n: &Narrative, o: &Owner) -> Result<Narrative, ManagerError> {
        self.inner.stamp_owner(n, o).await
    }
    fn conditional(&self) -> bool {
        self.inner.conditional()
    }
    async fn remove(&self, n: &Narrative) -> Result<(), ManagerError> {
        if self.armed.load(Ordering::SeqCst) {
            self.arrived.notify_one();
            self.gate.acquire().await.unwrap().forget();
        }
        self.inner.remove(n).await
    }
    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        self.inner.zombies().await
    }
    fn traefik_service(&self, name: &ServiceName) -> String {
        self.inner.traefik_service(name)
    }
}

fn replica(
    manager: &Arc<Gated>,
    clock: &Arc<ManualClock>,
    id: &str,
    pool_size: usize,
    sources: Vec<Arc<dyn ActivitySource>>,
) -> Lifecycle {
    Lifecycle::builder(
        manager.clone(),
        LifecycleConfig {
            pool_size,
            idle_timeout: TIMEOUT,
            replica: ReplicaId::new(id).unwrap(),
            ..LifecycleConfig::default()
        },
    )
    .sources(sources)
    .store(Arc::new(MemoryStore::new()))
    .clock(clock.clone())
    .image(Some(IMAGE.to_owned()))
    .build()
}

fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test step timed out")
}

/// Long enough for an untouched narrative to be reaped.
fn past_timeout() -> Duration {
    let config = LifecycleConfig {
        idle_timeout: TIMEOUT,
        ..LifecycleConfig::default()
    };
    TIMEOUT + config.mark_refresh() + Duration::from_secs(1)
}

/// Every user narrative has a session of its own, and no session reached two users.
fn one_session_per_user(manager: &Gated, answers: &[(&str, traefiker_core::Connection)]) {
    let sessions: HashSet<String> = manager
        .users()
        .iter()
        .map(|n| n.session.expose().to_owned())
        .collect();
    assert_eq!(
        sessions.len(),
        manager.users().len(),
        "a session per narrative"
    );
    let mut given: Vec<(&str, String)> = answers
        .iter()
        .map(|(u, c)| (*u, c.session.expose().to_owned()))
        .collect();
    given.sort();
    given.dedup();
    let distinct: HashSet<&String> = given.iter().map(|(_, s)| s).collect();
    assert_eq!(distinct.len(), given.len(), "no session given to two users");
    for (_, s) in &given {
        assert!(sessions.contains(s), "every answer is a live narrative");
    }
}

#[tokio::test]
async fn a_replica_assigns_another_replicas_waiting_narrative() {
    for mode in [AssignMode::Versioned, AssignMode::ReadThenRename] {
        let m = Gated::new(mode, Duration::ZERO);
        let clock = Arc::new(ManualClock::default());
        let a = replica(&m, &clock, "replica-a", 1, vec![]);
        let b = replica(&m, &clock, "replica-b", 0, vec![]);
        bounded(a.fill_pool()).await.unwrap();
        let waiting = m.inner.containers()[0].clone();
        bounded(b.narratives()).await.unwrap();
        let bob = bounded(b.connect(&user("bob"), Visit::default()))
            .await
            .unwrap();
        if mode == AssignMode::Versioned {
            assert_eq!(bob.outcome, ConnectOutcome::Assigned, "{mode:?}");
            assert_eq!(bob.session, waiting.session, "replica-a's narrative");
            // Replica-a keeps its own target: the one given away is replaced.
            bounded(a.fill_pool()).await.unwrap();
            assert_eq!(a.pool_waiting(), 1);
            let pool: Vec<Narrative> = m
                .inner
                .containers()
                .into_iter()
                .filter(|n| n.kind == NarrativeKind::Prespawned)
                .collect();
            assert_eq!(pool.len(), 1);
            assert_ne!(pool[0].session, waiting.session);
        } else {
            // Partitioned: replica-b never touches replica-a's.
            assert_eq!(bob.outcome, ConnectOutcome::Created, "{mode:?}");
            assert_eq!(m.inner.calls(Op::Assign), 0);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn two_replicas_racing_for_one_candidate_both_serve_their_user() {
    let m = Gated::new(AssignMode::Versioned, Duration::from_millis(10));
    let clock = Arc::new(ManualClock::default());
    let a = replica(&m, &clock, "replica-a", 1, vec![]);
    let b = replica(&m, &clock, "replica-b", 0, vec![]);
    bounded(a.fill_pool()).await.unwrap();
    bounded(b.narratives()).await.unwrap();
    let waiting = m.inner.containers()[0].clone();
    // Both claim the one candidate at once: replica-a its own, replica-b the shared one.
    let (u_alice, u_bob) = (user("alice"), user("bob"));
    let (alice, bob) = bounded(async {
        futures::join!(
            a.connect(&u_alice, Visit::default()),
            b.connect(&u_bob, Visit::default())
        )
    })
    .await;
    let (alice, bob) = (alice.unwrap(), bob.unwrap());
    assert_eq!(m.inner.calls(Op::Assign), 2, "both tried to assign it");
    let mut outcomes = [alice.outcome, bob.outcome];
    outcomes.sort_by_key(|o| o.as_str());
    assert_eq!(
        outcomes,
        [ConnectOutcome::Assigned, ConnectOutcome::Created],
        "exactly one won the candidate, the other made one"
    );
    assert!(
        [&alice, &bob]
            .iter()
            .filter(|c| c.session == waiting.session)
            .count()
            == 1
    );
    one_session_per_user(&m, &[("alice", alice), ("bob", bob)]);
}

#[tokio::test(start_paused = true)]
async fn a_rush_over_three_replicas_sharing_one_pool_shares_nothing() {
    let m = Gated::new(AssignMode::Versioned, Duration::from_millis(10));
    let clock = Arc::new(ManualClock::default());
    let replicas: Vec<Lifecycle> = ["replica-a", "replica-b", "replica-c"]
        .iter()
        .map(|id| replica(&m, &clock, id, 2, vec![]))
        .collect();
    for r in &replicas {
        bounded(r.fill_pool()).await.unwrap();
    }
    for r in &replicas {
        bounded(r.narratives()).await.unwrap();
    }
    let ids: Vec<String> = (0..24).map(|i| format!("user{i}")).collect();
    let answers = bounded(futures::future::join_all(ids.iter().enumerate().map(
        |(i, id)| {
            let r = replicas[i % 3].clone();
            async move { (id.as_str(), r.connect(&user(id), Visit::default()).await) }
        },
    )))
    .await;
    let answers: Vec<(&str, traefiker_core::Connection)> =
        answers.into_iter().map(|(u, c)| (u, c.unwrap())).collect();
    let assigned = answers
        .iter()
        .filter(|(_, c)| c.outcome == ConnectOutcome::Assigned)
        .count();
    assert_eq!(assigned, 6, "every waiting narrative went to one user");
    one_session_per_user(&m, &answers);
    assert_eq!(m.users().len(), 24);
}

/// Alice's narrative, made through replica-b, is idle; replica-a's reaper looks at it again,
/// decides to remove it, and is held at the removal while alice comes back through
/// replica-b (whose connect marks it). Returns replica-b's answer, replica-a's report and
/// whether alice's narrative survived.
async fn mark_between_look_and_removal(mode: AssignMode) -> (bool, traefiker_core::ReapReport) {
    let m = Gated::new(mode, Duration::ZERO);
    let clock = Arc::new(ManualClock::default());
    let traefik = Arc::new(ScriptedActivity::new("traefik"));
    let a = replica(&m, &clock, "replica-a", 0, vec![traefik]);
    let b = replica(&m, &clock, "replica-b", 0, vec![]);
    let alice = bounded(b.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    bounded(a.reap_cycle(ReapMode::Apply)).await.unwrap();
    clock.advance(past_timeout());
    m.arm();
    let cycle = tokio::spawn({
        let a = a.clone();
        async move { a.reap_cycle(ReapMode::Apply).await }
    });
    bounded(m.arrived.notified()).await;
    let finds = m.inner.calls(Op::Find);
    assert!(finds >= 1, "the reaper looked again before removing");
    let again = bounded(b.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(again.session, alice.session, "her narrative, marked");
    assert!(m.inner.calls(Op::MarkConnected) >= 1);
    m.open();
    let report = bounded(cycle).await.unwrap().unwrap();
    let survived = m.users().iter().any(|n| n.session == alice.session);
    (survived, report)
}

#[tokio::test]
async fn a_mark_between_the_reapers_look_and_its_removal_wins_where_writes_are_conditional() {
    let (survived, report) = mark_between_look_and_removal(AssignMode::Versioned).await;
    assert!(survived, "the removal carried a stale version: {report:?}");
    assert!(report.idle.is_empty(), "{report:?}");
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert_eq!(report.skipped[0].1, SkipReason::ConnectedSince);

    // The window this closes: on Rancher's unconditional delete the same removal goes
    // through, after alice was answered with that narrative.
    let (survived, report) = mark_between_look_and_removal(AssignMode::ReadThenRename).await;
    assert!(!survived, "{report:?}");
    assert_eq!(report.idle.len(), 1, "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn when_the_reaper_wins_the_user_gets_a_fresh_narrative_never_the_removed_one() {
    let latency = Duration::from_millis(100);
    let m = Gated::new(AssignMode::Versioned, latency);
    let clock = Arc::new(ManualClock::default());
    let traefik = Arc::new(ScriptedActivity::new("traefik"));
    let a = replica(&m, &clock, "replica-a", 0, vec![traefik]);
    let b = replica(&m, &clock, "replica-b", 0, vec![]);
    // Replica-c has never heard of alice: its create runs into her name while it is being
    // removed.
    let c = replica(&m, &clock, "replica-c", 0, vec![]);
    let alice = bounded(b.connect(&user("alice"), Visit::default()))
        .await
        .unwrap();
    bounded(a.reap_cycle(ReapMode::Apply)).await.unwrap();
    clock.advance(past_timeout());
    m.arm();
    let cycle = tokio::spawn({
        let a = a.clone();
        async move { a.reap_cycle(ReapMode::Apply).await }
    });
    bounded(m.arrived.notified()).await;
    m.open();
    // The removal's claim lands half a round trip (50 ms) after it is sent, its delete at
    // 150 ms. Replica-c's create lands at 75 ms (the name is held), its look after that at
    // 175 ms (nothing to find: the name is free, nothing holds it yet); replica-b's mark
    // lands at 105 ms (being removed: gone).
    let u_alice = user("alice");
    let (via_b, via_c) = bounded(async {
        futures::join!(
            async {
                tokio::time::sleep(Duration::from_millis(55)).await;
                b.connect(&u_alice, Visit::default()).await
            },
            async {
                tokio::time::sleep(Duration::from_millis(25)).await;
                c.connect(&u_alice, Visit::default()).await
            }
        )
    })
    .await;
    let report = bounded(cycle).await.unwrap().unwrap();
    assert_eq!(report.idle.len(), 1, "the reaper won: {report:?}");
    let (via_b, via_c) = (via_b.unwrap(), via_c.unwrap());
    for answer in [&via_b, &via_c] {
        assert_ne!(answer.session, alice.session, "never the removed narrative");
    }
    assert!(
        [&via_b, &via_c]
            .iter()
            .any(|c| c.outcome == ConnectOutcome::Created),
        "{via_b:?} {via_c:?}"
    );
    assert_eq!(via_b.session, via_c.session, "one fresh narrative for her");
    assert_eq!(
        m.inner.calls(Op::MarkConnected),
        1,
        "replica-b's mark, which found it being removed"
    );
    let users = m.users();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].session, via_b.session);
}

#[tokio::test]
async fn a_pool_removal_never_takes_a_narrative_another_replica_just_assigned() {
    let m = Gated::new(AssignMode::Versioned, Duration::ZERO);
    let clock = Arc::new(ManualClock::default());
    let a = replica(&m, &clock, "replica-a", 1, vec![]);
    let b = replica(&m, &clock, "replica-b", 0, vec![]);
    bounded(a.fill_pool()).await.unwrap();
    bounded(b.narratives()).await.unwrap();
    // Replica-a replaces its waiting narrative (a new image); its removal is held at the
    // door while replica-b gives that narrative to bob.
    a.set_image("kbase/narrative:5.4.4".to_owned());
    m.arm();
    let step = tokio::spawn({
        let a = a.clone();
        async move { a.fill_pool().await }
    });
    bounded(m.arrived.notified()).await;
    let bob = bounded(b.connect(&user("bob"), Visit::default()))
        .await
        .unwrap();
    assert_eq!(bob.outcome, ConnectOutcome::Assigned);
    m.open();
    let report = bounded(step).await.unwrap().unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.outdated_removed, 0, "{report:?}");
    let users = m.users();
    assert_eq!(users.len(), 1, "bob keeps it");
    assert_eq!(users[0].session, bob.session);
    assert_eq!(a.pool_waiting(), 1, "replica-a has one of the new image");
}
