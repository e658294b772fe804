//! The lifecycle: connecting users to narratives, the prespawn pool, shutdown, status and the
//! reaper cycle (SPEC §3–§6, §9), over the [`ContainerManager`], [`ActivitySource`] and
//! [`ActivityStore`] contracts.
//!
//! - [`connect`](Lifecycle::connect) (module `connect`): a returning user is answered from
//!   the [`Index`] with no backend call; a new user costs one assignment of a waiting
//!   container (on Rancher a read and a rename) or one create.
//! - The pool (module `fill`): this replica's waiting containers, one [`Pool`] slot each;
//!   filled in the background with backoff while it fails. Where the backend's writes are
//!   conditional ([`ContainerManager::conditional`]) the pool is shared: each replica keeps
//!   its own target of waiting containers it made, and assigns any replica's.
//! - The reaper (module `reap`): one cycle reads activity, removes the idle and the dead,
//!   and tops the pool up.
//!
//! # What this process keeps
//!
//! One mutex holds what the process knows between listings — the index of users, the pool,
//! other replicas' waiting containers, the last-seen cache of the store, the peers — and a
//! generation counter stamped on every change, so a listing never overrides what happened
//! after it started. Listings come from the pool filler, the reaper and the reconciler
//! ([`Lifecycle::run_reconciler`]); the backend stays the truth.
//!
//! # Timing
//!
//! The lifecycle waits for each backend call at most `call_timeout` (a listing
//! `list_timeout`), for each activity read `activity_timeout`. A call the lifecycle stopped
//! waiting for may go on where the backend runs it elsewhere (the server runs every call on
//! its main runtime): it ends at the backend's own deadline, which every backend has and the
//! server sets a second shorter than `call_timeout`. Operations on one narrative — a connect,
//! a shutdown, a reaper removal — take its lane ([`Lanes`]) and never interleave; concurrent
//! connects of one user share one operation ([`SingleFlight`]), a task of the runtime that
//! started it, which goes on when every caller goes away and ends with that runtime.

mod connect;
mod demand;
mod fill;
mod reap;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use tokio::sync::Notify;

use crate::activity::ActivitySource;
use crate::arrivals::ArrivalLog;
use crate::clock::{Clock, SystemClock};
use crate::demand::DemandSettings;
use crate::entropy::{Entropy, OsEntropy};
use crate::error::{Error, ManagerError};
use crate::flight::{Lanes, SingleFlight};
use crate::index::Index;
use crate::manager::ContainerManager;
use crate::membership::{Membership, Solo};
use crate::names::{Naming, NarrativeKind, Owner, ReplicaId, ServiceName, SessionId};
use crate::narrative::{Narrative, NarrativeState};
use crate::pool::{Pool, Slot};
use crate::readiness::Readiness;
use crate::reaper::ReapReport;
use crate::rules::Routing;
use crate::schedule::Schedule;
use crate::store::{ActivityStore, MemoryStore};
use crate::timeline::Timeline;

pub use connect::Visit;
use demand::DemandState;
pub use fill::LOOK_AGAIN;

