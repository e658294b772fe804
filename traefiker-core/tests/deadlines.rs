//! Bounded waits (issue 10, SPEC §6a): a backend or an activity source that hangs yields the
//! step's error within that step's deadline, and never holds up what does not need it.
//! Time is paused: the deadlines are real `tokio` timers, run without waiting.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use traefiker_core::testing::{InMemoryManager, ManualClock, Op, ScriptedActivity};
use traefiker_core::{
    ActivitySnapshot, ActivitySource, ActivityTarget, Assignment, BackendInfo, ConnectOutcome,
    ContainerManager, Error, Lifecycle, LifecycleConfig, ManagerError, Narrative, Origin, Owner,
    ReapMode, ServiceName, SpawnSpec, UserId, Visit,
};

const CALL: Duration = Duration::from_secs(2);
const LIST: Duration = Duration::from_secs(5);
const ACTIVITY: Duration = Duration::from_secs(3);

/// The in-memory backend, except that the operations in `hung` never answer.
#[derive(Debug)]
struct Hanging {
    inner: InMemoryManager,
    hung: Mutex<BTreeSet<Op>>,
}

impl Hanging {
    fn new() -> Self {
        Self {
            inner: InMemoryManager::new(Default::default()),
            hung: Mutex::new(BTreeSet::new()),
        }
    }

    fn hang(&self, op: Op) {
        self.hung.lock().unwrap().insert(op);
    }

    async fn gate(&self, op: Op) {
        if self.hung.lock().unwrap().contains(&op) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl ContainerManager for Hanging {
    async fn verify(&self) -> Result<BackendInfo, ManagerError> {
        self.gate(Op::Verify).await;
        self.inner.verify().await
    }
    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
        self.gate(Op::Find).await;
        self.inner.find(name).await
    }
    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        self.gate(Op::List).await;
        self.inner.list().await
    }
    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        self.gate(Op::Create).await;
        self.inner.create(spec).await
    }
    async fn assign(&self, n: &Narrative, a: &Assignment) -> Result<Narrative, ManagerError> {
        self.gate(Op::Assign).await;
        self.inner.assign(n, a).await
    }
    async fn mark_connected(&self, n: &Narrative, o: &Origin) -> Result<Narrative, ManagerError> {
        self.gate(Op::MarkConnected).await;
        self.inner.mark_connected(n, o).await
    }
    async fn stamp_owner(&self, n: &Narrative, o: &Owner) -> Result<Narrative, ManagerError> {
        self.gate(Op::StampOwner).await;
        self.inner.stamp_owner(n, o).await
    }
    fn conditional(&self) -> bool {
        self.inner.conditional()
    }
    async fn remove(&self, n: &Narrative) -> Result<(), ManagerError> {
        self.gate(Op::Remove).await;
        self.inner.remove(n).await
    }
    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        self.gate(Op::Zombies).await;
        self.inner.zombies().await
    }
    fn traefik_service(&self, name: &ServiceName) -> String {
        self.inner.traefik_service(name)
    }
}

/// An activity source that never answers.
#[derive(Debug)]
struct HungSource;

#[async_trait]
impl ActivitySource for HungSource {
    fn name(&self) -> &str {
        "hung"
    }
    async fn snapshot(
        &self,
        _: &[ActivityTarget],
    ) -> Result<ActivitySnapshot, traefiker_core::ActivityError> {
        std::future::pending().await
    }
}

fn lifecycle(
    manager: Arc<Hanging>,
    pool_size: usize,
    sources: Vec<Arc<dyn ActivitySource>>,
) -> (Lifecycle, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    let lc = Lifecycle::builder(
        manager,
        LifecycleConfig {
            pool_size,
            call_timeout: CALL,
            list_timeout: LIST,
            activity_timeout: ACTIVITY,
            ..LifecycleConfig::default()
        },
    )
    .sources(sources)
    .clock(clock.clone())
    .image(Some("kbase/narrative:1".into()))
    .build();
    (lc, clock)
}

fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

/// Runs `f`, returning its output and how much (paused) time it took.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = tokio::time::Instant::now();
    let out = f.await;
    (out, start.elapsed())
}

fn unavailable<T: std::fmt::Debug>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::Backend(ManagerError::Unavailable { .. })))
}

