//! Connecting a user (SPEC §3 step 3, §5, §9) and shutting a narrative down.
//!
//! A returning user is answered from the index with no backend call, unless the request
//! carries the index's own session (Traefik did not route it: the container may be gone, or
//! its route not loaded yet), which is checked with one `find`. A new user is given a ready
//! waiting container (one assignment: this replica's, or on a conditional backend any
//! replica's) or a new one (one create); a name already taken means the user has a container
//! after all, which is adopted, or, on a conditional backend, that a reaper is removing theirs,
//! which is waited for.
//!
//! Every 201 keeps its narrative from idle reaping for at least the idle timeout: the connect
//! is recorded as last-seen (in the store, at most once per [`LifecycleConfig::mark_refresh`])
//! and, when other replicas may reap, marked in the orchestrator too.

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, FutureExt};

use super::{lock, ConnectOutcome, Connection, Known, Lifecycle, LifecycleConfig};
use crate::error::{Error, InvalidInput, ManagerError};
use crate::names::{NarrativeKind, Owner, ServiceName, SessionId, UserId};
use crate::narrative::{Assignment, Narrative, NarrativeState, Origin, SpawnSpec};
use crate::pool::Settle;

/// What the request says besides who the user is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Visit {
    /// The client address, written into the container's description.
    pub client_ip: Option<String>,
    /// The routing cookie the request carried (`narrative_session`), if valid: when it is
    /// the user's own session, Traefik did not route the request to the container.
    pub session_cookie: Option<SessionId>,
}

impl Visit {
    /// A visit from `client_ip` with no routing cookie.
    pub fn from_ip(client_ip: impl Into<String>) -> Self {
        Self {
            client_ip: Some(client_ip.into()),
            session_cookie: None,
        }
    }
}

