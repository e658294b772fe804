//! Docker Swarm for `e2e --swarm`, `demo --swarm`, `bench-swarm` and `ci`: a single-node
//! swarm made only where none is active ([`SwarmGuard`]), and `deploy/swarm/docker-stack.yaml`
//! deployed under a stack name of the xtask's own ([`SwarmStack`]).
//!
//! The engine is shared with other people's runs (the conformance tests, another agent's
//! stack): what changes it (init, leave, deploy) runs under `flock` on [`LOCK`], and a swarm
//! is left only by the guard that made it, and only when no service is left on it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::compose::{bounded, docker, yaml_string};
use crate::images;
use crate::traefik::{free_port, workspace_root};

/// The lock every agent on this machine takes around what changes the engine's swarm.
pub const LOCK: &str = "/tmp/traefiker-docker.lock";

/// The stack file, from the workspace root.
pub const STACK_FILE: &str = "deploy/swarm/docker-stack.yaml";

/// How long one docker command may take (a `--detach=false` update included).
const COMMAND_LIMIT: Duration = Duration::from_secs(240);

/// How long a deployed or updated stack may take to converge.
const CONVERGE_LIMIT: Duration = Duration::from_secs(180);
/// traefiker's replicas in the stack file (`deploy.replicas`).
pub const REPLICAS: usize = 3;

/// `docker args` under [`LOCK`]: its standard output.
pub fn locked(args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("flock");
    cmd.arg(LOCK).arg("docker").args(args);
    let out = bounded(cmd, COMMAND_LIMIT)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The engine's swarm state: `inactive`, `active`, `pending`, `error` or `locked`.
fn swarm_state() -> Result<String, String> {
    Ok(docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"])?
        .trim()
        .to_owned())
}

/// The state of `service`'s last update (`updating`, `completed`, `rollback_started`, ...;
/// empty if it was never updated) and when it started.
pub fn update_status(service: &str) -> Result<(String, String), String> {
    let out = docker(&[
        "service",
        "inspect",
        "--format",
        "{{if .UpdateStatus}}{{.UpdateStatus.State}} {{.UpdateStatus.StartedAt}}{{end}}",
        service,
    ])?;
    let out = out.trim();
    let (state, started) = out.split_once(' ').unwrap_or((out, ""));
    Ok((state.to_owned(), started.to_owned()))
}

/// A swarm active while it lives: the one there was, or one it initialised (single node,
/// advertised on 127.0.0.1), which it leaves when dropped (also on an error, a panic or
/// Ctrl-C), unless services someone else deployed meanwhile still run on it.
#[derive(Debug)]
pub struct SwarmGuard {
    made: bool,
    cleanup: Option<usize>,
}

impl SwarmGuard {
    /// Makes sure a swarm is active on this engine.
    pub fn ensure() -> Result<Self, String> {
        images::engine_answers()?;
        match swarm_state()?.as_str() {
            "active" => {
                eprintln!("swarm: using the swarm already active on this engine");
                return Ok(Self {
                    made: false,
                    cleanup: None,
                });
            }
            "inactive" => {}
            other => {
                return Err(format!(
                    "this engine's swarm is {other}: `docker swarm leave --force` (if no one uses it) or fix it, then run again"
                ))
            }
        }
        let started = Instant::now();
        if let Err(e) = locked(&["swarm", "init", "--advertise-addr", "127.0.0.1"]) {
            // Someone else may have made one between the look and the lock: theirs to leave.
            return if swarm_state()? == "active" {
                Ok(Self {
                    made: false,
                    cleanup: None,
                })
            } else {
                Err(format!("cannot initialise a swarm: {e}"))
            };
        }
        eprintln!(
            "swarm: initialised a single-node swarm ({:.1?}); it is left at the end",
            started.elapsed()
        );
        let cleanup = crate::stack::on_interrupt(leave_if_unused);
        Ok(Self {
            made: true,
            cleanup: Some(cleanup),
        })
    }
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        if let Some(id) = self.cleanup.take() {
            crate::stack::forget_interrupt(id);
        }
        if self.made {
            leave_if_unused();
        }
    }
}

