//! One seeded run: replicas of the real `Lifecycle` over one backend, a random workload of
//! connects, shutdowns, listings, reaper cycles, pool fills, image changes, activity changes
//! and outages, zombies, membership changes, crashes, graceful restarts and the passing of
//! time; the invariants after every step; then calm, settling and the final checks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use traefiker_core::testing::{AssignMode, Faults, InMemoryManager};
use traefiker_core::{
    Clock, Lifecycle, LifecycleConfig, MemoryStore, Naming, NarrativeKind, ReapMode, ReplicaId,
    UserId, Visit,
};

use crate::check::{self, Tally};
use crate::world::{
    lock, Grant, Log, Members, Reason, Recorder, SeededEntropy, SimActivity, SimClock,
    SimMembership, Truth, REASON,
};

/// Which backend the replicas share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Rancher-like: renames are a read then an unconditional write, deletes unconditional;
    /// the pool is partitioned by replica, and a reap may race a connect (counted).
    Rancher,
    /// Swarm-like: every write is compare-and-swap on the narrative's version; the replicas
    /// share one pool, and no reap may race a connect (a violation).
    Conditional,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rancher => "rancher-like",
            Self::Conditional => "conditional",
        }
    }

    fn mode(self) -> AssignMode {
        match self {
            Self::Rancher => AssignMode::ReadThenRename,
            Self::Conditional => AssignMode::Versioned,
        }
    }
}

/// How a run is shaped.
#[derive(Clone, Debug)]
pub struct Params {
    pub seed: u64,
    pub steps: usize,
    /// Replicas at the start; `None` draws 1 to 3 from the seed (2 or 3 for the conditional
    /// variant, whose point is a shared pool).
    pub replicas: Option<usize>,
    pub variant: Variant,
}

/// What a run ended with.
#[derive(Debug)]
pub struct Outcome {
    pub violation: Option<String>,
    /// Whether a pool that follows demand rose above its floor in the run.
    pub raised: bool,
    pub trace: Vec<String>,
    pub tally: Tally,
    pub grants: usize,
    pub reaped: usize,
    /// Waiting containers assigned by a replica other than their maker.
    pub shared_assigns: usize,
}

const USERS: usize = 10;
const IDLE: Duration = Duration::from_secs(60);

struct Replica {
    id: ReplicaId,
    lifecycle: Lifecycle,
    dead: Arc<AtomicBool>,
    died: tokio::sync::watch::Sender<bool>,
    store: Arc<MemoryStore>,
    tasks: Vec<JoinHandle<()>>,
}

struct Sim {
    rng: StdRng,
    seed: u64,
    backend: Arc<InMemoryManager>,
    clock: Arc<SimClock>,
    entropy: Arc<SeededEntropy>,
    members: Arc<Mutex<Members>>,
    truth: Arc<Mutex<Truth>>,
    log: Arc<Mutex<Log>>,
    replicas: Vec<Replica>,
    config: LifecycleConfig,
    variant: Variant,
    image_version: u32,
    next_replica: usize,
}

fn faults(seed: u64) -> Faults {
    Faults {
        seed,
        latency: (Duration::from_millis(1), Duration::from_millis(40)),
        fail_before: 0.04,
        fail_after: 0.03,
        slow: 0.03,
    }
}

fn user(i: usize) -> UserId {
    #[allow(clippy::expect_used)]
    UserId::new(format!("u{i}")).expect("a valid user id")
}