#[tokio::test(start_paused = true)]
async fn a_hung_create_answers_within_the_call_deadline() {
    let m = Arc::new(Hanging::new());
    let (lc, _) = lifecycle(m.clone(), 0, vec![]);
    m.hang(Op::Create);
    let (r, took) = timed(lc.connect(&user("alice"), Visit::default())).await;
    assert!(unavailable(&r), "{r:?}");
    assert!(took <= CALL, "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hung_assignment_answers_within_the_call_deadline_and_hands_the_candidate_to_nobody() {
    let m = Arc::new(Hanging::new());
    let (lc, _) = lifecycle(m.clone(), 1, vec![]);
    lc.fill_pool().await.unwrap();
    m.hang(Op::Assign);
    let (r, took) = timed(lc.connect(&user("alice"), Visit::default())).await;
    assert!(unavailable(&r), "{r:?}");
    assert!(took <= CALL, "took {took:?}");
    // The rename may have happened: until a listing shows where it is, nobody gets it.
    assert_eq!(
        lc.status()
            .iter()
            .filter(|s| matches!(s.standing, traefiker_core::Standing::Waiting { .. }))
            .count(),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_find_answers_within_the_call_deadline_while_others_are_served() {
    let m = Arc::new(Hanging::new());
    let (lc, _) = lifecycle(m.clone(), 0, vec![]);
    let alice = lc.connect(&user("alice"), Visit::default()).await.unwrap();
    let bob = lc.connect(&user("bob"), Visit::default()).await.unwrap();
    m.hang(Op::Find);
    // Traefik did not route alice's own session: checking it needs the hung find.
    let routed_back = Visit {
        client_ip: None,
        session_cookie: Some(alice.session),
    };
    let waiting = tokio::spawn({
        let lc = lc.clone();
        async move { timed(lc.connect(&user("alice"), routed_back)).await }
    });
    tokio::task::yield_now().await;
    // Bob needs no backend call at all, and is answered meanwhile.
    let (again, took) = timed(lc.connect(&user("bob"), Visit::default())).await;
    assert_eq!(again.unwrap().session, bob.session);
    assert_eq!(took, Duration::ZERO);
    let (r, took) = waiting.await.unwrap();
    assert!(unavailable(&r), "{r:?}");
    assert!(took <= CALL, "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hung_listing_fails_the_cycle_and_the_fill_within_the_listing_deadline() {
    let m = Arc::new(Hanging::new());
    let (lc, _) = lifecycle(m.clone(), 2, vec![]);
    m.hang(Op::List);
    let (r, took) = timed(lc.reap_cycle(ReapMode::Apply)).await;
    assert!(unavailable(&r), "{r:?}");
    assert!(took <= LIST + CALL, "took {took:?}");
    let (r, took) = timed(lc.fill_pool()).await;
    assert!(unavailable(&r), "{r:?}");
    assert!(took <= LIST, "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hung_activity_source_is_unknown_within_its_deadline_and_nobody_is_reaped() {
    let m = Arc::new(Hanging::new());
    let traefik = Arc::new(ScriptedActivity::new("traefik"));
    let (lc, clock) = lifecycle(m.clone(), 0, vec![traefik, Arc::new(HungSource)]);
    let c = lc.connect(&user("alice"), Visit::default()).await.unwrap();
    assert_eq!(c.outcome, ConnectOutcome::Created);
    clock.advance(Duration::from_secs(3600));
    let (report, took) = timed(lc.reap_cycle(ReapMode::Apply)).await;
    let report = report.unwrap();
    assert!(took <= ACTIVITY + CALL, "took {took:?}");
    assert!(report.activity_error().unwrap().contains("hung"));
    assert!(report.idle.is_empty(), "unknown activity is never idleness");
    assert_eq!(m.inner.containers().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hung_removal_does_not_hold_the_cycle_past_its_deadlines() {
    let m = Arc::new(Hanging::new());
    let traefik = Arc::new(ScriptedActivity::new("traefik"));
    let (lc, clock) = lifecycle(m.clone(), 0, vec![traefik]);
    for u in ["a", "b", "c"] {
        lc.connect(&user(u), Visit::default()).await.unwrap();
    }
    lc.reap_cycle(ReapMode::Apply).await.unwrap();
    clock.advance(Duration::from_secs(3600));
    m.hang(Op::Remove);
    let (report, took) = timed(lc.reap_cycle(ReapMode::Apply)).await;
    let report = report.unwrap();
    // Three removals at once, each bounded: the cycle is not three deadlines long.
    assert!(took <= 3 * CALL, "took {took:?}");
    assert_eq!(report.skipped.len(), 3, "{:?}", report.skipped);
    assert!(report.idle.is_empty());
}