/// Leaves the swarm this run made, unless services are still on it (someone else's, or a
/// teardown that failed: both are reported, and the swarm is kept for them).
fn leave_if_unused() {
    match docker(&["service", "ls", "--format", "{{.Name}}"]) {
        Ok(names) if names.trim().is_empty() => {
            match locked(&["swarm", "leave", "--force"]) {
                Ok(_) => eprintln!("swarm: left the swarm this run initialised"),
                Err(e) => eprintln!("xtask: {e}"),
            }
        }
        Ok(names) => eprintln!(
            "xtask: kept the swarm this run initialised: services still run on it ({}); `docker swarm leave --force` once they are done",
            names.split_whitespace().collect::<Vec<_>>().join(", ")
        ),
        Err(e) => eprintln!("xtask: kept the swarm this run initialised: {e}"),
    }
}

/// One step of a teardown: whether it is done (else it is tried again, bounded).
type Step<'a> = &'a dyn Fn() -> Result<bool, String>;

/// A deployed stack of [`STACK_FILE`].
#[derive(Debug)]
pub struct SwarmStack {
    /// Traefik's web entrypoint (published on this host).
    pub web_port: u16,
    down: Teardown,
    settings: Vec<(String, String)>,
    cleanup: usize,
}

/// What it takes to deploy the stack again and to take it down (also from the Ctrl-C
/// handler, hence `Clone` and owned).
#[derive(Clone, Debug)]
struct Teardown {
    stack: String,
    network: String,
    control: String,
    volume: String,
    dir: PathBuf,
    vars: Vec<(String, String)>,
}

impl SwarmStack {
    /// Deploys the stack as `stack` with narratives on network `network` (the images must
    /// exist: `cargo xtask images`), with `settings` added to traefiker's environment and
    /// its port published; returns once every service converged, traefiker answers and
    /// Traefik routes `/narrative/` to it.
    pub fn up(
        stack: &str,
        dir: &Path,
        network: &str,
        settings: &[(&str, &str)],
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let web_port = free_port()?;
        let control = format!("{stack}-control");
        let volume = format!("{stack}-data");
        let vars = vec![
            ("DOCK_NET".to_owned(), network.to_owned()),
            ("CONTROL_NET".to_owned(), control.clone()),
            ("DATA_VOLUME".to_owned(), volume.clone()),
            ("WEB_PORT".to_owned(), web_port.to_string()),
            ("TRAEFIKER_VERSION".to_owned(), images::version()?),
            ("DOCKER_GID".to_owned(), images::socket_gid()?.to_string()),
        ];
        let down = Teardown {
            stack: stack.to_owned(),
            network: network.to_owned(),
            control,
            volume,
            dir: dir.to_path_buf(),
            vars,
        };
        // A previous run that was killed may have left its stack behind.
        down.run();
        let cleanup = {
            let down = down.clone();
            crate::stack::on_interrupt(move || down.run())
        };
        let mut this = Self {
            web_port,
            down,
            settings: Vec::new(),
            cleanup,
        };
        let settings: Vec<(&str, &str)> = settings.to_vec();
        this.deploy(&settings)?;
        this.wait_ready()?;
        Ok(this)
    }

    /// The stack's name.
    pub fn name(&self) -> &str {
        &self.down.stack
    }

    /// The network narratives join.
    pub fn network(&self) -> &str {
        &self.down.network
    }

    /// traefiker's Swarm service.
    pub fn traefiker_service(&self) -> String {
        format!("{}_traefiker", self.down.stack)
    }

    /// Writes the override with `overrides` applied to the settings, and deploys the stack
    /// (again: an update of every service whose spec changed, in a rolling update); waits
    /// until it converged.
    pub fn deploy(&mut self, overrides: &[(&str, &str)]) -> Result<Duration, String> {
        let started = self.apply(overrides)?;
        self.wait_converged(CONVERGE_LIMIT)?;
        Ok(started.elapsed())
    }

    /// Writes the override with `overrides` applied to the settings and deploys the stack;
    /// when the deploy began.
    fn apply(&mut self, overrides: &[(&str, &str)]) -> Result<Instant, String> {
        for (k, v) in overrides {
            self.settings.retain(|(key, _)| key != k);
            self.settings.push(((*k).into(), (*v).into()));
        }
        write_override(&self.down.override_file(), &self.settings)?;
        let started = Instant::now();
        self.down.deploy()?;
        Ok(started)
    }