impl Sim {
    fn new(params: &Params) -> Self {
        let mut rng = StdRng::seed_from_u64(params.seed);
        // Half the seeds keep a pool that follows demand, with creates taking a cold start
        // (so steps overlap and targets move); drawn apart from the workload's generator, so
        // every seed's workload stays as it was before pools followed demand.
        let mut demand = StdRng::seed_from_u64(params.seed ^ 0xdea1);
        let adaptive = demand.random_bool(0.5);
        let cold_start = if adaptive {
            Duration::from_millis(demand.random_range(300..=2000))
        } else {
            Duration::ZERO
        };
        let backend = Arc::new(
            InMemoryManager::new(Naming::default())
                .with_assign_mode(params.variant.mode())
                .with_faults(faults(params.seed ^ 0x5eed))
                .with_cold_start(cold_start),
        );
        let pool_size = rng.random_range(0..=3);
        let config = LifecycleConfig {
            pool_size,
            pool_max: adaptive.then(|| pool_size + demand.random_range(1..=4)),
            idle_timeout: IDLE,
            call_timeout: Duration::from_secs(3),
            list_timeout: Duration::from_secs(6),
            activity_timeout: Duration::from_secs(3),
            ready_timeout: Duration::from_secs(30),
            fill_backoff: (Duration::from_millis(200), Duration::from_secs(5)),
            ..LifecycleConfig::default()
        };
        Self {
            entropy: Arc::new(SeededEntropy::new(params.seed ^ 0xe7)),
            seed: params.seed,
            rng,
            backend,
            clock: Arc::new(SimClock::new()),
            members: Arc::new(Mutex::new(Members::default())),
            truth: Arc::new(Mutex::new(Truth::default())),
            log: Arc::new(Mutex::new(Log::default())),
            replicas: Vec::new(),
            config,
            variant: params.variant,
            image_version: 1,
            next_replica: 0,
        }
    }

    fn note(&self, line: String) {
        let line = format!("[{}] {line}", self.clock.now().format("%H:%M:%S%.3f"));
        lock(&self.log).trace.push(line);
    }

    fn image(&self) -> String {
        format!("kbase/narrative:{}", self.image_version)
    }

    /// Starts a replica (a new one, or a restart of `reuse`'s id and store).
    async fn start(&mut self, reuse: Option<(ReplicaId, Arc<MemoryStore>)>) -> usize {
        let (id, store) = reuse.unwrap_or_else(|| {
            self.next_replica += 1;
            #[allow(clippy::expect_used)]
            let id = ReplicaId::new(format!("r{}", self.next_replica)).expect("valid");
            (id, Arc::new(MemoryStore::new()))
        });
        let idx = self.replicas.len();
        lock(&self.members).alive.insert(id.clone());
        let dead = Arc::new(AtomicBool::new(false));
        let (died, died_rx) = tokio::sync::watch::channel(false);
        let recorder = Arc::new(Recorder {
            inner: self.backend.clone(),
            replica: idx,
            id: id.clone(),
            log: self.log.clone(),
            clock: self.clock.clone(),
            dead: dead.clone(),
            died: died_rx,
        });
        let activity = Arc::new(SimActivity {
            truth: self.truth.clone(),
            log: self.log.clone(),
            clock: self.clock.clone(),
            replica: idx,
        });
        let lifecycle = Lifecycle::builder(
            recorder,
            LifecycleConfig {
                replica: id.clone(),
                ..self.config.clone()
            },
        )
        .sources(vec![activity])
        .store(store.clone())
        .clock(self.clock.clone())
        .entropy(self.entropy.clone())
        .membership(Arc::new(SimMembership(self.members.clone())))
        .image(Some(self.image()))
        .build();
        let _ = lifecycle.track_existing().await;
        let filler = {
            let lifecycle = lifecycle.clone();
            let dead = dead.clone();
            tokio::spawn(async move {
                lifecycle
                    .run_pool_filler(async move {
                        while !dead.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    })
                    .await;
            })
        };
        lifecycle.request_pool_fill();
        self.note(format!("start replica #{idx} ({id})"));
        self.replicas.push(Replica {
            id,
            lifecycle,
            dead,
            died,
            store,
            tasks: vec![filler],
        });
        idx
    }

