//! Keeping the prespawn pool (SPEC §5, §9): this replica's waiting containers, labelled with
//! its id, at exactly the target size, of the current image, ready before they are handed
//! out; replaced in the background, with backoff while fills fail; removed when the replica
//! retires.
//!
//! On a shared pool (conditional writes, SPEC §12) the count is still per replica: each keeps
//! its own target of waiting containers it made, replaces those another replica assigned as
//! it replaces its own, and removes only its own (with the version it read, so one another
//! replica assigned meanwhile stays). The site's pool is the sum of the replicas' targets,
//! as on a partitioned pool, and no replica needs to know what the others count.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;

use chrono::{DateTime, Utc};

use super::{at_most_parallel, lock, Known, Lifecycle, UnreadyWarning};
use crate::error::{Error, ManagerError};
use crate::names::NarrativeKind;
use crate::narrative::{Narrative, NarrativeState, SpawnSpec};
use crate::pool::Slot;
use crate::reaper::PoolReport;
use crate::rules::REPLICA_LABEL;

/// How often the filler of a pool that follows demand looks whether its target moved with
/// time alone (a schedule window, a busy time of past weeks, a raised target falling back).
pub const LOOK_AGAIN: Duration = Duration::from_secs(15);

fn report_ok(report: &PoolReport) -> bool {
    report.failures.is_empty()
}

impl Lifecycle {
    /// Brings this replica's pool to exactly its target ([`Lifecycle::pool_target`]: `pool_size`,
    /// or what demand asks for between it and `pool_max`) of ready waiting containers of the
    /// current image: removes outdated, excess and never-ready ones (and waiting containers
    /// the Python version left, which nobody assigns), starts the missing ones, checks the
    /// new ones answer. Safe to repeat; concurrent calls decide one after the other and
    /// count each other's creates in flight.
    pub async fn fill_pool(&self) -> Result<PoolReport, Error> {
        self.fill(true).await
    }

    /// The pool step, then the wait for every step's creates in flight, so the pool is
    /// settled when it returns; `list` is false when the caller (a reaper cycle) has just
    /// listed.
    pub(super) async fn fill(&self, list: bool) -> Result<PoolReport, Error> {
        let report = self.fill_step(list, None).await;
        let mut creating = self.inner.creating.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = creating.wait_for(|n| *n == 0).await;
        report
    }

