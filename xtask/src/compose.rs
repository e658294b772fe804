//! The repository's `docker-compose.yaml` brought up under a project name of the xtask's own,
//! for `demo --docker` and `e2e --docker`: Traefik with its Docker provider and traefiker
//! with the docker backend, narratives as containers on the stack's network.
//!
//! What a run changes in traefiker's settings goes into an override file in the run's
//! directory; ports and the network come in through the compose file's variables. Dropping
//! the stack (or Ctrl-C, through [`crate::stack::on_interrupt`]) saves the logs, stops
//! traefiker, removes the narratives it started (they are not Compose services), and takes
//! the stack down with its volume.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::images;
use crate::traefik::{free_port, workspace_root};

/// The network the compose file puts the stack on when `DOCK_NET` is unset: the Python
/// version's `dock_net` default.
pub const DEFAULT_NETWORK: &str = "narrative-traefiker_default";

/// How long one docker or docker-compose command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

/// A running compose stack.
#[derive(Debug)]
pub struct ComposeStack {
    /// Traefik's web entrypoint on 127.0.0.1.
    pub web_port: u16,
    /// traefiker's own port on 127.0.0.1.
    pub traefiker_port: u16,
    down: Teardown,
    settings: Vec<(String, String)>,
    cleanup: usize,
    /// traefiker's log lines from containers replaced by a restart (Compose removes them).
    earlier_logs: String,
}

/// What it takes to run compose for the stack, and to take it down (also from the Ctrl-C
/// handler, hence `Clone` and owned).
#[derive(Clone, Debug)]
struct Teardown {
    project: String,
    network: String,
    dir: PathBuf,
    vars: Vec<(String, String)>,
}

impl ComposeStack {
    /// Brings the stack up as compose project `project` on network `project` (the images
    /// must exist: `cargo xtask images`), with `settings` added to traefiker's environment;
    /// returns once traefiker answers and Traefik routes `/narrative/` to it.
    pub fn up(
        project: &str,
        dir: &Path,
        network: &str,
        settings: &[(&str, &str)],
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let web_port = free_port()?;
        let traefiker_port = free_port()?;
        let vars = vec![
            ("DOCK_NET".to_owned(), network.to_owned()),
            ("WEB_PORT".to_owned(), web_port.to_string()),
            ("TRAEFIKER_PORT".to_owned(), traefiker_port.to_string()),
            ("TRAEFIKER_VERSION".to_owned(), images::version()?),
            ("DOCKER_GID".to_owned(), images::socket_gid()?.to_string()),
        ];
        let down = Teardown {
            project: project.to_owned(),
            network: network.to_owned(),
            dir: dir.to_path_buf(),
            vars,
        };
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        write_override(&down.override_file(), &settings)?;
        // A previous run that was killed may have left its stack behind.
        down.run();
        let cleanup = {
            let down = down.clone();
            crate::stack::on_interrupt(move || down.run())
        };
        let stack = Self {
            web_port,
            traefiker_port,
            down,
            settings,
            cleanup,
            earlier_logs: String::new(),
        };
        stack.down.compose(&["up", "-d"])?;
        stack.wait_ready()?;
        Ok(stack)
    }

    /// The compose project's name.
    pub fn project(&self) -> &str {
        &self.down.project
    }

    /// The network narratives join.
    pub fn network(&self) -> &str {
        &self.down.network
    }

    /// Waits until traefiker answers and Traefik routes `/narrative/` to it (the catch-all:
    /// 302 to the login page without a cookie).
    pub fn wait_ready(&self) -> Result<(), String> {
        crate::stack::wait_routed(
            &format!("the compose stack {}", self.down.project),
            &self.traefiker_url("/narrative_status/"),
            &self.web_url("/narrative/"),
            || self.log_tails(30),
        )
    }

    /// Recreates the traefiker container with its settings changed by `overrides` (as an
    /// upgrade would: a new container, the same volume); waits until it answers.
    pub fn restart_traefiker(&mut self, overrides: &[(&str, &str)]) -> Result<(), String> {
        for (k, v) in overrides {
            self.settings.retain(|(key, _)| key != k);
            self.settings.push(((*k).into(), (*v).into()));
        }
        write_override(&self.down.override_file(), &self.settings)?;
        let before = self.traefiker_logs()?;
        self.earlier_logs.push_str(&before);
        self.down.compose(&["up", "-d", "--no-deps", "traefiker"])?;
        self.wait_ready()
    }

    /// Every log line of traefiker's containers in this run, the replaced ones' included.
    pub fn all_traefiker_logs(&self) -> Result<String, String> {
        Ok(format!("{}{}", self.earlier_logs, self.traefiker_logs()?))
    }

