use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::ManagerError;
use crate::manager::{BackendInfo, ContainerManager};
use crate::names::{Naming, NarrativeKind, Owner, ReplicaId, ServiceName};
use crate::narrative::{Assignment, Narrative, NarrativeState, Origin, SpawnSpec};
use crate::rules::REPLICA_LABEL;

/// The operations of a [`ContainerManager`], for call counts and failure injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `verify`
    Verify,
    /// `find`
    Find,
    /// `list`
    List,
    /// `create`
    Create,
    /// `assign`
    Assign,
    /// `mark_connected`
    MarkConnected,
    /// `stamp_owner`
    StampOwner,
    /// `remove`
    Remove,
    /// `zombies`
    Zombies,
}

/// How writes act, as [`crate::testing::conformance::Caps::conditional_assign`] and
/// [`crate::testing::conformance::Caps::conditional`] say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AssignMode {
    /// One atomic compare-and-rename: the candidate is renamed only if it still has the name
    /// it was listed with; other writes are unconditional and there are no versions.
    #[default]
    Conditional,
    /// What Rancher and Docker do: read the candidate (one call's latency), then rename it
    /// unconditionally (another call's latency), whatever happened in between.
    ReadThenRename,
    /// What Swarm and Kubernetes do ([`ContainerManager::conditional`] is true): every
    /// narrative carries a [`Narrative::version`], every successful write makes a new one,
    /// and `assign`, `mark_connected`, `stamp_owner` and `remove` given a version that is no
    /// longer current fail with [`ManagerError::Conflict`] and change nothing. A removal is
    /// a conditional claim (the narrative is `Removing` from then on: `find`, `list` and
    /// `zombies` skip it, writes to it are `NotFound`, its name stays taken) and a delete
    /// that lands a round trip later, as Swarm's label update then `service rm` do.
    Versioned,
}

/// Seeded random latency and failures, for the simulation: every call waits a latency drawn
/// from `latency`, some calls fail before acting, and some act but lose their answer (the
/// caller sees an error although the change happened, like a timeout after Rancher did it).
#[derive(Clone, Debug)]
pub struct Faults {
    /// The seed of the generator; the same seed gives the same latencies and failures.
    pub seed: u64,
    /// Each call's latency is drawn uniformly from this range.
    pub latency: (Duration, Duration),
    /// Probability that a call fails without acting.
    pub fail_before: f64,
    /// Probability that a call that changes something acts but answers an error.
    pub fail_after: f64,
    /// Probability that a call is slow: its latency is multiplied by 20.
    pub slow: f64,
}

#[derive(Debug)]
struct State {
    next_id: u64,
    containers: BTreeMap<u64, Narrative>,
    zombies: Vec<u64>,
    failures: HashMap<Op, VecDeque<ManagerError>>,
    lost: HashMap<Op, usize>,
    calls: BTreeMap<Op, usize>,
    rng: Option<(StdRng, Faults)>,
    /// Where containers created from now on answer HTTP.
    address: Option<String>,
    /// The last version given out ([`AssignMode::Versioned`]): one counter for the whole
    /// backend, like Swarm's index, so a version is never reused.
    version: u64,
    /// Narratives claimed for removal, and when their delete lands. The delete lands even if
    /// the remover's call is dropped meanwhile (its future is gone, not the orchestrator's
    /// work), so a claim is never left behind for ever.
    deleting: BTreeMap<u64, tokio::time::Instant>,
}

impl State {
    /// A new version for a narrative that was just written.
    fn bump(&mut self, id: u64) {
        self.version += 1;
        let version = self.version.to_string();
        if let Some(n) = self.containers.get_mut(&id) {
            n.version = Some(version);
        }
    }

    /// Deletes what was claimed for removal and is due.
    fn purge(&mut self) {
        if self.deleting.is_empty() {
            return;
        }
        let now = tokio::time::Instant::now();
        let due: Vec<u64> = self
            .deleting
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.deleting.remove(&id);
            self.containers.remove(&id);
            self.zombies.retain(|z| *z != id);
        }
    }

    /// Whether container `id` is being removed (claimed, not deleted yet).
    fn removing(&self, id: u64) -> bool {
        self.deleting.contains_key(&id)
    }
}

