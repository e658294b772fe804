//! The simulated world around the real `Lifecycle`s: one Rancher-like in-memory backend with
//! seeded faults, a clock driven by tokio's paused time, seeded entropy, a membership the
//! workload changes, an activity source that reads the workload's truth, and a recorder
//! around the backend that logs what the invariants need.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use traefiker_core::testing::InMemoryManager;
use traefiker_core::{
    ActivityError, ActivitySnapshot, ActivitySource, ActivityTarget, Assignment, BackendInfo,
    Clock, ContainerManager, Entropy, ManagerError, Membership, Narrative, NarrativeKind,
    NarrativeState, Origin, Owner, ReplicaId, ServiceName, SessionId, SpawnSpec,
};

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wall-clock time that moves with tokio's (paused) time.
#[derive(Debug)]
pub struct SimClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl SimClock {
    pub fn new() -> Self {
        Self {
            base: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        self.base
            + chrono::Duration::from_std(self.start.elapsed()).unwrap_or(chrono::Duration::MAX)
    }
}

/// Randomness from the run's seed.
#[derive(Debug)]
pub struct SeededEntropy(Mutex<StdRng>);

impl SeededEntropy {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(StdRng::seed_from_u64(seed)))
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, buf: &mut [u8]) {
        lock(&self.0).fill(buf);
    }
}

/// Which replicas are alive, as the orchestrator would say; `down` makes it unknown.
#[derive(Debug, Default)]
pub struct Members {
    pub alive: BTreeSet<ReplicaId>,
    pub down: bool,
}

#[derive(Debug)]
pub struct SimMembership(pub Arc<Mutex<Members>>);

#[async_trait]
impl Membership for SimMembership {
    async fn identity(&self) -> Result<Option<ReplicaId>, ManagerError> {
        Ok(None)
    }

    async fn peers(&self) -> Result<Vec<ReplicaId>, ManagerError> {
        let members = lock(&self.0);
        if members.down {
            return Err(ManagerError::Unavailable {
                backend: "metadata".into(),
                detail: "down".into(),
            });
        }
        Ok(members.alive.iter().cloned().collect())
    }
}

/// Who is really active, as the workload sets it.
#[derive(Debug, Default)]
pub struct Truth {
    pub active: BTreeSet<ServiceName>,
    pub outage: bool,
}

/// Why the workload called into a lifecycle, for the recorder (a task-local, so calls made
/// inside a reaper cycle are known as the reaper's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Reap,
    Shutdown,
    Other,
}

tokio::task_local! {
    pub static REASON: Reason;
}

/// One answer a user got.
#[derive(Clone, Debug)]
pub struct Grant {
    pub at: DateTime<Utc>,
    pub replica: usize,
    pub user: String,
    pub session: SessionId,
}

/// One removal of a container that was running as a user's, made by a reaper cycle.
#[derive(Clone, Debug)]
pub struct Reaped {
    /// When the removal was answered.
    pub at: DateTime<Utc>,
    /// When it was sent: only a look sent before it can have informed it.
    pub asked: DateTime<Utc>,
    pub replica: usize,
    pub name: ServiceName,
    pub session: SessionId,
}

/// One activity read.
#[derive(Clone, Debug)]
pub struct Read {
    pub at: DateTime<Utc>,
    pub replica: usize,
    pub active: BTreeSet<String>,
    pub failed: bool,
}

/// When a call was sent and when it was answered: it took effect somewhere between.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// Everything the invariants look at.
#[derive(Debug, Default)]
pub struct Log {
    pub grants: Vec<Grant>,
    pub reaped: Vec<Reaped>,
    pub reads: Vec<Read>,
    /// When each answered `find` was sent, per (replica, name).
    pub finds: BTreeMap<(usize, ServiceName), Vec<DateTime<Utc>>>,
    /// Answered marks per session (by its text: the simulation's own bookkeeping): when each
    /// was sent and when answered.
    pub marks: BTreeMap<String, Vec<Span>>,
    pub trace: Vec<String>,
    /// Shutdowns by user: when each began and, once done, ended.
    pub shutdowns: Vec<(String, DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// Containers that stopped on their own (zombies), by session, and when.
    pub crashes: Vec<(SessionId, DateTime<Utc>)>,
    /// Waiting containers one replica made and another assigned (a shared pool).
    pub shared_assigns: usize,
}

impl Log {
    /// Whether something outside traefiker's control removed or stopped the container of
    /// `session` given to `user` since `since`: the user's own shutdown (through any replica),
    /// or the container's crash (a crashed waiting container may still be handed out once by
    /// a replica that has not listed since; the user's next request replaces it).
    pub fn gone_since(&self, user: &str, session: &SessionId, since: DateTime<Utc>) -> bool {
        self.shutdowns
            .iter()
            .any(|(u, _, end)| u == user && end.is_none_or(|e| e >= since))
            || self.crashes.iter().any(|(s, _)| s == session)
    }
}

/// Traefik's metrics as the workload sets them.
#[derive(Debug)]
pub struct SimActivity {
    pub truth: Arc<Mutex<Truth>>,
    pub log: Arc<Mutex<Log>>,
    pub clock: Arc<SimClock>,
    pub replica: usize,
}

#[async_trait]
impl ActivitySource for SimActivity {
    fn name(&self) -> &str {
        "traefik"
    }

