//! One narrative process: starting it in a process group of its own, watching for its exit,
//! and stopping the whole group (SIGTERM, then SIGKILL).
//!
//! Every child leads its own process group, so a signal reaches whatever it started too (a
//! shell's children, Jupyter's kernels). On Linux it also gets a parent-death signal, so a
//! traefiker that crashes or is SIGKILLed leaves no narrative running forever.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::sync::watch;

use crate::error::LocalError;

/// How long to wait for a group to vanish after SIGKILL before calling it stuck.
const AFTER_KILL: Duration = Duration::from_secs(5);

/// How a process ended, once it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Exit(String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Exit {
    fn from_wait(result: io::Result<ExitStatus>) -> Self {
        Self(match result {
            Ok(status) => status.to_string(),
            Err(e) => format!("lost track of it: {e}"),
        })
    }
}

/// What to start: the rendered command line and the complete environment.
pub(crate) struct Launch<'a> {
    pub argv: &'a [String],
    pub env: Vec<(String, String)>,
    /// For error messages only.
    pub name: &'a str,
}

/// A started process: its pid (also its process group id) and a watch that turns `Some` when
/// it has exited and been reaped. Clones watch the same process.
#[derive(Clone, Debug)]
pub(crate) struct Running {
    pub pid: i32,
    pub exit: watch::Receiver<Option<Exit>>,
}

impl Running {
    /// Whether the process has exited (and been reaped).
    pub fn exited(&self) -> Option<Exit> {
        self.exit.borrow().clone()
    }
}

/// A port on `host` that was free a moment ago.
///
/// The port is released before the narrative binds it, so another program could take it in
/// between; on a machine running little else that window is harmless, and the narrative then
/// fails to start visibly instead of serving the wrong thing.
pub(crate) fn free_port(host: IpAddr) -> Result<u16, LocalError> {
    std::net::TcpListener::bind(SocketAddr::new(host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| LocalError::NoPort {
            host: host.to_string(),
            source,
        })
}

/// Starts `launch` in a new process group, with stdin closed and stdout/stderr shared with
/// traefiker (its log is where an operator looks when a narrative misbehaves).
///
/// Must be called inside a tokio runtime: a task of that runtime reaps the child.
pub(crate) fn spawn(launch: Launch<'_>) -> Result<Running, LocalError> {
    let spawn_error = |source| LocalError::Spawn {
        program: launch.argv.first().cloned().unwrap_or_default(),
        name: launch.name.to_owned(),
        source,
    };
    let (program, args) = launch
        .argv
        .split_first()
        .ok_or_else(|| spawn_error(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(launch.env)
        .stdin(Stdio::null())
        .process_group(0)
        // The last resort if the reaping task is dropped (its runtime shut down) before the
        // child was stopped: tokio then SIGKILLs it.
        .kill_on_drop(true);
    set_parent_death_signal(&mut command);
    let mut child = command.spawn().map_err(spawn_error)?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| spawn_error(io::Error::other("the process has no pid")))?;
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let status = child.wait().await;
        tx.send_replace(Some(Exit::from_wait(status)));
    });
    Ok(Running { pid, exit: rx })
}

/// Asks the kernel to SIGTERM the child when traefiker dies, however it dies.
///
/// Linux sends the signal when the *thread* that forked the child exits. tokio's worker
/// threads live as long as the runtime, so in practice that is traefiker's lifetime; a child
/// started from a short-lived thread would be stopped with that thread.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_parent_death_signal(command: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: `pre_exec` runs the closure in the forked child before `exec`, where only
    // async-signal-safe operations are sound. The closure calls only `prctl(2)` and
    // `getppid(2)`, both plain system calls, touches no lock and allocates nothing (errors are
    // built with `from_raw_os_error`, which does not allocate); `parent` is a copied integer.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Some(Signal::SIGTERM)).map_err(io::Error::from)?;
            // traefiker may have died between fork and prctl: then no signal will ever come,
            // so refuse to start rather than run as an orphan.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(Errno::ESRCH as i32));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_command: &mut Command) {}

/// Sends `signal` to process group `pgid`; `Ok(false)` when the group is gone already.
fn signal_group(pgid: i32, signal: Signal) -> Result<bool, Errno> {
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits up to `limit` for the process to have exited; true if it has.
async fn exited_within(exit: &mut watch::Receiver<Option<Exit>>, limit: Duration) -> bool {
    // A closed channel means the reaping task is gone, and with it the child (kill_on_drop).
    tokio::time::timeout(limit, exit.wait_for(Option::is_some))
        .await
        .is_ok()
}

/// Stops the process group led by `running`: SIGTERM, up to `grace` to exit, then SIGKILL.
/// A group that is gone already is success.
pub(crate) async fn stop(name: &str, running: &Running, grace: Duration) -> Result<(), LocalError> {
    let pgid = running.pid;
    let signal_error = |source| LocalError::Signal {
        name: name.to_owned(),
        pgid,
        source,
    };
    let mut exit = running.exit.clone();
    let leader_gone = running.exited().is_some();
    // The leader exited on its own: what it left in its group gets the same polite request,
    // but there is no leader left to wait for.
    if !signal_group(pgid, Signal::SIGTERM).map_err(signal_error)? || leader_gone {
        return Ok(());
    }
    if exited_within(&mut exit, grace).await {
        return Ok(());
    }
    tracing::warn!(service = %name, pgid, grace_s = grace.as_secs_f64(), "narrative ignored SIGTERM; sending SIGKILL");
    signal_group(pgid, Signal::SIGKILL).map_err(signal_error)?;
    if exited_within(&mut exit, AFTER_KILL).await {
        Ok(())
    } else {
        Err(LocalError::Unkillable {
            name: name.to_owned(),
            pgid,
        })
    }
}

/// SIGKILLs the group led by `pid` now, for when there is no time to be polite (a manager
/// dropped without `shutdown_all`). Failures are ignored: nothing is left to report them to.
pub(crate) fn kill_now(pid: i32) {
    let _ = signal_group(pid, Signal::SIGKILL);
}

/// Waits until something accepts TCP connections on `addr`, for at most `limit`; fails early
/// if the process exits.
pub(crate) async fn wait_listening(
    name: &str,
    addr: SocketAddr,
    running: &Running,
    limit: Duration,
) -> Result<(), LocalError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(exit) = running.exited() {
            return Err(LocalError::ExitedEarly {
                name: name.to_owned(),
                status: exit.to_string(),
                port: addr.port(),
            });
        }
        let attempt = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr),
        );
        if let Ok(Ok(_)) = attempt.await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(LocalError::NotReady {
                name: name.to_owned(),
                port: addr.port(),
                seconds: limit.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
