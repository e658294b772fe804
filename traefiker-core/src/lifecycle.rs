//! The lifecycle: connecting users to narratives, the prespawn pool, shutdown, status and the
//! reaper cycle (SPEC §3–§6), over the [`ContainerManager`], [`ActivitySource`] and
//! [`ActivityStore`] contracts.
//!
//! # The request path
//!
//! [`Lifecycle::connect`] makes at most one backend call in the common cases: a returning user
//! costs one `find`; a new user costs one `assign` of a waiting container (or one `create`
//! when the pool is empty). That is safe because names are unique in every backend: if the
//! user's container exists after all (another replica made it), the `assign` or `create`
//! fails with `NameTaken` and the existing container is adopted. Refilling the pool happens in
//! the background ([`Lifecycle::run_pool_filler`]), never on the caller's path.
//!
//! # Concurrency
//!
//! Concurrent `connect`s for one user share a single in-flight operation and its answer, so a
//! reload storm creates at most one container. A waiting container is claimed before it is
//! assigned, so two users never receive the same one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::activity::{join_activity, ActivitySource, ActivityTarget};
use crate::clock::Clock;
use crate::error::{Error, ManagerError};
use crate::manager::ContainerManager;
use crate::names::{Naming, NarrativeKind, ServiceName, SessionId, UserId};
use crate::narrative::{Assignment, Narrative, NarrativeState, Origin, SpawnSpec};
use crate::reaper::{plan_idle, PoolReport, ReapMode, ReapReport, SkipReason, Tracked};
use crate::rules::Routing;
use crate::store::ActivityStore;

/// The lifecycle's settings, validated by their own types.
#[derive(Clone, Debug)]
pub struct LifecycleConfig {
    /// Container name templates.
    pub naming: Naming,
    /// Traefik hosts, entrypoints and rule syntax.
    pub routing: Routing,
    /// Waiting containers to keep (`num_prespawn`); 0 disables the pool.
    pub pool_size: usize,
    /// Idle time after which a user's narrative is reaped (`reaper_timeout_secs`).
    pub idle_timeout: Duration,
    /// Environment given to every narrative (`NARRENV_*`, prefix stripped).
    pub narrative_env: BTreeMap<String, String>,
    /// Most user narratives (`max_narratives`); a new user past it gets `Error::AtCapacity`.
    pub max_narratives: Option<usize>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            naming: Naming::default(),
            routing: Routing::default(),
            pool_size: 5,
            idle_timeout: Duration::from_secs(600),
            narrative_env: BTreeMap::new(),
            max_narratives: None,
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

/// One narrative with its last-seen instant, for status pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEntry {
    /// The narrative as the backend reports it.
    pub narrative: Narrative,
    /// When it was last seen active, if tracked.
    pub last_seen: Option<DateTime<Utc>>,
}

type SharedConnect = Shared<BoxFuture<'static, Result<Connection, Error>>>;

/// What this process knows of the backend between listings; the backend stays the truth.
#[derive(Debug, Default)]
struct Known {
    /// User containers known to exist: a returning user costs a `find`, others go straight to
    /// an assignment.
    users: HashSet<ServiceName>,
    /// Waiting containers not claimed by a request.
    waiting: Vec<Narrative>,
    /// Waiting containers being assigned right now.
    claimed: HashSet<String>,
    /// Ids this process assigned; a listing taken before the rename must not bring them back
    /// into `waiting`.
    assigned: HashSet<String>,
}

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
    clock: Arc<dyn Clock>,
    config: LifecycleConfig,
    image: RwLock<Option<String>>,
    known: Mutex<Known>,
    connecting: Mutex<HashMap<ServiceName, SharedConnect>>,
    pool_lock: tokio::sync::Mutex<()>,
    reap_lock: tokio::sync::Mutex<()>,
    pool_wanted: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here is a few map operations that leave the data consistent at
    // each step, so a poisoned lock's data is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn random_index(len: usize) -> usize {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0;
    }
    (u64::from_le_bytes(bytes) % len as u64) as usize
}