    /// One pool step. Steps decide one at a time (the pool lock), but a step's creates run
    /// after it lets go: the next step, woken by the next new user, counts them as in flight
    /// and decides at once instead of waiting a cold start for them. `deciding` counts a
    /// filler's step until it lets the lock go.
    async fn fill_step(
        &self,
        list: bool,
        deciding: Option<Counted<'_>>,
    ) -> Result<PoolReport, Error> {
        let mut report = PoolReport::default();
        let guard = self.inner.pool_lock.lock().await;
        if self.inner.retiring.load(Ordering::Relaxed) {
            return Ok(report);
        }
        if list {
            self.narratives().await?;
        }
        let Some(image) = self.image() else {
            report.failures.push(Error::NoImage.to_string());
            return Ok(report);
        };
        self.check_readiness().await;

        let target = self.target_now().size;
        let now = self.inner.clock.now();
        let ready_within = chrono::Duration::from_std(self.inner.config.ready_timeout)
            .unwrap_or(chrono::Duration::MAX);
        let (plan, unlabelled) = {
            let mut known = lock(&self.inner.known);
            let gen = known.bump();
            let plan = known.pool.plan(&image, target, now, ready_within, gen);
            let unlabelled: Vec<Narrative> = known
                .foreign
                .iter()
                .filter(|n| n.replica.is_none())
                .cloned()
                .collect();
            (plan, unlabelled)
        };

        self.note_unready(&plan.unready, now);
        let removals = plan
            .outdated
            .iter()
            .map(|n| (n, Removal::Outdated))
            .chain(plan.unready.iter().map(|n| (n, Removal::Unready)))
            .chain(plan.excess.iter().map(|n| (n, Removal::Excess)))
            .chain(plan.retry.iter().map(|n| (n, Removal::Retry)))
            .chain(unlabelled.iter().map(|n| (n, Removal::Unlabelled)));
        let removed: Vec<(Removal, &Narrative, Result<(), ManagerError>)> = at_most_parallel(
            removals
                .map(|(n, why)| {
                    async move {
                        (
                            why,
                            n,
                            self.call("remove", self.inner.manager.remove(n)).await,
                        )
                    }
                    .boxed()
                })
                .collect(),
        )
        .await;
        for (why, narrative, result) in removed {
            match result {
                Ok(()) => {
                    let mut known = lock(&self.inner.known);
                    let gen = known.bump();
                    known.pool.removed(&narrative.id, gen);
                    known.foreign.retain(|f| f.id != narrative.id);
                    match why {
                        Removal::Outdated | Removal::Unlabelled => report.outdated_removed += 1,
                        Removal::Excess | Removal::Unready | Removal::Retry => {
                            report.excess_removed += 1
                        }
                    }
                }
                // Changed since it was read: on a shared pool another replica gave it to a
                // user (the removal carried the version read, so it stays). Forgotten; a
                // listing brings it back if it still waits.
                Err(ManagerError::Conflict { .. }) => {
                    let mut known = lock(&self.inner.known);
                    let gen = known.bump();
                    known.pool.removed(&narrative.id, gen);
                    known.foreign.retain(|f| f.id != narrative.id);
                }
                Err(e) => report
                    .failures
                    .push(format!("remove {}: {e}", narrative.name)),
            }
        }

        let specs: Vec<SpawnSpec> = (0..plan.missing)
            .map(|_| self.waiting_spec(&image))
            .collect();
        {
            let mut known = lock(&self.inner.known);
            for spec in &specs {
                known.pool.begin_create(spec.name.clone());
            }
        }
        // Counted before the pool lock goes: `retire`, which takes the pool lock first, then
        // waits for these creates.
        let _creating = Counted::count(&self.inner.creating);
        drop(guard);
        drop(deciding);
        // Each create's own start, not the step's: creates beyond PARALLEL wait their turn,
        // which is no part of a cold start.
        let created: Vec<(SpawnSpec, Sent, Result<Narrative, ManagerError>)> = at_most_parallel(
            specs
                .into_iter()
                .map(|spec| {
                    async move {
                        let at = self.inner.clock.now();
                        let result = self.call("create", self.inner.manager.create(&spec)).await;
                        let took = self.inner.clock.now().signed_duration_since(at);
                        (spec, Sent { at, took }, result)
                    }
                    .boxed()
                })
                .collect(),
        )
        .await;
        let instant = self.inner.readiness.is_none();
        let mut answered = Vec::new();
        for (spec, sent, result) in created {
            match result {
                Ok(narrative) => {
                    report.created += 1;
                    let ready = instant && narrative.state == NarrativeState::Running;
                    answered.push((narrative.id.clone(), sent, ready));
                    let mut known = lock(&self.inner.known);
                    if ready {
                        known.unready.ready();
                    }
                    let gen = known.bump();
                    known.pool.created(narrative, ready, gen, now);
                }
                Err(e) => {
                    lock(&self.inner.known).pool.create_failed(&spec.name);
                    report.failures.push(format!("create {}: {e}", spec.name));
                    self.recover_create(&spec).await;
                }
            }
        }
        self.creates_answered(&answered);
        self.check_readiness().await;
        let known = lock(&self.inner.known);
        report.waiting = known.pool.waiting(&image);
        report.unready = known.pool.unready_own();
        Ok(report)
    }