    async fn snapshot(
        &self,
        targets: &[ActivityTarget],
    ) -> Result<ActivitySnapshot, ActivityError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let truth = lock(&self.truth);
        let active: BTreeSet<String> = truth.active.iter().map(|s| s.to_string()).collect();
        lock(&self.log).reads.push(Read {
            at: self.clock.now(),
            replica: self.replica,
            active: active.clone(),
            failed: truth.outage,
        });
        if truth.outage {
            return Err(ActivityError::new("traefik", "outage"));
        }
        Ok(targets
            .iter()
            .filter(|t| active.contains(&t.service))
            .map(|t| (t.service.clone(), traefiker_core::Activity::Active))
            .collect())
    }
}

/// One replica's view of the backend: logs what the invariants need, and once the replica
/// is dead (crashed), behaves as a dead process's calls do: a request that reached the
/// backend has taken effect, one still on its way never arrives, and nothing new is sent
/// (the second request of a read-then-rename included).
#[derive(Debug)]
pub struct Recorder {
    pub inner: Arc<InMemoryManager>,
    pub replica: usize,
    pub id: ReplicaId,
    pub log: Arc<Mutex<Log>>,
    pub clock: Arc<SimClock>,
    pub dead: Arc<AtomicBool>,
    pub died: tokio::sync::watch::Receiver<bool>,
}

fn dead_error() -> ManagerError {
    ManagerError::Unavailable {
        backend: "sim".into(),
        detail: "this replica is dead".into(),
    }
}

impl Recorder {
    fn gone(&self) -> Result<(), ManagerError> {
        if self.dead.load(Ordering::Relaxed) {
            Err(dead_error())
        } else {
            Ok(())
        }
    }

    /// Runs a backend call, dropped at its current point if the replica dies meanwhile.
    async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ManagerError>>,
    ) -> Result<T, ManagerError> {
        self.gone()?;
        let mut died = self.died.clone();
        tokio::select! {
            biased;
            _ = died.wait_for(|d| *d) => Err(dead_error()),
            result = call => {
                self.gone()?;
                result
            }
        }
    }
}

#[async_trait]
impl ContainerManager for Recorder {
    async fn verify(&self) -> Result<BackendInfo, ManagerError> {
        let r = self.guarded(self.inner.verify()).await;
        r
    }

    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
        self.gone()?;
        // When it was sent: the backend reads somewhere between then and the answer.
        let sent = self.clock.now();
        let r = self.guarded(self.inner.find(name)).await;
        if let Ok(found) = &r {
            let line = format!(
                "[{}]   #{} found {} (sent {}, mark {:?})",
                self.clock.now().format("%H:%M:%S%.3f"),
                self.replica,
                name,
                sent.format("%H:%M:%S%.3f"),
                found
                    .as_ref()
                    .and_then(|n| n.origin.as_ref())
                    .map(|o| o.at.format("%H:%M:%S%.3f").to_string())
            );
            lock(&self.log).trace.push(line);
            lock(&self.log)
                .finds
                .entry((self.replica, name.clone()))
                .or_default()
                .push(sent);
        }
        r
    }

    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        let r = self.guarded(self.inner.list()).await;
        r
    }

    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        let r = self.guarded(self.inner.create(spec)).await;
        r
    }

    async fn assign(
        &self,
        narrative: &Narrative,
        assignment: &Assignment,
    ) -> Result<Narrative, ManagerError> {
        let r = self.guarded(self.inner.assign(narrative, assignment)).await;
        if r.is_ok() && narrative.replica.as_ref() != Some(&self.id) {
            lock(&self.log).shared_assigns += 1;
        }
        r
    }

    async fn mark_connected(
        &self,
        narrative: &Narrative,
        origin: &Origin,
    ) -> Result<Narrative, ManagerError> {
        // The mark takes effect somewhere between when it is sent and when it is answered.
        let sent = self.clock.now();
        let r = self
            .guarded(self.inner.mark_connected(narrative, origin))
            .await;
        if r.is_ok() {
            lock(&self.log)
                .marks
                .entry(narrative.session.expose().to_owned())
                .or_default()
                .push((sent, self.clock.now()));
        }
        r
    }

    async fn stamp_owner(
        &self,
        narrative: &Narrative,
        owner: &Owner,
    ) -> Result<Narrative, ManagerError> {
        let r = self.guarded(self.inner.stamp_owner(narrative, owner)).await;
        r
    }

    fn conditional(&self) -> bool {
        self.inner.conditional()
    }

    async fn remove(&self, narrative: &Narrative) -> Result<(), ManagerError> {
        let before = self
            .inner
            .containers()
            .into_iter()
            .find(|n| n.id == narrative.id);
        let asked = self.clock.now();
        let r = self.guarded(self.inner.remove(narrative)).await;
        let reason = REASON.try_with(|r| *r).unwrap_or(Reason::Other);
        if let (Ok(()), Some(before)) = (&r, before) {
            if reason == Reason::Reap
                && before.kind == NarrativeKind::User
                && before.state == NarrativeState::Running
            {
                let mut log = lock(&self.log);
                let line = format!(
                    "[{}]   #{} reaped {} {} (container {}, asked as {})",
                    self.clock.now().format("%H:%M:%S%.3f"),
                    self.replica,
                    before.name,
                    before.session,
                    before.id,
                    narrative.name,
                );
                log.trace.push(line);
                log.reaped.push(Reaped {
                    at: self.clock.now(),
                    asked,
                    replica: self.replica,
                    name: before.name.clone(),
                    session: before.session.clone(),
                });
            }
        }
        r
    }

    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        let r = self.guarded(self.inner.zombies()).await;
        r
    }

    fn traefik_service(&self, narrative_name: &ServiceName) -> String {
        self.inner.traefik_service(narrative_name)
    }
}