impl Lifecycle {
    /// A lifecycle over `manager`, reading activity from every source in `sources`, with
    /// last-seen times in `store`. `image` is the image new narratives start from
    /// (`<image_name>:<tag>`), if known yet; see [`Lifecycle::set_image`].
    pub fn new(
        manager: Arc<dyn ContainerManager>,
        sources: Vec<Arc<dyn ActivitySource>>,
        store: Arc<dyn ActivityStore>,
        clock: Arc<dyn Clock>,
        config: LifecycleConfig,
        image: Option<String>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                manager,
                sources,
                store,
                clock,
                config,
                image: RwLock::new(image),
                known: Mutex::new(Known::default()),
                connecting: Mutex::new(HashMap::new()),
                pool_lock: tokio::sync::Mutex::new(()),
                reap_lock: tokio::sync::Mutex::new(()),
                pool_wanted: Notify::new(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &LifecycleConfig {
        &self.inner.config
    }

    /// The backend.
    pub fn manager(&self) -> &Arc<dyn ContainerManager> {
        &self.inner.manager
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

    /// Waiting containers of the current image this process knows of.
    pub fn pool_waiting(&self) -> usize {
        let image = self.image();
        lock(&self.inner.known)
            .waiting
            .iter()
            .filter(|n| image.as_deref().is_none_or(|i| n.image == i))
            .count()
    }

    /// Finds or makes `user`'s narrative and returns its session.
    ///
    /// `client_ip` is written into the container's description. Concurrent calls for one user
    /// share one operation and all receive the same session.
    pub async fn connect(
        &self,
        user: &UserId,
        client_ip: Option<String>,
    ) -> Result<Connection, Error> {
        let name = self.inner.config.naming.user_container(user);
        let shared = {
            let mut connecting = lock(&self.inner.connecting);
            if let Some(existing) = connecting.get(&name) {
                existing.clone()
            } else {
                let this = self.clone();
                let user = user.clone();
                let key = name.clone();
                let span = tracing::info_span!("connect", service = %key);
                // Spawned, so a caller that goes away (a closed browser tab) cannot leave a
                // rename half-observed: the operation finishes and later callers get its answer.
                let task = tokio::spawn(
                    async move {
                        let result = this.connect_once(&user, key.clone(), client_ip).await;
                        lock(&this.inner.connecting).remove(&key);
                        result
                    }
                    .instrument(span),
                );
                let fut = task
                    .map(|joined| {
                        joined.unwrap_or_else(|e| {
                            Err(Error::Backend(ManagerError::Unavailable {
                                backend: "lifecycle".into(),
                                detail: format!("connect task failed: {e}"),
                            }))
                        })
                    })
                    .boxed()
                    .shared();
                connecting.insert(name.clone(), fut.clone());
                fut
            }
        };
        shared.await
    }

    async fn connect_once(
        &self,
        user: &UserId,
        name: ServiceName,
        client_ip: Option<String>,
    ) -> Result<Connection, Error> {
        let manager = &self.inner.manager;
        if lock(&self.inner.known).users.contains(&name) {
            if let Some(existing) = manager.find(&name).await? {
                return Ok(self.existing(existing));
            }
            lock(&self.inner.known).users.remove(&name);
        }

        let origin = Origin {
            client_ip,
            at: self.inner.clock.now(),
        };
        let assignment = Assignment {
            name: name.clone(),
            origin: origin.clone(),
        };
        let attempts = lock(&self.inner.known).waiting.len().max(5);
        for attempt in 0..attempts {
            let Some(candidate) = self.claim_waiting() else {
                break;
            };
            let result = manager.assign(&candidate, &assignment).await;
            let outcome = self.settle_claim(&candidate, &result);
            match result {
                Ok(assigned) => {
                    tracing::info!(service = %name, from = %candidate.name, attempt, "assigned a waiting narrative");
                    self.inner.pool_wanted.notify_one();
                    lock(&self.inner.known).users.insert(name.clone());
                    return Ok(Connection {
                        name,
                        session: assigned.session,
                        outcome: ConnectOutcome::Assigned,
                    });
                }
                Err(ManagerError::NameTaken { .. }) => return self.adopt(name).await,
                Err(e @ ManagerError::Unavailable { .. }) => return Err(e.into()),
                Err(e) => {
                    tracing::info!(service = %name, from = %candidate.name, attempt, error = %e, kept = outcome, "could not assign a waiting narrative");
                }
            }
        }
        self.inner.pool_wanted.notify_one();

        let session = SessionId::generate();
        let router = self.inner.config.naming.router_for_user(user);
        let spec = SpawnSpec {
            name: name.clone(),
            labels: self.inner.config.routing.labels(&router, &session),
            session,
            image: self.image().ok_or(Error::NoImage)?,
            kind: NarrativeKind::User,
            env: self.inner.config.narrative_env.clone(),
            origin: Some(origin),
        };
        match manager.create(&spec).await {
            Ok(created) => {
                tracing::info!(service = %name, "created a narrative");
                lock(&self.inner.known).users.insert(name.clone());
                Ok(Connection {
                    name,
                    session: created.session,
                    outcome: ConnectOutcome::Created,
                })
            }
            Err(ManagerError::NameTaken { .. }) => self.adopt(name).await,
            Err(e) => Err(e.into()),
        }
    }

    fn existing(&self, narrative: Narrative) -> Connection {
        lock(&self.inner.known).users.insert(narrative.name.clone());
        Connection {
            name: narrative.name,
            session: narrative.session,
            outcome: ConnectOutcome::Existing,
        }
    }

    /// Another replica or an earlier request made the user's container: use it.
    async fn adopt(&self, name: ServiceName) -> Result<Connection, Error> {
        match self.inner.manager.find(&name).await? {
            Some(existing) => Ok(self.existing(existing)),
            None => Err(ManagerError::Unavailable {
                backend: "lifecycle".into(),
                detail: format!("{name} is taken but cannot be found (being removed?); retry"),
            }
            .into()),
        }
    }

    /// Takes a random waiting container of the current image out of the pool.
    fn claim_waiting(&self) -> Option<Narrative> {
        let image = self.image();
        let mut known = lock(&self.inner.known);
        let eligible: Vec<usize> = known
            .waiting
            .iter()
            .enumerate()
            .filter(|(_, n)| image.as_deref().is_none_or(|i| n.image == i))
            .map(|(i, _)| i)
            .collect();
        if eligible.is_empty() {
            return None;
        }
        let index = eligible[random_index(eligible.len())];
        let candidate = known.waiting.swap_remove(index);
        known.claimed.insert(candidate.id.clone());
        Some(candidate)
    }

    /// Releases a claim after an assignment attempt; returns whether the candidate went back
    /// into the pool.
    fn settle_claim(
        &self,
        candidate: &Narrative,
        result: &Result<Narrative, ManagerError>,
    ) -> bool {
        let mut known = lock(&self.inner.known);
        known.claimed.remove(&candidate.id);
        match result {
            Ok(_) => {
                known.assigned.insert(candidate.id.clone());
                false
            }
            // The candidate is untouched: the user's name was taken, or the backend failed
            // before acting. It can serve someone else.
            Err(ManagerError::NameTaken { .. } | ManagerError::Unavailable { .. }) => {
                if !known.waiting.iter().any(|w| w.id == candidate.id) {
                    known.waiting.push(candidate.clone());
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Removes `user`'s narrative and its activity record; `None` if there was none.
    pub async fn shutdown(&self, user: &UserId) -> Result<Option<ServiceName>, Error> {
        let name = self.inner.config.naming.user_container(user);
        let Some(narrative) = self.inner.manager.find(&name).await? else {
            return Ok(None);
        };
        self.inner.manager.remove(&narrative).await?;
        lock(&self.inner.known).users.remove(&name);
        self.inner
            .store
            .forget(&[self.inner.manager.traefik_service(&name)])?;
        tracing::info!(service = %name, "shut down a narrative");
        Ok(Some(name))
    }

    /// Every narrative the backend lists (one call), refreshing what this process knows of
    /// users and the pool.
    pub async fn narratives(&self) -> Result<Vec<Narrative>, Error> {
        let all = self.inner.manager.list().await?;
        self.absorb(&all);
        Ok(all)
    }

    /// Every narrative with its last-seen instant.
    pub async fn status(&self) -> Result<Vec<StatusEntry>, Error> {
        let all = self.narratives().await?;
        let records = self.inner.store.load()?;
        Ok(all
            .into_iter()
            .map(|narrative| {
                let service = self.inner.manager.traefik_service(&narrative.name);
                StatusEntry {
                    last_seen: records.get(&service).copied(),
                    narrative,
                }
            })
            .collect())
    }

    /// Starts tracking user narratives the store does not know yet, from now, without
    /// touching known idle clocks (start-up, SPEC §7).
    pub async fn track_existing(&self) -> Result<usize, Error> {
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
        self.inner.store.record(&new)?;
        Ok(new.len())
    }

    /// Updates what this process knows from a fresh listing.
    fn absorb(&self, all: &[Narrative]) {
        let mut known = lock(&self.inner.known);
        known.users = all
            .iter()
            .filter(|n| n.kind == NarrativeKind::User)
            .map(|n| n.name.clone())
            .collect();
        let user_ids: HashSet<&str> = all
            .iter()
            .filter(|n| n.kind == NarrativeKind::User)
            .map(|n| n.id.as_str())
            .collect();
        known.assigned.retain(|id| !user_ids.contains(id.as_str()));
        let waiting: Vec<Narrative> = all
            .iter()
            .filter(|n| {
                n.kind == NarrativeKind::Prespawned
                    && !matches!(n.state, NarrativeState::Removing | NarrativeState::Stopped)
            })
            .filter(|n| !known.claimed.contains(&n.id) && !known.assigned.contains(&n.id))
            .cloned()
            .collect();
        known.waiting = waiting;
    }

    /// Brings the pool to exactly `pool_size` waiting containers of the current image:
    /// removes outdated and excess ones, starts the missing ones. Safe to repeat; concurrent
    /// calls run one after the other.
    pub async fn fill_pool(&self) -> Result<PoolReport, Error> {
        let _guard = self.inner.pool_lock.lock().await;
        let manager = &self.inner.manager;
        self.narratives().await?;
        let mut report = PoolReport::default();
        let Some(image) = self.image() else {
            report.failures.push(Error::NoImage.to_string());
            return Ok(report);
        };
        let waiting = lock(&self.inner.known).waiting.clone();
        let (current, outdated): (Vec<Narrative>, Vec<Narrative>) =
            waiting.into_iter().partition(|n| n.image == image);
        let target = self.inner.config.pool_size;
        let excess: Vec<Narrative> = current.iter().skip(target).cloned().collect();

        for (narrative, is_outdated) in outdated
            .iter()
            .map(|n| (n, true))
            .chain(excess.iter().map(|n| (n, false)))
        {
            lock(&self.inner.known)
                .waiting
                .retain(|w| w.id != narrative.id);
            match manager.remove(narrative).await {
                Ok(()) if is_outdated => report.outdated_removed += 1,
                Ok(()) => report.excess_removed += 1,
                Err(e) => report
                    .failures
                    .push(format!("remove {}: {e}", narrative.name)),
            }
        }

        let missing = target.saturating_sub(current.len());
        let creations = (0..missing).map(|_| {
            let session = SessionId::generate();
            let name = self.inner.config.naming.prespawn_container(&session);
            let spec = SpawnSpec {
                labels: self.inner.config.routing.labels(session.short(), &session),
                name,
                session,
                image: image.clone(),
                kind: NarrativeKind::Prespawned,
                env: self.inner.config.narrative_env.clone(),
                origin: None,
            };
            async move { (manager.create(&spec).await, spec.name) }
        });
        for (result, name) in futures::future::join_all(creations).await {
            match result {
                Ok(created) => {
                    report.created += 1;
                    // A listing taken meanwhile (a status page, a cycle) may already hold it.
                    let mut known = lock(&self.inner.known);
                    if !known.waiting.iter().any(|w| w.id == created.id) {
                        known.waiting.push(created);
                    }
                }
                Err(e) => report.failures.push(format!("create {name}: {e}")),
            }
        }
        report.waiting = self.pool_waiting();
        Ok(report)
    }

    /// Refills the pool whenever a connect used a waiting container or the image changed,
    /// until `shutdown` completes. A failed fill is logged and retried after `retry`.
    pub async fn run_pool_filler(&self, retry: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.inner.pool_wanted.notified() => {}
            }
            match self.fill_pool().await {
                Ok(report) if report.failures.is_empty() => {
                    tracing::debug!(
                        created = report.created,
                        waiting = report.waiting,
                        "pool filled"
                    );
                }
                Ok(report) => {
                    tracing::warn!(failures = ?report.failures, "pool fill incomplete");
                    self.retry_later(retry);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pool fill failed");
                    self.retry_later(retry);
                }
            }
        }
    }

    fn retry_later(&self, delay: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            this.inner.pool_wanted.notify_one();
        });
    }

    /// Asks the pool filler to run (e.g. at start-up).
    pub fn request_pool_fill(&self) {
        self.inner.pool_wanted.notify_one();
    }

    /// One reaper cycle (SPEC §6): records activity, removes user narratives idle longer than
    /// the timeout and zombies, prunes vanished records, refreshes and tops up the pool.
    ///
    /// If any activity source fails, nothing is reaped for idleness: an outage never looks
    /// like idleness. The rest of the cycle still runs. A dry run changes nothing.
    pub async fn reap_cycle(&self, mode: ReapMode) -> Result<ReapReport, Error> {
        let _guard = self.inner.reap_lock.lock().await;
        let manager = &self.inner.manager;
        let mut report = ReapReport::new(mode);

        let all = self.narratives().await?;
        report.duplicates = duplicates(&all);

        let users: Vec<(&Narrative, Tracked)> = all
            .iter()
            .filter(|n| n.kind == NarrativeKind::User && n.state != NarrativeState::Removing)
            .map(|n| {
                (
                    n,
                    Tracked {
                        name: n.name.clone(),
                        service: manager.traefik_service(&n.name),
                    },
                )
            })
            .collect();
        let targets: Vec<ActivityTarget> = users
            .iter()
            .map(|(n, t)| ActivityTarget {
                service: t.service.clone(),
                address: n.address.clone(),
            })
            .collect();
        let answers =
            futures::future::join_all(self.inner.sources.iter().map(|s| s.snapshot(&targets)))
                .await;
        let joined = join_activity(&targets, answers);
        report.activity_failures = joined.failures.clone();

        let records = self.inner.store.load()?;
        let now = self.inner.clock.now();
        let timeout = chrono::Duration::from_std(self.inner.config.idle_timeout)
            .unwrap_or(chrono::Duration::MAX);
        let tracked: Vec<Tracked> = users.iter().map(|(_, t)| t.clone()).collect();
        let plan = plan_idle(now, timeout, &tracked, &records, &joined.per_service);
        report.skipped = plan
            .unknown
            .iter()
            .map(|n| (n.clone(), SkipReason::ActivityUnknown))
            .collect();

        let apply = mode == ReapMode::Apply;
        if apply {
            let touch: Vec<(String, DateTime<Utc>)> =
                plan.touch.iter().map(|s| (s.clone(), now)).collect();
            self.inner.store.record(&touch)?;
        }

        let mut forget = plan.prune.clone();
        for idle in &plan.reap {
            let Some((narrative, _)) = users.iter().find(|(n, _)| n.name == idle.name) else {
                continue;
            };
            if apply {
                if let Err(e) = manager.remove(narrative).await {
                    report
                        .skipped
                        .push((idle.name.clone(), SkipReason::RemoveFailed(e.to_string())));
                    continue;
                }
                lock(&self.inner.known).users.remove(&idle.name);
                tracing::info!(service = %idle.name, reason = "idle", "reaped a narrative");
            }
            forget.push(idle.service.clone());
            report.idle.push(idle.name.clone());
        }
        if apply {
            self.inner.store.forget(&forget)?;
            report.pruned = plan.prune.len();
        }

        match manager.zombies().await {
            Ok(zombies) => {
                for zombie in zombies {
                    if apply {
                        if let Err(e) = manager.remove(&zombie).await {
                            report
                                .failures
                                .push(format!("remove zombie {}: {e}", zombie.name));
                            continue;
                        }
                        tracing::info!(service = %zombie.name, reason = "zombie", "reaped a narrative");
                    }
                    report.zombies.push(zombie.name);
                }
            }
            Err(ManagerError::Unsupported { .. }) => {}
            Err(e) => report.failures.push(format!("list zombies: {e}")),
        }

        if apply {
            match self.fill_pool().await {
                Ok(pool) => report.pool = pool,
                Err(e) => report.failures.push(format!("fill pool: {e}")),
            }
        }
        Ok(report)
    }
}

/// Names held by more than one container.
fn duplicates(all: &[Narrative]) -> Vec<ServiceName> {
    let mut seen = HashMap::new();
    for n in all {
        *seen.entry(&n.name).or_insert(0usize) += 1;
    }
    let mut dups: Vec<ServiceName> = seen
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .map(|(name, _)| name.clone())
        .collect();
    dups.sort();
    dups
}
