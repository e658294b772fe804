//! Black box, several replicas (SPEC §9, issue 11): built `traefiker serve` processes on
//! 127.0.0.1 sharing nothing but one fake Rancher, whose rancher-metadata lists the live
//! replicas as peers. Creates and renames answer late (the change is visible to everyone
//! before its caller hears back, as in Rancher), which widens every race between replicas.
//!
//! 1. Sixty new users arrive at once, each with two first requests on two different replicas
//!    (a double click through the load balancer): everyone gets 201, no session goes to two
//!    users, no user gets two containers or two sessions, and each replica's pool settles at
//!    exactly `num_prespawn` containers of its own label and stays there through a reaper
//!    cycle.
//! 2. One replica is killed (SIGKILL) and leaves the peer list: its waiting containers are
//!    gone within a reaper cycle of the others.
//! 3. Rolling restart: each replica in turn gets new users in flight, is taken out of the
//!    load balancer and stopped (SIGTERM; it finishes those requests and removes its waiting
//!    containers), and a new replica with a new id joins the peers and the load balancer.
//!    Meanwhile returning users' requests stream to the live replicas: every answer is 201
//!    with the user's own session, throughout.
//! 4. The last replicas stop gracefully and leave no waiting container; no process logged a
//!    token or a session id.
//!
//! The figures go to stderr (shown by `cargo test` when the test fails, and with
//! `--nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::future::join_all;
use traefiker_core::{Naming, UserId, REPLICA_LABEL, SESSION_LABEL};
use traefiker_rancher::testing::{FakeRancher, FakeService, STACK_ID};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RANCHER_USER: &str = "FAKEACCESSKEY";
const RANCHER_PASSWORD: &str = "fake-secret-key";
const ADMIN_TOKEN: &str = "admin-secret-token";
/// Users of the first wave; they are the returning users of the rolling restart.
const USERS: usize = 60;
/// New users in flight on each replica as it is stopped.
const BURST: usize = 6;
/// Replicas stopped in the rolling restart, each with a burst.
const RESTARTS: usize = 3;
const POOL: usize = 3;
const REAPER_SECS: u64 = 2;
/// How late the fake answers creates and renames.
const LATENCY: Duration = Duration::from_millis(200);
/// Clients streaming returning users' requests during the rolling restart.
const STREAMS: usize = 8;
/// Steady traffic before the first stop and after each new replica joins, as Rancher's
/// rolling upgrade waits its batch interval between steps.
const BATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Upper bound of each stream's requests, so the loop ends even if the restart hangs.
const STREAM_MAX: usize = 5_000;

fn token(user: usize) -> String {
    format!("user{user:02}-secret-token")
}

fn user(user: usize) -> String {
    format!("user{user:02}")
}

/// The live ones: a removal in Rancher passes through `removing`.
fn live(s: &FakeService) -> bool {
    s.state != "removing" && s.state != "removed"
}

fn label<'a>(s: &'a FakeService, key: &str) -> Option<&'a str> {
    s.launch_config["labels"][key].as_str()
}

fn is_waiting(s: &FakeService) -> bool {
    live(s) && s.name.starts_with("narrativepre-")
}

/// Live waiting containers per replica label ("-" for none).
fn pools(rancher: &FakeRancher) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in rancher.services().iter().filter(|s| is_waiting(s)) {
        *out.entry(label(s, REPLICA_LABEL).unwrap_or("-").to_owned())
            .or_default() += 1;
    }
    out
}

/// One `traefiker serve` process.
struct Replica {
    id: String,
    base: String,
    child: tokio::process::Child,
}

struct World {
    rancher: FakeRancher,
    metrics: MockServer,
    dir: PathBuf,
    tokens: String,
    client: reqwest::Client,
}

