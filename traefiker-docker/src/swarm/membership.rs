//! Who else runs, on Swarm (SPEC §12): the replicas are the tasks of traefiker's own service
//! that Swarm wants running and has not ended (one still starting counts).
//!
//! traefiker finds its own container as on a plain engine (the container id in
//! `/proc/self/mountinfo`, or its host name), and reads the labels Swarm puts on a task's
//! container (`com.docker.swarm.service.id`, `com.docker.swarm.service.name`). Its identity is
//! its container's name, `<service>.<slot>.<task id>`: a task replaced after a crash or in a
//! rolling update is a new replica, and the one it replaced is gone once Swarm says so.
//! Where traefiker runs in no task of this swarm, identity and peers are unknown: nothing is
//! removed as abandoned on this membership's word.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::TaskState;
use bollard::query_parameters::ListTasksOptionsBuilder;
use bollard::Docker;
use traefiker_core::{ManagerError, Membership, ReplicaId};

use super::BACKEND;
use crate::error::{classify_as, timed_out_as};
use crate::membership::find_own;
use crate::OwnContainer;

/// Swarm's label naming the service a task's container runs.
pub const SWARM_SERVICE_ID: &str = "com.docker.swarm.service.id";
/// Swarm's label naming that service by name.
pub const SWARM_SERVICE_NAME: &str = "com.docker.swarm.service.name";

/// Traefiker's own task, as its container shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Own {
    name: String,
    /// The service's id and name, if Swarm started the container.
    service: Option<(String, String)>,
}

/// [`Membership`] from Swarm: the running tasks of traefiker's own service.
#[derive(Debug)]
pub struct SwarmMembership {
    docker: Docker,
    own: OwnContainer,
    timeout: Duration,
    /// Learned once: a container's name and labels do not change while it runs.
    found: Mutex<Option<Option<Own>>>,
}

impl SwarmMembership {
    pub(crate) fn new(docker: Docker, own: OwnContainer, timeout: Duration) -> Self {
        Self {
            docker,
            own,
            timeout,
            found: Mutex::new(None),
        }
    }

    async fn own(&self) -> Result<Option<Own>, ManagerError> {
        if let Some(found) = self.found.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(found);
        }
        let found = find_own(&self.docker, &self.own, self.timeout, BACKEND)
            .await?
            .map(|(name, labels)| Own {
                name,
                service: service_of(&labels),
            });
        *self.found.lock().unwrap_or_else(|p| p.into_inner()) = Some(found.clone());
        Ok(found)
    }
}

/// The Swarm service (id, name) of a container with these labels.
fn service_of(labels: &HashMap<String, String>) -> Option<(String, String)> {
    Some((
        labels.get(SWARM_SERVICE_ID)?.clone(),
        labels.get(SWARM_SERVICE_NAME)?.clone(),
    ))
}

/// Why the peers cannot be told.
fn unknown(why: &'static str) -> ManagerError {
    ManagerError::Unsupported {
        backend: BACKEND.to_owned(),
        operation: why,
    }
}

#[async_trait]
impl Membership for SwarmMembership {
    async fn identity(&self) -> Result<Option<ReplicaId>, ManagerError> {
        let Some(own) = self.own().await? else {
            return Ok(None);
        };
        ReplicaId::new(own.name.as_str())
            .map(Some)
            .map_err(|e| ManagerError::Rejected {
                backend: BACKEND.to_owned(),
                detail: format!(
                    "traefiker's container name {:?} cannot be a replica id ({}); set replica_id",
                    own.name, e.reason
                ),
            })
    }

    async fn peers(&self) -> Result<Vec<ReplicaId>, ManagerError> {
        let own = self
            .own()
            .await?
            .ok_or_else(|| unknown("peers (traefiker runs in no container of this engine)"))?;
        let (service_id, service_name) = own
            .service
            .ok_or_else(|| unknown("peers (traefiker's container is not a Swarm task)"))?;
        let filters = HashMap::from([
            ("service", vec![service_id]),
            ("desired-state", vec!["running".to_owned()]),
        ]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        let tasks = tokio::time::timeout(self.timeout, self.docker.list_tasks(Some(options)))
            .await
            .map_err(|_| timed_out_as(BACKEND, "list tasks", "traefiker's replicas", self.timeout))?
            .map_err(|e| classify_as(BACKEND, "list tasks", "traefiker's replicas", e))?;
        Ok(tasks
            .into_iter()
            // A task still starting (its health check pending) may already make waiting
            // narratives: it counts, as long as Swarm has not ended it.
            .filter(|t| !t.status.as_ref().and_then(|s| s.state).is_some_and(ended))
            .filter_map(|t| Some(task_container_name(&service_name, t.slot?, &t.id?)))
            .filter_map(|name| ReplicaId::new(name).ok())
            .collect())
    }
}

/// Whether a task in `state` is over: it will not run again.
fn ended(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::COMPLETE
            | TaskState::SHUTDOWN
            | TaskState::FAILED
            | TaskState::REJECTED
            | TaskState::REMOVE
            | TaskState::ORPHANED
    )
}

/// The name Swarm gives a replicated task's container: `<service>.<slot>.<task id>`.
fn task_container_name(service: &str, slot: i64, task_id: &str) -> String {
    format!("{service}.{slot}.{task_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_container_is_named_after_its_service_slot_and_task() {
        assert_eq!(
            task_container_name("traefiker_traefiker", 2, "k3j2h1g0f9e8d7c6b5a4z3y2x"),
            "traefiker_traefiker.2.k3j2h1g0f9e8d7c6b5a4z3y2x"
        );
        let labels = HashMap::from([
            (SWARM_SERVICE_ID.to_owned(), "abc".to_owned()),
            (
                SWARM_SERVICE_NAME.to_owned(),
                "traefiker_traefiker".to_owned(),
            ),
        ]);
        assert_eq!(
            service_of(&labels),
            Some(("abc".to_owned(), "traefiker_traefiker".to_owned()))
        );
        assert_eq!(service_of(&HashMap::new()), None);
    }
}
