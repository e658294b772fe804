//! traefiker's own Prometheus metrics (`GET /metrics`), and a [`ContainerManager`] wrapper
//! that times every backend call.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::GateCounters;
use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use traefiker_core::{
    Assignment, BackendInfo, ConnectOutcome, ContainerManager, ManagerError, Narrative, Origin,
    Owner, ReapReport, ServiceName, SpawnSpec,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabel {
    replica: String,
}

/// Every metric traefiker exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connects: Family<OutcomeLabel, Counter>,
    backend_latency: Family<OperationLabel, Histogram>,
    reaps: Family<ReasonLabel, Counter>,
    pool_waiting: Gauge,
    /// The auth gate's counters.
    pub auth: GateCounters,
    capacity_refusals: Counter,
    reaper_cycle_seconds: Histogram,
    reaper_failures: Counter,
    replica_info: Family<ReplicaLabel, Gauge>,
    peers: Gauge,
    peers_known: Gauge,
    pool_target: Gauge,
    pool_hits: Counter,
    cold_starts: Counter,
    waiting_seconds: Counter<f64, AtomicU64>,
    time_to_narrative: Family<OutcomeLabel, Histogram>,
    pool_unready: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("traefiker");
        let connects = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "connects",
            "Narrative connections by outcome (existing, assigned, created, error)",
            connects.clone(),
        );
        let backend_latency = Family::<OperationLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "backend_call_seconds",
            "Container backend call latency by operation",
            backend_latency.clone(),
        );
        let reaps = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "reaps",
            "Narratives removed by reason (idle, zombie, outdated_prespawn, excess_prespawn, abandoned_prespawn)",
            reaps.clone(),
        );
        let pool_waiting = Gauge::default();
        registry.register(
            "pool_waiting",
            "Waiting prespawned narratives of the current image",
            pool_waiting.clone(),
        );
        let auth = GateCounters::default();
        registry.register(
            "auth_cache_hits",
            "Token validations answered from the cache",
            auth.cache_hits.clone(),
        );
        registry.register(
            "auth_rejections_remembered",
            "Rejected tokens answered from memory instead of asking auth2 again",
            auth.rejections_remembered.clone(),
        );
        registry.register(
            "auth_throttled",
            "Requests refused with 429: too many failed token validations from the address",
            auth.throttled.clone(),
        );
        let capacity_refusals = Counter::default();
        registry.register(
            "capacity_refusals",
            "New users refused because max_narratives was reached",
            capacity_refusals.clone(),
        );
        let reaper_cycle_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        registry.register(
            "reaper_cycle_seconds",
            "Duration of reaper cycles",
            reaper_cycle_seconds.clone(),
        );
        let reaper_failures = Counter::default();
        registry.register(
            "reaper_failed_cycles",
            "Reaper cycles that failed or could not read activity",
            reaper_failures.clone(),
        );
        // Every series of one process is this replica's; the info gauge names it, so a
        // dashboard joins on the scrape's instance rather than a label on every series.
        let replica_info = Family::<ReplicaLabel, Gauge>::default();
        registry.register(
            "replica_info",
            "This replica's id (always 1)",
            replica_info.clone(),
        );
        let peers = Gauge::default();
        registry.register(
            "peers",
            "Replicas alive as last learned from the orchestrator (this one included)",
            peers.clone(),
        );
        let peers_known = Gauge::default();
        registry.register(
            "peers_known",
            "1 while the live replicas are known, 0 while not (then no replica's waiting narratives are removed for being gone)",
            peers_known.clone(),
        );
        // The pool that follows demand (SPEC §14): what it aims at, what it saved, what it
        // costs. Alerts are written against these names (docs/operations.md).
        let pool_target = Gauge::default();
        registry.register(
            "pool_target",
            "Waiting narratives this replica's pool aims at now (between num_prespawn and pool_max, or a pool_schedule floor)",
            pool_target.clone(),
        );
        let pool_hits = Counter::default();
        registry.register(
            "pool_hits",
            "New users served from a waiting narrative",
            pool_hits.clone(),
        );
        let cold_starts = Counter::default();
        registry.register(
            "cold_starts",
            "New users who waited for a narrative to be created",
            cold_starts.clone(),
        );
        let waiting_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "waiting_narrative_seconds",
            "Seconds waiting narratives of this replica existed, summed over them: what the pool costs",
            waiting_seconds.clone(),
        );
        let time_to_narrative = Family::<OutcomeLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0,
            ])
        });
        registry.register(
            "time_to_narrative_seconds",
            "Time from a new user's request to the 201, by outcome (assigned: from the pool; created: a cold start)",
            time_to_narrative.clone(),
        );
        let pool_unready = Gauge::default();
        registry.register(
            "pool_unready",
            "Waiting narratives that did not become ready within ready_timeout_secs since one last did (above 0: the readiness check fails; see the admin page)",
            pool_unready.clone(),
        );
        Self {
            registry,
            connects,
            backend_latency,
            reaps,
            pool_waiting,
            auth,
            capacity_refusals,
            reaper_cycle_seconds,
            reaper_failures,
            replica_info,
            peers,
            peers_known,
            pool_target,
            pool_hits,
            cold_starts,
            waiting_seconds,
            time_to_narrative,
            pool_unready,
        }
    }

    /// Records a new user's answer: a pool hit or a cold start, and the time from the request
    /// to the 201. A returning user's (`Existing`) is not a new user's and is not recorded.
    pub fn new_user(&self, outcome: ConnectOutcome, took: Duration) {
        let label = match outcome {
            ConnectOutcome::Assigned => {
                self.pool_hits.inc();
                "assigned"
            }
            ConnectOutcome::Created => {
                self.cold_starts.inc();
                "created"
            }
            ConnectOutcome::Existing => return,
        };
        self.time_to_narrative
            .get_or_create(&OutcomeLabel { outcome: label })
            .observe(took.as_secs_f64());
    }

    /// Sets the pool's gauges and brings the cost counter up to `waiting_seconds`, the total
    /// the lifecycle keeps (a counter only grows: a smaller total is ignored).
    pub fn pool_state(&self, target: usize, unready: usize, waiting_seconds: f64) {
        self.pool_target
            .set(i64::try_from(target).unwrap_or(i64::MAX));
        self.pool_unready
            .set(i64::try_from(unready).unwrap_or(i64::MAX));
        let grown = waiting_seconds - self.waiting_seconds.get();
        if grown > 0.0 {
            self.waiting_seconds.inc_by(grown);
        }
    }

    /// Counts one connect by its outcome label.
    pub fn connect(&self, outcome: &'static str) {
        self.connects.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Counts a new user refused at capacity.
    pub fn capacity_refused(&self) {
        self.capacity_refusals.inc();
    }

    /// Sets the pool gauge.
    pub fn pool(&self, waiting: usize) {
        self.pool_waiting
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }

    /// Names this replica in `replica_info`.
    pub fn replica(&self, id: &str) {
        self.replica_info
            .get_or_create(&ReplicaLabel {
                replica: id.to_owned(),
            })
            .set(1);
    }

    /// Sets the peer gauges: how many replicas are alive, `None` while unknown.
    pub fn peers(&self, alive: Option<usize>) {
        self.peers_known.set(i64::from(alive.is_some()));
        self.peers
            .set(alive.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX)));
    }

    /// Records a finished reaper cycle.
    pub fn reaped(&self, report: &ReapReport, seconds: f64) {
        self.reaper_cycle_seconds.observe(seconds);
        for (reason, n) in [
            // A narrative some source saw idle while the others could not tell (its Jupyter
            // not answering), reaped once that lasted the bound: apart, so a monitor sees it.
            (
                "idle",
                report.idle.len().saturating_sub(report.idle_quiet.len()),
            ),
            ("unanswered", report.idle_quiet.len()),
            ("zombie", report.zombies.len()),
            ("outdated_prespawn", report.pool.outdated_removed),
            ("excess_prespawn", report.pool.excess_removed),
            ("abandoned_prespawn", report.abandoned.len()),
        ] {
            self.reaps
                .get_or_create(&ReasonLabel { reason })
                .inc_by(n as u64);
        }
        if report.activity_error().is_some() {
            self.reaper_failures.inc();
        }
    }

    /// Records a reaper cycle that could not run.
    pub fn reap_failed(&self) {
        self.reaper_failures.inc();
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    fn observe(&self, operation: &'static str, started: Instant) {
        self.backend_latency
            .get_or_create(&OperationLabel { operation })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// A [`ContainerManager`] that times every call of the one it wraps.
#[derive(Debug)]
pub struct Timed {
    inner: Arc<dyn ContainerManager>,
    metrics: Arc<Metrics>,
}

impl Timed {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn ContainerManager>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

macro_rules! timed {
    ($self:ident, $op:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self.metrics.observe($op, started);
        result
    }};
}

#[async_trait]
impl ContainerManager for Timed {
    async fn verify(&self) -> Result<BackendInfo, ManagerError> {
        timed!(self, "verify", self.inner.verify())
    }

    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
        timed!(self, "find", self.inner.find(name))
    }

    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        timed!(self, "list", self.inner.list())
    }

    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        timed!(self, "create", self.inner.create(spec))
    }

    async fn assign(
        &self,
        narrative: &Narrative,
        assignment: &Assignment,
    ) -> Result<Narrative, ManagerError> {
        timed!(self, "assign", self.inner.assign(narrative, assignment))
    }

    async fn mark_connected(
        &self,
        narrative: &Narrative,
        origin: &Origin,
    ) -> Result<Narrative, ManagerError> {
        timed!(
            self,
            "mark_connected",
            self.inner.mark_connected(narrative, origin)
        )
    }

    async fn stamp_owner(
        &self,
        narrative: &Narrative,
        owner: &Owner,
    ) -> Result<Narrative, ManagerError> {
        timed!(
            self,
            "stamp_owner",
            self.inner.stamp_owner(narrative, owner)
        )
    }

    fn conditional(&self) -> bool {
        self.inner.conditional()
    }

    async fn remove(&self, narrative: &Narrative) -> Result<(), ManagerError> {
        timed!(self, "remove", self.inner.remove(narrative))
    }

    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        timed!(self, "zombies", self.inner.zombies())
    }

    fn traefik_service(&self, narrative_name: &ServiceName) -> String {
        self.inner.traefik_service(narrative_name)
    }
}

#[cfg(test)]
mod tests {
    use traefiker_core::{PoolReport, ReapMode, ServiceName};

    use super::*;

    #[test]
    fn narratives_reaped_while_unanswered_are_counted_apart() {
        let name = |n: &str| ServiceName::new(n).unwrap_or_else(|e| panic!("{e}"));
        let report = ReapReport {
            mode: ReapMode::Apply,
            idle: vec![name("narrative-a"), name("narrative-b")],
            idle_quiet: vec![name("narrative-b")],
            zombies: Vec::new(),
            pool: PoolReport::default(),
            skipped: Vec::new(),
            abandoned: Vec::new(),
            duplicates: Vec::new(),
            pruned: 0,
            activity_failures: Vec::new(),
            failures: Vec::new(),
        };
        let metrics = Metrics::new();
        metrics.reaped(&report, 0.1);
        let text = metrics.encode();
        assert!(
            text.contains("traefiker_reaps_total{reason=\"idle\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("traefiker_reaps_total{reason=\"unanswered\"} 1"),
            "{text}"
        );
    }
}
