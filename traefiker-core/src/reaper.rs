//! The reaper's decisions, as pure functions over what was read (SPEC §6), and the report of a
//! cycle. [`crate::Lifecycle::reap_cycle`] does the I/O around them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::activity::Activity;
use crate::error::ActivityError;
use crate::names::ServiceName;

/// Whether a cycle acts or only reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReapMode {
    /// Remove what is idle or dead, refresh the pool, record activity.
    Apply,
    /// Report what would be removed; change nothing, not even the store.
    DryRun,
}

/// Why a narrative was left alone although it might have been idle.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// Some source could not tell whether it is active.
    ActivityUnknown,
    /// A user was connected to it after the cycle read activity.
    ConnectedSince,
    /// Removing it failed; the next cycle tries again.
    RemoveFailed(String),
}

/// A user narrative the reaper considers: its name, its Traefik service name and its
/// connection mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    /// The container.
    pub name: ServiceName,
    /// Its Traefik service name, the store's key.
    pub service: String,
    /// When a user was last connected to it, as the orchestrator says (any replica's mark).
    pub mark: Option<DateTime<Utc>>,
}

/// What to do about idleness, decided from one read of the world.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdlePlan {
    /// Services to mark as seen now: active, or not tracked yet.
    pub touch: Vec<String>,
    /// User narratives idle for longer than the timeout.
    pub reap: Vec<Tracked>,
    /// Records of services that no longer exist.
    pub prune: Vec<String>,
    /// Narratives not judged because activity is unknown.
    pub unknown: Vec<ServiceName>,
}

/// Decides, for each user narrative, whether it is active, new, idle too long or unknown.
///
/// A narrative's last-seen instant is its record, or its connection mark where that is newer.
/// A narrative never seen before (no record) is tracked from `now`, never reaped on sight,
/// whatever its mark: a replica that has just started errs toward keeping. One whose activity
/// is unknown keeps its clock and is not reaped; records of services that are not in `users`
/// are pruned. Prespawned narratives must not be passed in: they are never
/// reaped for idleness.
pub fn plan_idle(
    now: DateTime<Utc>,
    idle_timeout: chrono::Duration,
    users: &[Tracked],
    records: &HashMap<String, DateTime<Utc>>,
    activity: &HashMap<String, Activity>,
) -> IdlePlan {
    let mut plan = IdlePlan::default();
    for user in users {
        let seen = records
            .get(&user.service)
            .map(|record| user.mark.map_or(*record, |mark| mark.max(*record)));
        match (activity.get(&user.service).copied(), seen) {
            (Some(Activity::Active), _) | (_, None) => plan.touch.push(user.service.clone()),
            (None | Some(Activity::Unknown), Some(_)) => plan.unknown.push(user.name.clone()),
            (Some(Activity::Idle), Some(last)) => {
                if now.signed_duration_since(last) > idle_timeout {
                    plan.reap.push(user.clone());
                }
            }
        }
    }
    let live: HashSet<&str> = users.iter().map(|u| u.service.as_str()).collect();
    plan.prune = records
        .keys()
        .filter(|k| !live.contains(k.as_str()))
        .cloned()
        .collect();
    plan.prune.sort();
    plan
}

/// What the pool step of a cycle (or [`crate::Lifecycle::fill_pool`]) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolReport {
    /// Waiting narratives started.
    pub created: usize,
    /// Waiting narratives of an outdated image removed.
    pub outdated_removed: usize,
    /// Waiting narratives beyond the target removed.
    pub excess_removed: usize,
    /// Waiting narratives of the current image after the step.
    pub waiting: usize,
    /// Of those, how many have not answered their readiness check yet.
    pub unready: usize,
    /// Operations that failed, for the log; the next step retries.
    pub failures: Vec<String>,
}

/// The outcome of one reaper cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReapReport {
    /// Applied or only reported.
    pub mode: ReapMode,
    /// User narratives removed (or, dry, that would be) for idleness.
    pub idle: Vec<ServiceName>,
    /// Narratives removed (or that would be) because they stopped after starting once.
    pub zombies: Vec<ServiceName>,
    /// What the pool step did (empty when dry).
    pub pool: PoolReport,
    /// Narratives left alone, and why.
    pub skipped: Vec<(ServiceName, SkipReason)>,
    /// Waiting narratives of replicas no longer alive, removed (or, dry, that would be).
    pub abandoned: Vec<ServiceName>,
    /// Names held by more than one container (an operator should remove the extras).
    pub duplicates: Vec<ServiceName>,
    /// Store records of vanished containers dropped.
    pub pruned: usize,
    /// Activity sources that failed: while any did, nothing was reaped for idleness.
    pub activity_failures: Vec<ActivityError>,
    /// Other failures of the cycle (zombie listing, removals), for the log.
    pub failures: Vec<String>,
}

impl ReapReport {
    pub(crate) fn new(mode: ReapMode) -> Self {
        Self {
            mode,
            idle: Vec::new(),
            zombies: Vec::new(),
            pool: PoolReport::default(),
            skipped: Vec::new(),
            abandoned: Vec::new(),
            duplicates: Vec::new(),
            pruned: 0,
            activity_failures: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// How many user narratives and zombies were really removed (or, dry, would be); the
    /// count `/reaper/` reports.
    pub fn removed(&self) -> usize {
        self.idle.len() + self.zombies.len()
    }

    /// Why activity was unavailable, if it was: the cycle is then a failure for monitoring.
    pub fn activity_error(&self) -> Option<String> {
        if self.activity_failures.is_empty() {
            None
        } else {
            Some(
                self.activity_failures
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn tracked(name: &str) -> Tracked {
        Tracked {
            name: ServiceName::new(name).unwrap(),
            service: format!("{name}_s"),
            mark: None,
        }
    }

    #[test]
    fn decides_each_case() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let timeout = chrono::Duration::seconds(600);
        let users = [
            tracked("active"),
            tracked("new"),
            tracked("idle-long"),
            tracked("idle-short"),
            tracked("unknown"),
            tracked("unmentioned"),
        ];
        let old = now - chrono::Duration::seconds(601);
        let recent = now - chrono::Duration::seconds(599);
        let records: HashMap<String, DateTime<Utc>> = [
            ("active_s", old),
            ("idle-long_s", old),
            ("idle-short_s", recent),
            ("unknown_s", old),
            ("unmentioned_s", old),
            ("gone_s", old),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let activity: HashMap<String, Activity> = [
            ("active_s", Activity::Active),
            ("new_s", Activity::Idle),
            ("idle-long_s", Activity::Idle),
            ("idle-short_s", Activity::Idle),
            ("unknown_s", Activity::Unknown),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let plan = plan_idle(now, timeout, &users, &records, &activity);
        assert_eq!(plan.touch, ["active_s", "new_s"]);
        assert_eq!(plan.reap, [tracked("idle-long")]);
        assert_eq!(
            plan.unknown,
            [
                ServiceName::new("unknown").unwrap(),
                ServiceName::new("unmentioned").unwrap()
            ]
        );
        assert_eq!(plan.prune, ["gone_s"]);
    }
}