/// A [`ContainerManager`] that keeps containers in memory, with the real semantics: unique
/// names, rename, idempotent remove, zombies, labels read back. It also counts calls, injects
/// failures, adds latency (fixed or seeded random), and can rename like Rancher
/// ([`AssignMode::ReadThenRename`]), for lifecycle tests and the simulation.
#[derive(Debug)]
pub struct InMemoryManager {
    naming: Naming,
    latency: Duration,
    cold_start: Duration,
    mode: AssignMode,
    state: Mutex<State>,
}

const BACKEND: &str = "in-memory";

/// What a call does once it reaches the backend: fail first, act and then fail, or act.
enum Fate {
    Fail(ManagerError),
    LoseAnswer,
    Answer,
}

/// A call that reached the backend: its fate, and how long its answer takes to come back.
/// Like a real server, the backend acts when the request arrives, half-way through the
/// latency, not when the caller hears back: a listing may show a create whose caller is still
/// waiting for the answer.
struct Call {
    fate: Fate,
    back: Duration,
}

impl InMemoryManager {
    /// An empty backend classifying names with `naming`.
    pub fn new(naming: Naming) -> Self {
        Self {
            naming,
            latency: Duration::ZERO,
            cold_start: Duration::ZERO,
            mode: AssignMode::Conditional,
            state: Mutex::new(State {
                next_id: 0,
                containers: BTreeMap::new(),
                zombies: Vec::new(),
                failures: HashMap::new(),
                lost: HashMap::new(),
                calls: BTreeMap::new(),
                rng: None,
                address: None,
                version: 0,
                deleting: BTreeMap::new(),
            }),
        }
    }

    /// The same, answering every call after `latency` (a yield point even when zero).
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The same, with creates taking `cold_start` more before the container exists (running,
    /// answering): a narrative's cold start, which a waiting one saves its user.
    pub fn with_cold_start(mut self, cold_start: Duration) -> Self {
        self.cold_start = cold_start;
        self
    }

    /// The same, renaming as `mode` says.
    pub fn with_assign_mode(mut self, mode: AssignMode) -> Self {
        self.mode = mode;
        self
    }

    /// The same, with seeded random latency and failures instead of a fixed latency.
    pub fn with_faults(self, faults: Faults) -> Self {
        self.set_faults(Some(faults));
        self
    }

    /// Starts (or, with `None`, stops) seeded random latency and failures.
    pub fn set_faults(&self, faults: Option<Faults>) {
        self.state().rng = faults.map(|f| (StdRng::seed_from_u64(f.seed), f));
    }

    /// Containers created from now on report `address` as where they answer HTTP (e.g. a
    /// test server playing their Jupyter), as a real backend does.
    pub fn set_address(&self, address: Option<String>) {
        self.state().address = address;
    }

    /// How `assign` renames.
    pub fn assign_mode(&self) -> AssignMode {
        self.mode
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.purge();
        state
    }

    fn versioned(&self) -> bool {
        self.mode == AssignMode::Versioned
    }

    /// Makes the next call of `op` fail with `error` (queued; several calls queue several).
    pub fn fail_next(&self, op: Op, error: ManagerError) {
        self.state()
            .failures
            .entry(op)
            .or_default()
            .push_back(error);
    }

    /// Makes the next call of `op` act and then lose its answer: the caller sees
    /// `Unavailable` although the change happened (a timeout after the orchestrator did it).
    pub fn lose_next_answer(&self, op: Op) {
        *self.state().lost.entry(op).or_insert(0) += 1;
    }

    /// How many times `op` was called.
    pub fn calls(&self, op: Op) -> usize {
        self.state().calls.get(&op).copied().unwrap_or(0)
    }

    /// Every call counted so far, by operation.
    pub fn all_calls(&self) -> BTreeMap<Op, usize> {
        self.state().calls.clone()
    }

    /// Every live container, in creation order.
    pub fn containers(&self) -> Vec<Narrative> {
        self.state().containers.values().cloned().collect()
    }

    /// Adds a container as it is (e.g. a duplicate left by an old race); returns its id.
    pub fn insert(&self, mut narrative: Narrative) -> String {
        let mut state = self.state();
        state.next_id += 1;
        let id = state.next_id;
        narrative.id = id.to_string();
        state.containers.insert(id, narrative);
        if self.versioned() {
            state.bump(id);
        }
        id.to_string()
    }

    /// Marks the container named `name` as stopped after starting once.
    pub fn make_zombie(&self, name: &str) {
        let mut state = self.state();
        let ids: Vec<u64> = state
            .containers
            .iter()
            .filter(|(_, s)| s.name.as_str() == name)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(n) = state.containers.get_mut(&id) {
                n.state = NarrativeState::Stopped;
            }
            state.zombies.push(id);
        }
    }