    /// Counts waiting containers replaced for never becoming ready, and says so once per
    /// streak, with the likely cause.
    fn note_unready(&self, replaced: &[Narrative], now: DateTime<Utc>) {
        let Some(latest) = replaced.last() else {
            return;
        };
        let likely_cause = match &self.inner.readiness {
            Some(readiness) => readiness.likely_cause().to_owned(),
            None => "the backend never reported it running (and healthy, where it has a health \
                     check): look at the backend's record and logs of the container"
                .to_owned(),
        };
        let waited = self.inner.config.ready_timeout.as_secs();
        let mut known = lock(&self.inner.known);
        let unready = &mut known.unready;
        let first = unready.last.is_none();
        let answer = unready
            .answers
            .get(&latest.id)
            .cloned()
            .unwrap_or_else(|| "no answer: it was never reported running".to_owned());
        for n in replaced {
            unready.answers.remove(&n.id);
        }
        unready.count += replaced.len();
        let warning = UnreadyWarning {
            count: unready.count,
            narrative: latest.name.clone(),
            address: latest.address.clone(),
            answer,
            likely_cause,
            since: unready.last.as_ref().map_or(now, |w| w.since),
        };
        if first {
            tracing::warn!(
                service = %warning.narrative,
                address = warning.address.as_deref().unwrap_or("none"),
                answer = %warning.answer,
                likely_cause = %warning.likely_cause,
                ready_timeout_secs = waited,
                "waiting narratives do not become ready: new users get cold starts; said once until one becomes ready"
            );
        }
        unready.last = Some(warning);
    }

    fn waiting_spec(&self, image: &str) -> SpawnSpec {
        let session = self.inner.entropy.session();
        let mut labels = self.inner.config.routing.labels(session.short(), &session);
        labels.insert(
            REPLICA_LABEL.to_owned(),
            self.inner.config.replica.as_str().to_owned(),
        );
        SpawnSpec {
            name: self.inner.config.naming.prespawn_container(&session),
            labels,
            session,
            image: image.to_owned(),
            kind: NarrativeKind::Prespawned,
            env: self.inner.config.narrative_env.clone(),
            origin: None,
            owner: None,
        }
    }

    /// A create that failed may have happened (a lost answer): find it by name and take it
    /// into the pool, so nothing is left behind and the next step counts it. If the lookup
    /// fails too, the next listing brings it in by its replica label.
    async fn recover_create(&self, spec: &SpawnSpec) {
        if let Ok(Some(found)) = self.call("find", self.inner.manager.find(&spec.name)).await {
            tracing::info!(service = %spec.name, "a create that reported failure happened; keeping it");
            let now = self.inner.clock.now();
            let ready = self.inner.readiness.is_none() && found.state == NarrativeState::Running;
            let mut known = lock(&self.inner.known);
            let gen = known.bump();
            known.pool.begin_create(found.name.clone());
            known.pool.created(found, ready, gen, now);
        }
    }

    /// Asks the readiness check about every waiting container that has not answered yet.
    async fn check_readiness(&self) {
        let Some(readiness) = self.inner.readiness.clone() else {
            return;
        };
        let unready = lock(&self.inner.known).pool.unready();
        let answers: Vec<(String, Result<(), String>)> = at_most_parallel(
            unready
                .into_iter()
                .filter(|n| n.state == NarrativeState::Running)
                .map(|n| {
                    let readiness = readiness.clone();
                    async move { (n.id.clone(), readiness.check(&n).await) }.boxed()
                })
                .collect(),
        )
        .await;
        let mut ready = Vec::new();
        {
            let mut known = lock(&self.inner.known);
            for (id, answer) in answers {
                match answer {
                    Ok(()) => {
                        let gen = known.bump();
                        known.pool.mark_ready(&id, gen);
                        known.unready.ready();
                        ready.push(id);
                    }
                    Err(why) => {
                        known.unready.answers.insert(id, why);
                    }
                }
            }
            // Only the answers of containers still waiting to be ready are kept.
            let Known { pool, unready, .. } = &mut *known;
            unready
                .answers
                .retain(|id, _| pool.slot(id) == Some(Slot::Waiting { ready: false }));
        }
        if !ready.is_empty() {
            self.became_ready(&ready);
        }
    }