impl World {
    async fn start() -> Self {
        let rancher = FakeRancher::start().await;
        rancher.set_create_latency(LATENCY);
        rancher.set_put_latency(LATENCY);
        // A Traefik v2 page with no websocket: readable activity, nobody active. Idle reaping
        // cannot happen within the test (reaper_timeout_secs below).
        let metrics = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/metrics"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(
                "# TYPE traefik_entrypoint_open_connections gauge\n\
                 traefik_entrypoint_open_connections{entrypoint=\"web\",method=\"GET\",protocol=\"http\"} 0\n",
                "text/plain; version=0.0.4",
            ))
            .mount(&metrics)
            .await;
        // Under the target directory, and kept when the test fails (see `KeptOnFailure`).
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("replicas-logs")
            .join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut tokens: Vec<String> = (0..USERS + RESTARTS * BURST)
            .map(|u| format!("{}:{}", token(u), user(u)))
            .collect();
        tokens.push(format!("{ADMIN_TOKEN}:admin:KBASE_ADMIN"));
        // No connection pool: a load balancer's connection to a stopped replica is not
        // reused, and a replica's graceful stop does not wait for idle keep-alives.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            rancher,
            metrics,
            dir,
            tokens: tokens.join(","),
            client,
        }
    }

    fn set_peers(&self, ids: &[&str]) {
        self.rancher.set_peers(Some(ids));
    }

    /// Starts replica `id` and waits until it answers and its pool is full.
    async fn replica(&self, id: &str) -> Replica {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_traefiker"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("replica_id", id)
            .env("listen", format!("127.0.0.1:{port}"))
            .env("rancher_url", self.rancher.url())
            .env("rancher_user", RANCHER_USER)
            .env("rancher_password", RANCHER_PASSWORD)
            .env("rancher_meta", self.rancher.meta_url())
            .env("rancher_env_url", self.rancher.env_url())
            .env("rancher_stack_id", STACK_ID)
            .env("image_tag", "5.4.3")
            .env("auth_tokens", &self.tokens)
            // Static tokens beside Rancher need this once the security work lands; until
            // then the variable is an unknown one, which the environment layer ignores.
            .env("allow_static_tokens", "true")
            .env("num_prespawn", POOL.to_string())
            .env("reaper_interval_secs", REAPER_SECS.to_string())
            // Long enough that nothing is idle-reaped within the test, short enough that
            // connects re-mark narratives (every tenth of it, 3 s) during the rolling restart.
            .env("reaper_timeout_secs", "30")
            .env("reconcile_interval_secs", "3")
            .env("traefik_metrics", format!("{}/metrics", self.metrics.uri()))
            .env("traefik_version", "v2")
            .env("sqlite_reaperdb_path", self.dir.join(format!("{id}.db")))
            .env("log_level", "INFO")
            .stdout(Stdio::from(
                std::fs::File::create(self.dir.join(format!("{id}.log"))).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.join(format!("{id}.err"))).unwrap(),
            ))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let replica = Replica {
            id: id.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            child,
        };
        let up = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let healthy = match self
                    .client
                    .get(format!("{}/healthz", replica.base))
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success(),
                    Err(_) => false,
                };
                if healthy && pools(&self.rancher).get(id) == Some(&POOL) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            up.is_ok(),
            "replica {id} did not come up with a full pool; stderr: {}",
            std::fs::read_to_string(self.dir.join(format!("{id}.err"))).unwrap_or_default()
        );
        replica
    }

    /// A first or returning request of user `u` to `base`; the session it was given.
    async fn connect(&self, base: &str, u: usize, session: Option<&str>) -> Result<String, String> {
        let mut cookie = format!("kbase_session={}", token(u));
        if let Some(s) = session {
            cookie.push_str(&format!("; narrative_session={s}"));
        }
        let r = self
            .client
            .get(format!("{base}/narrative/ws.{u}.obj.1"))
            .header("Cookie", cookie)
            .send()
            .await
            .map_err(|e| format!("{}: {e}", user(u)))?;
        let status = r.status();
        let set = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|c| c.strip_prefix("narrative_session="))
            .and_then(|c| c.split(';').next())
            .map(str::to_owned);
        match (status.as_u16(), set) {
            (201, Some(session)) => Ok(session),
            _ => Err(format!(
                "{}: {status} {}",
                user(u),
                r.text().await.unwrap_or_default()
            )),
        }
    }

    /// Every user narrative in the fake, live ones, by name.
    fn user_containers(&self) -> HashMap<String, Vec<FakeService>> {
        let mut out: HashMap<String, Vec<FakeService>> = HashMap::new();
        for s in self.rancher.services() {
            if live(&s) && s.name.starts_with("narrative-") {
                out.entry(s.name.clone()).or_default().push(s);
            }
        }
        out
    }

    /// Waits until exactly `ids` keep pools, each of exactly `POOL`, and checks they stay so
    /// through a reaper cycle; returns the largest pool seen before they settled.
    async fn pools_settle(&self, ids: &[&str]) -> usize {
        let want: BTreeMap<String, usize> = ids.iter().map(|id| ((*id).to_owned(), POOL)).collect();
        let mut largest = 0;
        let settled = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let now = pools(&self.rancher);
                largest = largest.max(now.values().copied().max().unwrap_or(0));
                if now == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            settled.is_ok(),
            "pools did not settle at {want:?}: {:?}",
            pools(&self.rancher)
        );
        let hold = Instant::now() + Duration::from_millis(REAPER_SECS * 1000 + 500);
        while Instant::now() < hold {
            assert_eq!(pools(&self.rancher), want, "a settled pool moved");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        largest
    }
}

