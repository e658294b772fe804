//! Who is active: the [`ActivitySource`] contract and how several sources are joined.
//!
//! The reaper's one question is "has this narrative been used recently?". A source answers
//! for the narratives it is given, or fails. A failure means *unknown*, which is never the
//! same as *idle*: a narrative is idle only if every configured source answered and none saw
//! it active.

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

/// Several sources' answers joined per target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinedActivity {
    /// What is known of each target's service.
    pub per_service: HashMap<String, Activity>,
    /// The sources that failed; non-empty means nobody may be reaped for idleness.
    pub failures: Vec<ActivityError>,
}

/// Joins sources' answers: a target is active if any source says so, idle only if every
/// source answered and said idle, unknown otherwise.
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
            let activity = if said.contains(&Activity::Active) {
                Activity::Active
            } else if !failures.is_empty() || said.contains(&Activity::Unknown) {
                Activity::Unknown
            } else {
                Activity::Idle
            };
            (t.service.clone(), activity)
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
        assert_eq!(joined.per_service["a"], Activity::Active);
        assert_eq!(joined.per_service["b"], Activity::Unknown);
        assert_eq!(joined.failures.len(), 1);
    }

    #[test]
    fn idle_only_when_every_source_answered_idle() {
        let targets = [target("a"), target("b"), target("c")];
        let joined = join_activity(
            &targets,
            vec![
                Ok(snap(&[("a", Activity::Idle)])),
                Ok(snap(&[("b", Activity::Unknown)])),
            ],
        );
        assert_eq!(joined.per_service["a"], Activity::Idle);
        assert_eq!(joined.per_service["b"], Activity::Unknown);
        assert_eq!(joined.per_service["c"], Activity::Idle);
        assert!(joined.failures.is_empty());
    }

    #[test]
    fn an_empty_snapshot_is_not_a_failure_but_an_error_is() {
        let targets = [target("a")];
        let empty = join_activity(&targets, vec![Ok(ActivitySnapshot::new())]);
        assert_eq!(empty.per_service["a"], Activity::Idle);
        let failed = join_activity(&targets, vec![Err(ActivityError::new("t", "x"))]);
        assert_eq!(failed.per_service["a"], Activity::Unknown);
    }
}
