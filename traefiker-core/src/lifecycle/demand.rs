//! The pool's target as demand sets it (SPEC §14), around the pure [`Demand`]: new users'
//! arrivals recorded as they are answered and written to the [`crate::ArrivalLog`] by the pool
//! filler (never on a request), cold starts measured from this replica's own creates, the
//! target each pool step aims at, and the last day for the admin page's charts.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::fill::Sent;
use super::{lock, ConnectOutcome, Lifecycle};
use crate::demand::{Demand, DemandSettings, Reason, Target};
use crate::timeline::Bucket;

/// Arrivals not yet written are kept up to this many while the store fails; older ones are
/// dropped (they only teach the week).
const PENDING_MAX: usize = 10_000;

/// What the lifecycle keeps about demand.
#[derive(Debug)]
pub(super) struct DemandState {
    demand: Demand,
    /// Arrivals not yet written to the store.
    pending: Vec<DateTime<Utc>>,
    /// Whether the store's arrivals were read.
    loaded: bool,
    /// The target of the last pool step.
    applied: Target,
    /// This replica's creates not ready yet, by id: when each was sent.
    starting: HashMap<String, DateTime<Utc>>,
}

impl DemandState {
    pub(super) fn new(settings: DemandSettings) -> Self {
        let applied = Target {
            size: settings.floor,
            reason: Reason::Floor,
        };
        Self {
            demand: Demand::new(settings),
            pending: Vec::new(),
            loaded: false,
            applied,
            starting: HashMap::new(),
        }
    }
}

impl Lifecycle {
    /// A new user asks for a narrative now: where the pool follows demand, an arrival, and
    /// the filler looks at the target again.
    pub(super) fn arrived(&self) {
        let now = self.inner.clock.now();
        {
            let mut state = lock(&self.inner.demand);
            if !state.demand.settings().adaptive() {
                return;
            }
            state.demand.arrived(now);
            if state.pending.len() >= PENDING_MAX {
                state.pending.remove(0);
            }
            state.pending.push(now);
        }
        self.inner.pool_wanted.notify_one();
    }

    /// A new user was answered now with `outcome` (assigned or created), for the charts.
    pub(super) fn answered_new_user(&self, outcome: ConnectOutcome) {
        let now = self.inner.clock.now();
        lock(&self.inner.known)
            .ledger
            .timeline
            .arrival(now, outcome == ConnectOutcome::Created);
    }

    /// Whether the target may change with time alone (a schedule, the weeks, a raised target
    /// falling back), so the filler looks at it again now and then.
    pub(super) fn target_moves(&self) -> bool {
        lock(&self.inner.demand).demand.settings().adaptive()
    }

    /// The target now, for this replica's share. The first time, reads the arrivals the store
    /// keeps; every time, writes the new ones (a failure keeps them for the next time).
    pub(super) fn target_now(&self) -> Target {
        let now = self.inner.clock.now();
        let replicas = lock(&self.inner.known)
            .peers
            .as_ref()
            .map_or(1, |p| p.len().max(1));
        let (target, pending) = {
            let mut state = lock(&self.inner.demand);
            let adaptive = state.demand.settings().adaptive();
            if adaptive && !state.loaded {
                match self.inner.arrivals.arrivals_since(Demand::horizon(now)) {
                    Ok(history) => {
                        state.demand.remember(history, now);
                        state.loaded = true;
                        tracing::info!(
                            arrivals = state.demand.arrivals(),
                            "read the weeks of arrivals the pool learns from"
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read past arrivals; the pool follows today's until it can")
                    }
                }
            }
            let target = state.demand.target(now, replicas);
            if adaptive && target != state.applied {
                tracing::info!(
                    target = target.size,
                    reason = target.reason.as_str(),
                    cold_start_secs = state.demand.cold_start().as_secs_f64(),
                    "pool target"
                );
            }
            state.applied = target;
            let pending = if state.loaded {
                std::mem::take(&mut state.pending)
            } else {
                Vec::new()
            };
            (target, pending)
        };
        if !pending.is_empty() {
            if let Err(e) = self
                .inner
                .arrivals
                .record_arrivals(&pending, Demand::horizon(now))
            {
                tracing::warn!(error = %e, "could not record arrivals; trying again at the next pool step");
                let mut state = lock(&self.inner.demand);
                let mut kept = pending;
                kept.append(&mut state.pending);
                let excess = kept.len().saturating_sub(PENDING_MAX);
                kept.drain(..excess);
                state.pending = kept;
            }
        }
        lock(&self.inner.known)
            .ledger
            .timeline
            .target(now, target.size);
        target
    }

    /// Whether the target now is other than the one the pool last aimed at.
    pub(super) fn target_changed(&self) -> bool {
        let now = self.inner.clock.now();
        let replicas = lock(&self.inner.known)
            .peers
            .as_ref()
            .map_or(1, |p| p.len().max(1));
        let mut state = lock(&self.inner.demand);
        let target = state.demand.target(now, replicas);
        target.size != state.applied.size
    }

    /// Creates of this replica answered: `answered` are their ids, when each was sent, and
    /// whether each counts as ready already. The ready ones measure the cold start now; the
    /// others when they become ready.
    pub(super) fn creates_answered(&self, answered: &[(String, Sent, bool)]) {
        let now = self.inner.clock.now();
        let mut state = lock(&self.inner.demand);
        for (id, sent, ready) in answered {
            if *ready {
                state.demand.started(sent.took.to_std().unwrap_or_default());
            } else {
                state.starting.insert(id.clone(), sent.at);
            }
        }
        // Those never ready are replaced; their sending times go after a while.
        let stale = self.inner.config.ready_timeout * 2;
        state.starting.retain(|_, at| elapsed(*at, now) <= stale);
    }

    /// Waiting containers `ids` answered their readiness check now.
    pub(super) fn became_ready(&self, ids: &[String]) {
        let now = self.inner.clock.now();
        let mut state = lock(&self.inner.demand);
        for id in ids {
            if let Some(sent) = state.starting.remove(id) {
                state.demand.started(elapsed(sent, now));
            }
        }
    }

    /// The number of waiting containers this replica's pool aims at (as of its last step),
    /// and why.
    pub fn pool_target(&self) -> Target {
        lock(&self.inner.demand).applied
    }

    /// The cold-start time measured from this replica's creates (the create, and the
    /// readiness check where one is configured), if one was measured yet.
    pub fn cold_start(&self) -> Option<Duration> {
        let state = lock(&self.inner.demand);
        state.demand.measured().then(|| state.demand.cold_start())
    }

    /// The last day of this replica's pool, in ten-minute buckets, oldest first.
    pub fn pool_history(&self) -> Vec<Bucket> {
        let now = self.inner.clock.now();
        let mut known = lock(&self.inner.known);
        let waiting = known.pool.waiting_any();
        known.ledger.settle(waiting);
        known.ledger.timeline.last_day(now)
    }
}

fn elapsed(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    to.signed_duration_since(from).to_std().unwrap_or_default()
}
