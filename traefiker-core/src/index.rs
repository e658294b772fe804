//! What this replica knows of users' narratives between listings: one entry per user
//! container name, kept from its listings and its own creates, assignments and removals (the
//! reflector of kube-runtime is the model). A returning user is answered from it with no
//! backend call.
//!
//! Entries are by container name, and names are many-to-one (two user ids can share one,
//! SPEC §10), so an entry answers a user only if its recorded owner is that user; the
//! lifecycle checks. The index may be stale (another replica removed a narrative, a listing
//! is late). That can cost a user one extra reload, never another user's container: an
//! entry's owner and session are the ones its container was made or assigned with, owners are
//! never changed once recorded, session ids are never reused, and Traefik routes a session
//! only to the container that carries it. A request that comes back with the index's own
//! session means Traefik did not route it, and is verified against the backend before it is
//! answered again.
//!
//! Like [`crate::pool::Pool`], changes are stamped with a generation and a listing only
//! overrides what it can know. Pure: no I/O, no clock.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::names::ServiceName;
use crate::narrative::{Narrative, NarrativeState};

#[derive(Clone, Debug)]
struct Entry {
    /// Boxed: the map's buckets stay small, so 10,000 entries do not make a table of
    /// 10,000 × a whole narrative rounded up to a power of two.
    narrative: Box<Narrative>,
    /// A reaper is removing it: not answered from the index.
    removing: bool,
    since: u64,
}

/// The users' narratives this replica knows of, by container name.
#[derive(Clone, Debug, Default)]
pub struct Index {
    users: HashMap<ServiceName, Entry>,
    forgotten: BTreeMap<ServiceName, u64>,
    listed: Option<u64>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a listing has been applied: before that, a user missing from the index may
    /// still have a narrative.
    pub fn is_complete(&self) -> bool {
        self.listed.is_some()
    }

    /// How many user narratives it holds.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The narrative of `name`, unless a reaper is removing it.
    pub fn get(&self, name: &ServiceName) -> Option<&Narrative> {
        self.users
            .get(name)
            .filter(|e| !e.removing)
            .map(|e| &*e.narrative)
    }

    /// Every user narrative, by name.
    pub fn narratives(&self) -> impl Iterator<Item = &Narrative> {
        self.users.values().map(|e| &*e.narrative)
    }

    /// Applies a listing that started at generation `started`: `users` are the user
    /// narratives it shows (several with one name resolve to the oldest, as `find` does).
    /// Returns false for a listing older than one already applied. An entry is copied only
    /// when it changed: at 10,000 narratives a listing mostly confirms what is known.
    pub fn observe(&mut self, users: &[&Narrative], started: u64) -> bool {
        if self.listed.is_some_and(|l| l > started) {
            return false;
        }
        self.listed = Some(started);
        let mut shown: HashMap<&ServiceName, &Narrative> = HashMap::with_capacity(users.len());
        for &n in users {
            if matches!(n.state, NarrativeState::Removing | NarrativeState::Stopped) {
                continue;
            }
            shown
                .entry(&n.name)
                .and_modify(|kept| {
                    if older(n, kept) {
                        *kept = n;
                    }
                })
                .or_insert(n);
        }
        self.users
            .retain(|name, entry| entry.since > started || shown.contains_key(name));
        for (name, n) in shown {
            if self.forgotten.get(name).is_some_and(|at| *at > started) {
                continue;
            }
            match self.users.get_mut(name) {
                Some(entry) if entry.since > started || *entry.narrative == *n => {}
                Some(entry) => *entry.narrative = n.clone(),
                None => {
                    self.users.insert(
                        name.clone(),
                        Entry {
                            narrative: Box::new(n.clone()),
                            removing: false,
                            since: started,
                        },
                    );
                }
            }
        }
        self.forgotten.retain(|_, at| *at > started);
        true
    }

    /// `narrative` is a user's now (created, assigned, found or adopted).
    pub fn upsert(&mut self, narrative: Narrative, gen: u64) {
        self.forgotten.remove(&narrative.name);
        self.users.insert(
            narrative.name.clone(),
            Entry {
                narrative: Box::new(narrative),
                removing: false,
                since: gen,
            },
        );
    }

    /// Records a connection mark written to the orchestrator for `name` at `at`, which left
    /// its record at `version`.
    pub fn marked(
        &mut self,
        name: &ServiceName,
        at: DateTime<Utc>,
        version: Option<String>,
        gen: u64,
    ) {
        if let Some(entry) = self.users.get_mut(name) {
            entry.narrative.version = version;
            if let Some(origin) = entry.narrative.origin.as_mut() {
                origin.at = at;
            } else {
                entry.narrative.origin = Some(crate::narrative::Origin {
                    client_ip: None,
                    at,
                });
            }
            entry.since = gen;
        }
    }

