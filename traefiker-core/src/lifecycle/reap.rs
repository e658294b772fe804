//! One reaper cycle (SPEC §6, §9): read activity, remove user narratives idle longer than the
//! timeout, zombies and the waiting containers of replicas that are gone, then top the pool
//! up.
//!
//! A narrative is last seen at the newest of: its record in the store (activity seen by a
//! cycle, or a connect by this replica), and its connection mark in the orchestrator (a
//! connect by any replica). It is reaped only when that is older than the idle timeout plus
//! the mark interval, decided again under its lane just before the removal, so a connect that
//! lands after the activity read — on this replica — always wins; where the backend's writes
//! are conditional, one on any replica does (the removal carries the version last read).
//!
//! A narrative that a source sees idle while the others cannot tell (its Jupyter paused or
//! hung: `Joined::Quiet`) is not kept for ever: it counts as idle once it has been quiet
//! without a break for the idle timeout too. One that a source cannot be read for at all (a
//! source down) is never judged.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures::FutureExt;

use super::{at_most_parallel, lock, CycleSummary, Lifecycle};
use crate::activity::{join_activity, ActivityTarget};
use crate::error::{ActivityError, Error, ManagerError};
use crate::names::{NarrativeKind, ReplicaId, ServiceName};
use crate::narrative::{Narrative, NarrativeState};
use crate::reaper::{plan_idle, ReapMode, ReapReport, SkipReason, Tracked};

