//! Black box, SPEC §11: the built binary stops within `shutdown_grace_secs` + 2 s of SIGTERM
//! whatever its dependencies do, and at once on a second signal. Everything it depends on
//! hangs: Rancher answers nothing once the process is up (a pool fill is in flight since
//! start-up: creates never answer), the metrics page and auth2 answer nothing, and a
//! `/reaper/` cycle and a user's first request are in flight when the signal comes.
//!
//! The figures (seconds from SIGTERM to exit) go to stderr: `--nocapture` shows them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use traefiker_rancher::testing::FakeRancher;
use traefiker_rancher::testing::STACK_ID;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Longer than any test: a dependency that does not answer.
const HUNG: Duration = Duration::from_secs(3600);

struct Hung {
    rancher: FakeRancher,
    /// The metrics page and auth2.
    services: MockServer,
}

async fn hung() -> Hung {
    let rancher = FakeRancher::start().await;
    // The start-up pool fill creates, and never hears back.
    rancher.set_create_latency(HUNG);
    let services = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(HUNG))
        .mount(&services)
        .await;
    Hung { rancher, services }
}

/// Starts the binary against `deps` with `grace`, waits until it answers, then makes Rancher
/// hang too and puts a reaper cycle and a connect in flight. Returns the child and the
/// in-flight requests.
async fn started(
    deps: &Hung,
    grace: u64,
) -> (
    tokio::process::Child,
    Vec<tokio::task::JoinHandle<()>>,
    tempdir::Dir,
) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempdir::Dir::new("shutdown");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_traefiker"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("replica_id", "r1")
        .env("listen", format!("127.0.0.1:{port}"))
        .env("rancher_url", deps.rancher.url())
        .env("rancher_user", "FAKEACCESSKEY")
        .env("rancher_password", "fake-secret-key")
        .env("rancher_meta", deps.rancher.meta_url())
        .env("rancher_env_url", deps.rancher.env_url())
        .env("rancher_stack_id", STACK_ID)
        .env("image_tag", "5.4.3")
        .env("auth2", format!("{}/api/V2/me", deps.services.uri()))
        .env(
            "traefik_metrics",
            format!("{}/metrics", deps.services.uri()),
        )
        .env("traefik_version", "v2")
        .env("num_prespawn", "2")
        .env("reconcile_interval_secs", "1")
        .env("sqlite_reaperdb_path", dir.path().join("reaper.db"))
        .env("shutdown_grace_secs", grace.to_string())
        .env("log_level", "INFO")
        .stdout(Stdio::from(
            std::fs::File::create(dir.path().join("out.log")).unwrap(),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("err.log")).unwrap(),
        ))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(HUNG)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let up = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        up.is_ok(),
        "traefiker did not come up: {}",
        std::fs::read_to_string(dir.path().join("err.log")).unwrap_or_default()
    );
    deps.rancher.set_latency(HUNG);
    let in_flight = vec![
        {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let _ = client.get(format!("{base}/reaper/")).send().await;
            })
        },
        {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let _ = client
                    .get(format!("{base}/narrative/ws.1.obj.2"))
                    .header("Cookie", "kbase_session=alice-token")
                    .send()
                    .await;
            })
        },
    ];
    // Both requests reach traefiker and wait on what hangs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (child, in_flight, dir)
}

fn signal(child: &tokio::process::Child, name: &str) {
    let pid = child.id().unwrap();
    let sent = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Waits for the exit (at most a minute, then kills); the seconds it took.
async fn exit_after(child: &mut tokio::process::Child, from: Instant) -> (f64, bool) {
    match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
        Ok(status) => (from.elapsed().as_secs_f64(), status.unwrap().success()),
        Err(_) => {
            let _ = child.start_kill();
            (from.elapsed().as_secs_f64(), false)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_within_the_grace_whatever_the_dependencies_do() {
    const GRACE: u64 = 3;
    let deps = hung().await;
    let (mut child, in_flight, dir) = started(&deps, GRACE).await;
    let sent = Instant::now();
    signal(&child, "TERM");
    let (secs, success) = exit_after(&mut child, sent).await;
    eprintln!(
        "SIGTERM with Rancher, the metrics page and auth2 hung, a pool fill, a reaper cycle and a connect in flight: exited after {secs:.2} s (shutdown_grace_secs {GRACE})"
    );
    let log = std::fs::read_to_string(dir.path().join("out.log")).unwrap_or_default();
    assert!(
        secs <= (GRACE + 2) as f64,
        "still running {secs:.2} s after SIGTERM; log:\n{log}"
    );
    assert!(success, "a graceful stop exits with success; log:\n{log}");
    for request in in_flight {
        request.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    const GRACE: u64 = 30;
    let deps = hung().await;
    let (mut child, in_flight, _dir) = started(&deps, GRACE).await;
    signal(&child, "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = Instant::now();
    signal(&child, "INT");
    let (secs, success) = exit_after(&mut child, second).await;
    eprintln!("a second signal during a {GRACE} s graceful shutdown: exited after {secs:.2} s");
    assert!(secs < 2.0, "{secs:.2} s after the second signal");
    assert!(
        !success,
        "an interrupted shutdown says so in its exit status"
    );
    for request in in_flight {
        request.abort();
    }
}

/// A directory removed when the test passes, kept (and named) when it fails.
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(what: &str) -> Self {
            let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
                "{what}-{}-{}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!("logs kept in {}", self.0.display());
            } else {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
