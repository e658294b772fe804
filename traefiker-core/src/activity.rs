//! Who is active: the [`ActivitySource`] contract and how several sources are joined.
//!
//! The reaper's one question is "has this narrative been used recently?". A source answers
//! for the narratives it is given, or fails. A failure means *unknown*, which is never the
//! same as *idle*: a narrative is idle only if every configured source answered and none saw
//! it active. One that some source saw idle while the others could not tell is *quiet*
//! ([`Joined::Quiet`]): the reaper takes it as idle only after a bound, so a narrative whose
//! Jupyter never answers again is not kept for ever. With no source, nothing is known.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::error::ActivityError;

/// What a source says about one narrative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    /// In use now, or since the source last looked.
    Active,
    /// Not in use.
    Idle,
    /// The source could not tell (e.g. its first look at a counter, or the narrative did not
    /// answer).
    Unknown,
}

/// A narrative a source is asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityTarget {
    /// Its Traefik service name (see [`crate::ContainerManager::traefik_service`]).
    pub service: String,
    /// Where the narrative itself answers HTTP, if the backend knows.
    pub address: Option<String>,
}

/// One source's answer: activity per Traefik service name. A service the snapshot does not
/// mention is idle: the source looked at everything and saw nothing of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivitySnapshot {
    entries: HashMap<String, Activity>,
}

impl ActivitySnapshot {
    /// An empty snapshot: the source answered and nobody is active.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what the source says of `service`; `Active` wins over anything said before.
    pub fn set(&mut self, service: impl Into<String>, activity: Activity) {
        let entry = self.entries.entry(service.into()).or_insert(activity);
        if *entry != Activity::Active {
            *entry = activity;
        }
    }

    /// What the source says of `service`.
    pub fn get(&self, service: &str) -> Activity {
        self.entries.get(service).copied().unwrap_or(Activity::Idle)
    }

    /// Services the snapshot mentions, with what it says.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Activity)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// How many services it mentions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it mentions none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<(String, Activity)> for ActivitySnapshot {
    fn from_iter<T: IntoIterator<Item = (String, Activity)>>(iter: T) -> Self {
        let mut snapshot = Self::new();
        for (service, activity) in iter {
            snapshot.set(service, activity);
        }
        snapshot
    }
}

/// Tells who is active: Traefik's metrics, a narrative's own Jupyter status, ...
///
/// # Contract
///
/// - `Err` means the source does not know about any of `targets` (endpoint down, timing out,
///   garbage); it must never be reported as an empty snapshot.
/// - A source that covers each narrative separately answers `Unknown` for those it could not
///   read and still answers for the rest.
/// - A source may keep state between calls (counters); calls are not concurrent.
#[async_trait]
pub trait ActivitySource: Send + Sync + std::fmt::Debug {
    /// A short name for logs and errors, e.g. `traefik`.
    fn name(&self) -> &str;

    /// Activity of `targets` now.
    async fn snapshot(&self, targets: &[ActivityTarget])
        -> Result<ActivitySnapshot, ActivityError>;
}

/// What is known of one narrative once every source answered or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Joined {
    /// A source saw it in use.
    Active,
    /// Every source answered, and each saw it idle.
    Idle,
    /// Every source answered; none saw it in use; at least one looked and saw it idle (e.g.
    /// Traefik shows no traffic), and the others could not tell (e.g. its Jupyter does not
    /// answer: paused or hung). Not idle yet: the reaper waits a bound before it takes it
    /// as idle ([`crate::reaper::plan_idle`]), so a narrative that stops answering is not
    /// kept for ever.
    Quiet,
    /// Nothing can be said: a source failed (an outage never looks like idleness), no source
    /// is configured, or none could tell.
    Unknown,
}

/// Several sources' answers joined per target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinedActivity {
    /// What is known of each target's service.
    pub per_service: HashMap<String, Joined>,
    /// The sources that failed; non-empty means nobody may be reaped for idleness.
    pub failures: Vec<ActivityError>,
}