    /// The current traefiker container's log, from the engine directly: a compose command
    /// costs a second of start-up, and this is read while the e2e times a restart.
    fn traefiker_logs(&self) -> Result<String, String> {
        let ids = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.down.project),
            "--filter",
            "label=com.docker.compose.service=traefiker",
        ])?;
        let mut logs = String::new();
        for id in ids.split_whitespace() {
            logs.push_str(&docker_output(&["logs", id])?);
        }
        Ok(logs)
    }

    /// A URL on Traefik's web entrypoint (Host `localhost`, which the routes match).
    pub fn web_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.web_port)
    }

    /// A URL on traefiker itself.
    pub fn traefiker_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.traefiker_port)
    }

    /// The last `n` log lines of both services.
    pub fn log_tails(&self, n: usize) -> String {
        self.down
            .compose(&["logs", "--no-color", &format!("--tail={n}")])
            .unwrap_or_else(|e| format!("(no logs: {e})"))
    }
}

impl Drop for ComposeStack {
    fn drop(&mut self) {
        crate::stack::forget_interrupt(self.cleanup);
        self.down.run();
    }
}

impl Teardown {
    fn override_file(&self) -> PathBuf {
        self.dir.join("compose.override.yaml")
    }

    /// `docker-compose -p <project> -f docker-compose.yaml -f <override> args`: its output.
    fn compose(&self, args: &[&str]) -> Result<String, String> {
        let (program, first) = compose_command();
        let mut cmd = Command::new(program);
        cmd.args(first)
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(workspace_root().join("docker-compose.yaml"))
            .arg("-f")
            .arg(self.override_file());
        cmd.args(args).envs(self.vars.iter().map(|(k, v)| (k, v)));
        let out = bounded(cmd, COMMAND_LIMIT)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "{program} {} failed ({}): {}",
                args.join(" "),
                out.status,
                text.trim()
            ))
        }
    }

    /// Saves the logs, stops traefiker gracefully, removes the narratives on the network,
    /// and takes the stack down with its volume. Best effort: what fails is reported.
    fn run(&self) {
        if let Ok(logs) = self.compose(&["logs", "--no-color"]) {
            if !logs.trim().is_empty() {
                let _ = std::fs::write(self.dir.join("compose.log"), logs);
            }
        }
        let _ = self.compose(&["stop", "-t", "15", "traefiker"]);
        if let Err(e) = remove_narratives(&self.network) {
            eprintln!("xtask: {e}");
        }
        if let Err(e) = self.compose(&["down", "-v", "--remove-orphans", "-t", "5"]) {
            eprintln!("xtask: taking the stack {} down: {e}", self.project);
        }
    }
}

/// Writes the override file giving traefiker `settings` on top of docker-compose.yaml.
fn write_override(path: &Path, settings: &[(String, String)]) -> Result<(), String> {
    let mut text = String::from(
        "# Written by cargo xtask: this run's traefiker settings on top of docker-compose.yaml.\n\
         services:\n  traefiker:\n    environment:",
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

/// `docker-compose` (what Debian installs), else the `docker compose` plugin.
fn compose_command() -> (&'static str, &'static [&'static str]) {
    let standalone = Command::new("docker-compose")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if standalone {
        ("docker-compose", &[])
    } else {
        ("docker", &["compose"])
    }
}

/// Removes every container labelled for `network` (the narratives traefiker started there).
pub fn remove_narratives(network: &str) -> Result<(), String> {
    let ids = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=traefik.docker.network={network}"),
    ])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut args = vec!["rm", "-f"];
    args.extend(ids);
    docker(&args)
        .map(drop)
        .map_err(|e| format!("removing narratives on {network}: {e}"))
}

/// `docker args`: its standard output, or why it failed.
pub fn docker(args: &[&str]) -> Result<String, String> {
    docker_run(args).map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `docker args`: its standard output and error (`docker logs` writes a container's stderr
/// to its own).
pub(crate) fn docker_output(args: &[&str]) -> Result<String, String> {
    docker_run(args).map(|out| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn docker_run(args: &[&str]) -> Result<Output, String> {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    let out = bounded(cmd, COMMAND_LIMIT)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `cmd` (no stdin) to completion, or kills it after `limit`.
pub(crate) fn bounded(mut cmd: Command, limit: Duration) -> Result<Output, String> {
    let what = format!("{:?}", cmd.get_program());
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start {what}: {e}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.map_err(|e| format!("{what}: {e}")),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            Err(format!("{what} did not finish within {limit:?}"))
        }
    }
}

/// `value` as a double-quoted YAML string that compose does not interpolate.
pub(crate) fn yaml_string(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_values_are_quoted_and_not_interpolated() {
        assert_eq!(yaml_string("a:b,c"), "\"a:b,c\"");
        assert_eq!(yaml_string("x\"y\\z"), "\"x\\\"y\\\\z\"");
        assert_eq!(yaml_string("$HOME"), "\"$$HOME\"");
    }

    #[test]
    fn no_settings_is_still_a_valid_override() {
        let path = std::env::temp_dir().join(format!("xtask-override-{}.yaml", std::process::id()));
        write_override(&path, &[]).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.ends_with("    environment: {}\n"), "{text}");
        write_override(&path, &[("num_prespawn".into(), "2".into())]).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.ends_with("    environment:\n      num_prespawn: \"2\"\n"),
            "{text}"
        );
        let _ = std::fs::remove_file(&path);
    }
}
