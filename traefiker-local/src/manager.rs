//! [`LocalManager`]: the [`ContainerManager`] whose containers are child processes of
//! traefiker, kept in memory.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use traefiker_core::{
    Assignment, BackendInfo, ContainerManager, InvalidInput, ManagerError, Narrative,
    NarrativeKind, NarrativeState, Origin, Owner, ReplicaId, ServiceName, SessionId, SpawnSpec,
    REPLICA_LABEL,
};

use crate::config::LocalConfig;
use crate::error::{LocalError, BACKEND};
use crate::name_file::NameFiles;
use crate::process::{self, Launch, Running};

/// Runs each narrative as a child process on this machine.
///
/// # Semantics
///
/// - A narrative listens on a free port of [`LocalConfig::bind_host`] that `create` picks; its
///   [`Narrative::address`] is `http://<host>:<port>`, which traefiker's Traefik HTTP provider
///   routes to. [`ContainerManager::traefik_service`] is the narrative's name.
/// - Narratives live in this manager's memory only: a restarted traefiker has none (its old
///   children got SIGTERM when it died: each has a parent-death signal).
/// - A process that exits on its own is a *zombie*: `list` shows it as
///   [`NarrativeState::Stopped`] and `zombies` reports it until it is removed, but `find`
///   does not return it, because `find` answers live containers and routing a user to a dead
///   process helps nobody. Its name is free again: `create` or `assign` to that name forgets
///   the zombie (whose process is gone already), so a user whose narrative crashed gets a new
///   one on their next visit instead of waiting for the reaper.
/// - `remove` sends SIGTERM to the narrative's process group, waits up to
///   [`LocalConfig::grace`], then sends SIGKILL. While it waits the narrative is listed as
///   [`NarrativeState::Removing`] and not found.
/// - Each narrative reports the image its [`SpawnSpec`] named.
///
/// Call [`LocalManager::shutdown_all`] on graceful shutdown. Dropping the manager SIGKILLs
/// whatever is left, as a last resort.
#[derive(Debug)]
pub struct LocalManager {
    config: LocalConfig,
    host: IpAddr,
    /// Present when the command asks for `{name_file}`.
    name_files: Option<NameFiles>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    /// By creation order, so the oldest comes first.
    children: BTreeMap<u64, Child>,
}

#[derive(Debug)]
struct Child {
    id: String,
    name: ServiceName,
    session: SessionId,
    image: String,
    kind: NarrativeKind,
    origin: Option<Origin>,
    owner: Option<Owner>,
    replica: Option<ReplicaId>,
    port: u16,
    created: DateTime<Utc>,
    removing: bool,
    process: Running,
    name_file: Option<PathBuf>,
}

impl Child {
    fn live(&self) -> bool {
        !self.removing && self.process.exited().is_none()
    }

    fn zombie(&self) -> bool {
        !self.removing && self.process.exited().is_some()
    }
}

impl LocalManager {
    /// A manager running `config`, with no narratives yet.
    pub fn new(config: LocalConfig) -> Result<Self, InvalidInput> {
        config.validate()?;
        let host = config.bind_host.parse().map_err(|_| {
            InvalidInput::new("local bind_host", "must be an IP address such as 127.0.0.1")
        })?;
        Ok(Self {
            name_files: config.uses_name_file().then(NameFiles::new),
            config,
            host,
            state: Mutex::new(State::default()),
        })
    }

    /// The configuration it runs.
    pub fn config(&self) -> &LocalConfig {
        &self.config
    }

    /// The process id (and process group id) of the narrative with backend id `id`, while this
    /// manager knows it.
    pub fn pid(&self, id: &str) -> Option<u32> {
        self.state()
            .children
            .values()
            .find(|c| c.id == id)
            .and_then(|c| u32::try_from(c.process.pid).ok())
    }