/// The lifecycle's settings, validated by their own types.
#[derive(Clone, Debug)]
pub struct LifecycleConfig {
    /// Container name templates.
    pub naming: Naming,
    /// Traefik hosts, entrypoints and rule syntax.
    pub routing: Routing,
    /// Waiting containers to keep (`num_prespawn`); 0 disables the pool unless `pool_max` or
    /// `pool_schedule` ask for more. The floor of a pool that follows demand.
    pub pool_size: usize,
    /// The most waiting containers the arrivals of new users may ask for (`pool_max`, SPEC
    /// §14); `None`: the pool stays at `pool_size`.
    pub pool_max: Option<usize>,
    /// Floors for known windows (`pool_schedule`), for the whole site: each live replica
    /// keeps its share.
    pub pool_schedule: Schedule,
    /// Idle time after which a user's narrative is reaped (`reaper_timeout_secs`).
    pub idle_timeout: Duration,
    /// Environment given to every narrative (`NARRENV_*`, prefix stripped).
    pub narrative_env: BTreeMap<String, String>,
    /// This replica (SPEC §9): it labels the waiting containers it makes and assigns only
    /// those, unless the backend's writes are conditional (then every replica's, its own
    /// first).
    pub replica: ReplicaId,
    /// Most user narratives; a new user past it is refused and nothing is made.
    pub max_narratives: Option<usize>,
    /// Deadline of one backend call (SPEC §6a), retries included.
    pub call_timeout: Duration,
    /// Deadline of one whole listing, all pages.
    pub list_timeout: Duration,
    /// Deadline of one activity source's read.
    pub activity_timeout: Duration,
    /// A waiting container that does not answer within this is replaced.
    pub ready_timeout: Duration,
    /// Shortest and longest wait of the pool filler between failed fills.
    pub fill_backoff: (Duration, Duration),
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            naming: Naming::default(),
            routing: Routing::default(),
            pool_size: 5,
            pool_max: None,
            pool_schedule: Schedule::default(),
            idle_timeout: Duration::from_secs(600),
            narrative_env: BTreeMap::new(),
            #[allow(clippy::expect_used)]
            replica: ReplicaId::new("traefiker").expect("a valid replica id"),
            max_narratives: None,
            call_timeout: Duration::from_secs(20),
            list_timeout: Duration::from_secs(60),
            activity_timeout: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(300),
            fill_backoff: (Duration::from_secs(1), Duration::from_secs(60)),
        }
    }
}

impl LifecycleConfig {
    /// How often a connection is re-marked, and how much longer than the idle timeout a mark
    /// protects: a user's narrative is kept at least `idle_timeout` after every 201 while a
    /// returning user costs at most one mark per this interval (SPEC §9).
    pub fn mark_refresh(&self) -> Duration {
        (self.idle_timeout / 10).min(Duration::from_secs(60))
    }

    /// The bounds of the pool.
    pub fn demand(&self) -> DemandSettings {
        DemandSettings {
            floor: self.pool_size,
            max: self.pool_max.unwrap_or(self.pool_size).max(self.pool_size),
            schedule: self.pool_schedule.clone(),
        }
    }
}

/// How a user was connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectOutcome {
    /// The user's container already existed.
    Existing,
    /// A waiting container was renamed for the user.
    Assigned,
    /// A new container was started for the user.
    Created,
}

impl ConnectOutcome {
    /// A lowercase label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Existing => "existing",
            Self::Assigned => "assigned",
            Self::Created => "created",
        }
    }
}

/// A user's narrative, ready for the session cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The user's container.
    pub name: ServiceName,
    /// The session to put in the cookie.
    pub session: SessionId,
    /// How it came about.
    pub outcome: ConnectOutcome,
}

/// Where a narrative stands, as this replica sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Standing {
    /// A user's.
    User,
    /// Waiting in this replica's pool: `ready` once it answers.
    Waiting {
        /// It answered its readiness check.
        ready: bool,
    },
    /// One of this replica's waiting containers on its way to a user or out.
    Leaving,
    /// A waiting container of another replica (or of the Python version).
    Foreign,
}

/// One narrative with its last-seen instant, for status pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEntry {
    /// The narrative as last listed (or as this replica made it).
    pub narrative: Narrative,
    /// When it was last seen active, if tracked.
    pub last_seen: Option<DateTime<Utc>>,
    /// Where it stands.
    pub standing: Standing,
}

/// What the last reaper cycle did, for status pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CycleSummary {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// Its report.
    pub report: ReapReport,
}

/// What this process knows between listings.
#[derive(Debug)]
struct Known {
    gen: u64,
    /// What the pool has cost so far.
    ledger: Ledger,
    index: Index,
    pool: Pool,
    /// Waiting containers of other replicas, as last listed.
    foreign: Vec<Narrative>,
    /// The activity store's records, mirrored: every write goes to both.
    records: HashMap<String, DateTime<Utc>>,
    /// Whether `records` was loaded from the store yet.
    records_loaded: bool,
    /// Narratives quiet at the last cycle (a source saw them idle, the others could not
    /// tell), since when without a break. In memory only: a restart starts the bound again
    /// (it errs toward keeping).
    quiet_since: HashMap<String, DateTime<Utc>>,
    /// The replicas alive, `None` while unknown.
    peers: Option<BTreeSet<ReplicaId>>,
    last_listing: Option<DateTime<Utc>>,
    last_listing_error: Option<String>,
    last_cycle: Option<CycleSummary>,
    /// Waiting containers that did not become ready in time, since one last did.
    unready: Unready,
}