    /// Deploys `overrides` like [`SwarmStack::deploy`], but returns as soon as every
    /// traefiker replica is a new task that passed its health check and the old ones have
    /// stopped, without waiting out the update's monitoring period (`update_config.monitor`)
    /// as [`SwarmStack::wait_converged`] does.
    pub fn roll(&mut self, overrides: &[(&str, &str)]) -> Result<Duration, String> {
        let before: Vec<String> = self
            .traefiker_containers()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let started = self.apply(overrides)?;
        let service = format!(
            "label=com.docker.swarm.service.name={}",
            self.traefiker_service()
        );
        let ids = |extra: &[&str]| -> Result<Vec<String>, String> {
            let mut args = vec!["ps", "-q", "--filter", service.as_str()];
            args.extend(extra);
            Ok(docker(&args)?
                .split_whitespace()
                .map(str::to_owned)
                .collect())
        };
        let mut last;
        let deadline = started + CONVERGE_LIMIT;
        loop {
            match (ids(&[]), ids(&["--filter", "health=healthy"])) {
                (Ok(running), Ok(healthy)) => {
                    let old = running.iter().filter(|id| before.contains(id)).count();
                    if old == 0 && running.len() == REPLICAS && healthy.len() == REPLICAS {
                        return Ok(started.elapsed());
                    }
                    last = format!(
                        "{} running ({old} of the old ones), {} healthy",
                        running.len(),
                        healthy.len()
                    );
                }
                (Err(e), _) | (_, Err(e)) => last = e,
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "traefiker's replicas were not all replaced within {CONVERGE_LIMIT:?}: {last}\n{}",
                    self.log_tails(30)
                ));
            }
            sleep(Duration::from_millis(250));
        }
    }

    /// Waits until every service of the stack runs all its replicas and no update is in
    /// progress.
    pub fn wait_converged(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let last = match self.down.unconverged() {
                Ok(None) => return Ok(()),
                Ok(Some(why)) => why,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "the stack {} did not converge within {limit:?}: {last}\n{}",
                    self.down.stack,
                    self.log_tails(30)
                ));
            }
            sleep(Duration::from_millis(500));
        }
    }

    /// Waits until traefiker answers and Traefik routes `/narrative/` to it (the catch-all:
    /// 302 to the login page without a cookie).
    pub fn wait_ready(&self) -> Result<(), String> {
        crate::stack::wait_routed(
            &format!("the swarm stack {}", self.down.stack),
            &self.traefiker_url("/narrative_status/"),
            &self.web_url("/narrative/"),
            || self.log_tails(30),
        )
    }

    /// A URL on Traefik's web entrypoint (Host `localhost`, which the routes match).
    pub fn web_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.web_port)
    }

    /// A URL on traefiker itself: the newest running replica's port on this host (each task
    /// has its own, and a rolling update replaces them). Where none is found the URL names
    /// port 0, so the request fails, and why is printed.
    pub fn traefiker_url(&self, path: &str) -> String {
        match self.replica_ports().map(|ports| ports.first().copied()) {
            Ok(Some(port)) => format!("http://127.0.0.1:{port}{path}"),
            Ok(None) => {
                eprintln!("xtask: no traefiker replica of {} runs", self.down.stack);
                format!("http://127.0.0.1:0{path}")
            }
            Err(e) => {
                eprintln!("xtask: {e}");
                format!("http://127.0.0.1:0{path}")
            }
        }
    }

    /// The host ports of the running traefiker replicas, newest first.
    pub fn replica_ports(&self) -> Result<Vec<u16>, String> {
        let mut ports = Vec::new();
        for (id, _) in self.traefiker_containers()? {
            // `0.0.0.0:32768` (and `[::]:32768`): one port per task.
            let out = docker(&["port", &id, "5000/tcp"])?;
            if let Some(port) = out
                .lines()
                .find_map(|l| l.rsplit_once(':').and_then(|(_, p)| p.trim().parse().ok()))
            {
                ports.push(port);
            }
        }
        Ok(ports)
    }

    /// The Swarm name of the narrative service on this stack's network that carries `name`
    /// (its `traefiker.name` label), if one does.
    pub fn narrative_service(&self, name: &str) -> Result<Option<String>, String> {
        let ids = docker(&[
            "service",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            &format!("label=traefiker.name={name}"),
            "--filter",
            &format!("label=traefik.swarm.network={}", self.down.network),
        ])?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        match ids.as_slice() {
            [] => Ok(None),
            [id] => Ok(Some((*id).to_owned())),
            _ => Err(format!("{} services carry the name {name}", ids.len())),
        }
    }

    /// The running containers of traefiker's tasks, newest first: (container id, task slot).
    pub fn traefiker_containers(&self) -> Result<Vec<(String, String)>, String> {
        let out = docker(&[
            "ps",
            "--filter",
            &format!(
                "label=com.docker.swarm.service.name={}",
                self.traefiker_service()
            ),
            "--format",
            "{{.ID}} {{.Names}}",
        ])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let (id, name) = l.split_once(' ')?;
                // <stack>_traefiker.<slot>.<task id>
                let slot = name.split('.').nth(1)?.to_owned();
                Some((id.to_owned(), slot))
            })
            .collect())
    }

    /// Every log line of traefiker's tasks in this run, stopped tasks' included (Swarm
    /// keeps their containers, up to its task history).
    pub fn traefiker_logs(&self) -> Result<String, String> {
        service_logs(&self.traefiker_service(), None)
    }

    /// The last `n` log lines of both services.
    pub fn log_tails(&self, n: usize) -> String {
        ["traefiker", "traefik"]
            .iter()
            .map(|s| {
                let service = format!("{}_{s}", self.down.stack);
                service_logs(&service, Some(n))
                    .unwrap_or_else(|e| format!("(no logs of {service}: {e})"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for SwarmStack {
    fn drop(&mut self) {
        crate::stack::forget_interrupt(self.cleanup);
        let from = Instant::now();
        self.down.run();
        eprintln!(
            "xtask: stack {} removed in {:.1?}",
            self.down.stack,
            from.elapsed()
        );
    }
}

impl Teardown {
    fn override_file(&self) -> PathBuf {
        self.dir.join("stack.override.yaml")
    }

    /// `docker stack deploy` of the stack file and the override, under the lock.
    fn deploy(&self) -> Result<(), String> {
        let mut cmd = Command::new("flock");
        cmd.arg(LOCK)
            .args([
                "docker",
                "stack",
                "deploy",
                "--resolve-image",
                "never",
                "--prune",
                "-c",
            ])
            .arg(workspace_root().join(STACK_FILE))
            .arg("-c")
            .arg(self.override_file())
            .arg(&self.stack)
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        let out = bounded(cmd, COMMAND_LIMIT)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "docker stack deploy {} failed: {}",
                self.stack,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Why the stack has not converged, or `None` once it has.
    fn unconverged(&self) -> Result<Option<String>, String> {
        let out = docker(&[
            "service",
            "ls",
            "--filter",
            &format!("label=com.docker.stack.namespace={}", self.stack),
            "--format",
            "{{.Name}} {{.Replicas}}",
        ])?;
        if out.trim().is_empty() {
            return Ok(Some("no services yet".into()));
        }
        for line in out.lines() {
            let (name, replicas) = line.split_once(' ').unwrap_or((line, ""));
            let (running, wanted) = replicas.split_once('/').unwrap_or(("?", "??"));
            // "3/3 (max 1 per node)" and the like: only the figures count.
            let wanted = wanted.split_whitespace().next().unwrap_or(wanted);
            if running != wanted {
                return Ok(Some(format!("{name} runs {running} of {wanted}")));
            }
            let (update, _) = update_status(name)?;
            let update = update.as_str();
            if update == "updating" || update == "rollback_started" {
                return Ok(Some(format!("{name}: update {update}")));
            }
            if update == "paused" || update == "rollback_completed" || update == "rollback_paused" {
                return Err(format!("{name}: its update ended {update}"));
            }
        }
        Ok(None)
    }

    /// Saves the logs, removes the stack, the narratives it left on the network, their
    /// claims, the networks and the volumes. Best effort: what fails is reported.
    fn run(&self) {
        for s in ["traefiker", "traefik"] {
            let service = format!("{}_{s}", self.stack);
            if let Ok(logs) = service_logs(&service, None) {
                if !logs.trim().is_empty() {
                    let _ = std::fs::write(self.dir.join(format!("{s}.log")), logs);
                }
            }
        }
        let in_stack = format!("label=com.docker.stack.namespace={}", self.stack);
        if !docker(&["service", "ls", "-q", "--filter", &in_stack])
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            // traefiker gets its SIGTERM first and retires its pool within its grace.
            // Its network is still in use by the narratives: removed below, after them.
            if let Err(e) = locked(&["stack", "rm", &self.stack]) {
                if !e.contains("is in use") {
                    eprintln!("xtask: removing the stack {}: {e}", self.stack);
                }
            }
        }
        let steps: [(&str, Step); 3] = [
            ("the stack's containers to stop", &|| {
                Ok(docker(&["ps", "-aq", "--filter", &in_stack])?
                    .trim()
                    .is_empty())
            }),
            ("the narratives to be removed", &|| {
                remove_narratives(&self.network)
            }),
            ("the networks and volumes to be removed", &|| {
                self.remove_leftovers()
            }),
        ];
        for (what, step) in steps {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match step() {
                    Ok(true) => break,
                    Ok(false) if Instant::now() < deadline => sleep(Duration::from_millis(500)),
                    Ok(false) => {
                        eprintln!("xtask: gave up waiting for {what} ({})", self.stack);
                        break;
                    }
                    Err(e) => {
                        eprintln!("xtask: {e}");
                        break;
                    }
                }
            }
        }
    }

    /// Removes the networks and the slot volumes; whether none is left.
    fn remove_leftovers(&self) -> Result<bool, String> {
        let mut left = false;
        for net in [&self.network, &self.control] {
            if docker(&["network", "inspect", "--format", "{{.Id}}", net]).is_ok() {
                left |= docker(&["network", "rm", net]).is_err();
            }
        }
        let volumes = docker(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name={}-", self.volume),
        ])?;
        for v in volumes.split_whitespace() {
            left |= docker(&["volume", "rm", v]).is_err();
        }
        Ok(!left)
    }
}

/// The log lines of every container of `service`'s tasks, stopped ones included (Swarm
/// keeps them up to its task history), oldest task first; the last `tail` of each if given.
/// From each container rather than `docker service logs`, which waited minutes here for
/// tasks that had ended.
fn service_logs(service: &str, tail: Option<usize>) -> Result<String, String> {
    let out = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
        "--format",
        "{{.ID}}",
    ])?;
    let tail = tail.map(|n| n.to_string());
    let mut logs = String::new();
    // `docker ps` lists the newest first.
    for id in out.split_whitespace().rev() {
        let mut args = vec!["logs"];
        if let Some(n) = &tail {
            args.extend(["--tail", n.as_str()]);
        }
        args.push(id);
        logs.push_str(&crate::compose::docker_output(&args)?);
    }
    Ok(logs)
}

/// Removes every service labelled for `network` (the narratives traefiker started there,
/// waiting or assigned) and the Swarm configs labelled for it (their claims); whether none
/// is left.
pub fn remove_narratives(network: &str) -> Result<bool, String> {
    let label = format!("label=traefik.swarm.network={network}");
    let ids = docker(&["service", "ls", "-q", "--filter", &label])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["service", "rm"];
        args.extend(&ids);
        docker(&args).map_err(|e| format!("removing narratives on {network}: {e}"))?;
    }
    let configs = docker(&["config", "ls", "-q", "--filter", &label])?;
    let configs: Vec<&str> = configs.split_whitespace().collect();
    if !configs.is_empty() {
        let mut args = vec!["config", "rm"];
        args.extend(&configs);
        // A config still referenced by a service that is going away: the next round.
        let _ = docker(&args);
    }
    // Their tasks' containers go after the services; the network is free once they have.
    Ok(ids.is_empty() && configs.is_empty())
}

/// Writes the override giving traefiker `settings`, and each of its tasks a port of its own
/// on this host (`mode: host` with no published port: the engine picks one per task), on
/// top of the stack file.
fn write_override(path: &Path, settings: &[(String, String)]) -> Result<(), String> {
    let mut text = format!(
        "# Written by cargo xtask: this run's traefiker settings on top of {STACK_FILE}.\n\
         version: \"3.8\"\n\
         services:\n  traefiker:\n    ports:\n      - target: 5000\n        protocol: tcp\n        mode: host\n    environment:"
    );
    if settings.is_empty() {
        text.push_str(" {}\n");
    } else {
        text.push('\n');
    }
    for (k, v) in settings {
        text.push_str(&format!("      {k}: {}\n", yaml_string(v)));
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