    /// Stops every narrative (SIGTERM, grace, SIGKILL, all at once) and forgets them: call it
    /// on traefiker's graceful shutdown. Returns how many were stopped; if some could not be,
    /// the first such failure, after trying them all.
    pub async fn shutdown_all(&self) -> Result<usize, ManagerError> {
        let ids: Vec<String> = self
            .state()
            .children
            .values()
            .map(|c| c.id.clone())
            .collect();
        let results = futures::future::join_all(ids.iter().map(|id| self.remove_id(id))).await;
        let stopped = results.iter().filter(|r| r.is_ok()).count();
        tracing::info!(stopped, "stopped local narratives");
        match results.into_iter().find_map(Result::err) {
            Some(e) => Err(e.into()),
            None => Ok(stopped),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn narrative(&self, child: &Child) -> Narrative {
        let state = if child.removing {
            NarrativeState::Removing
        } else if child.process.exited().is_some() {
            NarrativeState::Stopped
        } else {
            NarrativeState::Running
        };
        Narrative {
            id: child.id.clone(),
            name: child.name.clone(),
            session: child.session.clone(),
            image: child.image.clone(),
            kind: child.kind,
            state,
            origin: child.origin.clone(),
            replica: child.replica.clone(),
            owner: child.owner.clone(),
            version: None,
            address: Some(format!("http://{}", SocketAddr::new(self.host, child.port))),
            public_endpoints: Vec::new(),
            created: Some(child.created),
        }
    }

    fn environment(
        &self,
        spec: &SpawnSpec,
        port: u16,
        name_file: Option<&Path>,
    ) -> Vec<(String, String)> {
        let inherited = self
            .config
            .pass_env
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)));
        inherited
            .chain(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())))
            .chain([
                ("NARRATIVE_NAME".to_owned(), spec.name.to_string()),
                ("NARRATIVE_PORT".to_owned(), port.to_string()),
            ])
            .chain(name_file.map(|p| {
                (
                    "NARRATIVE_NAME_FILE".to_owned(),
                    p.to_string_lossy().into_owned(),
                )
            }))
            .collect()
    }

    /// Starts the process under the state lock, so two creates of one name cannot both win.
    /// Spawning does not block: it returns once the child is forked and exec'd.
    fn start(&self, spec: &SpawnSpec) -> Result<(Narrative, SocketAddr), LocalError> {
        let mut state = self.state();
        if state
            .children
            .values()
            .any(|c| c.name == spec.name && c.live())
        {
            return Err(LocalError::NameTaken(spec.name.to_string()));
        }
        let port = process::free_port(self.host)?;
        let seq = state.next + 1;
        let name_file = match &self.name_files {
            Some(files) => {
                let path = files.path(seq)?;
                files.write(&path, spec.name.as_str())?;
                Some(path)
            }
            None => None,
        };
        let argv = self.config.render(
            spec.name.as_str(),
            port,
            &name_file
                .as_deref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let running = match process::spawn(Launch {
            argv: &argv,
            env: self.environment(spec, port, name_file.as_deref()),
            name: spec.name.as_str(),
        }) {
            Ok(running) => running,
            Err(e) => {
                if let Some(path) = &name_file {
                    NameFiles::remove(path);
                }
                return Err(e);
            }
        };
        forget_zombies(&mut state.children, &spec.name);
        state.next = seq;
        let child = Child {
            id: format!("{seq}-{}", running.pid),
            name: spec.name.clone(),
            session: spec.session.clone(),
            image: spec.image.clone(),
            kind: spec.kind,
            origin: spec.origin.clone(),
            owner: spec.owner.clone(),
            replica: spec
                .labels
                .get(REPLICA_LABEL)
                .and_then(|r| ReplicaId::new(r.as_str()).ok()),
            port,
            created: Utc::now(),
            removing: false,
            process: running,
            name_file,
        };
        tracing::info!(service = %child.name, pid = child.process.pid, port, "started a local narrative");
        let narrative = self.narrative(&child);
        state.children.insert(seq, child);
        Ok((narrative, SocketAddr::new(self.host, port)))
    }

    async fn remove_id(&self, id: &str) -> Result<(), LocalError> {
        let (name, process) = {
            let mut state = self.state();
            let Some(child) = state.children.values_mut().find(|c| c.id == id) else {
                return Ok(());
            };
            child.removing = true;
            (child.name.to_string(), child.process.clone())
        };
        process::stop(&name, &process, self.config.grace).await?;
        let mut state = self.state();
        if let Some(path) = state
            .children
            .values()
            .find(|c| c.id == id)
            .and_then(|c| c.name_file.as_deref())
        {
            NameFiles::remove(path);
        }
        state.children.retain(|_, c| c.id != id);
        drop(state);
        tracing::info!(service = %name, pid = process.pid, "stopped a local narrative");
        Ok(())
    }

    fn program(&self) -> Result<PathBuf, InvalidInput> {
        let program = self
            .config
            .command
            .first()
            .map(String::as_str)
            .unwrap_or("");
        let path = std::env::var_os("PATH");
        find_program(program, path.as_deref()).ok_or_else(|| {
            InvalidInput::new(
                "local_command",
                format!("{program:?} is not an executable file nor found on PATH: install it or give its full path"),
            )
        })
    }
}

/// Forgets the zombies named `name`: their processes are gone, and the name is about to
/// belong to a live narrative.
fn forget_zombies(children: &mut BTreeMap<u64, Child>, name: &ServiceName) {
    children.retain(|_, c| {
        let forget = &c.name == name && c.zombie();
        if forget {
            if let Some(path) = &c.name_file {
                NameFiles::remove(path);
            }
        }
        !forget
    });
}

