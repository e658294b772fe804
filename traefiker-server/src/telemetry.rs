//! traefiker's own Prometheus metrics (`GET /metrics`), and a [`ContainerManager`] wrapper
//! that times every backend call.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::{AuthError, Authenticator, GateCounters, Identity};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use traefiker_core::{
    ActivityError, ActivitySnapshot, ActivitySource, ActivityTarget, Assignment, BackendInfo,
    ConnectOutcome, ContainerManager, ManagerError, Narrative, Origin, Owner, ReapReport,
    ServiceName, SpawnSpec,
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
    signals: Signals,
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
        let signals = Signals::register(&mut registry, &connects);
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
            signals,
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
        let call = Call::start(&$self.metrics, $op);
        let result = $call.await;
        call.answered(&result);
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

// What the alerting rules of `deploy/prometheus/` watch (docs/observability.md): whether this
// replica is ready, when the reaper last finished, whether each activity source answers, the
// backend's and auth2's failures, and how close the users' narratives are to the cap.

/// The backend operations a [`Timed`] manager counts failures of.
const OPERATIONS: [&str; 9] = [
    "verify",
    "find",
    "list",
    "create",
    "assign",
    "mark_connected",
    "stamp_owner",
    "remove",
    "zombies",
];

/// The backend failures an operator acts on; the other errors (not found, name taken, a
/// compare-and-swap conflict, another user's name) are answers the lifecycle expects and acts
/// on itself.
const BACKEND_ERROR_KINDS: [&str; 3] = ["unavailable", "rejected", "deadline"];

/// How a token validation ended.
const AUTH_OUTCOMES: [&str; 3] = ["valid", "rejected", "unreachable"];