impl Lifecycle {
    /// Finds or makes `user`'s narrative and returns its session.
    ///
    /// Concurrent calls for one user share one operation and all receive the same session;
    /// the caller waits at most the call deadline, the operation itself finishes in the
    /// background with every call bounded. A narrative recorded as another user's is never
    /// the answer (SPEC §10): a user whose name holds one gets a narrative under
    /// [`crate::Naming::fallback_container`].
    pub async fn connect(&self, user: &UserId, visit: Visit) -> Result<Connection, Error> {
        let owner = Owner::of(user);
        if let Some(answer) = self.answer_from_index(user, &owner, &visit) {
            return Ok(answer);
        }
        let this = self.clone();
        let user = user.clone();
        let deadline = self.inner.config.call_timeout;
        // Keyed by the owner, not the name: two ids that share a name are two users, and
        // must never share an answer.
        let flight = self.inner.flights.run(owner.clone(), async move {
            let name = this.inner.config.naming.user_container(&user);
            let span = tracing::info_span!("connect", service = %name);
            let answer =
                tracing::Instrument::instrument(this.connect_slow(&user, owner, visit), span).await;
            // Once per new user, however many requests shared the operation.
            if let Ok(c) = &answer {
                if c.outcome != ConnectOutcome::Existing {
                    this.answered_new_user(c.outcome);
                }
            }
            answer
        });
        match tokio::time::timeout(deadline, flight).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(stopped)) => Err(ManagerError::Unavailable {
                backend: "lifecycle".into(),
                detail: stopped.to_string(),
            }
            .into()),
            Err(_) => Err(super::late("connecting", deadline).into()),
        }
    }

    /// The answer for a returning user this process knows, when it needs no backend call:
    /// the narrative under the user's name, or under their fallback name, whose recorded owner
    /// is this user. A narrative without an owner record is stamped first (slow path).
    fn answer_from_index(&self, user: &UserId, owner: &Owner, visit: &Visit) -> Option<Connection> {
        let now = self.inner.clock.now();
        let naming = &self.inner.config.naming;
        let (connection, service, write) = {
            let mut known = lock(&self.inner.known);
            let primary = naming.user_container(user);
            let narrative = match known.index.get(&primary) {
                Some(n) if n.owner.as_ref() == Some(owner) => n,
                Some(n) if n.owner.is_none() => return None,
                _ => known
                    .index
                    .get(&naming.fallback_container(user))
                    .filter(|n| n.owner.as_ref() == Some(owner))?,
            };
            if visit.session_cookie.as_ref() == Some(&narrative.session)
                || self.mark_due(narrative, now)
            {
                return None;
            }
            let connection = Connection {
                name: narrative.name.clone(),
                session: narrative.session.clone(),
                outcome: ConnectOutcome::Existing,
            };
            let service = self.inner.manager.traefik_service(&narrative.name);
            let write = note_connect(&mut known, &self.inner.config, &service, now);
            (connection, service, write)
        };
        if write {
            self.write_connect(&service, now);
        }
        Some(connection)
    }

    fn mark_due(&self, narrative: &Narrative, now: DateTime<Utc>) -> bool {
        self.shared_marks()
            && narrative.origin.as_ref().is_none_or(|o| {
                now.signed_duration_since(o.at)
                    > chrono::Duration::from_std(self.inner.config.mark_refresh())
                        .unwrap_or(chrono::Duration::MAX)
            })
    }

    /// Records a connect in the store (the in-memory mirror was updated by [`note_connect`]).
    fn write_connect(&self, service: &str, now: DateTime<Utc>) {
        // The mirror already protects the narrative from this process's reaper; a failed
        // write only matters across a restart, so the user is served and the operator told.
        if let Err(e) = self.inner.store.update(&[(service.to_owned(), now)], &[]) {
            tracing::warn!(error = %e, "could not record a connection in the activity store");
        }
    }

    /// The slow path: under the user's own name, unless it holds another user's narrative
    /// (or the index knows the user's narrative under the fallback name); then under the
    /// fallback name, which no other id produces.
    async fn connect_slow(
        &self,
        user: &UserId,
        owner: Owner,
        visit: Visit,
    ) -> Result<Connection, Error> {
        let naming = &self.inner.config.naming;
        let primary = naming.user_container(user);
        let fallback = naming.fallback_container(user);
        let start_with_fallback = {
            let known = lock(&self.inner.known);
            match known.index.get(&primary).map(|n| n.owner.as_ref()) {
                Some(Some(o)) => *o != owner,
                Some(None) => false,
                None => known
                    .index
                    .get(&fallback)
                    .is_some_and(|n| n.owner.as_ref() == Some(&owner)),
            }
        };
        if !start_with_fallback {
            if let Placed::Connected(c) = self.connect_as(user, &owner, &primary, &visit).await? {
                return Ok(c);
            }
            tracing::warn!(service = %primary, fallback = %fallback, "the user's name holds another user's narrative; using a name of their own");
        }
        match self.connect_as(user, &owner, &fallback, &visit).await? {
            Placed::Connected(c) => Ok(c),
            Placed::Taken => Err(ManagerError::OwnedByAnother {
                backend: "lifecycle".into(),
                name: fallback.to_string(),
            }
            .into()),
        }
    }

    /// Connects `user` to the narrative named `name`, found, assigned or created; `Taken`
    /// if that name holds another user's narrative.
    async fn connect_as(
        &self,
        user: &UserId,
        owner: &Owner,
        name: &ServiceName,
        visit: &Visit,
    ) -> Result<Placed, Error> {
        // A returning user counts as seen before waiting for the lane: a reaper holding it
        // to look at this narrative once more then sees the visit and keeps it. If this
        // connect fails after all, the narrative is only kept a little longer.
        let mine = |n: &Narrative| n.owner.as_ref().is_none_or(|o| o == owner);
        if lock(&self.inner.known).index.get(name).is_some_and(mine) {
            self.connected(name);
        }
        let _lane = self.inner.lanes.enter(name).await;
        let origin = Origin {
            client_ip: visit.client_ip.clone(),
            at: self.inner.clock.now(),
        };
        let known = lock(&self.inner.known).index.get(name).cloned();
        if let Some(narrative) = known {
            if !mine(&narrative) {
                return Ok(Placed::Taken);
            }
            let found = if visit.session_cookie.as_ref() != Some(&narrative.session) {
                self.existing(narrative, owner, &origin).await?
            } else {
                // Traefik did not route the user's own session: look.
                match self.call("find", self.inner.manager.find(name)).await? {
                    Some(found) if is_live(&found) => {
                        self.remember(&found);
                        tracing::debug!("the narrative exists; its route is not loaded yet");
                        self.existing(found, owner, &origin).await?
                    }
                    Some(dead) if !mine(&dead) => Found::Taken,
                    Some(dead) => {
                        self.clear_dead(name, dead).await?;
                        Found::Gone
                    }
                    None => Found::Gone,
                }
            };
            match found {
                Found::Connected(connection) => return Ok(Placed::Connected(connection)),
                Found::Taken => return Ok(Placed::Taken),
                Found::Gone => {
                    let mut known = lock(&self.inner.known);
                    let gen = known.bump();
                    known.index.forget(name, gen);
                }
            }
        }
        if let Some(limit) = self.inner.config.max_narratives {
            if lock(&self.inner.known).index.len() >= limit {
                return Err(Error::AtCapacity { limit });
            }
        }
        // The pool sees the new user now, not after a cold start of theirs.
        self.arrived();
        if let Some(placed) = self.assign_waiting(user, owner, name, &origin).await? {
            return Ok(placed);
        }
        self.create_for(user, owner, name.clone(), origin, Retry::FIRST)
            .await
    }

    /// Puts a narrative the backend just reported into the index.
    fn remember(&self, narrative: &Narrative) {
        let mut known = lock(&self.inner.known);
        let gen = known.bump();
        known.index.upsert(narrative.clone(), gen);
    }

    /// Answers with `narrative`, first stamping `owner` on it if it has no owner record (made
    /// by the Python version: the first user whose name matches adopts it, SPEC §10), and
    /// marking the connection in the orchestrator if due.
    async fn existing(
        &self,
        narrative: Narrative,
        owner: &Owner,
        origin: &Origin,
    ) -> Result<Found, Error> {
        let narrative = match &narrative.owner {
            Some(recorded) if recorded != owner => return Ok(Found::Taken),
            Some(_) => narrative,
            None => match self
                .call(
                    "stamp_owner",
                    self.inner.manager.stamp_owner(&narrative, owner),
                )
                .await
            {
                Ok(stamped) => {
                    tracing::info!(service = %stamped.name, "adopted a narrative that had no owner record");
                    self.remember(&stamped);
                    stamped
                }
                Err(ManagerError::OwnedByAnother { .. }) => return Ok(Found::Taken),
                Err(ManagerError::NotFound { .. }) => return Ok(Found::Gone),
                Err(e) => return Err(e.into()),
            },
        };
        let now = self.inner.clock.now();
        if self.mark_due(&narrative, now) {
            // Stamped now, not when the request arrived: the mark must cover the answer.
            let mark = Origin {
                client_ip: origin.client_ip.clone(),
                at: now,
            };
            match self.mark(&narrative, &mark).await? {
                Marked::Done(version) => {
                    let mut known = lock(&self.inner.known);
                    let gen = known.bump();
                    known.index.marked(&narrative.name, now, version, gen);
                }
                Marked::Gone => return Ok(Found::Gone),
                Marked::Unsupported => {
                    tracing::warn!("the backend cannot mark connections: other replicas' reapers see connections only through activity");
                    self.inner
                        .marks_supported
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        self.connected(&narrative.name);
        Ok(Found::Connected(Connection {
            name: narrative.name,
            session: narrative.session,
            outcome: ConnectOutcome::Existing,
        }))
    }

    /// Marks a connection to `narrative`. On a conditional backend a narrative changed since
    /// it was read (another replica's mark, a reaper's claim) is read again and marked once
    /// more; one being removed counts as gone.
    async fn mark(&self, narrative: &Narrative, mark: &Origin) -> Result<Marked, Error> {
        let manager = &self.inner.manager;
        let first = self
            .call("mark_connected", manager.mark_connected(narrative, mark))
            .await;
        let result = match first {
            Err(ManagerError::Conflict { .. }) => {
                match self.call("find", manager.find(&narrative.name)).await? {
                    Some(fresh) if is_live(&fresh) && fresh.id == narrative.id => {
                        self.call("mark_connected", manager.mark_connected(&fresh, mark))
                            .await
                    }
                    _ => return Ok(Marked::Gone),
                }
            }
            other => other,
        };
        match result {
            Ok(marked) => Ok(Marked::Done(marked.version)),
            Err(ManagerError::NotFound { .. }) => Ok(Marked::Gone),
            Err(ManagerError::Unsupported { .. }) => Ok(Marked::Unsupported),
            Err(e) => Err(e.into()),
        }
    }

    /// Records a connect to `name`, answered now, as last-seen.
    fn connected(&self, name: &ServiceName) {
        let at = self.inner.clock.now();
        let service = self.inner.manager.traefik_service(name);
        let write = note_connect(
            &mut lock(&self.inner.known),
            &self.inner.config,
            &service,
            at,
        );
        if write {
            self.write_connect(&service, at);
        }
    }

    /// Removes a user container that stopped (a zombie found on the request path) so a new
    /// one can take its name.
    async fn clear_dead(&self, name: &ServiceName, dead: Narrative) -> Result<(), Error> {
        self.call("remove", self.inner.manager.remove(&dead))
            .await?;
        let service = self.inner.manager.traefik_service(name);
        {
            let mut known = lock(&self.inner.known);
            let gen = known.bump();
            known.index.forget(name, gen);
            known.records.remove(&service);
        }
        self.inner.store.update(&[], &[service])?;
        tracing::info!(service = %name, reason = "zombie", "removed a stopped narrative before starting a new one");
        Ok(())
    }

    /// Gives the user a ready waiting container, if one can be had: one of this replica's, or,
    /// on a shared pool (conditional writes), any replica's. A candidate that changed since
    /// it was listed (`Conflict`: another replica assigned or removed it) or is gone
    /// (`NotFound`) is forgotten, and the next one is tried.
    async fn assign_waiting(
        &self,
        user: &UserId,
        owner: &Owner,
        name: &ServiceName,
        origin: &Origin,
    ) -> Result<Option<Placed>, Error> {
        if self
            .inner
            .retiring
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(None);
        }
        let Some(image) = self.image() else {
            return Ok(None);
        };
        let assignment = Assignment {
            name: name.clone(),
            owner: owner.clone(),
            origin: origin.clone(),
        };
        let attempts = lock(&self.inner.known).pool.ready(&image).max(5);
        for attempt in 0..attempts {
            let candidate = {
                let mut known = lock(&self.inner.known);
                let gen = known.bump();
                let entropy = &self.inner.entropy;
                known.pool.claim(&image, |n| entropy.below(n), gen)
            };
            let Some(candidate) = candidate else { break };
            let result = self
                .call("assign", self.inner.manager.assign(&candidate, &assignment))
                .await;
            let settle = match &result {
                Ok(_) => Settle::Assigned,
                Err(ManagerError::NameTaken { .. } | ManagerError::OwnedByAnother { .. }) => {
                    Settle::Untouched
                }
                Err(ManagerError::NotFound { .. } | ManagerError::Conflict { .. }) => Settle::Gone,
                Err(_) => Settle::Unknown,
            };
            {
                let mut known = lock(&self.inner.known);
                let gen = known.bump();
                known.pool.settle(&candidate.id, settle, gen);
                if let Ok(assigned) = &result {
                    known.index.upsert(assigned.clone(), gen);
                    known.foreign.retain(|f| f.id != candidate.id);
                }
            }
            self.inner.pool_wanted.notify_one();
            match result {
                Ok(assigned) => {
                    tracing::info!(service = %name, from = %candidate.name, attempt, "assigned a waiting narrative");
                    self.connected(name);
                    return Ok(Some(Placed::Connected(Connection {
                        name: name.clone(),
                        session: assigned.session,
                        outcome: ConnectOutcome::Assigned,
                    })));
                }
                Err(ManagerError::NameTaken { .. }) => {
                    return self
                        .adopt(user, owner, name, origin, Retry::FIRST)
                        .await
                        .map(Some)
                }
                Err(ManagerError::OwnedByAnother { .. }) => return Ok(Some(Placed::Taken)),
                Err(e @ ManagerError::Unavailable { .. }) => return Err(e.into()),
                Err(e) => {
                    tracing::info!(service = %name, from = %candidate.name, attempt, error = %e, "could not assign a waiting narrative");
                }
            }
        }
        self.inner.pool_wanted.notify_one();
        Ok(None)
    }

    fn create_for<'a>(
        &'a self,
        user: &'a UserId,
        owner: &'a Owner,
        name: ServiceName,
        origin: Origin,
        retry: Retry,
    ) -> BoxFuture<'a, Result<Placed, Error>> {
        async move { self.create_once(user, owner, name, origin, retry).await }.boxed()
    }

    async fn create_once(
        &self,
        user: &UserId,
        owner: &Owner,
        name: ServiceName,
        origin: Origin,
        retry: Retry,
    ) -> Result<Placed, Error> {
        let session = self.inner.entropy.session();
        let router = self.inner.config.naming.router_for(&name);
        let spec = SpawnSpec {
            name: name.clone(),
            labels: self.inner.config.routing.labels(&router, &session),
            session,
            image: self.image().ok_or(Error::NoImage)?,
            kind: NarrativeKind::User,
            env: self.inner.config.narrative_env.clone(),
            origin: Some(origin.clone()),
            owner: Some(owner.clone()),
        };
        match self.call("create", self.inner.manager.create(&spec)).await {
            Ok(created) => {
                tracing::info!(service = %name, "created a narrative");
                self.remember(&created);
                self.connected(&name);
                Ok(Placed::Connected(Connection {
                    name,
                    session: created.session,
                    outcome: ConnectOutcome::Created,
                }))
            }
            Err(ManagerError::NameTaken { .. }) => {
                self.adopt(user, owner, &name, &origin, retry).await
            }
            Err(ManagerError::OwnedByAnother { .. }) => Ok(Placed::Taken),
            // If the create happened and only its answer was lost, the user's next request
            // finds the name taken and adopts it.
            Err(e) => Err(e.into()),
        }
    }

    /// Another replica or an earlier request made the container of `name`: use it if it is
    /// this user's (or has no owner record yet). A container that stopped and still holds
    /// the name (a dead waiting one handed out before a listing showed it dead) is removed
    /// and a new one made, once.
    async fn adopt(
        &self,
        user: &UserId,
        owner: &Owner,
        name: &ServiceName,
        origin: &Origin,
        retry: Retry,
    ) -> Result<Placed, Error> {
        let theirs = |n: &Narrative| n.owner.as_ref().is_some_and(|o| o != owner);
        match self.call("find", self.inner.manager.find(name)).await? {
            Some(other) if theirs(&other) => {
                if is_live(&other) {
                    self.remember(&other);
                }
                Ok(Placed::Taken)
            }
            Some(dead) if dead.state == NarrativeState::Stopped && retry.clear_dead => {
                self.clear_dead(name, dead).await?;
                let retry = Retry {
                    clear_dead: false,
                    ..retry
                };
                self.create_for(user, owner, name.clone(), origin.clone(), retry)
                    .await
            }
            Some(existing) if is_live(&existing) => {
                self.remember(&existing);
                match self.existing(existing, owner, origin).await? {
                    Found::Connected(connection) => Ok(Placed::Connected(connection)),
                    Found::Taken => Ok(Placed::Taken),
                    Found::Gone => Err(ManagerError::Unavailable {
                        backend: "lifecycle".into(),
                        detail: format!("{name} vanished while being adopted; retry"),
                    }
                    .into()),
                }
            }
            // Where writes are conditional, a name held by a narrative nobody can find is
            // one being removed: a reaper (of any replica) claimed it before this connect's
            // mark, which therefore found it gone. Its delete follows within the remover's
            // call, so the user gets a fresh narrative once it has landed, never that one.
            None if self.inner.conditional && retry.removal_waits < REMOVAL_WAITS => {
                let wait = REMOVAL_WAIT * 2u32.pow(u32::from(retry.removal_waits));
                tracing::debug!(service = %name, "the name is held by a narrative being removed; waiting for its removal");
                tokio::time::sleep(wait).await;
                let retry = Retry {
                    removal_waits: retry.removal_waits + 1,
                    ..retry
                };
                self.create_for(user, owner, name.clone(), origin.clone(), retry)
                    .await
            }
            _ => Err(ManagerError::Unavailable {
                backend: "lifecycle".into(),
                detail: format!("{name} is taken but not usable yet (being removed?); retry"),
            }
            .into()),
        }
    }

    /// Removes `user`'s narrative and its activity record; `None` if there was none. Only a
    /// narrative recorded as this user's (or with no owner record, as the Python version
    /// left them) is removed: under the user's name, else under their fallback name.
    pub async fn shutdown(&self, user: &UserId) -> Result<Option<ServiceName>, Error> {
        let owner = Owner::of(user);
        let naming = &self.inner.config.naming;
        for name in [naming.user_container(user), naming.fallback_container(user)] {
            if let Some(removed) = self.shutdown_named(name, Some(&owner)).await? {
                return Ok(Some(removed));
            }
        }
        Ok(None)
    }

    /// [`Lifecycle::shutdown`] of the user narrative named `name`, for callers that know the
    /// narrative rather than its user (a status page lists names: a cleaned name does not
    /// give the user id back), whoever owns it. A name that is not a user narrative's is
    /// refused.
    pub async fn shutdown_narrative(
        &self,
        name: &ServiceName,
    ) -> Result<Option<ServiceName>, Error> {
        if self.inner.config.naming.kind_of(name.as_str()) != Some(NarrativeKind::User) {
            return Err(InvalidInput::new(
                "narrative",
                format!("{name} is not a user's narrative"),
            )
            .into());
        }
        self.shutdown_named(name.clone(), None).await
    }

    /// Removes the narrative named `name`; with `owner`, only if it is not recorded as
    /// another user's.
    async fn shutdown_named(
        &self,
        name: ServiceName,
        owner: Option<&Owner>,
    ) -> Result<Option<ServiceName>, Error> {
        let _lane = self.inner.lanes.enter(&name).await;
        let Some(narrative) = self.call("find", self.inner.manager.find(&name)).await? else {
            let mut known = lock(&self.inner.known);
            let gen = known.bump();
            known.index.forget(&name, gen);
            return Ok(None);
        };
        if let (Some(owner), Some(recorded)) = (owner, &narrative.owner) {
            if owner != recorded {
                return Ok(None);
            }
        }
        {
            let mut known = lock(&self.inner.known);
            let gen = known.bump();
            known.index.begin_removal(&name, &narrative.id, gen);
        }
        if let Err(e) = self.remove_found(&narrative, owner).await {
            let mut known = lock(&self.inner.known);
            let gen = known.bump();
            known.index.removal_failed(&name, gen);
            return Err(e.into());
        }
        let service = self.inner.manager.traefik_service(&name);
        {
            let mut known = lock(&self.inner.known);
            let gen = known.bump();
            known.index.forget(&name, gen);
            known.records.remove(&service);
        }
        self.inner.store.update(&[], &[service])?;
        tracing::info!(service = %name, "shut down a narrative");
        Ok(Some(name))
    }
}