    /// Refills the pool whenever a connect used a waiting container, a new user arrived or
    /// the image changed, until `shutdown` completes; where the pool follows demand, also
    /// whenever its target moved with time (every [`LOOK_AGAIN`]). A step starts at once even
    /// while an earlier one waits for its creates. While fills fail it waits with
    /// exponential backoff and jitter between attempts; while new containers have not
    /// answered it looks again soon.
    pub async fn run_pool_filler(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let (min, max) = self.inner.config.fill_backoff;
        let builder = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_jitter()
            .with_jitter_seed(self.inner.entropy.below(usize::MAX) as u64)
            .without_max_times();
        let mut backoff = None;
        let moves = self.target_moves();
        let mut look_again = tokio::time::interval(LOOK_AGAIN);
        look_again.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut deciding = self.inner.deciding.subscribe();
        let mut steps = FuturesUnordered::new();
        loop {
            // A wake-up while a step decides waits for it (the permit is kept): the step
            // after it sees everything up to then.
            let idle = *deciding.borrow_and_update() == 0;
            tokio::select! {
                biased;
                _ = &mut shutdown => return,
                Some(outcome) = steps.next(), if !steps.is_empty() => {
                    match outcome {
                        Ok(report) if report_ok(&report) => {
                            backoff = None;
                            tracing::debug!(
                                created = report.created,
                                waiting = report.waiting,
                                "pool filled"
                            );
                            if report.unready > 0 {
                                self.fill_after(min);
                            }
                        }
                        outcome => {
                            match &outcome {
                                Ok(report) => {
                                    tracing::warn!(failures = ?report.failures, "pool fill incomplete")
                                }
                                Err(e) => tracing::warn!(error = %e, "pool fill failed"),
                            }
                            let delay = backoff
                                .get_or_insert_with(|| builder.build())
                                .next()
                                .unwrap_or(max);
                            self.fill_after(delay);
                        }
                    }
                }
                _ = self.inner.pool_wanted.notified(), if idle => {
                    steps.push(self.fill_step(true, Some(Counted::count(&self.inner.deciding))));
                }
                _ = deciding.changed(), if !idle => {}
                _ = look_again.tick(), if moves && idle => {
                    if self.target_changed() {
                        steps.push(self.fill_step(true, Some(Counted::count(&self.inner.deciding))));
                    }
                }
            }
        }
    }

    fn fill_after(&self, delay: Duration) {
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

    /// Stops keeping a pool and removes this replica's waiting containers: graceful shutdown
    /// (SPEC §9), after the pool filler has stopped. Assignments in flight finish first
    /// (bounded by the call deadline). Returns how many were removed.
    pub async fn retire(&self) -> usize {
        self.inner.retiring.store(true, Ordering::Relaxed);
        let _guard = self.inner.pool_lock.lock().await;
        let mut creating = self.inner.creating.subscribe();
        let _ = creating.wait_for(|n| *n == 0).await;
        let deadline = tokio::time::Instant::now() + self.inner.config.call_timeout;
        while lock(&self.inner.known).pool.claims() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let leaving = {
            let mut known = lock(&self.inner.known);
            let gen = known.bump();
            known.pool.retire(gen)
        };
        let removed: Vec<(&Narrative, Result<(), ManagerError>)> = at_most_parallel(
            leaving
                .iter()
                .map(|n| {
                    async move { (n, self.call("remove", self.inner.manager.remove(n)).await) }
                        .boxed()
                })
                .collect(),
        )
        .await;
        let mut done = 0;
        for (n, result) in removed {
            match result {
                Ok(()) => done += 1,
                Err(ManagerError::Conflict { .. }) => {
                    tracing::debug!(service = %n.name, "a waiting narrative of this replica was given to a user meanwhile; it stays")
                }
                Err(e) => {
                    tracing::warn!(service = %n.name, error = %e, "could not remove a waiting narrative of this replica")
                }
            }
        }
        tracing::info!(
            removed = done,
            of = leaving.len(),
            "removed this replica's waiting narratives"
        );
        done
    }
}

/// When a create was sent, and how long it took to answer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sent {
    pub(super) at: DateTime<Utc>,
    pub(super) took: chrono::Duration,
}

/// One pool step counted while it lives: its creates in flight, or a filler's step deciding.
struct Counted<'a>(&'a tokio::sync::watch::Sender<usize>);

impl<'a> Counted<'a> {
    fn count(counter: &'a tokio::sync::watch::Sender<usize>) -> Self {
        counter.send_modify(|n| *n += 1);
        Self(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

#[derive(Clone, Copy, Debug)]
enum Removal {
    Outdated,
    Unlabelled,
    Excess,
    Unready,
    Retry,
}
