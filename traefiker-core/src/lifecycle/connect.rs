//! Connecting a user (SPEC §3 step 3, §5, §9) and shutting a narrative down.
//!
//! A returning user is answered from the index with no backend call, unless the request
//! carries the index's own session (Traefik did not route it: the container may be gone, or
//! its route not loaded yet), which is checked with one `find`. A new user is given a ready
//! waiting container of this replica (one assignment) or a new one (one create); a name
//! already taken means the user has a container after all, which is adopted.
//!
//! Every 201 keeps its narrative from idle reaping for at least the idle timeout: the connect
//! is recorded as last-seen (in the store, at most once per [`LifecycleConfig::mark_refresh`])
//! and, when other replicas may reap, marked in the orchestrator too.

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, FutureExt};

use super::{lock, ConnectOutcome, Connection, Known, Lifecycle, LifecycleConfig};
use crate::error::{Error, InvalidInput, ManagerError};
use crate::names::{NarrativeKind, ServiceName, SessionId, UserId};
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
    /// background with every call bounded.
    pub async fn connect(&self, user: &UserId, visit: Visit) -> Result<Connection, Error> {
        let name = self.inner.config.naming.user_container(user);
        if let Some(answer) = self.answer_from_index(&name, &visit) {
            return Ok(answer);
        }
        let this = self.clone();
        let user = user.clone();
        let key = name.clone();
        let deadline = self.inner.config.call_timeout;
        let flight = self.inner.flights.run(key, async move {
            let span = tracing::info_span!("connect", service = %name);
            let answer =
                tracing::Instrument::instrument(this.connect_slow(&user, name, visit), span).await;
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

    /// The answer for a returning user this process knows, when it needs no backend call.
    fn answer_from_index(&self, name: &ServiceName, visit: &Visit) -> Option<Connection> {
        let now = self.inner.clock.now();
        let service = self.inner.manager.traefik_service(name);
        let (connection, write) = {
            let mut known = lock(&self.inner.known);
            let narrative = known.index.get(name)?;
            if visit.session_cookie.as_ref() == Some(&narrative.session)
                || self.mark_due(narrative, now)
            {
                return None;
            }
            let connection = Connection {
                name: name.clone(),
                session: narrative.session.clone(),
                outcome: ConnectOutcome::Existing,
            };
            (
                connection,
                note_connect(&mut known, &self.inner.config, &service, now),
            )
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

    async fn connect_slow(
        &self,
        user: &UserId,
        name: ServiceName,
        visit: Visit,
    ) -> Result<Connection, Error> {
        // A returning user counts as seen before waiting for the lane: a reaper holding it
        // to look at this narrative once more then sees the visit and keeps it. If this
        // connect fails after all, the narrative is only kept a little longer.
        if lock(&self.inner.known).index.get(&name).is_some() {
            self.connected(&name);
        }
        let _lane = self.inner.lanes.enter(&name).await;
        let origin = Origin {
            client_ip: visit.client_ip.clone(),
            at: self.inner.clock.now(),
        };
        let known = lock(&self.inner.known).index.get(&name).cloned();
        if let Some(narrative) = known {
            let answer = if visit.session_cookie.as_ref() != Some(&narrative.session) {
                self.existing(narrative, &origin).await?
            } else {
                // Traefik did not route the user's own session: look.
                match self.call("find", self.inner.manager.find(&name)).await? {
                    Some(found) if is_live(&found) => {
                        {
                            let mut known = lock(&self.inner.known);
                            let gen = known.bump();
                            known.index.upsert(found.clone(), gen);
                        }
                        tracing::debug!("the narrative exists; its route is not loaded yet");
                        self.existing(found, &origin).await?
                    }
                    Some(dead) => {
                        self.clear_dead(&name, dead).await?;
                        None
                    }
                    None => None,
                }
            };
            if let Some(connection) = answer {
                return Ok(connection);
            }
            let mut known = lock(&self.inner.known);
            let gen = known.bump();
            known.index.forget(&name, gen);
        }
        if let Some(limit) = self.inner.config.max_narratives {
            if lock(&self.inner.known).index.len() >= limit {
                return Err(Error::AtCapacity { limit });
            }
        }
        // The pool sees the new user now, not after a cold start of theirs.
        self.arrived();
        if let Some(connection) = self.assign_waiting(user, &name, &origin).await? {
            return Ok(connection);
        }
        self.create_for(user, name, origin, Retry::ClearDead).await
    }

    /// Answers with `narrative`, marking the connection in the orchestrator if due; `None`
    /// when marking finds it gone.
    async fn existing(
        &self,
        narrative: Narrative,
        origin: &Origin,
    ) -> Result<Option<Connection>, Error> {
        let now = self.inner.clock.now();
        let due = self.mark_due(&narrative, now);
        if due {
            // Stamped now, not when the request arrived: the mark must cover the answer.
            let mark = Origin {
                client_ip: origin.client_ip.clone(),
                at: now,
            };
            match self
                .call(
                    "mark_connected",
                    self.inner.manager.mark_connected(&narrative, &mark),
                )
                .await
            {
                Ok(()) => {
                    let mut known = lock(&self.inner.known);
                    let gen = known.bump();
                    known.index.marked(&narrative.name, now, gen);
                }
                Err(ManagerError::NotFound { .. }) => return Ok(None),
                Err(ManagerError::Unsupported { .. }) => {
                    tracing::warn!("the backend cannot mark connections: other replicas' reapers see connections only through activity");
                    self.inner
                        .marks_supported
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.connected(&narrative.name);
        Ok(Some(Connection {
            name: narrative.name,
            session: narrative.session,
            outcome: ConnectOutcome::Existing,
        }))
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

    /// Gives the user a ready waiting container of this replica, if one can be had.
    async fn assign_waiting(
        &self,
        user: &UserId,
        name: &ServiceName,
        origin: &Origin,
    ) -> Result<Option<Connection>, Error> {
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
                Err(ManagerError::NameTaken { .. }) => Settle::Untouched,
                Err(ManagerError::NotFound { .. }) => Settle::Gone,
                Err(_) => Settle::Unknown,
            };
            {
                let mut known = lock(&self.inner.known);
                let gen = known.bump();
                known.pool.settle(&candidate.id, settle, gen);
                if let Ok(assigned) = &result {
                    known.index.upsert(assigned.clone(), gen);
                }
            }
            self.inner.pool_wanted.notify_one();
            match result {
                Ok(assigned) => {
                    tracing::info!(service = %name, from = %candidate.name, attempt, "assigned a waiting narrative");
                    self.connected(name);
                    return Ok(Some(Connection {
                        name: name.clone(),
                        session: assigned.session,
                        outcome: ConnectOutcome::Assigned,
                    }));
                }
                Err(ManagerError::NameTaken { .. }) => {
                    return self
                        .adopt(user, name, origin, Retry::ClearDead)
                        .await
                        .map(Some)
                }
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
        name: ServiceName,
        origin: Origin,
        retry: Retry,
    ) -> BoxFuture<'a, Result<Connection, Error>> {
        async move { self.create_once(user, name, origin, retry).await }.boxed()
    }

    async fn create_once(
        &self,
        user: &UserId,
        name: ServiceName,
        origin: Origin,
        retry: Retry,
    ) -> Result<Connection, Error> {
        let session = self.inner.entropy.session();
        let router = self.inner.config.naming.router_for_user(user);
        let spec = SpawnSpec {
            name: name.clone(),
            labels: self.inner.config.routing.labels(&router, &session),
            session,
            image: self.image().ok_or(Error::NoImage)?,
            kind: NarrativeKind::User,
            env: self.inner.config.narrative_env.clone(),
            origin: Some(origin.clone()),
        };
        match self.call("create", self.inner.manager.create(&spec)).await {
            Ok(created) => {
                tracing::info!(service = %name, "created a narrative");
                {
                    let mut known = lock(&self.inner.known);
                    let gen = known.bump();
                    known.index.upsert(created.clone(), gen);
                }
                self.connected(&name);
                Ok(Connection {
                    name,
                    session: created.session,
                    outcome: ConnectOutcome::Created,
                })
            }
            Err(ManagerError::NameTaken { .. }) => self.adopt(user, &name, &origin, retry).await,
            // If the create happened and only its answer was lost, the user's next request
            // finds the name taken and adopts it.
            Err(e) => Err(e.into()),
        }
    }

    /// Another replica or an earlier request made the user's container: use it. A container
    /// that stopped and still holds the name (a dead waiting one handed out before a listing
    /// showed it dead) is removed and a new one made, once.
    async fn adopt(
        &self,
        user: &UserId,
        name: &ServiceName,
        origin: &Origin,
        retry: Retry,
    ) -> Result<Connection, Error> {
        match self.call("find", self.inner.manager.find(name)).await? {
            Some(dead) if dead.state == NarrativeState::Stopped && retry == Retry::ClearDead => {
                self.clear_dead(name, dead).await?;
                self.create_for(user, name.clone(), origin.clone(), Retry::Once)
                    .await
            }
            Some(existing) if is_live(&existing) => {
                {
                    let mut known = lock(&self.inner.known);
                    let gen = known.bump();
                    known.index.upsert(existing.clone(), gen);
                }
                if let Some(connection) = self.existing(existing, origin).await? {
                    return Ok(connection);
                }
                Err(ManagerError::Unavailable {
                    backend: "lifecycle".into(),
                    detail: format!("{name} vanished while being adopted; retry"),
                }
                .into())
            }
            _ => Err(ManagerError::Unavailable {
                backend: "lifecycle".into(),
                detail: format!("{name} is taken but not usable yet (being removed?); retry"),
            }
            .into()),
        }
    }

    /// Removes `user`'s narrative and its activity record; `None` if there was none.
    pub async fn shutdown(&self, user: &UserId) -> Result<Option<ServiceName>, Error> {
        let name = self.inner.config.naming.user_container(user);
        self.shutdown_named(name).await
    }

    /// [`Lifecycle::shutdown`] of the user narrative named `name`, for callers that know the
    /// narrative rather than its user (a status page lists names: a cleaned name does not
    /// give the user id back). A name that is not a user narrative's is refused.
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
        self.shutdown_named(name.clone()).await
    }

    async fn shutdown_named(&self, name: ServiceName) -> Result<Option<ServiceName>, Error> {
        let _lane = self.inner.lanes.enter(&name).await;
        let Some(narrative) = self.call("find", self.inner.manager.find(&name)).await? else {
            let mut known = lock(&self.inner.known);
            let gen = known.bump();
            known.index.forget(&name, gen);
            return Ok(None);
        };
        {
            let mut known = lock(&self.inner.known);
            let gen = known.bump();
            known.index.begin_removal(&name, &narrative.id, gen);
        }
        if let Err(e) = self
            .call("remove", self.inner.manager.remove(&narrative))
            .await
        {
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

/// Whether a create that finds the user's name held by a stopped container may clear it and
/// try again (only once per connect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    ClearDead,
    Once,
}

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