/// How a connect ended, as [`Metrics::connect`] is told.
const CONNECT_OUTCOMES: [&str; 4] = ["existing", "assigned", "created", "error"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadLabels {
    source: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendErrorLabels {
    operation: &'static str,
    kind: &'static str,
}

/// The metrics the alerting rules are written against. Every labelled series exists from the
/// start at zero (Prometheus's advice for known label values), so that a rule over a family
/// with no failure yet answers 0 rather than nothing.
#[derive(Debug)]
struct Signals {
    start_time: Gauge,
    ready: Gauge,
    reaper_interval: Gauge,
    reaper_last_cycle: Gauge,
    user_narratives: Gauge,
    max_narratives: Gauge,
    activity_reads: Family<ReadLabels, Counter>,
    activity_failing: Family<SourceLabel, Gauge>,
    backend_errors: Family<BackendErrorLabels, Counter>,
    auth_validations: Family<OutcomeLabel, Counter>,
}

impl Signals {
    fn register(registry: &mut Registry, connects: &Family<OutcomeLabel, Counter>) -> Self {
        for outcome in CONNECT_OUTCOMES {
            connects.get_or_create(&OutcomeLabel { outcome }).inc_by(0);
        }
        let signals = Self {
            start_time: Gauge::default(),
            ready: Gauge::default(),
            reaper_interval: Gauge::default(),
            reaper_last_cycle: Gauge::default(),
            user_narratives: Gauge::default(),
            max_narratives: Gauge::default(),
            activity_reads: Family::default(),
            activity_failing: Family::default(),
            backend_errors: Family::default(),
            auth_validations: Family::default(),
        };
        for operation in OPERATIONS {
            for kind in BACKEND_ERROR_KINDS {
                signals
                    .backend_errors
                    .get_or_create(&BackendErrorLabels { operation, kind })
                    .inc_by(0);
            }
        }
        for outcome in AUTH_OUTCOMES {
            signals
                .auth_validations
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(0);
        }
        registry.register(
            "start_time_seconds",
            "When this process started, in seconds since the Unix epoch",
            signals.start_time.clone(),
        );
        registry.register(
            "ready",
            "1 while /readyz answers 200 (the backend answered lately), else 0",
            signals.ready.clone(),
        );
        registry.register(
            "reaper_interval_seconds",
            "reaper_interval_secs: the internal reaper's period; 0 = cycles only on GET /reaper/",
            signals.reaper_interval.clone(),
        );
        registry.register(
            "reaper_last_cycle_timestamp_seconds",
            "When the last reaper cycle (not a dry run) finished, in seconds since the Unix epoch; 0 before the first",
            signals.reaper_last_cycle.clone(),
        );
        registry.register(
            "user_narratives",
            "Users' narratives this replica knows of: what max_narratives is compared with",
            signals.user_narratives.clone(),
        );
        registry.register(
            "max_narratives",
            "max_narratives: the cap on users' narratives; 0 = no cap",
            signals.max_narratives.clone(),
        );
        registry.register(
            "activity_reads",
            "Reads of each activity source by outcome (ok, error: down, timing out, garbage)",
            signals.activity_reads.clone(),
        );
        registry.register(
            "activity_consecutive_failures",
            "Reads of each activity source that failed in a row; while above 0 nothing is reaped for idleness",
            signals.activity_failing.clone(),
        );
        registry.register(
            "backend_errors",
            "Failed container backend calls by operation and kind (unavailable, rejected, deadline: no answer within call_timeout)",
            signals.backend_errors.clone(),
        );
        registry.register(
            "auth_validations",
            "Token validations asked of auth2 (or the static tokens) by outcome (valid, rejected, unreachable: no or no readable answer)",
            signals.auth_validations.clone(),
        );
        signals
    }
}

/// Seconds since the Unix epoch, as a gauge holds them.
fn epoch_seconds(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

/// What the `/metrics` handler reads from the rest of the process at each scrape.
#[derive(Clone, Copy, Debug)]
pub struct Standing {
    /// Whether `/readyz` answers 200.
    pub ready: bool,
    /// Users' narratives this replica knows of.
    pub user_narratives: usize,
    /// When the last reaper cycle (not a dry run) finished.
    pub last_cycle: Option<DateTime<Utc>>,
}

impl Metrics {
    /// Records what is fixed for the process: when it started (by the lifecycle's clock), the
    /// reaper's period and the cap on users' narratives.
    pub fn configured(
        &self,
        started: DateTime<Utc>,
        reaper_interval: Duration,
        max_narratives: Option<usize>,
    ) {
        let s = &self.signals;
        s.start_time.set(epoch_seconds(started));
        s.reaper_interval
            .set(i64::try_from(reaper_interval.as_secs()).unwrap_or(i64::MAX));
        s.max_narratives
            .set(max_narratives.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX)));
    }

    /// Records the process's standing, at a scrape.
    pub fn standing(&self, standing: Standing) {
        let s = &self.signals;
        s.ready.set(i64::from(standing.ready));
        s.user_narratives
            .set(i64::try_from(standing.user_narratives).unwrap_or(i64::MAX));
        s.reaper_last_cycle
            .set(standing.last_cycle.map_or(0, epoch_seconds));
    }

    /// Counts one failed backend call of `operation`.
    fn backend_error(&self, operation: &'static str, kind: &'static str) {
        self.signals
            .backend_errors
            .get_or_create(&BackendErrorLabels { operation, kind })
            .inc();
    }

    /// Counts one read of the activity source `source`.
    fn activity_read(&self, source: &str, ok: bool) {
        let s = &self.signals;
        let outcome = if ok { "ok" } else { "error" };
        s.activity_reads
            .get_or_create(&ReadLabels {
                source: source.to_owned(),
                outcome,
            })
            .inc();
        let failing = s.activity_failing.get_or_create(&SourceLabel {
            source: source.to_owned(),
        });
        if ok {
            failing.set(0);
        } else {
            failing.inc();
        }
    }

    /// Makes the series of source `source` exist at zero before its first read.
    fn activity_source(&self, source: &str) {
        let s = &self.signals;
        for outcome in ["ok", "error"] {
            s.activity_reads
                .get_or_create(&ReadLabels {
                    source: source.to_owned(),
                    outcome,
                })
                .inc_by(0);
        }
        s.activity_failing
            .get_or_create(&SourceLabel {
                source: source.to_owned(),
            })
            .set(0);
    }

    /// Counts one token validation by how it ended.
    fn auth_validated(&self, outcome: &'static str) {
        self.signals
            .auth_validations
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
}

/// One backend call being timed: recorded when it answers or, if it is dropped unanswered
/// (the lifecycle's deadline gave up on it), as a `deadline` failure.
struct Call<'a> {
    metrics: &'a Metrics,
    operation: &'static str,
    started: Instant,
    answered: bool,
}

impl<'a> Call<'a> {
    fn start(metrics: &'a Metrics, operation: &'static str) -> Self {
        Self {
            metrics,
            operation,
            started: Instant::now(),
            answered: false,
        }
    }

    fn answered<T>(mut self, result: &Result<T, ManagerError>) {
        self.answered = true;
        self.metrics.observe(self.operation, self.started);
        let kind = match result {
            Err(ManagerError::Unavailable { .. }) => Some("unavailable"),
            Err(ManagerError::Rejected { .. }) => Some("rejected"),
            _ => None,
        };
        if let Some(kind) = kind {
            self.metrics.backend_error(self.operation, kind);
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.metrics.observe(self.operation, self.started);
            self.metrics.backend_error(self.operation, "deadline");
        }
    }
}

/// An [`ActivitySource`] that counts the reads of the one it wraps: how each ended, and how
/// many failed in a row (a read dropped unanswered, when the reaper's deadline gave up on it,
/// is a failure).
#[derive(Debug)]
pub struct Watched {
    inner: Arc<dyn ActivitySource>,
    metrics: Arc<Metrics>,
}

impl Watched {
    /// Wraps `inner`, recording into `metrics`; its series exist from now.
    pub fn new(inner: Arc<dyn ActivitySource>, metrics: Arc<Metrics>) -> Self {
        metrics.activity_source(inner.name());
        Self { inner, metrics }
    }
}

/// A read in flight; a failure unless it answered.
struct Read<'a> {
    watched: &'a Watched,
    answered: bool,
}

