//! The reaper's decisions, as pure functions over what was read (SPEC §6), and the report of a
//! cycle. [`crate::Lifecycle::reap_cycle`] does the I/O around them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::activity::Joined;
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
    /// Of `reap`, those no source could confirm idle: quiet for longer than the bound.
    pub reap_quiet: Vec<ServiceName>,
    /// Records of services that no longer exist.
    pub prune: Vec<String>,
    /// Narratives not judged because activity is unknown (or quiet, not for long enough).
    pub unknown: Vec<ServiceName>,
    /// Every service quiet now, and since when it has been quiet without a break: what the
    /// caller keeps for the next cycle.
    pub quiet: Vec<(String, DateTime<Utc>)>,
}

/// Decides, for each user narrative, whether it is active, new, idle too long or unknown.
///
/// A narrative's last-seen instant is its record, or its connection mark where that is newer.
/// A narrative never seen before (no record) is tracked from `now`, never reaped on sight,
/// whatever its mark: a replica that has just started errs toward keeping. One whose activity
/// is unknown keeps its clock and is not reaped; records of services that are not in `users`
/// are pruned. Prespawned narratives must not be passed in: they are never
/// reaped for idleness.
///
/// Unknown for ever is not a shield: a narrative that is [`Joined::Quiet`] (a source saw it
/// idle, the others could not tell — its Jupyter is paused or hung) is idle once it has been
/// quiet without a break for `quiet_bound` (since `quiet_since`, or from now if not quiet
/// before) and its last-seen is older than `idle_timeout`. A narrative some source could not
/// be read for at all ([`Joined::Unknown`]: a source down) is never judged.
pub fn plan_idle(
    now: DateTime<Utc>,
    idle_timeout: chrono::Duration,
    quiet_bound: chrono::Duration,
    users: &[Tracked],
    records: &HashMap<String, DateTime<Utc>>,
    activity: &HashMap<String, Joined>,
    quiet_since: &HashMap<String, DateTime<Utc>>,
) -> IdlePlan {
    let mut plan = IdlePlan::default();
    for user in users {
        let seen = records
            .get(&user.service)
            .map(|record| user.mark.map_or(*record, |mark| mark.max(*record)));
        let joined = activity.get(&user.service).copied();
        if joined == Some(Joined::Quiet) {
            let since = quiet_since.get(&user.service).copied().unwrap_or(now);
            plan.quiet.push((user.service.clone(), since));
        }
        match (joined, seen) {
            (Some(Joined::Active), _) | (_, None) => plan.touch.push(user.service.clone()),
            (None | Some(Joined::Unknown), Some(_)) => plan.unknown.push(user.name.clone()),
            (Some(Joined::Quiet), Some(last)) => {
                let since = quiet_since.get(&user.service).copied().unwrap_or(now);
                if now.signed_duration_since(last) > idle_timeout
                    && now.signed_duration_since(since) > quiet_bound
                {
                    plan.reap.push(user.clone());
                    plan.reap_quiet.push(user.name.clone());
                } else {
                    plan.unknown.push(user.name.clone());
                }
            }
            (Some(Joined::Idle), Some(last)) => {
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
    /// Of `idle`, those no source could confirm idle: quiet (their Jupyter not answering,
    /// Traefik showing no traffic) for longer than the bound.
    pub idle_quiet: Vec<ServiceName>,
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
            idle_quiet: Vec::new(),
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

    fn at(pairs: &[(&str, DateTime<Utc>)]) -> HashMap<String, DateTime<Utc>> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn joined(pairs: &[(&str, Joined)]) -> HashMap<String, Joined> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
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
        let records = at(&[
            ("active_s", old),
            ("idle-long_s", old),
            ("idle-short_s", recent),
            ("unknown_s", old),
            ("unmentioned_s", old),
            ("gone_s", old),
        ]);
        let activity = joined(&[
            ("active_s", Joined::Active),
            ("new_s", Joined::Idle),
            ("idle-long_s", Joined::Idle),
            ("idle-short_s", Joined::Idle),
            ("unknown_s", Joined::Unknown),
        ]);
        let plan = plan_idle(
            now,
            timeout,
            timeout,
            &users,
            &records,
            &activity,
            &HashMap::new(),
        );
        assert_eq!(plan.touch, ["active_s", "new_s"]);
        assert_eq!(plan.reap, [tracked("idle-long")]);
        assert!(plan.reap_quiet.is_empty());
        assert_eq!(
            plan.unknown,
            [
                ServiceName::new("unknown").unwrap(),
                ServiceName::new("unmentioned").unwrap()
            ]
        );
        assert_eq!(plan.prune, ["gone_s"]);
    }

    #[test]
    fn quiet_for_longer_than_the_bound_is_idle_and_a_source_down_never_is() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let timeout = chrono::Duration::seconds(600);
        let bound = chrono::Duration::seconds(600);
        let long_ago = now - chrono::Duration::days(7);
        let users = [
            tracked("hung"),
            tracked("hung-lately"),
            tracked("hung-seen-lately"),
            tracked("quiet-first-time"),
            tracked("down"),
        ];
        let records = at(&[
            ("hung_s", long_ago),
            ("hung-lately_s", long_ago),
            ("hung-seen-lately_s", now - chrono::Duration::seconds(60)),
            ("quiet-first-time_s", long_ago),
            ("down_s", long_ago),
        ]);
        let activity = joined(&[
            ("hung_s", Joined::Quiet),
            ("hung-lately_s", Joined::Quiet),
            ("hung-seen-lately_s", Joined::Quiet),
            ("quiet-first-time_s", Joined::Quiet),
            ("down_s", Joined::Unknown),
        ]);
        let since = at(&[
            ("hung_s", now - chrono::Duration::seconds(601)),
            ("hung-lately_s", now - chrono::Duration::seconds(599)),
            ("hung-seen-lately_s", long_ago),
            ("down_s", long_ago),
        ]);
        let plan = plan_idle(now, timeout, bound, &users, &records, &activity, &since);
        assert_eq!(plan.reap, [tracked("hung")]);
        assert_eq!(plan.reap_quiet, [ServiceName::new("hung").unwrap()]);
        assert_eq!(
            plan.unknown,
            [
                "hung-lately",
                "hung-seen-lately",
                "quiet-first-time",
                "down"
            ]
            .map(|n| ServiceName::new(n).unwrap())
        );
        // The quiet ones, each since when; a first-time one from now; the one down is not.
        let mut quiet = plan.quiet.clone();
        quiet.sort();
        assert_eq!(
            quiet,
            [
                (
                    "hung-lately_s".to_owned(),
                    now - chrono::Duration::seconds(599)
                ),
                ("hung-seen-lately_s".to_owned(), long_ago),
                ("hung_s".to_owned(), now - chrono::Duration::seconds(601)),
                ("quiet-first-time_s".to_owned(), now),
            ]
        );
    }
}