impl Lifecycle {
    /// Removes `narrative`, just found, for a shutdown. Where writes are conditional and it
    /// changed since (a connect's mark, of any replica), it is found again and removed at its
    /// new version, once: the user asked for its removal, whoever marked it.
    async fn remove_found(
        &self,
        narrative: &Narrative,
        owner: Option<&Owner>,
    ) -> Result<(), ManagerError> {
        let manager = &self.inner.manager;
        match self.call("remove", manager.remove(narrative)).await {
            Err(ManagerError::Conflict { .. }) => {
                match self.call("find", manager.find(&narrative.name)).await? {
                    Some(fresh)
                        if fresh.id == narrative.id
                            && owner
                                .is_none_or(|o| fresh.owner.as_ref().is_none_or(|r| r == o)) =>
                    {
                        self.call("remove", manager.remove(&fresh)).await
                    }
                    _ => Ok(()),
                }
            }
            other => other,
        }
    }
}

/// Where a connect under one name ended.
enum Placed {
    /// The user has their narrative under that name.
    Connected(Connection),
    /// The name holds another user's narrative.
    Taken,
}

/// What became of a narrative found under the user's name.
enum Found {
    /// It is the user's, and the answer.
    Connected(Connection),
    /// It is another user's.
    Taken,
    /// It went away meanwhile.
    Gone,
}

