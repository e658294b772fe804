//! Child processes that cannot outlive the xtask, and the traefiker + Traefik pair the demo
//! and the e2e run.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::traefik::{self, TraefikPorts};

/// Pids of the running [`Proc`]s, for [`stop_all_on_interrupt`].
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// A cleanup to run on Ctrl-C (a compose stack's teardown), by the id [`on_interrupt`] gave.
type Cleanup = (usize, Box<dyn Fn() + Send>);

/// Cleanups registered with [`on_interrupt`], for [`stop_all_on_interrupt`].
static CLEANUPS: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<u32>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

fn cleanups() -> std::sync::MutexGuard<'static, Vec<Cleanup>> {
    CLEANUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers `cleanup` to run if the xtask is interrupted; the id is for
/// [`forget_interrupt`] once the owner has cleaned up itself.
pub fn on_interrupt(cleanup: impl Fn() + Send + 'static) -> usize {
    let mut all = cleanups();
    let id = all.iter().map(|(id, _)| id + 1).max().unwrap_or(0);
    all.push((id, Box::new(cleanup)));
    id
}

/// Drops the cleanup registered as `id`.
pub fn forget_interrupt(id: usize) {
    cleanups().retain(|(i, _)| *i != id);
}

/// On Ctrl-C or SIGTERM, stops every running [`Proc`] (SIGTERM, up to 12 s, then SIGKILL),
/// runs the cleanups registered with [`on_interrupt`], and exits with 130, since the
/// interrupted thread never reaches their `Drop`.
pub fn stop_all_on_interrupt() -> Result<(), String> {
    // `ci` runs two end-to-end tests in one process, and a handler can be set only once.
    static SET: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    SET.get_or_init(set_interrupt_handler).clone()
}

fn set_interrupt_handler() -> Result<(), String> {
    ctrlc::set_handler(|| {
        eprintln!("xtask: interrupted; stopping what it started");
        for (_, cleanup) in cleanups().iter() {
            cleanup();
        }
        let pids: Vec<String> = running().iter().map(u32::to_string).collect();
        if !pids.is_empty() {
            let _ = Command::new("kill").arg("-TERM").args(&pids).status();
            let deadline = Instant::now() + Duration::from_secs(12);
            while Instant::now() < deadline && running().iter().any(|p| alive(*p)) {
                sleep(Duration::from_millis(100));
            }
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(&pids)
                .stderr(Stdio::null())
                .status();
        }
        std::process::exit(130);
    })
    .map_err(|e| format!("cannot catch Ctrl-C: {e}"))
}

/// Whether `pid` runs (exists and is not a zombie awaiting its parent's wait).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// A child process stopped when dropped (SIGTERM, then SIGKILL after a grace period), so an
/// error or a panic in the xtask leaves nothing running.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    done: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout + stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self, String> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("could not start {name}: {e}"))?;
        running().push(child.id());
        Ok(Self {
            name: name.into(),
            child,
            log: log.to_path_buf(),
            done: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.done.is_none() {
            self.done = self.child.try_wait().ok().flatten();
            if self.done.is_some() {
                let pid = self.child.id();
                running().retain(|p| *p != pid);
            }
        }
        self.done
    }

    /// Sends `signal` (a `kill -s` name such as `TERM`) to the process.
    pub fn signal(&mut self, signal: &str) {
        if self.exited().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; waits for it.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.done = self.child.wait().ok();
        let pid = self.child.id();
        running().retain(|p| *p != pid);
        self.done
    }

    /// The last `n` lines of the process's log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// The process's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.stop(Duration::from_secs(12));
        }
    }
}