impl Lifecycle {
    /// One reaper cycle: records activity, removes user narratives idle longer than the
    /// timeout, zombies, and waiting containers of replicas no longer alive; prunes vanished
    /// records; refreshes and tops up the pool. The store is written once, in one
    /// transaction.
    ///
    /// If any activity source fails, nothing is reaped for idleness: an outage never looks
    /// like idleness. The rest of the cycle still runs. A dry run changes nothing.
    pub async fn reap_cycle(&self, mode: ReapMode) -> Result<ReapReport, Error> {
        let _guard = self.inner.reap_lock.lock().await;
        let manager = &self.inner.manager;
        let apply = mode == ReapMode::Apply;
        let mut report = ReapReport::new(mode);
        self.load_records()?;

        let all = self.narratives().await?;
        // After the listing: a replica registers before it makes containers, so every live
        // replica whose waiting containers the listing shows is among these peers.
        let peers = self.refresh_peers().await;
        report.duplicates = duplicates(&all);

        // Stopped ones are zombies, removed as such below, not judged for idleness.
        let users: Vec<&Narrative> = all
            .iter()
            .filter(|n| {
                n.kind == NarrativeKind::User
                    && !matches!(n.state, NarrativeState::Removing | NarrativeState::Stopped)
            })
            .collect();
        let tracked: Vec<Tracked> = users
            .iter()
            .map(|n| Tracked {
                name: n.name.clone(),
                service: manager.traefik_service(&n.name),
                mark: n.origin.as_ref().map(|o| o.at),
            })
            .collect();
        let targets: Vec<ActivityTarget> = users
            .iter()
            .zip(&tracked)
            .map(|(n, t)| ActivityTarget {
                service: t.service.clone(),
                address: n.address.clone(),
            })
            .collect();
        let deadline = self.inner.config.activity_timeout;
        let answers = futures::future::join_all(self.inner.sources.iter().map(|source| {
            let targets = &targets;
            async move {
                tokio::time::timeout(deadline, source.snapshot(targets))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ActivityError::new(
                            source.name(),
                            format!("no answer within {} s", deadline.as_secs_f64()),
                        ))
                    })
            }
        }))
        .await;
        let joined = join_activity(&targets, answers);
        report.activity_failures = joined.failures.clone();

        let now = self.inner.clock.now();
        let grace = self.grace();
        // Pure and quick (milliseconds at 10,000): decided under the lock rather than over a
        // copy of every record.
        let plan = {
            let known = lock(&self.inner.known);
            plan_idle(
                now,
                grace,
                self.quiet_bound(),
                &tracked,
                &known.records,
                &joined.per_service,
                &known.quiet_since,
            )
        };
        report.skipped = plan
            .unknown
            .iter()
            .map(|n| (n.clone(), SkipReason::ActivityUnknown))
            .collect();
        let touch: Vec<(String, DateTime<Utc>)> =
            plan.touch.iter().map(|s| (s.clone(), now)).collect();
        if apply {
            let mut known = lock(&self.inner.known);
            known.records.extend(touch.iter().cloned());
            known.quiet_since = plan.quiet.iter().cloned().collect();
        }

        let mut forget = plan.prune.clone();
        let by_name: HashMap<&ServiceName, &Narrative> =
            users.iter().map(|n| (&n.name, *n)).collect();
        let idle: Vec<(&Narrative, &Tracked)> = plan
            .reap
            .iter()
            .filter_map(|t| by_name.get(&t.name).map(|n| (*n, t)))
            .collect();
        if apply {
            // Each removal is decided again under its lane; several run at once so a large
            // cycle is bounded by the backend's throughput, not by one round trip after another.
            let removals = at_most_parallel(
                idle.iter()
                    .map(|(n, t)| {
                        async move { (*t, self.remove_idle(n, &t.service).await) }.boxed()
                    })
                    .collect(),
            )
            .await;
            for (tracked, result) in removals {
                match result {
                    Ok(true) => {
                        forget.push(tracked.service.clone());
                        report.idle.push(tracked.name.clone());
                        if plan.reap_quiet.contains(&tracked.name) {
                            report.idle_quiet.push(tracked.name.clone());
                        }
                    }
                    Ok(false) => report
                        .skipped
                        .push((tracked.name.clone(), SkipReason::ConnectedSince)),
                    Err(e) => report.skipped.push((
                        tracked.name.clone(),
                        SkipReason::RemoveFailed(e.to_string()),
                    )),
                }
            }
        } else {
            report.idle = idle.iter().map(|(_, t)| t.name.clone()).collect();
            report.idle_quiet = plan.reap_quiet.clone();
        }
        report.idle.sort();
        report.idle_quiet.sort();

        match self.call("zombies", manager.zombies()).await {
            Ok(zombies) => {
                for zombie in zombies {
                    if apply {
                        if let Err(e) = self.remove_zombie(&zombie).await {
                            report
                                .failures
                                .push(format!("remove zombie {}: {e}", zombie.name));
                            continue;
                        }
                        forget.push(manager.traefik_service(&zombie.name));
                    }
                    report.zombies.push(zombie.name);
                }
            }
            Err(ManagerError::Unsupported { .. }) => {}
            Err(e) => report.failures.push(format!("list zombies: {e}")),
        }

        for (abandoned, result) in self.remove_abandoned(&all, peers.as_ref(), apply).await {
            match result {
                Ok(true) => report.abandoned.push(abandoned.name),
                Ok(false) => {}
                Err(e) => report
                    .failures
                    .push(format!("remove abandoned {}: {e}", abandoned.name)),
            }
        }

        if apply {
            let gone: HashSet<&String> = forget.iter().collect();
            let touch: Vec<(String, DateTime<Utc>)> = touch
                .into_iter()
                .filter(|(s, _)| !gone.contains(s))
                .collect();
            {
                let mut known = lock(&self.inner.known);
                for service in &forget {
                    known.records.remove(service);
                }
            }
            self.inner.store.update(&touch, &forget)?;
            report.pruned = plan.prune.len();
            // The cycle has just listed, and knows what it removed since.
            match self.fill(false).await {
                Ok(pool) => report.pool = pool,
                Err(e) => report.failures.push(format!("fill pool: {e}")),
            }
            lock(&self.inner.known).last_cycle = Some(CycleSummary {
                at: self.inner.clock.now(),
                report: report.clone(),
            });
        }
        Ok(report)
    }

    /// How long a narrative must have been quiet without a break (a source sees it idle, the
    /// others cannot tell: its Jupyter paused or hung) before it counts as idle: the idle
    /// timeout, on top of its last-seen being older than the timeout plus the mark interval.
    fn quiet_bound(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.inner.config.idle_timeout).unwrap_or(chrono::Duration::MAX)
    }

    /// How much longer than the idle timeout a record or mark protects its narrative: the
    /// interval at which connects refresh them.
    fn grace(&self) -> chrono::Duration {
        chrono::Duration::from_std(
            self.inner.config.idle_timeout + self.inner.config.mark_refresh(),
        )
        .unwrap_or(chrono::Duration::MAX)
    }

    /// Removes an idle narrative unless it was connected since the decision; `Ok(false)` when
    /// it was kept.
    ///
    /// The removal carries the narrative as last read (the look again, else the listing):
    /// where writes are conditional it acts only on that version, so a connect's mark that
    /// lands after the look, on any replica, makes it fail with `Conflict` and the narrative
    /// stays. Elsewhere (Rancher's delete is unconditional) that window remains.
    async fn remove_idle(&self, narrative: &Narrative, service: &str) -> Result<bool, Error> {
        let name = &narrative.name;
        let _lane = self.inner.lanes.enter(name).await;
        let mut newest = narrative.origin.as_ref().map(|o| o.at);
        let mut read = narrative.clone();
        // Another replica's connect shows only in the orchestrator: look again.
        if self.shared_marks() {
            match self.call("find", self.inner.manager.find(name)).await? {
                Some(found) if found.id == narrative.id => {
                    newest = newest.max(found.origin.as_ref().map(|o| o.at));
                    read = found;
                }
                // Gone already, or replaced by a new container: nothing idle to remove.
                _ => return Ok(false),
            }
        }
        let grace = self.grace();
        {
            let mut known = lock(&self.inner.known);
            let now = self.inner.clock.now();
            let seen = known.records.get(service).copied().max(newest);
            if seen.is_some_and(|s| now.signed_duration_since(s) <= grace) {
                return Ok(false);
            }
            let gen = known.bump();
            if !known.index.begin_removal(name, &narrative.id, gen) {
                return Ok(false);
            }
        }
        match self.call("remove", self.inner.manager.remove(&read)).await {
            Ok(()) => {
                let mut known = lock(&self.inner.known);
                let gen = known.bump();
                known.index.forget(name, gen);
                tracing::info!(service = %name, reason = "idle", "reaped a narrative");
                Ok(true)
            }
            Err(ManagerError::Conflict { .. }) => {
                let mut known = lock(&self.inner.known);
                let gen = known.bump();
                known.index.removal_failed(name, gen);
                tracing::info!(service = %name, "kept an idle narrative: it changed since the look (a connect's mark)");
                Ok(false)
            }
            Err(e) => {
                let mut known = lock(&self.inner.known);
                let gen = known.bump();
                known.index.removal_failed(name, gen);
                Err(e.into())
            }
        }
    }

    async fn remove_zombie(&self, zombie: &Narrative) -> Result<(), ManagerError> {
        let _lane = self.inner.lanes.enter(&zombie.name).await;
        self.call("remove", self.inner.manager.remove(zombie))
            .await?;
        let mut known = lock(&self.inner.known);
        let gen = known.bump();
        if zombie.kind == NarrativeKind::User
            && known
                .index
                .get(&zombie.name)
                .is_some_and(|n| n.id == zombie.id)
        {
            known.index.forget(&zombie.name, gen);
        }
        tracing::info!(service = %zombie.name, reason = "zombie", "reaped a narrative");
        Ok(())
    }

    /// Removes waiting containers made by replicas that are not alive, when the peers are
    /// known (SPEC §9). A dry run only lists them.
    /// Both from this cycle, the listing taken before the peers were read: any replica whose
    /// waiting containers it shows was among them (another listing since could show a replica
    /// that started after the peers were read).
    async fn remove_abandoned(
        &self,
        listed: &[Narrative],
        peers: Option<&BTreeSet<ReplicaId>>,
        apply: bool,
    ) -> Vec<(Narrative, Result<bool, ManagerError>)> {
        let Some(peers) = peers else {
            return Vec::new();
        };
        let me = &self.inner.config.replica;
        let abandoned: Vec<Narrative> = listed
            .iter()
            .filter(|n| {
                n.kind == NarrativeKind::Prespawned
                    && !matches!(n.state, NarrativeState::Removing)
                    && n.replica
                        .as_ref()
                        .is_some_and(|r| r != me && !peers.contains(r))
            })
            .cloned()
            .collect();
        if !apply {
            return abandoned.into_iter().map(|n| (n, Ok(true))).collect();
        }
        let results: Vec<(Narrative, Result<bool, ManagerError>)> = at_most_parallel(
            abandoned
                .into_iter()
                .map(|n| {
                    async move {
                        let result = self.remove_if_still_waiting(&n).await;
                        (n, result)
                    }
                    .boxed()
                })
                .collect(),
        )
        .await;
        let mut known = lock(&self.inner.known);
        for (n, result) in &results {
            if matches!(result, Ok(true)) {
                known.foreign.retain(|f| f.id != n.id);
                tracing::info!(service = %n.name, reason = "replica gone", "removed a waiting narrative");
            }
        }
        results
    }
}

impl Lifecycle {
    /// Removes another replica's waiting container if it still waits under the name it was
    /// listed with: one given to a user since must stay. `Ok(false)` when it stayed. Where
    /// deletes are unconditional a window remains between the look and the delete (but only
    /// a dead replica's containers come here, and only its maker assigns them); where they
    /// are conditional the removal carries the version just read, so a replica that assigned
    /// it from the shared pool after the look wins (`Conflict`).
    async fn remove_if_still_waiting(&self, n: &Narrative) -> Result<bool, ManagerError> {
        match self.call("find", self.inner.manager.find(&n.name)).await? {
            Some(found) if found.id == n.id && found.kind == NarrativeKind::Prespawned => {
                match self.call("remove", self.inner.manager.remove(&found)).await {
                    Ok(()) => Ok(true),
                    Err(ManagerError::Conflict { .. }) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            _ => Ok(false),
        }
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