impl Drop for Read<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.watched
                .metrics
                .activity_read(self.watched.inner.name(), false);
        }
    }
}

#[async_trait]
impl ActivitySource for Watched {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn snapshot(
        &self,
        targets: &[ActivityTarget],
    ) -> Result<ActivitySnapshot, ActivityError> {
        let mut read = Read {
            watched: self,
            answered: false,
        };
        let result = self.inner.snapshot(targets).await;
        read.answered = true;
        self.metrics
            .activity_read(self.inner.name(), result.is_ok());
        result
    }
}

/// An [`Authenticator`] that counts the validations of the one it wraps by outcome.
#[derive(Debug)]
pub struct Counted {
    inner: Arc<dyn Authenticator>,
    metrics: Arc<Metrics>,
}

impl Counted {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn Authenticator>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl Authenticator for Counted {
    async fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        let result = self.inner.validate(token).await;
        self.metrics.auth_validated(match &result {
            Ok(_) => "valid",
            // Throttling is the gate's answer, never an authenticator's; counted as what it
            // stands for.
            Err(AuthError::Rejected { .. } | AuthError::Throttled { .. }) => "rejected",
            Err(AuthError::Unreachable { .. }) => "unreachable",
        });
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::sync::Mutex;
    use traefiker_core::testing::{InMemoryManager, Op, ScriptedActivity};
    use traefiker_core::Naming;