impl Replica {
    /// SIGTERM, then waits (bounded) for a successful exit.
    async fn stop(&mut self) {
        let pid = self.child.id().unwrap();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not stop within 40 s of SIGTERM", self.id))
            .unwrap();
        assert!(status.success(), "{} exited with {status}", self.id);
    }
}

/// Says where the replicas' logs are when the test fails (a passing run removes them).
struct KeptOnFailure(PathBuf);

impl Drop for KeptOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "the replicas' logs (<id>.log, <id>.err) are kept in {}",
                self.0.display()
            );
        }
    }
}

/// What the streams of returning users saw.
#[derive(Default)]
struct Tally {
    requests: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_only_rancher_and_survive_a_kill_and_a_rolling_restart() {
    let started = Instant::now();
    let world = Arc::new(World::start().await);
    let _logs = KeptOnFailure(world.dir.clone());
    let naming = Naming::default();
    let container = |u: usize| {
        naming
            .user_container(&UserId::new(user(u)).unwrap())
            .as_str()
            .to_owned()
    };

    // 1. Three replicas, sixty new users at once, each on two replicas.
    world.set_peers(&["r1", "r2", "r3"]);
    let (r1, r2, r3) = tokio::join!(
        world.replica("r1"),
        world.replica("r2"),
        world.replica("r3")
    );
    let mut replicas = vec![r1, r2, r3];
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let first = join_all((0..USERS).map(|u| {
        let world = world.clone();
        let (a, b) = (bases[u % 3].clone(), bases[(u + 1) % 3].clone());
        async move {
            let (x, y) = tokio::join!(world.connect(&a, u, None), world.connect(&b, u, None));
            (u, x, y)
        }
    }))
    .await;
    let mut errors = Vec::new();
    let mut sessions: HashMap<usize, String> = HashMap::new();
    let mut two_sessions = 0;
    for (u, x, y) in first {
        match (x, y) {
            (Ok(x), Ok(y)) => {
                if x != y {
                    two_sessions += 1;
                }
                sessions.insert(u, x);
            }
            (x, y) => errors.extend(x.err().into_iter().chain(y.err())),
        }
    }
    let distinct: HashSet<&String> = sessions.values().collect();
    let shared = sessions.len() - distinct.len();
    let containers = world.user_containers();
    let doubled = containers.values().filter(|c| c.len() > 1).count();
    let mismatched: Vec<String> = sessions
        .iter()
        .filter(|(u, s)| {
            containers.get(&container(**u)).is_none_or(|c| {
                c.iter()
                    .any(|c| label(c, SESSION_LABEL) != Some(s.as_str()))
            })
        })
        .map(|(u, _)| user(*u))
        .collect();
    let largest = world.pools_settle(&["r1", "r2", "r3"]).await;
    eprintln!(
        "first wave: {USERS} users x 2 concurrent first requests on 3 replicas: {} errors, {shared} sessions shared, {two_sessions} users given two sessions, {doubled} users with two containers, {} user containers in Rancher; pools settled at {:?} (largest before settling {largest})",
        errors.len(),
        containers.len(),
        pools(&world.rancher)
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!((shared, two_sessions, doubled), (0, 0, 0));
    assert!(
        mismatched.is_empty(),
        "sessions that are not the user's container's: {mismatched:?}"
    );
    assert_eq!(containers.len(), USERS, "one container per user, no other");

    // What an operator sees of replicas.
    let metrics = world
        .client
        .get(format!("{}/metrics", bases[0]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "traefiker_replica_info{replica=\"r1\"} 1",
        "traefiker_peers 3",
        "traefiker_peers_known 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    // r1 sees the others' pools once it has listed them (reconciler or reaper).
    let mut status = serde_json::Value::Null;
    let mut as_expected = false;
    for _ in 0..100 {
        status = world
            .client
            .get(format!("{}/narrative_status/", bases[0]))
            .header("Cookie", format!("kbase_session={ADMIN_TOKEN}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entries = status["narrative_services"].as_array().unwrap();
        as_expected = [("r1", "waiting"), ("r2", "foreign"), ("r3", "foreign")]
            .iter()
            .all(|(replica, standing)| {
                let queued: Vec<_> = entries
                    .iter()
                    .filter(|e| e["state"] == "queued" && e["replica"] == *replica)
                    .collect();
                queued.len() == POOL && queued.iter().all(|e| e["standing"] == *standing)
            });
        if as_expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["replica"], "r1");
    assert!(
        as_expected,
        "r1 should show its own pool waiting and the others' as foreign: {status}"
    );

    // 2. r3 dies without a word; Rancher drops it from the service's containers.
    let mut r3 = replicas.pop().unwrap();
    r3.child.start_kill().unwrap();
    r3.child.wait().await.unwrap();
    world.set_peers(&["r1", "r2"]);
    let dropped = Instant::now();
    let cleaned = tokio::time::timeout(Duration::from_secs(20), async {
        while pools(&world.rancher).contains_key("r3") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let cleaned_in = dropped.elapsed();
    eprintln!(
        "killed r3: its {POOL} waiting containers removed {:.2} s after it left the peers (reaper interval {REAPER_SECS} s)",
        cleaned_in.as_secs_f64()
    );
    assert!(
        cleaned.is_ok(),
        "r3's pool outlived it: {:?}",
        pools(&world.rancher)
    );
    assert!(
        cleaned_in <= Duration::from_secs(2 * REAPER_SECS + 2),
        "r3's pool took {cleaned_in:?}, more than a reaper cycle of another replica"
    );
    assert_eq!(
        world.user_containers().len(),
        USERS,
        "r3's users keep their narratives"
    );

    // Rancher restarts the dead container as a new one: back to three.
    world.set_peers(&["r1", "r2", "r4"]);
    replicas.push(world.replica("r4").await);

    // 3. Rolling restart under a stream of returning users.
    world.rancher.reset_calls();
    let sessions = Arc::new(Mutex::new(sessions));
    let balancer: Arc<RwLock<Vec<String>>> = Arc::new(RwLock::new(
        replicas.iter().map(|r| r.base.clone()).collect(),
    ));
    let tally = Arc::new(Tally::default());
    let done = Arc::new(AtomicBool::new(false));
    let streams: Vec<_> = (0..STREAMS)
        .map(|w| {
            let (world, sessions, balancer, tally, done) = (
                world.clone(),
                sessions.clone(),
                balancer.clone(),
                tally.clone(),
                done.clone(),
            );
            tokio::spawn(async move {
                for n in 0..STREAM_MAX {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    let users: Vec<usize> = sessions.lock().unwrap().keys().copied().collect();
                    let u = users[(w + n * STREAMS) % users.len()];
                    let expected = sessions.lock().unwrap()[&u].clone();
                    let base = {
                        let live = balancer.read().unwrap();
                        live[(w + n) % live.len()].clone()
                    };
                    // Every other request carries the routing cookie too, as when Traefik has
                    // not loaded the narrative's route yet.
                    let cookie = (n % 2 == 1).then_some(expected.as_str());
                    tally.requests.fetch_add(1, Ordering::Relaxed);
                    match world.connect(&base, u, cookie).await {
                        Ok(s) if s == expected => {}
                        Ok(other) => tally.failures.lock().unwrap().push(format!(
                            "{} at {base}: a different session ({} instead of {})",
                            user(u),
                            &other[..6],
                            &expected[..6]
                        )),
                        Err(e) => tally
                            .failures
                            .lock()
                            .unwrap()
                            .push(format!("at {base}: {e}")),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();

    let mut in_flight_at_stop = 0;
    let mut burst_errors = Vec::new();
    let mut leftovers = Vec::new();
    for (step, new_id) in ["r5", "r6", "r7"].into_iter().enumerate() {
        tokio::time::sleep(BATCH_INTERVAL).await;
        let mut old = replicas.remove(0);
        // New users whose first requests the load balancer sent to `old` just before
        // taking it out.
        let burst: Vec<_> = (0..BURST)
            .map(|k| {
                let u = USERS + step * BURST + k;
                let (world, base) = (world.clone(), old.base.clone());
                tokio::spawn(async move {
                    let answer = world.connect(&base, u, None).await;
                    (u, answer, Instant::now())
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        balancer.write().unwrap().retain(|b| *b != old.base);
        // A load balancer's deregistration delay: requests it routed to `old` a moment ago
        // have connected before the stop. The burst takes longer (creates and renames answer
        // after LATENCY), so it is still in flight.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopping = Instant::now();
        old.stop().await;
        for b in burst {
            let (u, answer, at) = b.await.unwrap();
            if at > stopping {
                in_flight_at_stop += 1;
            }
            match answer {
                Ok(s) => {
                    sessions.lock().unwrap().insert(u, s);
                }
                Err(e) => burst_errors.push(e),
            }
        }
        // It removed its own before exiting.
        if let Some(n) = pools(&world.rancher).get(&old.id) {
            leftovers.push(format!("{}: {n}", old.id));
        }
        let mut peers: Vec<&str> = replicas.iter().map(|r| r.id.as_str()).collect();
        peers.push(new_id);
        world.set_peers(&peers);
        let new = world.replica(new_id).await;
        balancer.write().unwrap().push(new.base.clone());
        replicas.push(new);
    }
    done.store(true, Ordering::Relaxed);
    for s in streams {
        s.await.unwrap();
    }
    let requests = tally.requests.load(Ordering::Relaxed);
    // Renames of waiting narratives and connection marks (due every 3 s per narrative).
    let puts = world
        .rancher
        .calls()
        .iter()
        .filter(|c| c.starts_with("PUT "))
        .count();
    let failures = tally.failures.lock().unwrap().clone();
    let sessions = sessions.lock().unwrap().clone();
    let containers = world.user_containers();
    let lost: Vec<String> = sessions
        .iter()
        .filter(|(u, s)| {
            containers
                .get(&container(**u))
                .is_none_or(|c| c.len() != 1 || label(&c[0], SESSION_LABEL) != Some(s.as_str()))
        })
        .map(|(u, _)| user(*u))
        .collect();
    let distinct: HashSet<&String> = sessions.values().collect();
    eprintln!(
        "rolling restart r1,r2,r4 -> r5,r6,r7: {requests} returning-user requests, {} failed ({puts} renames and connection marks in Rancher meanwhile); {} new users' first requests sent just before each stop ({in_flight_at_stop} answered after SIGTERM), {} failed; {} users, {} sessions lost or changed, {} shared, {} user containers in Rancher; stopped replicas' waiting containers left: {leftovers:?}",
        failures.len(),
        RESTARTS * BURST,
        burst_errors.len(),
        sessions.len(),
        lost.len(),
        sessions.len() - distinct.len(),
        containers.len(),
    );
    assert!(
        failures.is_empty(),
        "{:?}",
        &failures[..failures.len().min(10)]
    );
    assert!(burst_errors.is_empty(), "{burst_errors:?}");
    assert!(requests > 100, "the stream hardly ran: {requests} requests");
    assert!(
        in_flight_at_stop > 0,
        "no request was in flight at a SIGTERM: the graceful stop went untested"
    );
    assert_eq!(sessions.len(), USERS + RESTARTS * BURST);
    assert!(lost.is_empty(), "{lost:?}");
    assert_eq!(
        sessions.len(),
        distinct.len(),
        "a session went to two users"
    );
    assert_eq!(
        containers.len(),
        sessions.len(),
        "one container per user, no other"
    );
    assert!(leftovers.is_empty(), "{leftovers:?}");
    world.pools_settle(&["r5", "r6", "r7"]).await;

    // Every replica stops gracefully: no waiting container is left, and no log line carries
    // a token or a session.
    for r in &mut replicas {
        r.stop().await;
    }
    assert_eq!(pools(&world.rancher), BTreeMap::new());
    let secrets: Vec<String> = (0..USERS + RESTARTS * BURST)
        .map(token)
        .chain([ADMIN_TOKEN.to_owned(), RANCHER_PASSWORD.to_owned()])
        .chain(sessions.values().cloned())
        .collect();
    for id in ["r1", "r2", "r3", "r4", "r5", "r6", "r7"] {
        let log = std::fs::read_to_string(world.dir.join(format!("{id}.log"))).unwrap();
        assert!(
            log.contains(&format!("\"replica\":\"{id}\"")),
            "{id} logs no replica id"
        );
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "a secret leaked into {id}'s log"
            );
        }
    }
    eprintln!("replicas test: {:.1} s", started.elapsed().as_secs_f64());
    std::fs::remove_dir_all(&world.dir).unwrap();
}
