//! Keeping the prespawn pool (SPEC §5, §9): this replica's waiting containers, labelled with
//! its id, at exactly the target size, of the current image, ready before they are handed
//! out; replaced in the background, with backoff while fills fail; removed when the replica
//! retires.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::FutureExt;

use super::{at_most_parallel, lock, Lifecycle};
use crate::error::{Error, ManagerError};
use crate::names::NarrativeKind;
use crate::narrative::{Narrative, NarrativeState, SpawnSpec};
use crate::reaper::PoolReport;
use crate::rules::REPLICA_LABEL;

impl Lifecycle {
    /// Brings this replica's pool to exactly `pool_size` ready waiting containers of the
    /// current image: removes outdated, excess and never-ready ones (and waiting containers
    /// the Python version left, which nobody assigns), starts the missing ones, checks the
    /// new ones answer. Safe to repeat; concurrent calls run one after the other.
    pub async fn fill_pool(&self) -> Result<PoolReport, Error> {
        self.fill(true).await
    }

    /// The pool step; `list` is false when the caller (a reaper cycle) has just listed.
    pub(super) async fn fill(&self, list: bool) -> Result<PoolReport, Error> {
        let _guard = self.inner.pool_lock.lock().await;
        let mut report = PoolReport::default();
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

        let now = self.inner.clock.now();
        let ready_within = chrono::Duration::from_std(self.inner.config.ready_timeout)
            .unwrap_or(chrono::Duration::MAX);
        let (plan, unlabelled) = {
            let mut known = lock(&self.inner.known);
            let gen = known.bump();
            let plan = known
                .pool
                .plan(&image, self.inner.config.pool_size, now, ready_within, gen);
            let unlabelled: Vec<Narrative> = known
                .foreign
                .iter()
                .filter(|n| n.replica.is_none())
                .cloned()
                .collect();
            if !plan.unready.is_empty() {
                known.unready_streak += plan.unready.len();
            }
            (plan, unlabelled)
        };

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
        let created: Vec<(SpawnSpec, Result<Narrative, ManagerError>)> = at_most_parallel(
            specs
                .into_iter()
                .map(|spec| {
                    async move {
                        let result = self.call("create", self.inner.manager.create(&spec)).await;
                        (spec, result)
                    }
                    .boxed()
                })
                .collect(),
        )
        .await;
        let instant = self.inner.readiness.is_none();
        for (spec, result) in created {
            match result {
                Ok(narrative) => {
                    report.created += 1;
                    let ready = instant && narrative.state == NarrativeState::Running;
                    let mut known = lock(&self.inner.known);
                    if ready {
                        known.unready_streak = 0;
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
        self.check_readiness().await;
        let known = lock(&self.inner.known);
        report.waiting = known.pool.waiting(&image);
        report.unready = known.pool.unready().len();
        Ok(report)
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
        let answers: Vec<(String, bool)> = at_most_parallel(
            unready
                .into_iter()
                .filter(|n| n.state == NarrativeState::Running)
                .map(|n| {
                    let readiness = readiness.clone();
                    async move { (n.id.clone(), readiness.is_ready(&n).await) }.boxed()
                })
                .collect(),
        )
        .await;
        let mut known = lock(&self.inner.known);
        for (id, ready) in answers {
            if ready {
                let gen = known.bump();
                known.pool.mark_ready(&id, gen);
                known.unready_streak = 0;
            }
        }
    }

    /// Refills the pool whenever a connect used a waiting container or the image changed,
    /// until `shutdown` completes. While fills fail it waits with exponential backoff and
    /// jitter between attempts; while new containers have not answered it looks again soon.
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
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => return,
                _ = self.inner.pool_wanted.notified() => {}
            }
            match self.fill_pool().await {
                Ok(report) if report.failures.is_empty() => {
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

#[derive(Clone, Copy, Debug)]
enum Removal {
    Outdated,
    Unlabelled,
    Excess,
    Unready,
    Retry,
}