    /// The value of the sample `series` (name and labels as encoded) in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.split(' ').next()?.parse().ok()
        })
    }

    fn unavailable() -> ManagerError {
        ManagerError::Unavailable {
            backend: "rancher".into(),
            detail: "down".into(),
        }
    }

    #[tokio::test]
    async fn backend_failures_are_counted_by_operation_and_kind() {
        let metrics = Arc::new(Metrics::new());
        let text = metrics.encode();
        for operation in OPERATIONS {
            for kind in BACKEND_ERROR_KINDS {
                let series = format!(
                    "traefiker_backend_errors_total{{operation=\"{operation}\",kind=\"{kind}\"}}"
                );
                assert_eq!(sample(&text, &series), Some(0.0), "{series} in\n{text}");
            }
        }
        let backend = Arc::new(InMemoryManager::new(Naming::default()));
        let timed = Timed::new(backend.clone(), metrics.clone());
        backend.fail_next(Op::List, unavailable());
        assert!(timed.list().await.is_err());
        backend.fail_next(
            Op::Zombies,
            ManagerError::Rejected {
                backend: "rancher".into(),
                detail: "forbidden".into(),
            },
        );
        assert!(timed.zombies().await.is_err());
        let name = ServiceName::new("narrative-x").unwrap();
        // An answer the lifecycle expects is no failure.
        backend.fail_next(
            Op::Find,
            ManagerError::NameTaken {
                backend: "rancher".into(),
                name: "narrative-x".into(),
            },
        );
        assert!(timed.find(&name).await.is_err());
        let text = metrics.encode();
        let count = |operation: &str, kind: &str| {
            sample(
                &text,
                &format!(
                    "traefiker_backend_errors_total{{operation=\"{operation}\",kind=\"{kind}\"}}"
                ),
            )
        };
        assert_eq!(count("list", "unavailable"), Some(1.0), "{text}");
        assert_eq!(count("zombies", "rejected"), Some(1.0), "{text}");
        assert_eq!(count("find", "unavailable"), Some(0.0), "{text}");
        assert_eq!(count("find", "rejected"), Some(0.0), "{text}");
        assert_eq!(
            sample(
                &text,
                "traefiker_backend_call_seconds_count{operation=\"find\"}"
            ),
            Some(1.0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_backend_call_given_up_at_its_deadline_counts_as_a_deadline() {
        let metrics = Arc::new(Metrics::new());
        let backend =
            Arc::new(InMemoryManager::new(Naming::default()).with_latency(Duration::from_secs(60)));
        let timed = Timed::new(backend, metrics.clone());
        let late = tokio::time::timeout(Duration::from_secs(20), timed.list()).await;
        assert!(late.is_err(), "the call answered within its deadline");
        let text = metrics.encode();
        assert_eq!(
            sample(
                &text,
                "traefiker_backend_errors_total{operation=\"list\",kind=\"deadline\"}"
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "traefiker_backend_call_seconds_count{operation=\"list\"}"
            ),
            Some(1.0),
            "the abandoned call's time is observed too"
        );
    }

    #[derive(Debug)]
    struct Hangs;

    #[async_trait]
    impl ActivitySource for Hangs {
        fn name(&self) -> &str {
            "narrative_status"
        }

        async fn snapshot(&self, _: &[ActivityTarget]) -> Result<ActivitySnapshot, ActivityError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn activity_reads_count_failures_in_a_row_until_one_answers() {
        let metrics = Arc::new(Metrics::new());
        let scripted = Arc::new(ScriptedActivity::new("traefik"));
        let source = Watched::new(scripted.clone(), metrics.clone());
        let hanging = Watched::new(Arc::new(Hangs), metrics.clone());
        let failing = "traefiker_activity_consecutive_failures{source=\"traefik\"}";
        let errors = "traefiker_activity_reads_total{source=\"traefik\",outcome=\"error\"}";
        let oks = "traefiker_activity_reads_total{source=\"traefik\",outcome=\"ok\"}";
        let text = metrics.encode();
        assert_eq!(sample(&text, failing), Some(0.0), "{text}");
        assert_eq!(sample(&text, errors), Some(0.0), "{text}");
        for _ in 0..2 {
            scripted.push(Err(ActivityError::new("traefik", "down")));
        }
        assert!(source.snapshot(&[]).await.is_err());
        assert!(source.snapshot(&[]).await.is_err());
        let text = metrics.encode();
        assert_eq!(sample(&text, failing), Some(2.0), "{text}");
        assert_eq!(sample(&text, errors), Some(2.0), "{text}");
        assert!(source.snapshot(&[]).await.is_ok());
        let text = metrics.encode();
        assert_eq!(sample(&text, failing), Some(0.0), "{text}");
        assert_eq!(sample(&text, oks), Some(1.0), "{text}");
        assert_eq!(source.name(), "traefik");

        let gave_up = tokio::time::timeout(Duration::from_secs(65), hanging.snapshot(&[])).await;
        assert!(gave_up.is_err());
        let text = metrics.encode();
        assert_eq!(
            sample(
                &text,
                "traefiker_activity_consecutive_failures{source=\"narrative_status\"}"
            ),
            Some(1.0),
            "a read given up at its deadline is a failure\n{text}"
        );
    }

    #[derive(Debug)]
    struct Answers(Mutex<Vec<Result<Identity, AuthError>>>);

    #[async_trait]
    impl Authenticator for Answers {
        async fn validate(&self, _token: &str) -> Result<Identity, AuthError> {
            self.0.lock().unwrap().remove(0)
        }
    }

    #[tokio::test]
    async fn token_validations_are_counted_by_outcome() {
        let metrics = Arc::new(Metrics::new());
        let answers = vec![
            Ok(Identity {
                user: "alice".into(),
                custom_roles: Vec::new(),
            }),
            Err(AuthError::Rejected {
                url: "https://auth2".into(),
                message: "invalid token".into(),
            }),
            Err(AuthError::Unreachable {
                url: "https://auth2".into(),
                detail: "timed out".into(),
            }),
            Err(AuthError::Unreachable {
                url: "https://auth2".into(),
                detail: "502".into(),
            }),
        ];
        let auth = Counted::new(Arc::new(Answers(Mutex::new(answers))), metrics.clone());
        for _ in 0..4 {
            let _ = auth.validate("t").await;
        }
        let text = metrics.encode();
        for (outcome, n) in [("valid", 1.0), ("rejected", 1.0), ("unreachable", 2.0)] {
            let series = format!("traefiker_auth_validations_total{{outcome=\"{outcome}\"}}");
            assert_eq!(sample(&text, &series), Some(n), "{series} in\n{text}");
        }
    }

    #[test]
    fn configured_and_standing_values_are_exported() {
        let metrics = Metrics::new();
        let text = metrics.encode();
        for series in [
            "traefiker_ready",
            "traefiker_reaper_last_cycle_timestamp_seconds",
            "traefiker_max_narratives",
            "traefiker_connects_total{outcome=\"error\"}",
        ] {
            assert_eq!(sample(&text, series), Some(0.0), "{series} in\n{text}");
        }
        let started = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        metrics.configured(started, Duration::from_secs(60), Some(400));
        metrics.standing(Standing {
            ready: true,
            user_narratives: 7,
            last_cycle: Some(started + chrono::Duration::seconds(90)),
        });
        let text = metrics.encode();
        for (series, value) in [
            ("traefiker_start_time_seconds", 1_700_000_000.0),
            ("traefiker_reaper_interval_seconds", 60.0),
            ("traefiker_max_narratives", 400.0),
            ("traefiker_ready", 1.0),
            ("traefiker_user_narratives", 7.0),
            (
                "traefiker_reaper_last_cycle_timestamp_seconds",
                1_700_000_090.0,
            ),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
    }

    #[test]
    fn narratives_reaped_while_unanswered_are_counted_apart() {
        use traefiker_core::{PoolReport, ReapMode, ServiceName};

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