    /// One round trip's latency: fixed, or drawn from the faults.
    fn latency(&self, state: &mut State) -> Duration {
        match state.rng.as_mut() {
            None => self.latency,
            Some((rng, faults)) => {
                let (lo, hi) = faults.latency;
                let latency = if hi > lo {
                    rng.random_range(lo..=hi)
                } else {
                    lo
                };
                if rng.random_bool(faults.slow) {
                    latency * 20
                } else {
                    latency
                }
            }
        }
    }

    /// Sends a call: waits until it reaches the backend, counts it, and decides its fate.
    /// `changes` says whether the call changes something (only those can lose their answer
    /// after acting).
    async fn begin(&self, op: Op, changes: bool) -> Call {
        let (there, back, random_fate) = {
            let mut state = self.state();
            let latency = self.latency(&mut state);
            let fate = state.rng.as_mut().and_then(|(rng, faults)| {
                if rng.random_bool(faults.fail_before) {
                    Some(Fate::Fail(unavailable(op, "injected failure")))
                } else if changes && rng.random_bool(faults.fail_after) {
                    Some(Fate::LoseAnswer)
                } else {
                    None
                }
            });
            (latency / 2, latency - latency / 2, fate)
        };
        wait(there).await;
        let mut state = self.state();
        *state.calls.entry(op).or_insert(0) += 1;
        if let Some(e) = state.failures.get_mut(&op).and_then(VecDeque::pop_front) {
            return Call {
                fate: Fate::Fail(e),
                back,
            };
        }
        if let Some(lost) = state.lost.get_mut(&op).filter(|n| **n > 0) {
            *lost -= 1;
            return Call {
                fate: Fate::LoseAnswer,
                back,
            };
        }
        Call {
            fate: random_fate.unwrap_or(Fate::Answer),
            back,
        }
    }

    /// Ends a call: its answer travels back.
    async fn end<T>(
        &self,
        call: Call,
        op: Op,
        result: Result<T, ManagerError>,
    ) -> Result<T, ManagerError> {
        wait(call.back).await;
        match (call.fate, result) {
            (Fate::LoseAnswer, Ok(_)) => Err(unavailable(op, "answer lost after the change")),
            (_, result) => result,
        }
    }

    fn create_now(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        let mut state = self.state();
        if state.containers.values().any(|s| s.name == spec.name) {
            return Err(name_taken(&spec.name));
        }
        state.next_id += 1;
        let id = state.next_id;
        let narrative = Narrative {
            id: id.to_string(),
            name: spec.name.clone(),
            session: spec.session.clone(),
            image: spec.image.clone(),
            kind: spec.kind,
            state: NarrativeState::Running,
            origin: spec.origin.clone(),
            replica: spec
                .labels
                .get(REPLICA_LABEL)
                .and_then(|r| ReplicaId::new(r.as_str()).ok()),
            owner: spec.owner.clone(),
            version: None,
            address: state.address.clone(),
            public_endpoints: Vec::new(),
            created: None,
        };
        state.containers.insert(id, narrative);
        if self.versioned() {
            state.bump(id);
        }
        Ok(state.containers[&id].clone())
    }

