//! The prespawn pool as this replica knows it: every waiting container it made is in exactly
//! one [`Slot`], and the methods of [`Pool`] are the only transitions (SPEC §5, §9).
//!
//! Where the backend's writes are conditional (SPEC §12: Swarm, Kubernetes), the pool is
//! shared: other replicas' waiting containers are in it too, as candidates this replica may
//! claim (after its own), with the same slots and rules. They never count towards this
//! replica's target, and only their maker replaces or removes them.
//!
//! Two rules keep a waiting container from reaching two users, whatever the timing of
//! listings, creates and assignments:
//!
//! - A container leaves `Waiting` only by a transition, and never comes back to it from a
//!   listing or a create once claimed, assigned or being removed. The only way back is
//!   [`Pool::settle`] for an assignment that certainly did not happen, or a listing that
//!   started after an uncertain assignment and still shows the container under its waiting
//!   name.
//! - A listing only overrides what it can know: entries changed after it started are left
//!   alone, a listing older than one already applied is ignored, and containers forgotten
//!   after it started (removed, handed out) are not brought back by it.
//!
//! Time is a generation counter kept by the caller: every change is stamped with the
//! generation it happened at, and a listing with the generation at which it started.
//! Everything here is pure: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::names::ServiceName;
use crate::narrative::{Narrative, NarrativeState};

/// Where one waiting container of this replica stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// In the pool; handed out only once `ready` (it answers).
    Waiting {
        /// It answered its readiness check.
        ready: bool,
    },
    /// A request is assigning it right now.
    Claimed,
    /// Given to a user; forgotten once a listing shows it renamed or gone.
    Assigned,
    /// An assignment failed in a way that may have renamed it anyway (a lost answer): it is
    /// handed to nobody until a listing shows where it is.
    Uncertain,
    /// Being removed (outdated, excess, or the replica is retiring).
    Removing,
}

/// How an assignment attempt ended, for [`Pool::settle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Renamed for the user.
    Assigned,
    /// Certainly untouched (the user's name was taken): back to the pool.
    Untouched,
    /// Gone, or renamed by someone else: forget it.
    Gone,
    /// Unknown (a timeout, a lost answer): wait for a listing.
    Unknown,
}

#[derive(Clone, Debug)]
struct Entry {
    narrative: Narrative,
    slot: Slot,
    /// Generation of the last change.
    since: u64,
    /// When this replica first knew it, for the readiness bound.
    known_at: DateTime<Utc>,
    /// Made by this replica: counted towards its target, replaced and removed by it.
    own: bool,
}

/// What the pool step should do now, decided by [`Pool::plan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolPlan {
    /// Waiting containers to remove because their image is outdated (now `Removing`).
    pub outdated: Vec<Narrative>,
    /// Waiting containers beyond the target (now `Removing`).
    pub excess: Vec<Narrative>,
    /// Waiting containers that never became ready in time (now `Removing`).
    pub unready: Vec<Narrative>,
    /// Removals that failed before and are retried.
    pub retry: Vec<Narrative>,
    /// How many to create.
    pub missing: usize,
}

/// This replica's waiting containers (and, on a shared pool, the others' it may claim), one
/// [`Slot`] each.
#[derive(Clone, Debug, Default)]
pub struct Pool {
    entries: BTreeMap<String, Entry>,
    /// Names being created and not yet known by id.
    creating: BTreeSet<ServiceName>,
    /// Ids forgotten at a generation: a listing that started before cannot bring them back.
    forgotten: BTreeMap<String, u64>,
    /// Start generation of the newest listing applied.
    listed: Option<u64>,
}

