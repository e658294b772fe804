//! What the local backend does to real processes: signals, grace, zombies, environment,
//! readiness and shutdown.

use std::future::Future;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;
use traefiker_core::testing::conformance::{Caps, Context};
use traefiker_core::{ContainerManager, ManagerError, Narrative, NarrativeState};
use traefiker_local::{LocalConfig, LocalManager};

const LIMIT: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took more than {LIMIT:?}"))
}

fn ctx() -> Context {
    Context::new(
        LocalConfig::new(["x", "{port}"]).image,
        Caps {
            reports_address: true,
            zombies: true,
            conditional_assign: true,
            marks_connected: true,
            conditional: false,
        },
    )
}

/// A manager running `sh -c script` (the port is `$0`).
fn shell(script: &str, grace: Duration) -> LocalManager {
    let mut config = LocalConfig::new(["sh", "-c", script, "{port}"]);
    config.grace = grace;
    LocalManager::new(config).expect("valid config")
}

fn pid(manager: &LocalManager, narrative: &Narrative) -> i32 {
    let pid = manager
        .pid(&narrative.id)
        .expect("the manager knows the pid");
    i32::try_from(pid).expect("pid fits")
}

fn process_gone(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH)
}

fn group_gone(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None) == Err(Errno::ESRCH)
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    bounded(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn remove_stops_the_process_and_everything_it_started() {
    let manager = shell("sleep 300 & wait", Duration::from_secs(5));
    let created = bounded("create", manager.create(&ctx().user_spec()))
        .await
        .expect("create");
    let pid = pid(&manager, &created);
    assert!(!process_gone(pid), "the narrative runs");
    bounded("remove", manager.remove(&created))
        .await
        .expect("remove");
    assert!(process_gone(pid), "the narrative's process is gone");
    eventually("the group to vanish", async || group_gone(pid)).await;
    assert_eq!(manager.pid(&created.id), None, "forgotten");
}

#[tokio::test]
async fn sigterm_ignored_means_sigkill_after_the_grace_period() {
    let grace = Duration::from_millis(300);
    let manager = shell("trap '' TERM; sleep 300", grace);
    let created = bounded("create", manager.create(&ctx().user_spec()))
        .await
        .expect("create");
    let pid = pid(&manager, &created);
    // Let the shell install its trap before it is asked to stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    bounded("remove", manager.remove(&created))
        .await
        .expect("remove");
    assert!(
        started.elapsed() >= grace,
        "SIGKILL waits for the grace period"
    );
    assert!(process_gone(pid), "SIGKILL ended it");
    eventually("the group to vanish", async || group_gone(pid)).await;
}

#[tokio::test]
async fn a_process_that_exits_by_itself_is_a_zombie() {
    let manager = shell("exit 3", Duration::from_secs(5));
    let spec = ctx().user_spec();
    let created = bounded("create", manager.create(&spec))
        .await
        .expect("create");
    eventually("the exit to be seen", async || {
        manager.zombies().await.expect("zombies").len() == 1
    })
    .await;
    let zombies = manager.zombies().await.expect("zombies");
    assert_eq!(zombies[0].name, spec.name);
    assert_eq!(zombies[0].state, NarrativeState::Stopped);
    assert_eq!(
        manager.find(&spec.name).await.expect("find"),
        None,
        "a dead narrative is not found"
    );
    let listed = manager.list().await.expect("list");
    assert_eq!(listed.len(), 1, "a zombie is still listed");
    assert_eq!(listed[0].state, NarrativeState::Stopped);
    bounded("remove", manager.remove(&created))
        .await
        .expect("removing a zombie succeeds");
    assert!(manager.zombies().await.expect("zombies").is_empty());
    assert!(manager.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn a_zombie_frees_its_name_for_a_new_narrative() {
    let manager = shell("exit 0", Duration::from_secs(5));
    let spec = ctx().user_spec();
    let first = bounded("create", manager.create(&spec))
        .await
        .expect("create");
    eventually("the exit to be seen", async || {
        !manager.zombies().await.expect("zombies").is_empty()
    })
    .await;
    let second = bounded("create again", manager.create(&spec))
        .await
        .expect("a zombie's name can be reused");
    assert_ne!(first.id, second.id);
    let listed = manager.list().await.expect("list");
    assert!(
        listed.iter().all(|n| n.id != first.id),
        "the zombie is forgotten"
    );
    bounded("shutdown", manager.shutdown_all())
        .await
        .expect("shutdown");
}

#[tokio::test]
async fn the_narrative_gets_its_environment_and_not_traefikers() {
    let dir = std::env::temp_dir().join(format!("traefiker-local-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("env");
    let manager = shell(
        r#"printf '%s|%s|%s|%s|%s' "$CONFORMANCE" "$NARRATIVE_NAME" "$NARRATIVE_PORT" "$0" "${CARGO_MANIFEST_DIR:-unset}" > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"; exec sleep 300"#,
        Duration::from_secs(5),
    );
    assert!(
        std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
        "cargo sets CARGO_MANIFEST_DIR for tests; it stands for a secret of traefiker"
    );
    let mut spec = ctx().user_spec();
    spec.env
        .insert("OUT".into(), out.to_string_lossy().into_owned());
    let created = bounded("create", manager.create(&spec))
        .await
        .expect("create");
    eventually("the child to write its environment", async || out.exists()).await;
    let seen = std::fs::read_to_string(&out).expect("read");
    let port = created
        .address
        .as_deref()
        .and_then(|a| a.rsplit(':').next())
        .expect("address with a port")
        .to_owned();
    assert_eq!(
        seen,
        format!("1|{}|{port}|{port}|unset", spec.name),
        "NARRENV_ variables, NARRATIVE_NAME, NARRATIVE_PORT and {{port}} arrive; other variables do not"
    );
    assert_eq!(
        created.address.as_deref(),
        Some(format!("http://127.0.0.1:{port}").as_str())
    );
    bounded("remove", manager.remove(&created))
        .await
        .expect("remove");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn shutdown_all_stops_every_narrative() {
    let manager = shell("exec sleep 300", Duration::from_secs(5));
    let ctx = ctx();
    let mut pids = Vec::new();
    for spec in [ctx.user_spec(), ctx.user_spec(), ctx.prespawn_spec()] {
        let created = bounded("create", manager.create(&spec))
            .await
            .expect("create");
        pids.push(pid(&manager, &created));
    }
    let stopped = bounded("shutdown", manager.shutdown_all())
        .await
        .expect("shutdown");
    assert_eq!(stopped, 3);
    assert!(
        pids.iter().all(|p| process_gone(*p)),
        "every process is gone"
    );
    assert!(manager.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn dropping_the_manager_kills_what_is_left() {
    let manager = shell("exec sleep 300", Duration::from_secs(5));
    let created = bounded("create", manager.create(&ctx().user_spec()))
        .await
        .expect("create");
    let pid = pid(&manager, &created);
    drop(manager);
    eventually("the process to be killed", async || process_gone(pid)).await;
}

#[tokio::test]
async fn a_narrative_that_dies_before_listening_fails_create() {
    let mut config =
        LocalConfig::new(["sh", "-c", "echo failing on purpose >&2; exit 7", "{port}"]);
    config.ready_timeout = Some(Duration::from_secs(10));
    let manager = LocalManager::new(config).expect("valid config");
    let err = bounded("create", manager.create(&ctx().user_spec()))
        .await
        .expect_err("create fails");
    assert!(matches!(err, ManagerError::Rejected { .. }), "{err:?}");
    assert!(
        manager.list().await.expect("list").is_empty(),
        "nothing is left"
    );
}

#[tokio::test]
async fn verify_names_a_missing_program() {
    let manager = LocalManager::new(LocalConfig::new(["no-such-narrative-program", "{port}"]))
        .expect("valid config");
    let err = manager.verify().await.expect_err("verify fails");
    assert!(matches!(err, ManagerError::Rejected { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-narrative-program"));
    let ok = shell("true", Duration::from_secs(1));
    let info = ok.verify().await.expect("sh is found");
    assert_eq!(info.backend, "local");
}

#[test]
fn a_command_without_port_is_refused() {
    let err = LocalManager::new(LocalConfig::new(["sleep", "300"])).expect_err("refused");
    assert_eq!(err.what, "local_command");
}

/// Linux's parent-death signal fires when the thread that started the child exits; a thread
/// that leaks its manager and runtime (so neither `Drop` nor `kill_on_drop` can act) stands
/// for a traefiker that crashed.
#[cfg(target_os = "linux")]
#[test]
fn a_dead_parent_takes_its_narratives_with_it() {
    let (tx, rx) = std::sync::mpsc::channel();
    let parent = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let manager = shell("exec sleep 300", Duration::from_secs(5));
        let pid = runtime.block_on(async {
            let created = bounded("create", manager.create(&ctx().user_spec()))
                .await
                .expect("create");
            pid(&manager, &created)
        });
        let _ = tx.send(pid);
        std::mem::forget(manager);
        std::mem::forget(runtime);
    });
    parent.join().expect("the parent thread ends");
    let pid = rx.recv().expect("a pid");
    // Nobody reaps it any more, so dead means gone or a zombie (`Z`) in /proc.
    let dead = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    };
    let deadline = Instant::now() + LIMIT;
    while !dead() {
        assert!(Instant::now() < deadline, "the orphan {pid} still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
}