    /// Where versions are kept, whether a write given `narrative` may act on container `id`:
    /// `NotFound` if it is gone or being removed, `Conflict` if its version moved since
    /// `narrative` was read. A narrative read without a version is written as it now is.
    fn current(
        &self,
        state: &State,
        id: Option<u64>,
        narrative: &Narrative,
    ) -> Result<u64, ManagerError> {
        let id = id
            .filter(|id| state.containers.contains_key(id) && !state.removing(*id))
            .ok_or_else(|| not_found(&narrative.name))?;
        let stored = &state.containers[&id];
        match &narrative.version {
            Some(v) if self.versioned() && stored.version.as_ref() != Some(v) => {
                Err(conflict(&narrative.name))
            }
            _ => Ok(id),
        }
    }

    /// [`AssignMode::Versioned`]'s removal: claims the narrative (conditionally where a
    /// version is given) and has its delete land once the claim's answer is back and the
    /// delete has travelled there; returns the delete's round trip, which the answer waits
    /// for too. Gone or already claimed is success.
    fn claim_removal(
        &self,
        narrative: &Narrative,
        back: Duration,
    ) -> Result<Duration, ManagerError> {
        let mut state = self.state();
        let Some(id) = parse_id(narrative)
            .filter(|id| state.containers.contains_key(id) && !state.removing(*id))
        else {
            return Ok(Duration::ZERO);
        };
        self.current(&state, Some(id), narrative)?;
        let delete = self.latency(&mut state);
        if let Some(stored) = state.containers.get_mut(&id) {
            stored.state = NarrativeState::Removing;
        }
        state.bump(id);
        state
            .deleting
            .insert(id, tokio::time::Instant::now() + back + delete / 2);
        Ok(delete)
    }

    fn rename(
        &self,
        state: &mut State,
        id: u64,
        listed: &Narrative,
        assignment: &Assignment,
    ) -> Result<Narrative, ManagerError> {
        if state
            .containers
            .iter()
            .any(|(other, s)| *other != id && s.name == assignment.name)
        {
            return Err(name_taken(&assignment.name));
        }
        let target = state
            .containers
            .get_mut(&id)
            .ok_or_else(|| not_found(&listed.name))?;
        target.name = assignment.name.clone();
        target.owner = Some(assignment.owner.clone());
        target.origin = Some(assignment.origin.clone());
        target.kind = self
            .naming
            .kind_of(assignment.name.as_str())
            .unwrap_or(NarrativeKind::User);
        if self.versioned() {
            state.bump(id);
        }
        Ok(state.containers[&id].clone())
    }
}

fn unavailable(op: Op, detail: &str) -> ManagerError {
    ManagerError::Unavailable {
        backend: BACKEND.into(),
        detail: format!("{op:?}: {detail}"),
    }
}

fn name_taken(name: &ServiceName) -> ManagerError {
    ManagerError::NameTaken {
        backend: BACKEND.into(),
        name: name.to_string(),
    }
}

fn conflict(name: &ServiceName) -> ManagerError {
    ManagerError::Conflict {
        backend: BACKEND.into(),
        name: name.to_string(),
    }
}

fn not_found(name: &ServiceName) -> ManagerError {
    ManagerError::NotFound {
        backend: BACKEND.into(),
        name: name.to_string(),
    }
}

fn parse_id(narrative: &Narrative) -> Option<u64> {
    narrative.id.parse().ok()
}

async fn wait(latency: Duration) {
    if latency.is_zero() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(latency).await;
    }
}