    fn live(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|i| !self.replicas[*i].dead.load(Ordering::Relaxed))
            .collect()
    }

    fn pick_live(&mut self) -> usize {
        let live = self.live();
        live[self.rng.random_range(0..live.len())]
    }

    fn spawn_op(
        &mut self,
        idx: usize,
        reason: Reason,
        op: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let task = tokio::spawn(REASON.scope(reason, op));
        self.replicas[idx].tasks.push(task);
    }

    fn connect(&mut self, idx: usize, u: usize) {
        let lifecycle = self.replicas[idx].lifecycle.clone();
        let dead = self.replicas[idx].dead.clone();
        let log = self.log.clone();
        let clock = self.clock.clone();
        let backend = self.backend.clone();
        // A browser sends its last routing cookie, a stale one, or none.
        let cookie = {
            let log = lock(&self.log);
            let mine: Vec<&Grant> = log
                .grants
                .iter()
                .filter(|g| g.user == user(u).as_str())
                .collect();
            match self.rng.random_range(0..3) {
                0 => None,
                1 => mine.last().map(|g| g.session.clone()),
                _ => mine.first().map(|g| g.session.clone()),
            }
        };
        self.note(format!(
            "connect u{u} via #{idx} cookie={}",
            cookie.is_some()
        ));
        self.spawn_op(idx, Reason::Other, async move {
            let mut visit = Visit {
                client_ip: Some("192.0.2.1".into()),
                session_cookie: cookie,
            };
            // A stale answer (a container gone behind this replica's back) must be repaired
            // by the browser's next request, which carries that session.
            for attempt in 0..12 {
                let began = clock.now();
                let Ok(c) = lifecycle.connect(&user(u), visit.clone()).await else {
                    if attempt == 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let exists = backend.containers().iter().any(|n| {
                    n.name == c.name && n.session == c.session && n.kind == NarrativeKind::User
                });
                lock(&log).trace.push(format!(
                    "[{}]   u{u} got {} {} via #{idx} ({:?}, exists={exists})",
                    clock.now().format("%H:%M:%S%.3f"),
                    c.name,
                    c.session,
                    c.outcome
                ));
                lock(&log).grants.push(Grant {
                    at: clock.now(),
                    replica: idx,
                    user: user(u).as_str().to_owned(),
                    session: c.session.clone(),
                });
                if exists || dead.load(Ordering::Relaxed) {
                    return;
                }
                // The user's own shutdown through another replica, or a crash, may remove what
                // this one just gave them; only that excuses a fresh container that is gone.
                let shut = lock(&log).gone_since(user(u).as_str(), &c.session, began);
                if c.outcome != traefiker_core::ConnectOutcome::Existing && !shut {
                    lock(&log).trace.push(format!(
                        "VIOLATION: {} answered {:?} for a container that does not exist",
                        c.name, c.outcome
                    ));
                    return;
                }
                visit.session_cookie = Some(c.session);
            }
            if !dead.load(Ordering::Relaxed) {
                lock(&log)
                    .trace
                    .push(format!("VIOLATION: u{u}'s stale answer was not repaired"));
            }
        });
    }

    async fn step(&mut self) {
        let roll = self.rng.random_range(0..100);
        match roll {
            0..=33 => {
                let idx = self.pick_live();
                let u = self.rng.random_range(0..USERS);
                self.connect(idx, u);
            }
            34..=39 => {
                // A rush: several users at once, on whichever replicas, while pages poll the
                // listing — the interleavings single connects rarely reach.
                let n = self.rng.random_range(2..=6);
                self.note(format!("rush of {n}"));
                for _ in 0..n {
                    let idx = self.pick_live();
                    let u = self.rng.random_range(0..USERS);
                    self.connect(idx, u);
                    if self.rng.random_bool(0.3) {
                        let lifecycle = self.replicas[idx].lifecycle.clone();
                        self.spawn_op(idx, Reason::Other, async move {
                            let _ = lifecycle.narratives().await;
                        });
                    }
                }
            }
            40..=43 => {
                let idx = self.pick_live();
                let u = self.rng.random_range(0..USERS);
                self.note(format!("shutdown u{u} via #{idx}"));
                let lifecycle = self.replicas[idx].lifecycle.clone();
                let log = self.log.clone();
                let clock = self.clock.clone();
                let at = clock.now();
                let entry = lock(&log).shutdowns.len();
                lock(&log)
                    .shutdowns
                    .push((user(u).as_str().to_owned(), at, None));
                self.spawn_op(idx, Reason::Shutdown, async move {
                    let _ = lifecycle.shutdown(&user(u)).await;
                    lock(&log).shutdowns[entry].2 = Some(clock.now());
                });
            }
            44..=51 => {
                let idx = self.pick_live();
                self.note(format!("reap via #{idx}"));
                let lifecycle = self.replicas[idx].lifecycle.clone();
                self.spawn_op(idx, Reason::Reap, async move {
                    let _ = lifecycle.reap_cycle(ReapMode::Apply).await;
                });
            }
            52..=55 => {
                let idx = self.pick_live();
                self.note(format!("fill via #{idx}"));
                let lifecycle = self.replicas[idx].lifecycle.clone();
                self.spawn_op(idx, Reason::Other, async move {
                    let _ = lifecycle.fill_pool().await;
                });
            }
            56..=59 => {
                let idx = self.pick_live();
                self.note(format!("list via #{idx}"));
                let lifecycle = self.replicas[idx].lifecycle.clone();
                self.spawn_op(idx, Reason::Other, async move {
                    let _ = lifecycle.narratives().await;
                });
            }
            60..=71 => {
                let u = self.rng.random_range(0..USERS);
                let on = self.rng.random_bool(0.5);
                let name = self.config.naming.user_container(&user(u));
                self.note(format!("u{u} active={on}"));
                let mut truth = lock(&self.truth);
                if on {
                    truth.active.insert(name);
                } else {
                    truth.active.remove(&name);
                }
            }
            72..=74 => {
                let mut truth = lock(&self.truth);
                truth.outage = !truth.outage;
                let outage = truth.outage;
                drop(truth);
                self.note(format!("activity outage={outage}"));
            }
            75..=76 => {
                let all = self.backend.containers();
                if !all.is_empty() {
                    let victim = all[self.rng.random_range(0..all.len())].clone();
                    self.note(format!("{} stops (zombie)", victim.name));
                    self.backend.make_zombie(victim.name.as_str());
                    lock(&self.log)
                        .crashes
                        .push((victim.session, self.clock.now()));
                }
            }
            77..=78 => {
                self.image_version += 1;
                let image = self.image();
                self.note(format!("new image {image}"));
                for idx in self.live() {
                    self.replicas[idx].lifecycle.set_image(image.clone());
                }
            }
            79..=88 => {
                let secs = self.rng.random_range(5..90);
                self.note(format!("{secs} s pass"));
                tokio::time::sleep(Duration::from_secs(secs)).await;
            }
            89..=91 if self.replicas.len() > 1 || self.next_replica > 1 => {
                let mut members = lock(&self.members);
                members.down = !members.down;
                let down = members.down;
                drop(members);
                self.note(format!("membership down={down}"));
            }
            92..=95 => self.crash_and_restart().await,
            96..=97 => self.graceful_restart().await,
            _ => {}
        }
        let pause = self.rng.random_range(0..300);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }

    fn kill(&mut self, idx: usize) {
        let replica = &mut self.replicas[idx];
        replica.dead.store(true, Ordering::Relaxed);
        let _ = replica.died.send(true);
        for task in replica.tasks.drain(..) {
            task.abort();
        }
        lock(&self.members).alive.remove(&replica.id);
    }

    async fn crash_and_restart(&mut self) {
        let idx = self.pick_live();
        let multi = self.live().len() > 1 || self.rng.random_bool(0.5);
        self.note(format!("crash #{idx}"));
        self.kill(idx);
        let reuse = if !multi || self.rng.random_bool(0.5) {
            Some((
                self.replicas[idx].id.clone(),
                self.replicas[idx].store.clone(),
            ))
        } else {
            None
        };
        if self.live().is_empty() || self.rng.random_bool(0.6) {
            tokio::time::sleep(Duration::from_millis(self.rng.random_range(0..2000))).await;
            self.start(reuse).await;
        }
    }

    async fn graceful_restart(&mut self) {
        let idx = self.pick_live();
        self.note(format!("graceful restart of #{idx}"));
        let reuse = (
            self.replicas[idx].id.clone(),
            self.replicas[idx].store.clone(),
        );
        // The new one starts first (a rolling restart), then the old one retires.
        let same_id = self.live().len() == 1 && self.rng.random_bool(0.5);
        if !same_id {
            self.start(None).await;
        }
        let lifecycle = self.replicas[idx].lifecycle.clone();
        let _ = REASON.scope(Reason::Other, lifecycle.retire()).await;
        self.kill(idx);
        if same_id {
            self.start(Some(reuse)).await;
        }
    }

    fn check(&self, tally: &mut Tally) -> Result<(), String> {
        let log = lock(&self.log);
        if let Some(v) = log.trace.iter().find(|l| l.starts_with("VIOLATION")) {
            return Err(v.clone());
        }
        // A partitioned pool: only its maker assigns a waiting container.
        if self.variant == Variant::Rancher && log.shared_assigns > 0 {
            return Err(format!(
                "{} waiting containers assigned by a replica that did not make them, on a backend whose renames are not conditional",
                log.shared_assigns
            ));
        }
        check::always(
            &log,
            &self.backend,
            chrono::Duration::from_std(IDLE).unwrap_or(chrono::Duration::MAX),
            self.variant == Variant::Conditional,
            tally,
        )
    }

    /// Stops the workload, lets everything finish, calms the world and lets the pools settle.
    async fn settle(&mut self, tally: &mut Tally) -> Result<(), String> {
        for replica in &mut self.replicas {
            // The first task is the pool filler, which runs on.
            let tasks: Vec<JoinHandle<()>> =
                replica.tasks.drain(1.min(replica.tasks.len())..).collect();
            for task in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(120), task).await;
            }
        }
        self.check(tally)?;
        self.backend.set_faults(None);
        {
            let mut members = lock(&self.members);
            members.down = false;
        }
        lock(&self.truth).outage = false;
        self.note("calm".into());
        for _ in 0..2 {
            for idx in self.live() {
                let lifecycle = self.replicas[idx].lifecycle.clone();
                REASON
                    .scope(Reason::Reap, lifecycle.reap_cycle(ReapMode::Apply))
                    .await
                    .map_err(|e| format!("a calm reaper cycle failed: {e}"))?;
            }
        }
        self.check(tally)?;
        let live: Vec<(ReplicaId, usize)> = self
            .live()
            .iter()
            .map(|i| {
                let replica = &self.replicas[*i];
                (replica.id.clone(), replica.lifecycle.pool_target().size)
            })
            .collect();
        check::settled(&self.backend, &live)
    }
}