impl Unready {
    /// A waiting container became ready: the readiness check works.
    fn ready(&mut self) {
        if self.last.take().is_some() {
            tracing::info!("waiting narratives become ready again");
        }
        self.count = 0;
    }
}

impl Known {
    fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            gen: 0,
            ledger: Ledger::new(clock),
            index: Index::default(),
            pool: Pool::default(),
            foreign: Vec::new(),
            records: HashMap::new(),
            records_loaded: false,
            quiet_since: HashMap::new(),
            peers: None,
            last_listing: None,
            last_listing_error: None,
            last_cycle: None,
            unready: Unready::default(),
        }
    }

    /// Stamps a change. Every change of the pool comes after a bump, so the ledger integrates
    /// the waiting count that held until now.
    fn bump(&mut self) -> u64 {
        self.ledger.settle(self.pool.waiting_any());
        self.gen += 1;
        self.gen
    }
}

/// Waiting narratives that do not become ready (a readiness check that cannot succeed leaves
/// the pool useless while it looks full): counted, the last readiness answer of each kept,
/// and said once per streak.
#[derive(Debug, Default)]
struct Unready {
    /// Removed unready since one last became ready.
    count: usize,
    /// The latest of them.
    last: Option<UnreadyWarning>,
    /// The last answer of the readiness check for each waiting container not ready yet.
    answers: HashMap<String, String>,
}

/// Waiting narratives of this replica that never became ready within `ready_timeout` (SPEC
/// §14): new users get cold starts while the pool looks full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadyWarning {
    /// How many were replaced unready since one last became ready.
    pub count: usize,
    /// The latest of them.
    pub narrative: ServiceName,
    /// Where it was asked, if the backend gave an address.
    pub address: Option<String>,
    /// The readiness check's last answer for it.
    pub answer: String,
    /// What is likely wrong, and what to do.
    pub likely_cause: String,
    /// When the first of the streak was replaced.
    pub since: DateTime<Utc>,
}

/// Waiting-narrative seconds: the number of waiting containers integrated over the clock's
/// time, what the pool costs (SPEC §14).
#[derive(Debug)]
struct Ledger {
    clock: Arc<dyn Clock>,
    at: DateTime<Utc>,
    seconds: f64,
    /// The last day, for the admin page's charts.
    timeline: Timeline,
}

impl Ledger {
    fn new(clock: Arc<dyn Clock>) -> Self {
        let at = clock.now();
        Self {
            clock,
            at,
            seconds: 0.0,
            timeline: Timeline::new(),
        }
    }

    /// The total if `waiting` held since the last settlement.
    fn total(&self, waiting: usize, now: DateTime<Utc>) -> f64 {
        let span = now
            .signed_duration_since(self.at)
            .to_std()
            .unwrap_or_default();
        self.seconds + waiting as f64 * span.as_secs_f64()
    }

    fn settle(&mut self, waiting: usize) {
        let now = self.clock.now();
        self.seconds = self.total(waiting, now);
        self.timeline.waiting(self.at, now, waiting);
        self.at = self.at.max(now);
    }
}

type SharedConnect = Result<Connection, Error>;