#[async_trait]
impl ContainerManager for InMemoryManager {
    async fn verify(&self) -> Result<BackendInfo, ManagerError> {
        let call = self.begin(Op::Verify, false).await;
        if let Fate::Fail(e) = call.fate {
            return Err(e);
        }
        let info = BackendInfo {
            backend: BACKEND.into(),
            location: "this process".into(),
        };
        self.end(call, Op::Verify, Ok(info)).await
    }

    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
        let call = self.begin(Op::Find, false).await;
        if let Fate::Fail(e) = call.fate {
            return Err(e);
        }
        let found = {
            let state = self.state();
            state
                .containers
                .iter()
                .find(|(id, s)| &s.name == name && !state.removing(**id))
                .map(|(_, s)| s.clone())
        };
        self.end(call, Op::Find, Ok(found)).await
    }

    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        let call = self.begin(Op::List, false).await;
        if let Fate::Fail(e) = call.fate {
            return Err(e);
        }
        let all = {
            let state = self.state();
            state
                .containers
                .iter()
                .filter(|(id, _)| !state.removing(**id))
                .map(|(_, s)| s.clone())
                .collect()
        };
        self.end(call, Op::List, Ok(all)).await
    }

    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        if !self.cold_start.is_zero() {
            tokio::time::sleep(self.cold_start).await;
        }
        let call = self.begin(Op::Create, true).await;
        if let Fate::Fail(e) = call.fate {
            return Err(e);
        }
        let result = self.create_now(spec);
        self.end(call, Op::Create, result).await
    }

    async fn assign(
        &self,
        narrative: &Narrative,
        assignment: &Assignment,
    ) -> Result<Narrative, ManagerError> {
        let call = self.begin(Op::Assign, true).await;
        if let Fate::Fail(e) = call.fate {
            return Err(e);
        }
        let Some(id) = parse_id(narrative) else {
            return self
                .end(call, Op::Assign, Err(not_found(&narrative.name)))
                .await;
        };
        let still_waiting = |state: &State| {
            !state.removing(id)
                && state.containers.get(&id).is_some_and(|s| {
                    s.kind == NarrativeKind::Prespawned && s.name == narrative.name
                })
        };
        let result = match self.mode {
            AssignMode::Versioned => {
                let mut state = self.state();
                self.current(&state, Some(id), narrative).and_then(|id| {
                    if still_waiting(&state) {
                        self.rename(&mut state, id, narrative, assignment)
                    } else {
                        Err(not_found(&narrative.name))
                    }
                })
            }
            AssignMode::Conditional => {
                let mut state = self.state();
                if still_waiting(&state) {
                    self.rename(&mut state, id, narrative, assignment)
                } else {
                    Err(not_found(&narrative.name))
                }
            }
            AssignMode::ReadThenRename => {
                if !still_waiting(&self.state()) {
                    return self
                        .end(call, Op::Assign, Err(not_found(&narrative.name)))
                        .await;
                }
                // Between the read and the rename anything may happen, as on Rancher: the
                // read's answer travels back and the rename travels there.
                let rename = {
                    let mut state = self.state();
                    self.latency(&mut state)
                };
                wait(call.back + rename / 2).await;
                let result = {
                    let mut state = self.state();
                    self.rename(&mut state, id, narrative, assignment)
                };
                let call = Call {
                    fate: call.fate,
                    back: rename - rename / 2,
                };
                return self.end(call, Op::Assign, result).await;
            }
        };
        self.end(call, Op::Assign, result).await
    }

    async fn mark_connected(
        &self,
        narrative: &Narrative,
        origin: &Origin,
    ) -> Result<Narrative, ManagerError> {
        let call = self.begin(Op::MarkConnected, true).await;
        if let Fate::Fail(e) = call.fate {
            return Err(e);
        }
        let result = {
            let mut state = self.state();
            self.current(&state, parse_id(narrative), narrative)
                .and_then(|id| {
                    let stored = state
                        .containers
                        .get_mut(&id)
                        .ok_or_else(|| not_found(&narrative.name))?;
                    stored.origin = Some(origin.clone());
                    Ok(id)
                })
                .map(|id| {
                    if self.versioned() {
                        state.bump(id);
                    }
                    state.containers[&id].clone()
                })
        };
        self.end(call, Op::MarkConnected, result).await
    }

    async fn stamp_owner(
        &self,
        narrative: &Narrative,
        owner: &Owner,
    ) -> Result<Narrative, ManagerError> {
        let call = self.begin(Op::StampOwner, true).await;
        if let Fate::Fail(e) = call.fate {
            return Err(e);
        }
        let id = parse_id(narrative);
        let recorded = |state: &State| -> Result<Option<Owner>, ManagerError> {
            id.and_then(|id| state.containers.get(&id))
                .map(|s| s.owner.clone())
                .ok_or_else(|| not_found(&narrative.name))
        };
        let check = |found: Option<Owner>| match found {
            Some(other) if other != *owner => Err(ManagerError::OwnedByAnother {
                backend: BACKEND.into(),
                name: narrative.name.to_string(),
            }),
            _ => Ok(()),
        };
        let write = |state: &mut State| -> Result<Narrative, ManagerError> {
            let stored = id
                .and_then(|id| state.containers.get_mut(&id))
                .ok_or_else(|| not_found(&narrative.name))?;
            stored.owner = Some(owner.clone());
            Ok(stored.clone())
        };
        let result = match self.mode {
            AssignMode::Versioned => {
                let mut state = self.state();
                self.current(&state, id, narrative)
                    .and_then(|_| recorded(&state))
                    .and_then(check)
                    .and_then(|()| write(&mut state))
                    .map(|written| {
                        let id = id.unwrap_or_default();
                        state.bump(id);
                        state.containers.get(&id).cloned().unwrap_or(written)
                    })
            }
            AssignMode::Conditional => {
                let mut state = self.state();
                recorded(&state)
                    .and_then(check)
                    .and_then(|()| write(&mut state))
            }
            AssignMode::ReadThenRename => {
                // As on Rancher: look at the description, then write it, whatever happened
                // in between.
                let looked = recorded(&self.state()).and_then(check);
                if let Err(e) = looked {
                    return self.end(call, Op::StampOwner, Err(e)).await;
                }
                let write_latency = {
                    let mut state = self.state();
                    self.latency(&mut state)
                };
                wait(call.back + write_latency / 2).await;
                let result = write(&mut self.state());
                let call = Call {
                    fate: call.fate,
                    back: write_latency - write_latency / 2,
                };
                return self.end(call, Op::StampOwner, result).await;
            }
        };
        self.end(call, Op::StampOwner, result).await
    }

    fn conditional(&self) -> bool {
        self.versioned()
    }

    async fn remove(&self, narrative: &Narrative) -> Result<(), ManagerError> {
        let call = self.begin(Op::Remove, true).await;
        if let Fate::Fail(e) = call.fate {
            return Err(e);
        }
        if self.versioned() {
            let result = self.claim_removal(narrative, call.back);
            let call = Call {
                back: call.back + *result.as_ref().unwrap_or(&Duration::ZERO),
                fate: call.fate,
            };
            return self.end(call, Op::Remove, result.map(|_| ())).await;
        }
        if let Some(id) = parse_id(narrative) {
            let mut state = self.state();
            state.containers.remove(&id);
            state.zombies.retain(|z| *z != id);
        }
        self.end(call, Op::Remove, Ok(())).await
    }

    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        let call = self.begin(Op::Zombies, false).await;
        if let Fate::Fail(e) = call.fate {
            return Err(e);
        }
        let zombies: Vec<Narrative> = {
            let state = self.state();
            state
                .zombies
                .iter()
                .filter(|id| !state.removing(**id))
                .filter_map(|id| state.containers.get(id))
                .filter(|n| self.naming.kind_of(n.name.as_str()).is_some())
                .cloned()
                .collect()
        };
        self.end(call, Op::Zombies, Ok(zombies)).await
    }

    fn traefik_service(&self, narrative_name: &ServiceName) -> String {
        narrative_name.to_string()
    }
}
