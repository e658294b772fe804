//! Who else runs, on a plain Docker engine (SPEC §9, §12): the replicas are the running
//! containers of traefiker's own Compose service, so `docker compose up --scale traefiker=2`
//! is safe.
//!
//! traefiker finds its own container (the container id in `/proc/self/mountinfo`, or the
//! host name Docker gives a container, its short id), reads the Compose labels it carries
//! (`com.docker.compose.project`, `com.docker.compose.service`), and lists the running
//! containers with the same two labels. Its identity is its container's name, which labels
//! the waiting narratives it makes.
//!
//! Where that cannot be proven — traefiker does not run in a container of this engine, or its
//! container was not started by Compose — the identity is unknown (the host name serves) and
//! so are the peers: no replica's waiting narratives are then removed as abandoned on the
//! strength of this membership.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use traefiker_core::{ManagerError, Membership, ReplicaId};

use crate::error::{classify, classify_as, status, timed_out, timed_out_as, BACKEND};

/// Compose's label naming the project a container belongs to.
pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
/// Compose's label naming the service a container runs.
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// How this process's own container is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnContainer {
    /// From what the process sees of itself: the container id in `/proc/self/mountinfo`, else
    /// its host name (Docker's default is the short container id).
    Detect,
    /// This container (an id, a prefix of one, or a name): for tests, and for a process that
    /// knows better.
    Is(String),
}

/// Traefiker's own container as the engine reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Own {
    name: String,
    /// The Compose project and service, if Compose started it.
    compose: Option<(String, String)>,
}

/// [`Membership`] from the engine: the running containers of traefiker's own Compose service.
#[derive(Debug)]
pub struct DockerMembership {
    docker: Docker,
    own: OwnContainer,
    timeout: Duration,
    /// Learned once: a container's name and labels do not change while it runs.
    found: Mutex<Option<Option<Own>>>,
}

impl DockerMembership {
    /// Membership over the engine `docker` speaks to, each call within `timeout`.
    pub(crate) fn new(docker: Docker, own: OwnContainer, timeout: Duration) -> Self {
        Self {
            docker,
            own,
            timeout,
            found: Mutex::new(None),
        }
    }

    /// This process's container, `None` when it runs in none of this engine's.
    async fn own(&self) -> Result<Option<Own>, ManagerError> {
        if let Some(found) = self.found.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(found);
        }
        let found = find_own(&self.docker, &self.own, self.timeout, BACKEND)
            .await?
            .map(|(name, labels)| Own {
                name,
                compose: compose_of(&labels),
            });
        *self.found.lock().unwrap_or_else(|p| p.into_inner()) = Some(found.clone());
        Ok(found)
    }
}

/// This process's own container on the engine, as `own` says to find it: its name and labels,
/// or `None` where it runs in none of the engine's containers. `backend` names the backend in
/// errors.
pub(crate) async fn find_own(
    docker: &Docker,
    own: &OwnContainer,
    timeout: Duration,
    backend: &str,
) -> Result<Option<(String, HashMap<String, String>)>, ManagerError> {
    let candidates = match own {
        OwnContainer::Is(id) => vec![id.clone()],
        OwnContainer::Detect => detect(),
    };
    for candidate in candidates {
        let answer = tokio::time::timeout(timeout, docker.inspect_container(&candidate, None))
            .await
            .map_err(|_| timed_out_as(backend, "inspect", &candidate, timeout))?;
        match answer {
            Ok(c) => {
                let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
                let name = c
                    .name
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_owned();
                return Ok(Some((name, labels)));
            }
            Err(e) if status(&e) == Some(404) => continue,
            Err(e) => return Err(classify_as(backend, "inspect", &candidate, e)),
        }
    }
    Ok(None)
}

/// The Compose project and service of a container with these labels.
fn compose_of(labels: &HashMap<String, String>) -> Option<(String, String)> {
    Some((
        labels.get(COMPOSE_PROJECT)?.clone(),
        labels.get(COMPOSE_SERVICE)?.clone(),
    ))
}

/// What this process can see of the container it runs in, most certain first.
fn detect() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") {
        out.extend(container_id_in_mountinfo(&text));
    }
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && !out.iter().any(|id| id.starts_with(host)) {
            out.push(host.to_owned());
        }
    }
    out
}

/// The container id Docker's bind mounts of `/etc/hostname`, `/etc/hosts` and
/// `/etc/resolv.conf` show in a mount table: `…/containers/<64 hex>/…`.
pub fn container_id_in_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let at = line.find("/containers/")? + "/containers/".len();
        let id: String = line[at..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        (id.len() == 64 && line[at + 64..].starts_with('/')).then_some(id)
    })
}

/// Why the peers cannot be told.
fn unknown(why: &'static str) -> ManagerError {
    ManagerError::Unsupported {
        backend: BACKEND.to_owned(),
        operation: why,
    }
}

#[async_trait]
impl Membership for DockerMembership {
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
        let (project, service) = own
            .compose
            .ok_or_else(|| unknown("peers (traefiker's container was not started by Compose)"))?;
        let filters = HashMap::from([
            (
                "label",
                vec![
                    format!("{COMPOSE_PROJECT}={project}"),
                    format!("{COMPOSE_SERVICE}={service}"),
                ],
            ),
            ("status", vec!["running".to_owned()]),
        ]);
        let options = ListContainersOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = tokio::time::timeout(self.timeout, self.docker.list_containers(Some(options)))
            .await
            .map_err(|_| timed_out("list", "traefiker's replicas", self.timeout))?
            .map_err(|e| classify("list", "traefiker's replicas", e))?;
        Ok(listed
            .into_iter()
            .filter_map(|c| c.names?.into_iter().next())
            .filter_map(|name| ReplicaId::new(name.trim_start_matches('/')).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_id_is_read_from_the_mount_table() {
        let id = "4f1c0c2a6e0b8d3f9a7c5e1b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f";
        let table = format!(
            "611 590 0:52 / / rw,relatime - overlay overlay rw\n\
             622 611 254:1 /var/lib/docker/containers/{id}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda1 rw\n\
             623 611 254:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/vda1 rw\n"
        );
        assert_eq!(container_id_in_mountinfo(&table).as_deref(), Some(id));
        assert_eq!(
            container_id_in_mountinfo("25 1 0:23 / /proc rw - proc proc rw\n"),
            None,
            "not in a container"
        );
        assert_eq!(
            container_id_in_mountinfo("1 1 0:1 /x/containers/abc/hostname /etc/hostname rw\n"),
            None,
            "not a container id"
        );
    }

    #[test]
    fn compose_labels_name_the_service() {
        let labels = HashMap::from([
            (COMPOSE_PROJECT.to_owned(), "narrative-traefiker".to_owned()),
            (COMPOSE_SERVICE.to_owned(), "traefiker".to_owned()),
        ]);
        assert_eq!(
            compose_of(&labels),
            Some(("narrative-traefiker".to_owned(), "traefiker".to_owned()))
        );
        assert_eq!(compose_of(&HashMap::new()), None);
    }
}