/// The lifecycle service. Cheap to clone; clones share everything.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    manager: Arc<dyn ContainerManager>,
    sources: Vec<Arc<dyn ActivitySource>>,
    store: Arc<dyn ActivityStore>,
    arrivals: Arc<dyn ArrivalLog>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    membership: Arc<dyn Membership>,
    readiness: Option<Arc<dyn Readiness>>,
    config: LifecycleConfig,
    image: RwLock<Option<String>>,
    known: Mutex<Known>,
    /// Arrivals and cold starts, and the target they make; never locked inside `known`.
    demand: Mutex<DemandState>,
    /// Pool steps whose creates are in flight (they run after the step lets the pool lock
    /// go): `retire` and a caller that wants the pool settled wait for none.
    creating: tokio::sync::watch::Sender<usize>,
    /// The filler's steps not yet past deciding (waiting for the pool lock or holding it):
    /// the filler starts another only when there is none, so wake-ups during a burst make
    /// one more step, not a queue of them.
    deciding: tokio::sync::watch::Sender<usize>,
    flights: SingleFlight<Owner, SharedConnect>,
    lanes: Lanes<ServiceName>,
    pool_lock: tokio::sync::Mutex<()>,
    reap_lock: tokio::sync::Mutex<()>,
    pool_wanted: Notify,
    /// The backend's writes are compare-and-swap ([`ContainerManager::conditional`], read
    /// once: a capability does not change): the pool is shared, and a name held by nothing
    /// `find` shows is a narrative being removed.
    conditional: bool,
    marks_supported: AtomicBool,
    retiring: AtomicBool,
}

/// Builds a [`Lifecycle`]; every part but the backend and the settings has a default.
#[derive(Debug)]
pub struct LifecycleBuilder {
    manager: Arc<dyn ContainerManager>,
    config: LifecycleConfig,
    sources: Vec<Arc<dyn ActivitySource>>,
    store: Arc<dyn ActivityStore>,
    arrivals: Arc<dyn ArrivalLog>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    membership: Arc<dyn Membership>,
    readiness: Option<Arc<dyn Readiness>>,
    image: Option<String>,
}

impl LifecycleBuilder {
    /// Reads activity from every source (default: none, so activity is never known and
    /// nothing is ever reaped for idleness).
    pub fn sources(mut self, sources: Vec<Arc<dyn ActivitySource>>) -> Self {
        self.sources = sources;
        self
    }

    /// Keeps last-seen instants in `store` (default: in memory).
    pub fn store(mut self, store: Arc<dyn ActivityStore>) -> Self {
        self.store = store;
        self
    }

    /// Keeps new users' arrivals in `log`, for the pool to learn the week (default: in
    /// memory).
    pub fn arrivals(mut self, log: Arc<dyn ArrivalLog>) -> Self {
        self.arrivals = log;
        self
    }