/// The last `n` lines of a file (reads at most its last 64 KiB).
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("({} not readable)", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut text = String::new();
    let mut bytes = Vec::new();
    if f.read_to_end(&mut bytes).is_ok() {
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cargo build` for the two binaries the stack needs.
pub fn build_binaries() -> Result<(), String> {
    eprintln!("==> cargo build -p traefiker-server -p traefiker-local");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-p", "traefiker-server", "-p", "traefiker-local"])
        .current_dir(traefik::workspace_root())
        .status()
        .map_err(|e| format!("could not run cargo build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build failed ({status})"))
    }
}

/// An HTTP client that never follows redirects and sends `localhost` to 127.0.0.1 (Traefik
/// and traefiker listen on 127.0.0.1 only; the routes match `Host(`localhost`)`).
pub fn agent() -> ureq::Agent {
    agent_within(Duration::from_secs(5))
}

/// [`agent`] with requests bounded by `limit` instead (a cold start under a burst takes
/// longer than 5 s).
pub fn agent_within(limit: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(limit)
        .resolver(|addr: &str| -> std::io::Result<Vec<SocketAddr>> {
            let port = addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .unwrap_or(80);
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        })
        .build()
}

/// An HTTP answer, whatever its status.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Resp {
    /// The value of cookie `name` set by this answer.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies.iter().find_map(|c| {
            let first = c.split(';').next()?.trim();
            let (k, v) = first.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }
}

/// `method url` with the given cookies; any status is an answer, only transport failures
/// are errors.
pub fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    cookies: &[(&str, &str)],
) -> Result<Resp, String> {
    let mut req = agent.request(method, url);
    if !cookies.is_empty() {
        let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        req = req.set("Cookie", &header.join("; "));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("{method} {url}: {e}")),
    };
    let status = resp.status();
    let location = resp.header("location").map(str::to_string);
    let set_cookies = resp
        .all("set-cookie")
        .into_iter()
        .map(str::to_string)
        .collect();
    let body = resp
        .into_string()
        .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    Ok(Resp {
        status,
        location,
        set_cookies,
        body,
    })
}

/// `GET url` with cookies.
pub fn get(agent: &ureq::Agent, url: &str, cookies: &[(&str, &str)]) -> Result<Resp, String> {
    request(agent, "GET", url, cookies)
}

/// Polls `check` every 100 ms until it answers `Some` or `limit` passes.
/// Waits (90 s at most) until `status_url` on traefiker answers 200 and `web_url` through
/// Traefik answers traefiker's catch-all 302; on a timeout the error names `what` and ends
/// with `logs()`.
pub fn wait_routed(
    what: &str,
    status_url: &str,
    web_url: &str,
    logs: impl Fn() -> String,
) -> Result<(), String> {
    let agent = agent();
    let limit = Duration::from_secs(90);
    let deadline = Instant::now() + limit;
    loop {
        let up = |u: &str, want: u16| get(&agent, u, &[]).is_ok_and(|r| r.status == want);
        if up(status_url, 200) && up(web_url, 302) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{what} was not ready within {limit:?}\n{}", logs()));
        }
        sleep(Duration::from_millis(250));
    }
}

pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        sleep(Duration::from_millis(100));
    }
}

/// traefiker (local backend, the stand-in narrative) behind a real Traefik.
#[derive(Debug)]
pub struct Stack {
    pub dir: PathBuf,
    pub ports: TraefikPorts,
    pub settings: Vec<(String, String)>,
    // Traefik is stopped first (fields drop in order), then traefiker, which stops its
    // narratives.
    pub traefik: Proc,
    pub traefiker: Proc,
}

impl Stack {
    /// Builds, finds Traefik, and starts traefiker (with `settings` on top of the defaults
    /// below) and Traefik, logging to `dir`; returns once both answer and Traefik routes
    /// to traefiker.
    pub fn start(dir: &Path, settings: &[(&str, &str)]) -> Result<Self, String> {
        Self::start_on(dir, settings, TraefikPorts::free()?)
    }

    /// [`Stack::start`] on ports chosen beforehand (so something started before the stack can
    /// know them).
    pub fn start_on(
        dir: &Path,
        settings: &[(&str, &str)],
        ports: TraefikPorts,
    ) -> Result<Self, String> {
        build_binaries()?;
        let traefik_bin = traefik::find_or_install()?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let standin = traefik::target_dir().join("debug/narrative-standin");
        let mut all: Vec<(String, String)> = vec![
            ("listen".into(), format!("127.0.0.1:{}", ports.traefiker)),
            (
                "local_command".into(),
                format!(
                    "{} --port {{port}} --name {{name}} --name-file {{name_file}}",
                    standin.display()
                ),
            ),
            ("hostname".into(), "localhost".into()),
            ("traefik_rule_syntax".into(), "v3".into()),
            ("traefik_entrypoints".into(), "web".into()),
            ("traefik_version".into(), "v3".into()),
            (
                "traefik_metrics".into(),
                format!("http://127.0.0.1:{}/metrics", ports.metrics),
            ),
            (
                "narrative_status_path".into(),
                "/narrative/api/status".into(),
            ),
            (
                "sqlite_reaperdb_path".into(),
                dir.join("reaper.db").display().to_string(),
            ),
            ("cookie_secure".into(), "false".into()),
            ("log_level".into(), "INFO".into()),
        ];
        for (k, v) in settings {
            all.retain(|(key, _)| key != k);
            all.push(((*k).into(), (*v).into()));
        }
        let _ = std::fs::remove_file(dir.join("reaper.db"));
        for log in ["traefiker.log", "traefik.log"] {
            let _ = std::fs::remove_file(dir.join(log));
        }
        let traefiker = spawn_traefiker(dir, &all)?;
        let args = traefik::static_args(ports, &dir.join("traefik-static.txt"))?;
        let mut cmd = Command::new(&traefik_bin);
        cmd.args(&args);
        let traefik = Proc::spawn("traefik", cmd, &dir.join("traefik.log"))?;
        let mut stack = Self {
            dir: dir.to_path_buf(),
            ports,
            settings: all,
            traefik,
            traefiker,
        };
        stack.wait_ready()?;
        Ok(stack)
    }

    /// Waits until traefiker answers, Traefik answers, and Traefik routes `/narrative/` to
    /// traefiker (the catch-all: 302 to the login page without a cookie).
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let agent = agent();
        let status_url = self.traefiker_url("/narrative_status/");
        let web_url = self.web_url("/narrative/");
        let ping = format!("http://127.0.0.1:{}/ping", self.ports.metrics);
        let limit = Duration::from_secs(30);
        let deadline = Instant::now() + limit;
        loop {
            for p in [&mut self.traefiker, &mut self.traefik] {
                if let Some(s) = p.exited() {
                    return Err(format!("{} exited early ({s})", p.name()));
                }
            }
            let up = |u: &str| get(&agent, u, &[]).ok();
            let ready = up(&status_url).is_some_and(|r| r.status == 200)
                && up(&ping).is_some_and(|r| r.status == 200)
                && up(&web_url).is_some_and(|r| r.status == 302);
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "traefiker and Traefik not ready within {limit:?} (logs in {})",
                    self.dir.display()
                ));
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// Stops traefiker (SIGTERM: it stops its narratives) and starts it again with the same
    /// settings, changed by `overrides`; waits until it answers through Traefik.
    pub fn restart_traefiker(&mut self, overrides: &[(&str, &str)]) -> Result<(), String> {
        self.traefiker.stop(Duration::from_secs(15));
        for (k, v) in overrides {
            self.settings.retain(|(key, _)| key != k);
            self.settings.push(((*k).into(), (*v).into()));
        }
        self.traefiker = spawn_traefiker(&self.dir, &self.settings)?;
        self.wait_ready()
    }

    /// A URL on Traefik's web entrypoint (Host `localhost`, which the routes match).
    pub fn web_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.ports.web)
    }

    /// A URL on traefiker itself.
    pub fn traefiker_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.traefiker)
    }

    /// Both logs' last lines, for failure reports.
    pub fn log_tails(&self, n: usize) -> String {
        format!(
            "--- last lines of {}/traefiker.log ---\n{}\n--- last lines of {}/traefik.log ---\n{}",
            self.dir.display(),
            self.traefiker.log_tail(n),
            self.dir.display(),
            self.traefik.log_tail(n)
        )
    }
}

fn spawn_traefiker(dir: &Path, settings: &[(String, String)]) -> Result<Proc, String> {
    let mut cmd = Command::new(traefik::target_dir().join("debug/traefiker"));
    cmd.current_dir(dir);
    for (k, v) in settings {
        cmd.env(k, v);
    }
    Proc::spawn("traefiker", cmd, &dir.join("traefiker.log"))
}
