//! The server on the Swarm backend against a real engine in Swarm mode, reached through a
//! socket this test can cut: a new user is answered from the shared pool; while the engine
//! is gone a returning user is still answered (no backend call) and a new one gets a 503 with a
//! reference whose log line names the engine; once it is back, the new user is answered.
//!
//! Needs an engine in Swarm mode and the stand-in image from `cargo xtask images`; says
//! `SKIPPED` without them, unless `TRAEFIKER_SWARM_TEST=1` (set by `cargo xtask ci`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::redirect::Policy;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use traefiker_core::ContainerManager;
use traefiker_docker::{DockerConfig, OwnContainer, SwarmManager};
use traefiker_server::app::{build_with, run, Role};
use traefiker_server::config::{Config, Layer};

const ENGINE: &str = "/var/run/docker.sock";

/// A unix socket in front of the engine's that can be cut (every connection dropped, new ones
/// closed at once, as when the engine is gone) and restored.
struct Cuttable {
    path: PathBuf,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Cuttable {
    fn start(path: PathBuf) -> Self {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (u, l) = (up.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut engine) = UnixStream::connect(ENGINE).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
                l.lock().unwrap().push(link);
            }
        });
        Self {
            path,
            up,
            links,
            accept,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes every service and name claim of the test's network, and the network, however the
/// test ends (Swarm's service names are swarm-wide: a leftover would take the next run's).
struct Leftovers {
    network: String,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let label = format!("label=traefik.swarm.network={}", self.network);
        for kind in ["service", "config"] {
            if let Ok(ids) = docker(&[kind, "ls", "-q", "--filter", &label]) {
                for id in ids.split_whitespace() {
                    let _ = docker(&[kind, "rm", id]);
                }
            }
        }
        for _ in 0..40 {
            if docker(&["network", "rm", &self.network]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("could not remove test network {}", self.network);
    }
}

fn docker(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Whether the Swarm tests can run here; says why not (or fails, where they must run).
fn swarm_here() -> bool {
    let required = std::env::var("TRAEFIKER_SWARM_TEST").is_ok_and(|v| v == "1");
    let why = match docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]) {
        Ok(state) if state == "active" => {
            match docker(&[
                "image",
                "inspect",
                "narrative-standin:0.1.0",
                "--format",
                "ok",
            ]) {
                Ok(_) => return true,
                Err(_) => "no image narrative-standin:0.1.0 (cargo xtask images)".to_owned(),
            }
        }
        Ok(state) => format!("the engine is not in a swarm ({state})"),
        Err(e) => format!("no Docker engine: {e}"),
    };
    assert!(
        !required,
        "{why} (TRAEFIKER_SWARM_TEST=1: the Swarm tests must run here)"
    );
    eprintln!("SKIPPED the server on Swarm: {why}");
    false
}

async fn connect(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    session: Option<&str>,
) -> reqwest::Response {
    let mut cookie = format!("kbase_session={token}");
    if let Some(s) = session {
        cookie.push_str(&format!("; narrative_session={s}"));
    }
    client
        .get(format!("{base}/narrative/ws.1.obj.1"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
}

fn session_of(answer: &reqwest::Response) -> String {
    let cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    cookie
        .strip_prefix("narrative_session=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_engine_returning_users_are_answered_and_new_ones_told_then_served() {
    if !swarm_here() {
        return;
    }
    common::capture_logs();
    let pid = std::process::id();
    let network = format!("tfs-gone-{pid}");
    docker(&[
        "network",
        "create",
        "--driver",
        "overlay",
        "--attachable",
        &network,
    ])
    .unwrap();
    let _leftovers = Leftovers {
        network: network.clone(),
    };
    // Names of this run's own: Swarm's service names are swarm-wide.
    let user_names = format!("narrative-t{pid}-{{}}");
    let waiting_names = format!("narrativepre-t{pid}-{{}}");
    let dir = std::env::temp_dir().join(format!("traefiker-swarm-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let proxy = Cuttable::start(dir.join("engine.sock"));
    let url = format!("unix://{}", proxy.path.display());
    let db = dir.join("reaper.db");
    let layer: Layer = [
        ("backend", "swarm"),
        ("docker_url", url.as_str()),
        ("dock_net", network.as_str()),
        ("image_name", "narrative-standin"),
        ("image_tag", "0.1.0"),
        ("container_name", user_names.as_str()),
        ("container_name_prespawn", waiting_names.as_str()),
        ("num_prespawn", "1"),
        ("replica_id", "swarm-test"),
        ("auth_tokens", "alice-token:alice,bob-token:bob"),
        ("allow_static_tokens", "true"),
        // The test runs outside the overlay network: it cannot reach a narrative's Jupyter.
        ("ready_check", "backend"),
        ("rancher_timeout_secs", "10"),
        ("cookie_secure", "false"),
        ("sqlite_reaperdb_path", db.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let config = Config::from_layers(&[layer]).unwrap();
    let mut dc = DockerConfig::new(url.clone(), network.clone());
    dc.image_name = "narrative-standin".into();
    dc.naming = config.naming.clone();
    dc.timeouts.request = Duration::from_secs(10);
    let manager = Arc::new(SwarmManager::connect(dc).await.unwrap());
    let membership = Arc::new(manager.membership(OwnContainer::Is("not-a-task".into())));
    let state = build_with(config, manager.clone(), membership, Role::Serve)
        .await
        .unwrap();
    let lifecycle = state.lifecycle.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, state, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let outcome = async {
        // The waiting narrative runs (the stand-in's health check passed) and the pool has
        // seen it ready: alice gets it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let ready = || {
            lifecycle
                .status()
                .iter()
                .any(|e| e.standing == traefiker_core::Standing::Waiting { ready: true })
        };
        while !ready() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the pool never got a ready narrative"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let waiting: Vec<String> = manager
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect();
        let alice = connect(&client, &base, "alice-token", None).await;
        assert_eq!(alice.status(), 201);
        let alice_session = session_of(&alice);
        let hers = manager
            .list()
            .await
            .unwrap()
            .into_iter()
            .find(|n| n.session.expose() == alice_session)
            .expect("alice's narrative");
        assert!(
            waiting.contains(&hers.id),
            "alice was given the waiting narrative"
        );

        proxy.cut();
        let again = connect(&client, &base, "alice-token", None).await;
        assert_eq!(again.status(), 201, "a returning user needs no engine");
        assert_eq!(session_of(&again), alice_session);
        let bob = connect(&client, &base, "bob-token", None).await;
        assert_eq!(bob.status(), 503, "a new user is told");
        let body = bob.text().await.unwrap();
        let reference = common::reference_in(&body);
        assert!(
            !body.contains("docker.sock") && !body.contains(&network),
            "{body}"
        );

        proxy.restore();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let bob = connect(&client, &base, "bob-token", None).await;
            if bob.status() == 201 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "bob is never served after the engine returned: {}",
                bob.status()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        reference
    };
    let result = tokio::time::timeout(Duration::from_secs(240), outcome).await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), server).await;
    proxy.restore();
    let _ = std::fs::remove_dir_all(&dir);
    let reference = result.expect("the scenario ends within 240 s");
    let logs = common::logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&reference))
        .unwrap_or_else(|| panic!("the reference {reference} is logged"));
    assert!(
        line.contains("swarm"),
        "the log line names the backend: {line}"
    );
}
