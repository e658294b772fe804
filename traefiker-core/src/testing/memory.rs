use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::ManagerError;
use crate::manager::{BackendInfo, ContainerManager};
use crate::names::{Naming, NarrativeKind, ServiceName};
use crate::narrative::{Assignment, Narrative, NarrativeState, SpawnSpec};

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
    /// `remove`
    Remove,
    /// `zombies`
    Zombies,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    containers: BTreeMap<u64, Narrative>,
    zombies: Vec<u64>,
    failures: HashMap<Op, VecDeque<ManagerError>>,
    calls: HashMap<Op, usize>,
}

/// A [`ContainerManager`] that keeps containers in memory, with the real semantics: unique
/// names, rename, idempotent remove, zombies. It also counts calls, injects failures and can
/// add latency, for lifecycle tests.
#[derive(Debug)]
pub struct InMemoryManager {
    naming: Naming,
    latency: Duration,
    state: Mutex<State>,
}

const BACKEND: &str = "in-memory";

impl InMemoryManager {
    /// An empty backend classifying names with `naming`.
    pub fn new(naming: Naming) -> Self {
        Self {
            naming,
            latency: Duration::ZERO,
            state: Mutex::new(State::default()),
        }
    }

    /// The same, answering every call after `latency` (a yield point even when zero).
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the next call of `op` fail with `error` (queued; several calls queue several).
    pub fn fail_next(&self, op: Op, error: ManagerError) {
        self.state()
            .failures
            .entry(op)
            .or_default()
            .push_back(error);
    }

    /// How many times `op` was called.
    pub fn calls(&self, op: Op) -> usize {
        self.state().calls.get(&op).copied().unwrap_or(0)
    }

    /// Every live container.
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
        id.to_string()
    }

    /// Marks the container named `name` as stopped after starting once.
    pub fn make_zombie(&self, name: &str) {
        let mut state = self.state();
        let ids: Vec<u64> = state
            .containers
            .iter()
            .filter(|(_, n)| n.name.as_str() == name)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(n) = state.containers.get_mut(&id) {
                n.state = NarrativeState::Stopped;
            }
            state.zombies.push(id);
        }
    }

    async fn begin(&self, op: Op) -> Result<(), ManagerError> {
        if self.latency.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(self.latency).await;
        }
        let mut state = self.state();
        *state.calls.entry(op).or_insert(0) += 1;
        match state.failures.get_mut(&op).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn name_taken(name: &ServiceName) -> ManagerError {
    ManagerError::NameTaken {
        backend: BACKEND.into(),
        name: name.to_string(),
    }
}

fn parse_id(narrative: &Narrative) -> Option<u64> {
    narrative.id.parse().ok()
}

#[async_trait]
impl ContainerManager for InMemoryManager {
    async fn verify(&self) -> Result<BackendInfo, ManagerError> {
        self.begin(Op::Verify).await?;
        Ok(BackendInfo {
            backend: BACKEND.into(),
            location: "this process".into(),
        })
    }

    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
        self.begin(Op::Find).await?;
        Ok(self
            .state()
            .containers
            .values()
            .find(|n| &n.name == name)
            .cloned())
    }

    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        self.begin(Op::List).await?;
        Ok(self.containers())
    }

    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        self.begin(Op::Create).await?;
        let mut state = self.state();
        if state.containers.values().any(|n| n.name == spec.name) {
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
            address: None,
            public_endpoints: Vec::new(),
            created: None,
        };
        state.containers.insert(id, narrative.clone());
        Ok(narrative)
    }

    async fn assign(
        &self,
        narrative: &Narrative,
        assignment: &Assignment,
    ) -> Result<Narrative, ManagerError> {
        self.begin(Op::Assign).await?;
        let mut state = self.state();
        let not_found = || ManagerError::NotFound {
            backend: BACKEND.into(),
            name: narrative.name.to_string(),
        };
        let id = parse_id(narrative).ok_or_else(not_found)?;
        match state.containers.get(&id) {
            Some(current) if current.kind == NarrativeKind::Prespawned => {}
            _ => return Err(not_found()),
        }
        if state
            .containers
            .iter()
            .any(|(other, n)| *other != id && n.name == assignment.name)
        {
            return Err(name_taken(&assignment.name));
        }
        let target = state.containers.get_mut(&id).ok_or_else(not_found)?;
        target.name = assignment.name.clone();
        target.origin = Some(assignment.origin.clone());
        target.kind = self
            .naming
            .kind_of(assignment.name.as_str())
            .unwrap_or(NarrativeKind::User);
        Ok(target.clone())
    }

    async fn remove(&self, narrative: &Narrative) -> Result<(), ManagerError> {
        self.begin(Op::Remove).await?;
        if let Some(id) = parse_id(narrative) {
            let mut state = self.state();
            state.containers.remove(&id);
            state.zombies.retain(|z| *z != id);
        }
        Ok(())
    }

    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        self.begin(Op::Zombies).await?;
        let state = self.state();
        Ok(state
            .zombies
            .iter()
            .filter_map(|id| state.containers.get(id))
            .filter(|n| self.naming.kind_of(n.name.as_str()).is_some())
            .cloned()
            .collect())
    }

    fn traefik_service(&self, narrative_name: &ServiceName) -> String {
        narrative_name.to_string()
    }
}