impl Pool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// The slot of container `id`, if this replica knows it.
    pub fn slot(&self, id: &str) -> Option<Slot> {
        self.entries.get(id).map(|e| e.slot)
    }

    /// This replica's containers in the pool (waiting, ready or not) of `image`.
    pub fn waiting(&self, image: &str) -> usize {
        self.entries
            .values()
            .filter(|e| {
                e.own && matches!(e.slot, Slot::Waiting { .. }) && e.narrative.image == image
            })
            .count()
    }

    /// This replica's containers in the pool (waiting, ready or not) of any image: what its
    /// pool costs now.
    pub fn waiting_any(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.own && matches!(e.slot, Slot::Waiting { .. }))
            .count()
    }

    /// Ready containers of `image`, this replica's and the others' it may claim: what a new
    /// user can be given now.
    pub fn ready(&self, image: &str) -> usize {
        self.entries
            .values()
            .filter(|e| e.slot == Slot::Waiting { ready: true } && e.narrative.image == image)
            .count()
    }

    /// Creates in flight.
    pub fn creating(&self) -> usize {
        self.creating.len()
    }

    /// Every container of this replica in a slot, with it.
    pub fn entries(&self) -> impl Iterator<Item = (&Narrative, Slot)> {
        self.entries
            .values()
            .filter(|e| e.own)
            .map(|e| (&e.narrative, e.slot))
    }

    /// Waiting containers that have not answered yet, this replica's and the others' it may
    /// claim.
    pub fn unready(&self) -> Vec<Narrative> {
        self.entries
            .values()
            .filter(|e| e.slot == Slot::Waiting { ready: false })
            .map(|e| e.narrative.clone())
            .collect()
    }

    /// This replica's waiting containers that have not answered yet.
    pub fn unready_own(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.own && e.slot == Slot::Waiting { ready: false })
            .count()
    }

    fn forget(&mut self, id: &str, gen: u64) {
        self.entries.remove(id);
        self.forgotten.insert(id.to_owned(), gen);
    }

    /// Applies a listing that started at generation `started`: `own` are the waiting
    /// containers of this replica it shows, `shared` those of other replicas this one may
    /// claim (none unless the pool is shared). With `instant_ready`, a container the backend
    /// reports running counts as answering (no readiness check is configured). Returns false
    /// (and changes nothing) for a listing older than one already applied.
    pub fn observe(
        &mut self,
        own: &[Narrative],
        shared: &[Narrative],
        started: u64,
        gen: u64,
        now: DateTime<Utc>,
        instant_ready: bool,
    ) -> bool {
        if self.listed.is_some_and(|l| l > started) {
            return false;
        }
        self.listed = Some(started);
        let listed = || {
            own.iter()
                .map(|n| (n, true))
                .chain(shared.iter().map(|n| (n, false)))
        };
        let shown: BTreeMap<&str, &Narrative> = listed().map(|(n, _)| (n.id.as_str(), n)).collect();

        let ids: Vec<String> = self.entries.keys().cloned().collect();
        for id in ids {
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            if entry.since > started {
                continue;
            }
            match (shown.get(id.as_str()), entry.slot) {
                (Some(n), Slot::Waiting { ready }) => {
                    let running = n.state == NarrativeState::Running;
                    entry.slot = Slot::Waiting {
                        ready: (ready || instant_ready) && running,
                    };
                    entry.narrative = (*n).clone();
                }
                (Some(n), Slot::Uncertain) if n.name == entry.narrative.name => {
                    // The rename did not happen after all: it can serve someone.
                    entry.slot = Slot::Waiting {
                        ready: instant_ready && n.state == NarrativeState::Running,
                    };
                    entry.narrative = (*n).clone();
                    entry.since = gen;
                }
                // Claims are settled by the request that made them; a removal still
                // listed is retried by the next pool step; an assigned container still
                // listed under its waiting name is never handed out again.
                (Some(_), _) => {}
                (None, Slot::Claimed) => {}
                (None, _) => self.forget(&id, gen),
            }
        }
        for (n, own) in listed() {
            if self.entries.contains_key(&n.id)
                || self.forgotten.get(&n.id).is_some_and(|at| *at > started)
            {
                continue;
            }
            if own {
                self.creating.remove(&n.name);
            }
            self.entries.insert(
                n.id.clone(),
                Entry {
                    narrative: n.clone(),
                    slot: Slot::Waiting {
                        ready: instant_ready && n.state == NarrativeState::Running,
                    },
                    since: gen,
                    known_at: now,
                    own,
                },
            );
        }
        // Only listings that started after a forget could mention that id again, and those
        // show the truth; older tombstones are no longer needed.
        self.forgotten.retain(|_, at| *at > started);
        true
    }

    /// A create of `name` is about to be sent.
    pub fn begin_create(&mut self, name: ServiceName) {
        self.creating.insert(name);
    }

    /// The create of `narrative` answered. `ready` says whether it counts as answering
    /// already (no readiness check configured and the backend reports it running).
    pub fn created(&mut self, narrative: Narrative, ready: bool, gen: u64, now: DateTime<Utc>) {
        // A listing may have brought it in already (and a request may have claimed it since):
        // the listing's entry stands.
        if !self.creating.remove(&narrative.name) || self.entries.contains_key(&narrative.id) {
            return;
        }
        self.entries.insert(
            narrative.id.clone(),
            Entry {
                narrative,
                slot: Slot::Waiting { ready },
                since: gen,
                known_at: now,
                own: true,
            },
        );
    }

    /// The create of `name` failed; if it happened anyway, the next listing brings it in.
    pub fn create_failed(&mut self, name: &ServiceName) {
        self.creating.remove(name);
    }

    /// Takes a ready waiting container of `image` out of the pool for an assignment, this
    /// replica's own first (on a shared pool, the others' are claimed by their makers first,
    /// so replicas rarely race for one); `pick(n)` chooses among the `n` candidates
    /// (randomly, so concurrent requests spread).
    pub fn claim(
        &mut self,
        image: &str,
        pick: impl FnOnce(usize) -> usize,
        gen: u64,
    ) -> Option<Narrative> {
        let ready = |own: bool| {
            self.entries
                .iter()
                .filter(move |(_, e)| {
                    e.own == own
                        && e.slot == Slot::Waiting { ready: true }
                        && e.narrative.image == image
                })
                .map(|(id, _)| id)
                .collect::<Vec<&String>>()
        };
        let mut candidates = ready(true);
        if candidates.is_empty() {
            candidates = ready(false);
        }
        if candidates.is_empty() {
            return None;
        }
        let id = candidates[pick(candidates.len()).min(candidates.len() - 1)].clone();
        let entry = self.entries.get_mut(&id)?;
        entry.slot = Slot::Claimed;
        entry.since = gen;
        Some(entry.narrative.clone())
    }

    /// Ends the claim on `id` as `outcome` says.
    pub fn settle(&mut self, id: &str, outcome: Settle, gen: u64) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        if entry.slot != Slot::Claimed {
            return;
        }
        entry.since = gen;
        match outcome {
            Settle::Assigned => entry.slot = Slot::Assigned,
            Settle::Untouched => entry.slot = Slot::Waiting { ready: true },
            Settle::Unknown => entry.slot = Slot::Uncertain,
            Settle::Gone => self.forget(id, gen),
        }
    }

    /// Marks waiting container `id` as answering.
    pub fn mark_ready(&mut self, id: &str, gen: u64) {
        if let Some(entry) = self.entries.get_mut(id) {
            if entry.slot == (Slot::Waiting { ready: false }) {
                entry.slot = Slot::Waiting { ready: true };
                entry.since = gen;
            }
        }
    }

    /// Decides the pool step for `target` waiting containers of `image`, moving what is to
    /// be removed to `Removing` (only from `Waiting`: a claimed container is never removed).
    /// Containers not ready within `ready_within` of being known are replaced.
    pub fn plan(
        &mut self,
        image: &str,
        target: usize,
        now: DateTime<Utc>,
        ready_within: chrono::Duration,
        gen: u64,
    ) -> PoolPlan {
        let mut plan = PoolPlan::default();
        let mut kept = 0usize;
        // Ready ones first, then the oldest: the excess trimmed is the least useful.
        let mut order: Vec<(bool, DateTime<Utc>, String)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.own)
            .filter_map(|(id, e)| match e.slot {
                Slot::Waiting { ready } => Some((!ready, e.known_at, id.clone())),
                _ => None,
            })
            .collect();
        order.sort();
        for (_, known_at, id) in order {
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            let Slot::Waiting { ready } = entry.slot else {
                continue;
            };
            let list = if entry.narrative.image != image {
                &mut plan.outdated
            } else if !ready && now.signed_duration_since(known_at) > ready_within {
                &mut plan.unready
            } else if kept < target {
                kept += 1;
                continue;
            } else {
                &mut plan.excess
            };
            entry.slot = Slot::Removing;
            entry.since = gen;
            list.push(entry.narrative.clone());
        }
        plan.retry = self
            .entries
            .values()
            .filter(|e| e.own && e.slot == Slot::Removing && e.since < gen)
            .map(|e| e.narrative.clone())
            .collect();
        // A claim in flight may come back (the user had a container after all): its
        // replacement is started once it settles, so the pool never overshoots.
        let claimed = self
            .entries
            .values()
            .filter(|e| e.own && e.slot == Slot::Claimed && e.narrative.image == image)
            .count();
        plan.missing = target.saturating_sub(kept + claimed + self.creating.len());
        plan
    }

    /// `id` was removed.
    pub fn removed(&mut self, id: &str, gen: u64) {
        if self
            .entries
            .get(id)
            .is_some_and(|e| e.slot == Slot::Removing)
        {
            self.forget(id, gen);
        }
    }

    /// Moves every waiting container to `Removing` and returns them: the replica is shutting
    /// down gracefully (SPEC §9).
    pub fn retire(&mut self, gen: u64) -> Vec<Narrative> {
        let mut out = Vec::new();
        for entry in self.entries.values_mut().filter(|e| e.own) {
            if matches!(entry.slot, Slot::Waiting { .. } | Slot::Removing) {
                entry.slot = Slot::Removing;
                entry.since = gen;
                out.push(entry.narrative.clone());
            }
        }
        out
    }

    /// Claims not settled yet (of any container: this replica's assignments in flight).
    pub fn claims(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.slot == Slot::Claimed)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{NarrativeKind, SessionId};

    const IMAGE: &str = "kbase/narrative:1";

    fn waiting(id: &str) -> Narrative {
        let session = SessionId::generate();
        Narrative {
            id: id.into(),
            name: ServiceName::new(format!("narrativepre-{id}")).unwrap(),
            session,
            image: IMAGE.into(),
            kind: NarrativeKind::Prespawned,
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

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn ready_pool(ids: &[&str]) -> (Pool, Vec<Narrative>) {
        let mut pool = Pool::new();
        let all: Vec<Narrative> = ids.iter().map(|i| waiting(i)).collect();
        assert!(pool.observe(&all, &[], 0, 1, now(), false));
        for n in &all {
            pool.mark_ready(&n.id, 2);
        }
        (pool, all)
    }

    #[test]
    fn a_claimed_container_never_returns_to_waiting_from_a_listing_or_a_create() {
        // Issue 10 point 1: a listing taken while the create was in flight, then the create's
        // answer, must not put a claimed container back.
        let mut pool = Pool::new();
        let x = waiting("x");
        pool.begin_create(x.name.clone());
        assert!(pool.observe(std::slice::from_ref(&x), &[], 1, 2, now(), false));
        pool.mark_ready("x", 3);
        assert_eq!(pool.claim(IMAGE, |_| 0, 4).unwrap().id, "x");
        pool.created(x.clone(), true, 5, now());
        assert_eq!(pool.slot("x"), Some(Slot::Claimed));
        // A listing that started before the claim shows it waiting: still claimed.
        assert!(pool.observe(std::slice::from_ref(&x), &[], 3, 6, now(), false));
        assert_eq!(pool.slot("x"), Some(Slot::Claimed));
        assert_eq!(
            pool.claim(IMAGE, |_| 0, 7),
            None,
            "nobody else can claim it"
        );
        pool.settle("x", Settle::Assigned, 8);
        assert!(pool.observe(std::slice::from_ref(&x), &[], 7, 9, now(), false));
        assert_eq!(pool.slot("x"), Some(Slot::Assigned));
        assert_eq!(pool.claim(IMAGE, |_| 0, 10), None);
        // A listing that started after the assignment no longer shows it waiting: forgotten.
        assert!(pool.observe(&[], &[], 10, 11, now(), false));
        assert_eq!(pool.slot("x"), None);
        // And an older listing arriving late cannot bring it back.
        assert!(!pool.observe(std::slice::from_ref(&x), &[], 9, 12, now(), false));
        assert_eq!(pool.slot("x"), None);
    }

    #[test]
    fn the_pool_step_never_removes_a_claimed_container() {
        // Issue 10 point 2.
        let (mut pool, _) = ready_pool(&["a", "b", "c"]);
        let claimed = pool.claim(IMAGE, |_| 1, 3).unwrap();
        let plan = pool.plan("kbase/narrative:2", 3, now(), chrono::Duration::hours(1), 4);
        let outdated: Vec<&str> = plan.outdated.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(outdated.len(), 2);
        assert!(!outdated.contains(&claimed.id.as_str()));
        assert_eq!(pool.slot(&claimed.id), Some(Slot::Claimed));
        let (mut pool, _) = ready_pool(&["a", "b", "c"]);
        let claimed = pool.claim(IMAGE, |_| 0, 3).unwrap();
        let plan = pool.plan(IMAGE, 1, now(), chrono::Duration::hours(1), 4);
        assert_eq!(plan.excess.len(), 1, "two waiting, target one");
        assert!(!plan.excess.iter().any(|n| n.id == claimed.id));
        assert_eq!(plan.missing, 0);
    }

    #[test]
    fn an_uncertain_assignment_is_handed_out_only_after_a_listing_shows_it_waiting() {
        let (mut pool, all) = ready_pool(&["a"]);
        pool.claim(IMAGE, |_| 0, 3).unwrap();
        pool.settle("a", Settle::Unknown, 4);
        assert_eq!(pool.claim(IMAGE, |_| 0, 5), None);
        // A listing that started before the failed assignment proves nothing.
        assert!(pool.observe(&all, &[], 3, 6, now(), false));
        assert_eq!(pool.slot("a"), Some(Slot::Uncertain));
        // One that started after and still shows the waiting name does.
        assert!(pool.observe(&all, &[], 6, 7, now(), false));
        assert_eq!(pool.slot("a"), Some(Slot::Waiting { ready: false }));
        // Renamed after all: a later listing does not show it waiting, and it is forgotten.
        let (mut pool, _) = ready_pool(&["a"]);
        pool.claim(IMAGE, |_| 0, 3).unwrap();
        pool.settle("a", Settle::Unknown, 4);
        assert!(pool.observe(&[], &[], 5, 6, now(), false));
        assert_eq!(pool.slot("a"), None);
    }

    #[test]
    fn the_plan_settles_at_the_target_counting_creates_in_flight() {
        let (mut pool, _) = ready_pool(&["a"]);
        pool.begin_create(ServiceName::new("narrativepre-b").unwrap());
        let plan = pool.plan(IMAGE, 3, now(), chrono::Duration::hours(1), 3);
        assert_eq!(plan.missing, 1);
        pool.create_failed(&ServiceName::new("narrativepre-b").unwrap());
        let plan = pool.plan(IMAGE, 3, now(), chrono::Duration::hours(1), 4);
        assert_eq!(plan.missing, 2);
    }

    #[test]
    fn a_claim_in_flight_is_replaced_only_once_it_settles() {
        let (mut pool, _) = ready_pool(&["a", "b"]);
        pool.claim(IMAGE, |_| 0, 3).unwrap();
        let plan = pool.plan(IMAGE, 2, now(), chrono::Duration::hours(1), 4);
        assert_eq!(plan.missing, 0, "it may come back");
        pool.settle("a", Settle::Untouched, 5);
        assert_eq!(pool.waiting(IMAGE), 2, "back, and not one too many");
        pool.claim(IMAGE, |_| 0, 6).unwrap();
        pool.settle("a", Settle::Assigned, 7);
        let plan = pool.plan(IMAGE, 2, now(), chrono::Duration::hours(1), 8);
        assert_eq!(plan.missing, 1, "given away: replaced");
    }

    #[test]
    fn a_container_that_never_answers_is_replaced() {
        let mut pool = Pool::new();
        assert!(pool.observe(&[waiting("slow")], &[], 0, 1, now(), false));
        let later = now() + chrono::Duration::minutes(10);
        let plan = pool.plan(IMAGE, 1, later, chrono::Duration::minutes(5), 2);
        assert_eq!(plan.unready.len(), 1);
        assert_eq!(plan.missing, 1);
        assert_eq!(pool.slot("slow"), Some(Slot::Removing));
        pool.removed("slow", 3);
        assert_eq!(pool.slot("slow"), None);
    }

    #[test]
    fn a_removed_container_is_not_revived_by_a_listing_that_started_before() {
        let (mut pool, all) = ready_pool(&["a", "b"]);
        let plan = pool.plan(IMAGE, 1, now(), chrono::Duration::hours(1), 3);
        let gone = plan.excess[0].id.clone();
        pool.removed(&gone, 4);
        assert!(pool.observe(&all, &[], 3, 5, now(), false));
        assert_eq!(pool.slot(&gone), None);
        assert_eq!(pool.waiting(IMAGE), 1);
    }

    #[test]
    fn other_replicas_containers_are_claimed_after_ours_and_never_counted_or_removed() {
        let mut pool = Pool::new();
        let ours = waiting("ours");
        let theirs = [waiting("t1"), waiting("t2")];
        assert!(pool.observe(std::slice::from_ref(&ours), &theirs, 0, 1, now(), true));
        assert_eq!(pool.waiting(IMAGE), 1, "only ours count");
        assert_eq!(pool.ready(IMAGE), 3, "all are candidates");
        assert_eq!(
            pool.entries().count(),
            1,
            "only ours are shown as this pool"
        );
        let plan = pool.plan("kbase/narrative:2", 0, now(), chrono::Duration::hours(1), 2);
        assert_eq!(plan.outdated, vec![ours.clone()], "only ours are removed");
        let (mut pool, _) = ready_pool(&["ours"]);
        assert!(pool.observe(&[waiting("ours")], &theirs, 2, 3, now(), true));
        // Our own first, whatever the pick; then theirs.
        assert_eq!(pool.claim(IMAGE, |n| n - 1, 4).unwrap().id, "ours");
        let next = pool.claim(IMAGE, |_| 0, 5).unwrap();
        assert!(next.id.starts_with('t'));
        let plan = pool.plan(IMAGE, 1, now(), chrono::Duration::hours(1), 6);
        assert_eq!(
            plan.missing, 0,
            "our claim is in flight; theirs is not ours to replace"
        );
        // Theirs, lost to another replica's user (Conflict): forgotten.
        pool.settle(&next.id, Settle::Gone, 7);
        assert_eq!(pool.slot(&next.id), None);
        assert_eq!(
            pool.retire(8),
            Vec::<Narrative>::new(),
            "nothing of theirs retires"
        );
        assert_eq!(pool.claims(), 1, "our claim still counts");
    }

    #[test]
    fn retiring_removes_waiting_ones_but_not_claims() {
        let (mut pool, _) = ready_pool(&["a", "b"]);
        let claimed = pool.claim(IMAGE, |_| 0, 3).unwrap();
        let retired = pool.retire(4);
        assert_eq!(retired.len(), 1);
        assert_ne!(retired[0].id, claimed.id);
        assert_eq!(pool.claims(), 1);
    }
}