/// What became of a connection mark.
enum Marked {
    /// Written; the narrative's new version.
    Done(Option<String>),
    /// The narrative is gone or being removed.
    Gone,
    /// The backend has no mutable metadata.
    Unsupported,
}

/// What a create that finds the user's name taken may still try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Retry {
    /// Clear a stopped container holding the name and create again (once per connect).
    clear_dead: bool,
    /// Times it waited for a narrative being removed to let the name go.
    removal_waits: u8,
}

impl Retry {
    /// A connect's first attempt: everything may still be tried.
    const FIRST: Self = Self {
        clear_dead: true,
        removal_waits: 0,
    };
}

/// How often, and after how long at first (doubling), a create waits for a narrative being
/// removed to let its name go: about 3 s in all, within which a delete has long landed, and
/// within the connect's own deadline by default.
const REMOVAL_WAITS: u8 = 5;
const REMOVAL_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

fn is_live(n: &Narrative) -> bool {
    !matches!(n.state, NarrativeState::Removing | NarrativeState::Stopped)
}

/// Updates the last-seen mirror for a connect to `service` at `at` if the record is older than
/// the mark interval; returns whether the store needs the write too.
fn note_connect(
    known: &mut Known,
    config: &LifecycleConfig,
    service: &str,
    at: DateTime<Utc>,
) -> bool {
    let refresh =
        chrono::Duration::from_std(config.mark_refresh()).unwrap_or(chrono::Duration::MAX);
    let due = known
        .records
        .get(service)
        .is_none_or(|seen| at.signed_duration_since(*seen) > refresh);
    if due {
        known.records.insert(service.to_owned(), at);
    }
    due
}