/// Runs one seed.
pub fn run(params: &Params) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                violation: Some(format!("cannot build a runtime: {e}")),
                raised: false,
                trace: Vec::new(),
                tally: Tally::default(),
                grants: 0,
                reaped: 0,
                shared_assigns: 0,
            }
        }
    };
    runtime.block_on(async {
        let mut sim = Sim::new(params);
        let replicas = params
            .replicas
            .unwrap_or_else(|| match sim.rng.random_range(0..10) {
                0..=3 if params.variant == Variant::Rancher => 1,
                0..=6 => 2,
                _ => 3,
            });
        for _ in 0..replicas.max(1) {
            sim.start(None).await;
        }
        sim.note(format!(
            "seed {} {} replicas {replicas} pool {} max {:?}",
            sim.seed,
            params.variant.name(),
            sim.config.pool_size,
            sim.config.pool_max
        ));
        let mut tally = Tally::default();
        let mut violation = None;
        let mut raised = false;
        for _ in 0..params.steps {
            sim.step().await;
            raised |= sim
                .replicas
                .iter()
                .any(|r| r.lifecycle.pool_target().size > sim.config.pool_size);
            if let Err(v) = sim.check(&mut tally) {
                violation = Some(v);
                break;
            }
        }
        if violation.is_none() {
            violation = sim.settle(&mut tally).await.err();
        }
        for replica in &sim.replicas {
            replica.dead.store(true, Ordering::Relaxed);
        }
        let log = lock(&sim.log);
        Outcome {
            violation,
            raised,
            trace: log.trace.clone(),
            tally,
            grants: log.grants.len(),
            reaped: log.reaped.len(),
            shared_assigns: log.shared_assigns,
        }
    })
}