/// Where `program` would be run from: itself if it names a path, else the first executable
/// of that name on `path`.
fn find_program(program: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

impl Drop for LocalManager {
    fn drop(&mut self) {
        for child in self.state().children.values() {
            if child.process.exited().is_none() {
                process::kill_now(child.process.pid);
            }
        }
    }
}

#[async_trait]
impl ContainerManager for LocalManager {
    async fn verify(&self) -> Result<BackendInfo, ManagerError> {
        let program = self.program().map_err(LocalError::from)?;
        Ok(BackendInfo {
            backend: BACKEND.into(),
            location: format!(
                "child processes on {} running {}",
                self.host,
                program.display()
            ),
        })
    }

    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
        let state = self.state();
        Ok(state
            .children
            .values()
            .find(|c| &c.name == name && c.live())
            .map(|c| self.narrative(c)))
    }

    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        let state = self.state();
        Ok(state.children.values().map(|c| self.narrative(c)).collect())
    }

    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        let (narrative, addr) = self.start(spec)?;
        if let Some(limit) = self.config.ready_timeout {
            let process = {
                let state = self.state();
                state
                    .children
                    .values()
                    .find(|c| c.id == narrative.id)
                    .map(|c| c.process.clone())
            };
            if let Some(process) = process {
                if let Err(e) =
                    process::wait_listening(spec.name.as_str(), addr, &process, limit).await
                {
                    // Best effort: the readiness failure is what the caller must see.
                    if let Err(stop) = self.remove_id(&narrative.id).await {
                        tracing::warn!(service = %spec.name, error = %stop, "could not stop a narrative that failed to start");
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(narrative)
    }

    async fn assign(
        &self,
        narrative: &Narrative,
        assignment: &Assignment,
    ) -> Result<Narrative, ManagerError> {
        let mut state = self.state();
        let not_found = || LocalError::NotFound(narrative.name.to_string());
        let candidate = state
            .children
            .iter()
            .find(|(_, c)| c.id == narrative.id)
            .filter(|(_, c)| c.live() && c.kind == NarrativeKind::Prespawned)
            .map(|(seq, _)| *seq)
            .ok_or_else(not_found)?;
        if state
            .children
            .iter()
            .any(|(seq, c)| *seq != candidate && c.name == assignment.name && c.live())
        {
            return Err(LocalError::NameTaken(assignment.name.to_string()).into());
        }
        let child = state.children.get_mut(&candidate).ok_or_else(not_found)?;
        // The file first: if it cannot be written, the candidate stays as it was.
        if let (Some(files), Some(path)) = (&self.name_files, &child.name_file) {
            files.write(path, assignment.name.as_str())?;
        }
        child.name = assignment.name.clone();
        child.owner = Some(assignment.owner.clone());
        child.origin = Some(assignment.origin.clone());
        child.kind = self
            .config
            .naming
            .kind_of(assignment.name.as_str())
            .unwrap_or(NarrativeKind::User);
        tracing::info!(service = %child.name, from = %narrative.name, pid = child.process.pid, "assigned a local narrative");
        let assigned = self.narrative(child);
        forget_zombies(&mut state.children, &assignment.name);
        Ok(assigned)
    }

    async fn mark_connected(
        &self,
        narrative: &Narrative,
        origin: &Origin,
    ) -> Result<Narrative, ManagerError> {
        let mut state = self.state();
        let child = state
            .children
            .values_mut()
            .find(|c| c.id == narrative.id && c.live())
            .ok_or_else(|| LocalError::NotFound(narrative.name.to_string()))?;
        child.origin = Some(origin.clone());
        Ok(self.narrative(child))
    }

    async fn stamp_owner(
        &self,
        narrative: &Narrative,
        owner: &Owner,
    ) -> Result<Narrative, ManagerError> {
        let mut state = self.state();
        let child = state
            .children
            .values_mut()
            .find(|c| c.id == narrative.id && c.live())
            .ok_or_else(|| LocalError::NotFound(narrative.name.to_string()))?;
        match &child.owner {
            Some(other) if other != owner => Err(ManagerError::OwnedByAnother {
                backend: BACKEND.to_owned(),
                name: narrative.name.to_string(),
            }),
            _ => {
                child.owner = Some(owner.clone());
                Ok(self.narrative(child))
            }
        }
    }

    fn conditional(&self) -> bool {
        false
    }

    async fn remove(&self, narrative: &Narrative) -> Result<(), ManagerError> {
        Ok(self.remove_id(&narrative.id).await?)
    }

    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        let state = self.state();
        Ok(state
            .children
            .values()
            .filter(|c| c.zombie() && self.config.naming.kind_of(c.name.as_str()).is_some())
            .map(|c| self.narrative(c))
            .collect())
    }

    fn traefik_service(&self, narrative_name: &ServiceName) -> String {
        narrative_name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_or_by_path() {
        let path = std::ffi::OsString::from("/nonexistent:/bin:/usr/bin");
        assert!(find_program("sh", Some(&path)).is_some());
        assert!(find_program("/bin/sh", None).is_some());
        assert!(find_program("no-such-program-here", Some(&path)).is_none());
        assert!(
            find_program("/etc/passwd", None).is_none(),
            "not executable"
        );
    }
}