    /// Tells time by `clock` (default: the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Draws session ids and random choices from `entropy` (default: the OS CSPRNG).
    pub fn entropy(mut self, entropy: Arc<dyn Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// Learns peers from `membership` (default: [`Solo`]).
    pub fn membership(mut self, membership: Arc<dyn Membership>) -> Self {
        self.membership = membership;
        self
    }

    /// Hands out only waiting containers `readiness` accepts (default: the backend reports
    /// them running).
    pub fn readiness(mut self, readiness: Arc<dyn Readiness>) -> Self {
        self.readiness = Some(readiness);
        self
    }

    /// Starts narratives from `image` (`<image_name>:<tag>`) until [`Lifecycle::set_image`].
    pub fn image(mut self, image: Option<String>) -> Self {
        self.image = image;
        self
    }

    /// The lifecycle.
    pub fn build(self) -> Lifecycle {
        let known = Known::new(self.clock.clone());
        let demand = DemandState::new(self.config.demand());
        let conditional = self.manager.conditional();
        Lifecycle {
            inner: Arc::new(Inner {
                manager: self.manager,
                sources: self.sources,
                store: self.store,
                arrivals: self.arrivals,
                clock: self.clock,
                entropy: self.entropy,
                membership: self.membership,
                readiness: self.readiness,
                config: self.config,
                image: RwLock::new(self.image),
                known: Mutex::new(known),
                demand: Mutex::new(demand),
                creating: tokio::sync::watch::Sender::new(0),
                deciding: tokio::sync::watch::Sender::new(0),
                flights: SingleFlight::new(),
                lanes: Lanes::new(),
                pool_lock: tokio::sync::Mutex::new(()),
                reap_lock: tokio::sync::Mutex::new(()),
                pool_wanted: Notify::new(),
                conditional,
                marks_supported: AtomicBool::new(true),
                retiring: AtomicBool::new(false),
            }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here is a few map operations that leave the data consistent at
    // each step, so a poisoned lock's data is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Backend calls of one step (pool removals and creates, readiness checks, reaper removals)
/// in flight at once.
const PARALLEL: usize = 8;

/// Runs `futures` with at most [`PARALLEL`] at once. The futures are boxed so the whole stays
/// provably `Send` (closures over borrowed data trip rustc's higher-ranked inference).
async fn at_most_parallel<'a, T: Send + 'a>(futures: Vec<BoxFuture<'a, T>>) -> Vec<T> {
    stream::iter(futures)
        .buffer_unordered(PARALLEL)
        .collect()
        .await
}

/// An error for a call that did not answer within its deadline.
fn late(what: &str, deadline: Duration) -> ManagerError {
    ManagerError::Unavailable {
        backend: "backend".into(),
        detail: format!(
            "{what}: no answer within {} s (check the backend and its timeouts)",
            deadline.as_secs_f64()
        ),
    }
}

impl Lifecycle {
    /// Starts building a lifecycle over `manager` with `config`.
    pub fn builder(
        manager: Arc<dyn ContainerManager>,
        config: LifecycleConfig,
    ) -> LifecycleBuilder {
        LifecycleBuilder {
            manager,
            config,
            sources: Vec::new(),
            store: Arc::new(MemoryStore::new()),
            arrivals: Arc::new(MemoryStore::new()),
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
            membership: Arc::new(Solo),
            readiness: None,
            image: None,
        }
    }

    /// A lifecycle over `manager`, reading activity from every source in `sources`, with
    /// last-seen times in `store`. `image` is the image new narratives start from
    /// (`<image_name>:<tag>`), if known yet; see [`Lifecycle::set_image`]. The other parts
    /// take their defaults; see [`Lifecycle::builder`].
    pub fn new(
        manager: Arc<dyn ContainerManager>,
        sources: Vec<Arc<dyn ActivitySource>>,
        store: Arc<dyn ActivityStore>,
        clock: Arc<dyn Clock>,
        config: LifecycleConfig,
        image: Option<String>,
    ) -> Self {
        Self::builder(manager, config)
            .sources(sources)
            .store(store)
            .clock(clock)
            .image(image)
            .build()
    }

    /// The settings.
    pub fn config(&self) -> &LifecycleConfig {
        &self.inner.config
    }

    /// The backend.
    pub fn manager(&self) -> &Arc<dyn ContainerManager> {
        &self.inner.manager
    }

    /// The activity store (graceful shutdown flushes it).
    pub fn store(&self) -> &Arc<dyn ActivityStore> {
        &self.inner.store
    }

    /// The image new narratives start from, if known.
    pub fn image(&self) -> Option<String> {
        self.inner
            .image
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the image new narratives start from; returns whether it changed. Waiting
    /// containers of another image are replaced at the next pool fill, which this requests.
    pub fn set_image(&self, image: String) -> bool {
        let mut current = self.inner.image.write().unwrap_or_else(|p| p.into_inner());
        let changed = current.as_deref() != Some(image.as_str());
        if changed {
            tracing::info!(image = %image, "narrative image changed");
            *current = Some(image);
            self.inner.pool_wanted.notify_one();
        }
        changed
    }

    /// Waiting containers of the current image in this replica's pool, ready or not.
    pub fn pool_waiting(&self) -> usize {
        let Some(image) = self.image() else { return 0 };
        lock(&self.inner.known).pool.waiting(&image)
    }

    /// Waiting-narrative seconds of this replica's pool since the lifecycle was built: every
    /// waiting container (ready or not, of any image) counts from when this replica knew it
    /// until it was claimed or removed.
    pub fn pool_cost(&self) -> f64 {
        let known = lock(&self.inner.known);
        known
            .ledger
            .total(known.pool.waiting_any(), self.inner.clock.now())
    }

    /// Waiting containers removed for not becoming ready within `ready_timeout` since one
    /// last became ready: above zero, the readiness check is failing.
    pub fn pool_unready(&self) -> usize {
        lock(&self.inner.known).unready.count
    }

    /// Why waiting narratives do not become ready, while they do not.
    pub fn pool_unready_warning(&self) -> Option<UnreadyWarning> {
        lock(&self.inner.known).unready.last.clone()
    }

    /// Runs a backend call with the call deadline.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, ManagerError>>,
    ) -> Result<T, ManagerError> {
        let deadline = self.inner.config.call_timeout;
        tokio::time::timeout(deadline, call)
            .await
            .unwrap_or_else(|_| Err(late(what, deadline)))
    }

    /// Every narrative the backend lists (one listing, all pages), applied to what this
    /// process knows.
    pub async fn narratives(&self) -> Result<Vec<Narrative>, Error> {
        let started = lock(&self.inner.known).gen;
        let deadline = self.inner.config.list_timeout;
        let listed = tokio::time::timeout(deadline, self.inner.manager.list())
            .await
            .unwrap_or_else(|_| Err(late("listing", deadline)));
        match listed {
            Ok(all) => {
                self.absorb(&all, started);
                Ok(all)
            }
            Err(e) => {
                lock(&self.inner.known).last_listing_error = Some(e.to_string());
                Err(e.into())
            }
        }
    }

    /// Applies a listing that started at generation `started`.
    fn absorb(&self, all: &[Narrative], started: u64) {
        let me = &self.inner.config.replica;
        let instant_ready = self.inner.readiness.is_none();
        let now = self.inner.clock.now();
        let mut users = Vec::new();
        let mut own = Vec::new();
        let mut foreign = Vec::new();
        for n in all {
            match n.kind {
                NarrativeKind::User => users.push(n),
                NarrativeKind::Prespawned
                    if matches!(n.state, NarrativeState::Removing | NarrativeState::Stopped) => {}
                NarrativeKind::Prespawned if n.replica.as_ref() == Some(me) => own.push(n.clone()),
                NarrativeKind::Prespawned => foreign.push(n.clone()),
            }
        }
        // Where writes are conditional the pool is shared: the others' labelled waiting
        // containers are candidates too (an assignment carries the version it read, so two
        // replicas cannot both win one). Python-made ones stay nobody's.
        let shared: Vec<Narrative> = if self.inner.conditional {
            foreign
                .iter()
                .filter(|n| n.replica.is_some())
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let mut known = lock(&self.inner.known);
        let gen = known.bump();
        let fresh = known.index.observe(&users, started);
        known
            .pool
            .observe(&own, &shared, started, gen, now, instant_ready);
        if fresh {
            known.foreign = foreign;
            known.last_listing = Some(now);
            known.last_listing_error = None;
        }
    }

    /// Every narrative this process knows, with its last-seen instant and where it stands:
    /// answered from what the background loops keep, with no backend call.
    pub fn status(&self) -> Vec<StatusEntry> {
        let known = lock(&self.inner.known);
        let manager = &self.inner.manager;
        let last_seen = |n: &Narrative| {
            known
                .records
                .get(&manager.traefik_service(&n.name))
                .copied()
        };
        let mut out: Vec<StatusEntry> = known
            .index
            .narratives()
            .map(|n| StatusEntry {
                last_seen: last_seen(n),
                narrative: n.clone(),
                standing: Standing::User,
            })
            .collect();
        out.extend(known.pool.entries().filter_map(|(n, slot)| {
            let standing = match slot {
                Slot::Waiting { ready } => Standing::Waiting { ready },
                Slot::Claimed | Slot::Uncertain | Slot::Removing => Standing::Leaving,
                // Already listed as the user's.
                Slot::Assigned => return None,
            };
            Some(StatusEntry {
                last_seen: None,
                narrative: n.clone(),
                standing,
            })
        }));
        out.extend(known.foreign.iter().map(|n| StatusEntry {
            last_seen: None,
            narrative: n.clone(),
            standing: Standing::Foreign,
        }));
        out.sort_by(|a, b| a.narrative.name.cmp(&b.narrative.name));
        out
    }

    /// Every narrative that should be routed: users' and waiting ones (so an assigned
    /// container's route exists before its user arrives), none being removed.
    pub fn routable(&self) -> Vec<Narrative> {
        let known = lock(&self.inner.known);
        let mut out: Vec<Narrative> = known.index.narratives().cloned().collect();
        out.extend(
            known
                .pool
                .entries()
                .filter(|(_, slot)| !matches!(slot, Slot::Removing | Slot::Assigned))
                .map(|(n, _)| n.clone()),
        );
        out.extend(known.foreign.iter().cloned());
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// How long ago (by this lifecycle's clock) the last listing was applied, and, if the
    /// newest failed, why: readiness probes answer from this, with no call of their own.
    pub fn freshness(&self) -> (Option<Duration>, Option<String>) {
        let known = lock(&self.inner.known);
        let now = self.inner.clock.now();
        let age = known
            .last_listing
            .map(|at| now.signed_duration_since(at).to_std().unwrap_or_default());
        (age, known.last_listing_error.clone())
    }

    /// The last reaper cycle, if one ran.
    pub fn last_cycle(&self) -> Option<CycleSummary> {
        lock(&self.inner.known).last_cycle.clone()
    }

    /// User narratives this process knows of.
    pub fn user_count(&self) -> usize {
        lock(&self.inner.known).index.len()
    }

    /// The replicas alive as last learned, `None` while unknown.
    pub fn peers(&self) -> Option<BTreeSet<ReplicaId>> {
        lock(&self.inner.known).peers.clone()
    }

    /// Learns the peers from the membership (unknown on failure), and returns them.
    pub async fn refresh_peers(&self) -> Option<BTreeSet<ReplicaId>> {
        let deadline = self.inner.config.call_timeout;
        let peers = tokio::time::timeout(deadline, self.inner.membership.peers())
            .await
            .unwrap_or_else(|_| Err(late("peers", deadline)));
        let peers = match peers {
            Ok(p) => Some(p.into_iter().collect()),
            // No membership at all (Solo): known from the start, not worth a warning a cycle.
            Err(e @ ManagerError::Unsupported { .. }) => {
                tracing::debug!(error = %e, "peers unknown: every replica is taken as alive");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "peers unknown: every replica is taken as alive");
                None
            }
        };
        lock(&self.inner.known).peers = peers.clone();
        peers
    }

    /// Whether connects leave a mark in the orchestrator for every replica's reaper: whenever
    /// the backend can. Not only while peers are known to run: membership is learned by
    /// polling, and a replica that thought itself alone and skipped the mark could see its
    /// user reaped by one that had just started (the simulation found exactly that).
    fn shared_marks(&self) -> bool {
        self.inner.marks_supported.load(Ordering::Relaxed)
    }

    /// Starts tracking user narratives the store does not know yet, from now, without
    /// touching known idle clocks (start-up, SPEC §7); also learns the peers.
    pub async fn track_existing(&self) -> Result<usize, Error> {
        self.refresh_peers().await;
        let all = self.narratives().await?;
        let records = self.inner.store.load()?;
        let now = self.inner.clock.now();
        let new: Vec<(String, DateTime<Utc>)> = all
            .iter()
            .filter(|n| n.kind == NarrativeKind::User)
            .map(|n| self.inner.manager.traefik_service(&n.name))
            .filter(|s| !records.contains_key(s))
            .map(|s| (s, now))
            .collect();
        self.inner.store.update(&new, &[])?;
        let mut known = lock(&self.inner.known);
        // Connects since the load are newer than what was loaded.
        let since = std::mem::take(&mut known.records);
        known.records = records;
        known.records.extend(new.iter().cloned());
        known.records.extend(since);
        known.records_loaded = true;
        Ok(new.len())
    }

    /// Loads the store into the mirror if nothing has yet (an embedder that never called
    /// [`Lifecycle::track_existing`]).
    fn load_records(&self) -> Result<(), Error> {
        if lock(&self.inner.known).records_loaded {
            return Ok(());
        }
        let records = self.inner.store.load()?;
        let mut known = lock(&self.inner.known);
        if !known.records_loaded {
            let since = std::mem::take(&mut known.records);
            known.records = records;
            known.records.extend(since);
            known.records_loaded = true;
        }
        Ok(())
    }

    /// Lists every `period` so what this process answers from stays fresh (and learns the
    /// peers), until `shutdown` completes.
    pub async fn run_reconciler(&self, period: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(period) => {}
            }
            self.refresh_peers().await;
            if let Err(e) = self.narratives().await {
                tracing::warn!(error = %e, "reconcile listing failed; answering from the last one");
            }
        }
    }
}