/// Joins sources' answers per target: active if any source says so; otherwise unknown while
/// any source failed, or with no source at all; idle if every source said idle; quiet if
/// some said idle and the others could not tell; unknown if none could tell.
pub fn join_activity(
    targets: &[ActivityTarget],
    answers: Vec<Result<ActivitySnapshot, ActivityError>>,
) -> JoinedActivity {
    let mut snapshots = Vec::with_capacity(answers.len());
    let mut failures = Vec::new();
    for answer in answers {
        match answer {
            Ok(snapshot) => snapshots.push(snapshot),
            Err(e) => failures.push(e),
        }
    }
    let per_service = targets
        .iter()
        .map(|t| {
            let said: Vec<Activity> = snapshots.iter().map(|s| s.get(&t.service)).collect();
            let idle = said.iter().filter(|a| **a == Activity::Idle).count();
            let joined = if said.contains(&Activity::Active) {
                Joined::Active
            } else if !failures.is_empty() || idle == 0 {
                Joined::Unknown
            } else if idle == said.len() {
                Joined::Idle
            } else {
                Joined::Quiet
            };
            (t.service.clone(), joined)
        })
        .collect();
    JoinedActivity {
        per_service,
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(s: &str) -> ActivityTarget {
        ActivityTarget {
            service: s.into(),
            address: None,
        }
    }

    fn snap(entries: &[(&str, Activity)]) -> ActivitySnapshot {
        entries.iter().map(|(s, a)| (s.to_string(), *a)).collect()
    }

    #[test]
    fn any_source_saying_active_wins_even_over_a_failure() {
        let targets = [target("a"), target("b")];
        let joined = join_activity(
            &targets,
            vec![
                Ok(snap(&[("a", Activity::Active)])),
                Err(ActivityError::new("traefik", "down")),
            ],
        );
        assert_eq!(joined.per_service["a"], Joined::Active);
        assert_eq!(joined.per_service["b"], Joined::Unknown);
        assert_eq!(joined.failures.len(), 1);
    }

    #[test]
    fn idle_only_when_every_source_answered_idle() {
        let targets = [target("a"), target("b"), target("c"), target("d")];
        let joined = join_activity(
            &targets,
            vec![
                Ok(snap(&[("a", Activity::Idle), ("d", Activity::Unknown)])),
                Ok(snap(&[("b", Activity::Unknown), ("d", Activity::Unknown)])),
            ],
        );
        assert_eq!(joined.per_service["a"], Joined::Idle);
        assert_eq!(
            joined.per_service["b"],
            Joined::Quiet,
            "one idle, one cannot tell"
        );
        assert_eq!(joined.per_service["c"], Joined::Idle);
        assert_eq!(joined.per_service["d"], Joined::Unknown, "nobody can tell");
        assert!(joined.failures.is_empty());
    }

    #[test]
    fn a_source_down_is_unknown_even_where_another_says_idle() {
        let targets = [target("a")];
        let joined = join_activity(
            &targets,
            vec![
                Ok(snap(&[("a", Activity::Idle)])),
                Err(ActivityError::new("narrative_status", "down")),
            ],
        );
        assert_eq!(joined.per_service["a"], Joined::Unknown);
    }

    #[test]
    fn an_empty_snapshot_is_not_a_failure_but_an_error_is() {
        let targets = [target("a")];
        let empty = join_activity(&targets, vec![Ok(ActivitySnapshot::new())]);
        assert_eq!(empty.per_service["a"], Joined::Idle);
        let failed = join_activity(&targets, vec![Err(ActivityError::new("t", "x"))]);
        assert_eq!(failed.per_service["a"], Joined::Unknown);
    }

    #[test]
    fn with_no_source_nothing_is_idle() {
        let joined = join_activity(&[target("a")], Vec::new());
        assert_eq!(joined.per_service["a"], Joined::Unknown);
    }
}