    /// `name` has no narrative any more (removed, or found missing).
    pub fn forget(&mut self, name: &ServiceName, gen: u64) {
        self.users.remove(name);
        self.forgotten.insert(name.clone(), gen);
    }

    /// A reaper starts removing container `id` of `name`: returns false if the index holds
    /// another container under that name (it was replaced since the reaper looked).
    pub fn begin_removal(&mut self, name: &ServiceName, id: &str, gen: u64) -> bool {
        match self.users.get_mut(name) {
            Some(entry) if entry.narrative.id == id => {
                entry.removing = true;
                entry.since = gen;
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// The removal of `name` failed: it is answered again.
    pub fn removal_failed(&mut self, name: &ServiceName, gen: u64) {
        if let Some(entry) = self.users.get_mut(name) {
            entry.removing = false;
            entry.since = gen;
        }
    }
}

/// Oldest first (`created`, then the id as a number where it is one), as backends' `find`
/// resolves duplicates.
fn older(a: &Narrative, b: &Narrative) -> bool {
    let key = |n: &Narrative| {
        let digits: String = n.id.chars().filter(char::is_ascii_digit).collect();
        (
            n.created.unwrap_or(DateTime::<Utc>::MAX_UTC),
            digits.parse::<u64>().unwrap_or(u64::MAX),
            n.id.clone(),
        )
    };
    key(a) < key(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{NarrativeKind, SessionId};

    fn user(name: &str, id: &str) -> Narrative {
        Narrative {
            id: id.into(),
            name: ServiceName::new(name).unwrap(),
            session: SessionId::generate(),
            image: "kbase/narrative:1".into(),
            kind: NarrativeKind::User,
            state: NarrativeState::Running,
            origin: None,
            replica: None,
            owner: None,
            version: None,
            address: None,
            public_endpoints: vec![],
            created: None,
        }
    }

    fn name(s: &str) -> ServiceName {
        ServiceName::new(s).unwrap()
    }

    #[test]
    fn a_listing_replaces_what_it_can_know_and_nothing_newer() {
        let mut index = Index::new();
        assert!(!index.is_complete());
        let a = user("narrative-a", "1");
        assert!(index.observe(&[&a], 0));
        assert!(index.is_complete());
        assert_eq!(index.get(&name("narrative-a")).unwrap().id, "1");
        // Created locally after a listing started: that listing does not drop it.
        let b = user("narrative-b", "2");
        index.upsert(b.clone(), 5);
        assert!(index.observe(&[&a], 4));
        assert!(index.get(&name("narrative-b")).is_some());
        // A listing that started later and does not show it: gone.
        assert!(index.observe(&[&a], 6));
        assert!(index.get(&name("narrative-b")).is_none());
        // An older listing arriving late is ignored.
        assert!(!index.observe(&[&a, &b], 5));
        assert!(index.get(&name("narrative-b")).is_none());
    }

    #[test]
    fn a_forgotten_name_is_not_revived_by_a_listing_that_started_before() {
        let mut index = Index::new();
        let a = user("narrative-a", "1");
        index.observe(&[&a], 0);
        index.forget(&name("narrative-a"), 3);
        assert!(index.observe(&[&a], 2));
        assert!(index.get(&name("narrative-a")).is_none());
        // A listing after the removal that shows the name again shows a new container.
        let again = user("narrative-a", "9");
        assert!(index.observe(&[&again], 4));
        assert_eq!(index.get(&name("narrative-a")).unwrap().id, "9");
    }

    #[test]
    fn a_narrative_being_removed_is_not_answered() {
        let mut index = Index::new();
        let a = user("narrative-a", "1");
        index.observe(&[&a], 0);
        assert!(index.begin_removal(&name("narrative-a"), "1", 1));
        assert!(index.get(&name("narrative-a")).is_none());
        index.removal_failed(&name("narrative-a"), 2);
        assert!(index.get(&name("narrative-a")).is_some());
        // Replaced meanwhile: the reaper must not remove the new one.
        index.upsert(user("narrative-a", "7"), 3);
        assert!(!index.begin_removal(&name("narrative-a"), "1", 4));
    }

    #[test]
    fn duplicates_resolve_to_the_oldest_and_stopped_ones_are_absent() {
        let mut index = Index::new();
        let mut newer = user("narrative-a", "20");
        newer.created = DateTime::from_timestamp(2_000, 0);
        let mut older_one = user("narrative-a", "10");
        older_one.created = DateTime::from_timestamp(1_000, 0);
        let mut stopped = user("narrative-z", "30");
        stopped.state = NarrativeState::Stopped;
        index.observe(&[&newer, &older_one, &stopped], 0);
        assert_eq!(index.get(&name("narrative-a")).unwrap().id, "10");
        assert!(index.get(&name("narrative-z")).is_none());
        assert_eq!(index.len(), 1);
    }
}
