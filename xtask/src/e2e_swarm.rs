//! `cargo xtask e2e --swarm`: `deploy/swarm/docker-stack.yaml` on a single-node swarm
//! (Traefik's Swarm provider, three traefiker replicas with the swarm backend, narratives as
//! Swarm services), the six checks of [`crate::e2e`], then what only several replicas show:
//!
//! - **burst**: [`BURST`] new users at once, spread over the replicas by Traefik: every one
//!   answered 201, no session id given to two users, one narrative each;
//! - **kill**: [`ARRIVALS`] users arriving over a few seconds while one traefiker task is
//!   killed (`docker kill`): nothing lost, and the task Swarm starts in its place serves;
//! - **rolling update**: `docker service update --force` of traefiker under steady requests
//!   of existing users: no failed request, no session lost.
//!
//! What counts as answered when a replica is killed under a request: the user's first request
//! answers 201, or it fails (a transport error or a 5xx: the replica died holding it) and one
//! reload a second later — what the browser's user would do — answers 201. A user whose
//! reload fails too is lost; a first answer that is neither a 201 nor such a failure is a
//! failure of the run. Logs and the stack's override in `target/e2e-swarm/`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::compose::{docker, docker_output};
use crate::e2e::{self, Target, Timing};
use crate::stack::{agent, agent_within, get, wait_for};
use crate::swarm::{SwarmGuard, SwarmStack};
use crate::traefik::workspace_root;

/// A rolling update of three replicas (start-first, each passing its health check) takes
/// several seconds; step 6 needs it shorter than the idle timeout.
pub const SWARM_TIMING: Timing = Timing {
    idle_timeout: Duration::from_secs(30),
    patience: Duration::from_secs(45),
};

/// New users at once in the burst.
pub const BURST: usize = 60;
/// Users arriving while a replica is killed.
pub const ARRIVALS: usize = 30;
/// Existing users making requests through the rolling update.
const STEADY: usize = 10;
/// The stack's name, and its network's.
const STACK: &str = "traefiker-e2e-swarm";
/// What `container_name` puts before a user's name in these runs, and `prespawn` before a
/// waiting narrative's: a service's name is unique in the whole swarm, which another
/// deployment (or a test) on the same engine may share.
pub const NAME_PREFIX: &str = "e2e-narrative-";
const PRESPAWN_PREFIX: &str = "e2e-narrativepre-";

/// How long one user's request may take: a cold start under a burst of creates is slow.
const REQUEST_LIMIT: Duration = Duration::from_secs(60);

/// `<prefix>NN-token:<prefix>NN` for `n` users.
pub fn user_tokens(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{prefix}{i:02}-token:{prefix}{i:02}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The swarm stack: narratives are services; the stand-in page names its host, the short id
/// of the service's task container.
impl Target for SwarmStack {
    fn web_url(&self, path: &str) -> String {
        SwarmStack::web_url(self, path)
    }

    fn web_port(&self) -> u16 {
        self.web_port
    }

    fn traefiker_url(&self, path: &str) -> String {
        SwarmStack::traefiker_url(self, path)
    }

    fn replica_urls(&self, path: &str) -> Vec<String> {
        match self.replica_ports() {
            Ok(ports) => ports
                .into_iter()
                .map(|port| format!("http://127.0.0.1:{port}{path}"))
                .collect(),
            Err(e) => {
                eprintln!("xtask: {e}");
                vec![SwarmStack::traefiker_url(self, path)]
            }
        }
    }

    /// A rolling update of every replica with the changed settings.
    fn restart_traefiker(&mut self, overrides: &[(&str, &str)]) -> Result<(), String> {
        self.roll(overrides)?;
        self.wait_ready()
    }

    fn log_tails(&self, n: usize) -> String {
        SwarmStack::log_tails(self, n)
    }

    fn marker(&self, name: &str) -> Result<String, String> {
        Ok(self.locate(name)?.chars().take(12).collect())
    }

    /// The container of the narrative's service's running task: the service that carries
    /// the name in its `traefiker.name` label (a waiting service keeps the Swarm name it was
    /// created under when it is assigned).
    /// A narrative just created has no container for a moment: this waits for one, bounded.
    fn locate(&self, name: &str) -> Result<String, String> {
        let service = self
            .narrative_service(name)?
            .ok_or_else(|| format!("no service carries the name {name}"))?;
        let mut last = String::new();
        wait_for(
            &format!("a running container of {name}'s service {service}"),
            SWARM_TIMING.patience,
            || {
                let ids = match docker(&[
                    "ps",
                    "--no-trunc",
                    "--filter",
                    &format!("label=com.docker.swarm.service.name={service}"),
                    "--format",
                    "{{.ID}}",
                ]) {
                    Ok(ids) => ids,
                    Err(e) => {
                        last = e;
                        return None;
                    }
                };
                let ids: Vec<&str> = ids.split_whitespace().collect();
                match ids.as_slice() {
                    [id] => Some((*id).to_owned()),
                    _ => {
                        last = format!("it runs {} containers", ids.len());
                        None
                    }
                }
            },
        )
        .map_err(|e| format!("{e}: {last}"))
    }

    /// No service carries the name any more, and the container is gone.
    fn wait_gone(&self, name: &str, located: &str) -> Result<(), String> {
        wait_for(
            &format!("{name}'s service and container to be removed"),
            Duration::from_secs(30),
            || {
                (self.narrative_service(name).ok()?.is_none()
                    && docker(&["inspect", "--format", "{{.Id}}", located]).is_err())
                .then_some(())
            },
        )
    }

    fn narratives_outlive_traefiker(&self) -> bool {
        true
    }

    fn timing(&self) -> Timing {
        SWARM_TIMING
    }

    /// Swarm service names are swarm-wide: the run's own prefix keeps it clear of any other
    /// deployment on the same swarm (see [`NAME_PREFIX`]).
    fn name_prefix(&self) -> &'static str {
        NAME_PREFIX
    }

    fn traefiker_logs(&self) -> Result<String, String> {
        SwarmStack::traefiker_logs(self)
    }
}

/// The settings of a swarm run: the e2e's, with tokens for every user of the extra checks.
pub fn swarm_settings(timing: Timing) -> Vec<(&'static str, String)> {
    let mut wanted = e2e::settings(timing);
    let tokens = wanted
        .iter()
        .find(|(k, _)| *k == "auth_tokens")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    wanted.retain(|(k, _)| *k != "auth_tokens");
    wanted.push((
        "auth_tokens",
        format!(
            "{tokens},{},{}",
            user_tokens("b", BURST),
            user_tokens("k", ARRIVALS)
        ),
    ));
    // /reaper/ and the admin status are called from this host through the routing mesh,
    // whose address is the ingress network's; the port is this run's only.
    wanted.push(("reaper_ipnetwork", "0.0.0.0/0".to_owned()));
    wanted.push(("container_name", format!("{NAME_PREFIX}{{}}")));
    wanted.push(("container_name_prespawn", format!("{PRESPAWN_PREFIX}{{}}")));
    wanted
}

/// What of the Swarm end-to-end test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The six checks, the burst, the kill and the rolling update.
    All,
    /// The stack and the burst alone (`--burst`, what `cargo xtask ci` runs): the six checks'
    /// idle-clock check and the rolling update do not pass on Swarm yet (docs/swarm.md).
    Burst,
    /// The stack and the rolling update alone (`--update`): for working on the update.
    Update,
}

/// Runs the swarm end-to-end test; fails with a summary if any check failed.
pub fn e2e(scope: Scope) -> Result<(), String> {
    let started = Instant::now();
    crate::stack::stop_all_on_interrupt()?;
    let _swarm = SwarmGuard::ensure()?;
    crate::images::build_all()?;
    let dir = workspace_root().join("target").join("e2e-swarm");
    let wanted = swarm_settings(SWARM_TIMING);
    let pairs: Vec<(&str, &str)> = wanted.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let deployed = Instant::now();
    let mut stack = SwarmStack::up(STACK, &dir, STACK, &pairs)?;
    eprintln!(
        "e2e (swarm): stack {STACK} converged, traefiker replicas on 127.0.0.1:{:?}, Traefik web on 127.0.0.1:{} ({:.1?} to deploy, {:.1?} since start)",
        stack.replica_ports()?,
        stack.web_port,
        deployed.elapsed(),
        started.elapsed()
    );
    // The checks of several replicas do not build on the six: they run, and report, either
    // way.
    let label = "e2e (swarm)";
    let (six, checks): (_, &[(&str, Check)]) = match scope {
        Scope::All => (
            e2e::run(label, &mut stack, started),
            &[
                ("burst", burst),
                ("kill", kill),
                ("rolling update", rolling_update),
            ],
        ),
        Scope::Burst => (Ok(()), &[("burst", burst)]),
        Scope::Update => (Ok(()), &[("rolling update", rolling_update)]),
    };
    let mut failed = Vec::new();
    for &(name, check) in checks {
        // Each starts from a settled stack (a restart does not wait for the update's
        // monitoring period to end).
        if let Err(e) = stack.wait_converged(Duration::from_secs(90)) {
            println!("{label}: {name} FAILED: {e}");
            failed.push(name);
            continue;
        }
        let from = Instant::now();
        match check(&mut stack) {
            Ok(figures) => println!("{label}: {name} ok ({:.1?}): {figures}", from.elapsed()),
            Err(e) => {
                println!("{label}: {name} FAILED ({:.1?}): {e}", from.elapsed());
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        println!("{}", stack.log_tails(40));
    }
    eprintln!("{label}: took {:.1?} in all", started.elapsed());
    match (six, failed.is_empty()) {
        (Ok(()), true) => Ok(()),
        (Ok(()), false) => Err(format!("{label}: failed: {}", failed.join(", "))),
        (Err(e), true) => Err(e),
        (Err(e), false) => Err(format!("{e}; and failed: {}", failed.join(", "))),
    }
}

/// One of the checks beyond the six: its figures, or why it failed.
type Check = fn(&mut SwarmStack) -> Result<String, String>;

/// One user's arrival: the session of the answer that counted, or why none did.
#[derive(Debug)]
struct Arrival {
    user: String,
    /// The first request's answer: the session, or why it failed.
    first: Result<String, String>,
    /// The reload after a failed first request, if one was made.
    reload: Option<Result<String, String>>,
    /// The time to the first request's answer.
    latency: Duration,
}

impl Arrival {
    fn session(&self) -> Option<&str> {
        match (&self.first, &self.reload) {
            (Ok(s), _) | (Err(_), Some(Ok(s))) => Some(s),
            _ => None,
        }
    }
}

/// Logs `user` in through Traefik: the `narrative_session` of a 201, else why not. A
/// failure a reload may cure (a transport error or a 5xx) starts with "retryable".
fn log_in(http: &ureq::Agent, stack: &SwarmStack, user: &str) -> Result<String, String> {
    let token = format!("{user}-token");
    match get(
        http,
        &stack.web_url("/narrative/"),
        &[("kbase_session", &token)],
    ) {
        Ok(r) if r.status == 201 => r
            .cookie("narrative_session")
            .ok_or_else(|| format!("{user}: 201 without a narrative_session cookie")),
        Ok(r) if r.status >= 500 => Err(format!("retryable: {user}: {}", r.status)),
        Ok(r) => Err(format!(
            "{user}: {} {}",
            r.status,
            r.body.chars().take(200).collect::<String>()
        )),
        Err(e) => Err(format!("retryable: {user}: {e}")),
    }
}

/// `users` log in, the i-th `spacing × i` after the start, each on a thread of its own; a
/// retryable failure gets one reload a second later.
fn arrive(stack: &SwarmStack, users: &[String], spacing: Duration) -> Vec<Arrival> {
    std::thread::scope(|s| {
        let handles: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, user)| {
                s.spawn(move || {
                    sleep(spacing * i as u32);
                    let http = agent_within(REQUEST_LIMIT);
                    let from = Instant::now();
                    let first = log_in(&http, stack, user);
                    let latency = from.elapsed();
                    let reload = match &first {
                        Err(e) if e.starts_with("retryable") => {
                            sleep(Duration::from_secs(1));
                            Some(log_in(&http, stack, user))
                        }
                        _ => None,
                    };
                    Arrival {
                        user: user.clone(),
                        first,
                        reload,
                        latency,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Arrival {
                    user: "?".into(),
                    first: Err("the user's thread panicked".into()),
                    reload: None,
                    latency: Duration::ZERO,
                })
            })
            .collect()
    })
}

/// The narratives as Swarm has them, not as a replica last listed them: user → the
/// services on the stack's network that carry a name of theirs (`traefiker.name`,
/// `<NAME_PREFIX><user>-<hash>`), waiting ones and those being removed left out.
fn narratives_by_user(stack: &SwarmStack) -> Result<HashMap<String, Vec<String>>, String> {
    let ids = docker(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=traefik.swarm.network={}", stack.network()),
    ])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let mut by_user: HashMap<String, Vec<String>> = HashMap::new();
    if ids.is_empty() {
        return Ok(by_user);
    }
    let format = "{{.Spec.Name}} {{index .Spec.Labels \"traefiker.name\"}} {{index .Spec.Labels \"traefiker.removing\"}}";
    // One at a time: a waiting service removed since the listing is simply not counted.
    let lines: Vec<String> = ids
        .iter()
        .filter_map(|id| docker(&["service", "inspect", "--format", format, id]).ok())
        .collect();
    for line in lines.iter().flat_map(|l| l.lines()) {
        let mut fields = line.split_whitespace();
        let (Some(service), Some(name)) = (fields.next(), fields.next()) else {
            continue;
        };
        if fields
            .next()
            .is_some_and(|removing| !removing.is_empty() && removing != "<no")
        {
            continue;
        }
        let Some(user) = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.rsplit_once('-'))
            .map(|(user, _)| user.to_owned())
        else {
            continue;
        };
        by_user.entry(user).or_default().push(service.to_owned());
    }
    Ok(by_user)
}

/// `/narrative_status/` as the administrator through Traefik, which takes the replicas in
/// turn.
fn admin_status(stack: &SwarmStack) -> Result<Value, String> {
    let r = get(
        &agent(),
        &stack.web_url("/narrative_status/"),
        &[("kbase_session", "admin-token")],
    )?;
    serde_json::from_str(&r.body)
        .map_err(|e| format!("/narrative_status/ is not JSON ({e}): {}", r.body))
}

/// The replica ids that answer the admin status in `tries` requests through Traefik.
fn replicas_answering(stack: &SwarmStack, tries: usize) -> BTreeSet<String> {
    (0..tries)
        .filter_map(|_| {
            admin_status(stack)
                .ok()
                .and_then(|d| d["replica"].as_str().map(str::to_owned))
        })
        .collect()
}

/// How many users each traefiker container connected (a 201), from its log.
fn connects_per_task(stack: &SwarmStack) -> Result<BTreeMap<String, usize>, String> {
    let mut counts = BTreeMap::new();
    for (id, slot) in stack.traefiker_containers()? {
        let logs = docker_output(&["logs", &id])?;
        let n = logs.lines().filter(|l| l.contains("\"connected\"")).count();
        counts.insert(format!("slot {slot} ({id})"), n);
    }
    Ok(counts)
}

/// Checks what arrivals must show: everyone answered, no session shared, one narrative
/// each. Returns the figures.
fn judge(stack: &SwarmStack, arrivals: &[Arrival]) -> Result<String, String> {
    let first_try = arrivals.iter().filter(|a| a.first.is_ok()).count();
    let reloaded = arrivals
        .iter()
        .filter(|a| matches!(a.reload, Some(Ok(_))))
        .count();
    let lost: Vec<String> = arrivals
        .iter()
        .filter(|a| a.session().is_none())
        .map(|a| match (&a.first, &a.reload) {
            (Err(e), None) => e.clone(),
            (Err(e), Some(Err(again))) => format!("{e}, then {again}"),
            _ => a.user.clone(),
        })
        .collect();
    let mut sessions: HashMap<&str, Vec<&str>> = HashMap::new();
    for a in arrivals {
        if let Some(s) = a.session() {
            sessions.entry(s).or_default().push(&a.user);
        }
    }
    let shared = sessions.values().filter(|users| users.len() > 1).count();
    let by_user = narratives_by_user(stack)?;
    let duplicated: Vec<String> = arrivals
        .iter()
        .filter_map(|a| {
            let n = by_user.get(&a.user).map_or(0, Vec::len);
            (n != 1).then(|| format!("{} has {n}", a.user))
        })
        .collect();
    let mut latencies: Vec<Duration> = arrivals.iter().map(|a| a.latency).collect();
    latencies.sort();
    let figures = format!(
        "{} users: {first_try} answered first time, {reloaded} after one reload, {} lost; {shared} sessions shared; {} without exactly one narrative; first answer p50 {:.2?} p95 {:.2?} max {:.2?}",
        arrivals.len(),
        lost.len(),
        duplicated.len(),
        percentile(&latencies, 50),
        percentile(&latencies, 95),
        latencies.last().copied().unwrap_or_default(),
    );
    if !lost.is_empty() || shared > 0 || !duplicated.is_empty() {
        return Err(format!(
            "{figures}\n  lost: {lost:?}\n  not one narrative: {duplicated:?}"
        ));
    }
    Ok(figures)
}

/// The `p`-th percentile of sorted `values`.
pub fn percentile(values: &[Duration], p: usize) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values[((values.len() - 1) * p).div_ceil(100)]
}

/// (a) [`BURST`] new users at once.
fn burst(stack: &mut SwarmStack) -> Result<String, String> {
    let before = connects_per_task(stack)?;
    let users: Vec<String> = (0..BURST).map(|i| format!("b{i:02}")).collect();
    let arrivals = arrive(stack, &users, Duration::ZERO);
    let figures = judge(stack, &arrivals)?;
    let after = connects_per_task(stack)?;
    let spread: Vec<String> = after
        .iter()
        .map(|(task, n)| format!("{task}: {}", n - before.get(task).copied().unwrap_or(0)))
        .collect();
    let serving = after
        .iter()
        .filter(|(task, n)| **n > before.get(*task).copied().unwrap_or(0))
        .count();
    if serving < 2 {
        return Err(format!(
            "{figures}; the users were not spread over the replicas: {spread:?}"
        ));
    }
    Ok(format!("{figures}; per replica: {}", spread.join(", ")))
}

/// (b) one traefiker task killed while [`ARRIVALS`] users arrive.
fn kill(stack: &mut SwarmStack) -> Result<String, String> {
    let before = replicas_answering(stack, 30);
    let containers = stack.traefiker_containers()?;
    let (victim, slot) = containers
        .first()
        .cloned()
        .ok_or("no traefiker container to kill")?;
    let users: Vec<String> = (0..ARRIVALS).map(|i| format!("k{i:02}")).collect();
    let spacing = Duration::from_millis(150);
    let arrivals = std::thread::scope(|s| {
        let killer = s.spawn(|| {
            // A third of the way in: users arrive before, during and after.
            sleep(spacing * (ARRIVALS / 3) as u32);
            docker(&["kill", &victim])
        });
        let arrivals = arrive(stack, &users, spacing);
        (arrivals, killer.join())
    });
    let (arrivals, killed) = arrivals;
    killed
        .map_err(|_| "the killing thread panicked".to_owned())?
        .map_err(|e| format!("docker kill {victim}: {e}"))?;
    let killed_at = Instant::now();
    let figures = judge(stack, &arrivals)?;
    stack.wait_converged(Duration::from_secs(90))?;
    let replaced = killed_at.elapsed();
    let after: BTreeSet<String> = stack
        .traefiker_containers()?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    if after.contains(&victim) || after.len() != crate::swarm::REPLICAS {
        return Err(format!(
            "{figures}; after the kill the traefiker containers are {after:?} (killed {victim})"
        ));
    }
    let newcomer = wait_for(
        "the replacement replica to answer",
        Duration::from_secs(60),
        || {
            replicas_answering(stack, 6)
                .into_iter()
                .find(|r| !before.contains(r))
        },
    )?;
    Ok(format!(
        "{figures}; killed slot {slot} ({victim}); 3 running again {replaced:.1?} after; replicas before {before:?}, the replacement {newcomer} answers"
    ))
}

/// (c) a rolling update of traefiker under steady requests of existing users.
pub(crate) fn rolling_update(stack: &mut SwarmStack) -> Result<String, String> {
    let users: Vec<String> = (0..STEADY).map(|i| format!("b{i:02}")).collect();
    let http = agent_within(Duration::from_secs(10));
    let mut sessions = Vec::new();
    for user in &users {
        sessions.push(log_in(&http, stack, user)?);
    }
    // Existing users: each narrative answers through Traefik before the update starts (a
    // narrative just created is answered by traefiker's 201 page until Swarm runs its task
    // and Traefik's next listing routes it).
    for (user, session) in users.iter().zip(&sessions) {
        let token = format!("{user}-token");
        wait_for(
            &format!("{user}'s narrative to be routed"),
            SWARM_TIMING.patience,
            || {
                get(
                    &http,
                    &stack.web_url("/narrative/"),
                    &[("kbase_session", &token), ("narrative_session", session)],
                )
                .ok()
                .filter(|r| r.status == 200)
            },
        )?;
    }
    let service = stack.traefiker_service();
    let mut latencies = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut lost: Vec<String> = Vec::new();
    let mut requests = 0usize;
    let earlier = crate::swarm::update_status(&service)?;
    let from = Instant::now();
    // `--detach`: the command returns once the update is under way; the requests go on
    // until Swarm reports this update (a start time of its own) completed, bounded.
    crate::swarm::locked(&["service", "update", "--force", "--detach=true", &service])?;
    let update_took = {
        let deadline = from + Duration::from_secs(240);
        // Alternately the user's narrative (routed by Traefik from the session) and a login
        // that traefiker answers (the narrative exists: the same session).
        let mut to_narrative = true;
        loop {
            for (user, session) in users.iter().zip(&sessions) {
                let t = Instant::now();
                let token = format!("{user}-token");
                let answer = if to_narrative {
                    get(
                        &http,
                        &stack.web_url("/narrative/"),
                        &[("kbase_session", &token), ("narrative_session", session)],
                    )
                    .map(|r| (r.status == 200, format!("{user} narrative: {}", r.status)))
                } else {
                    log_in(&http, stack, user).map(|again| {
                        if &again != session {
                            lost.push(user.clone());
                        }
                        (true, String::new())
                    })
                };
                requests += 1;
                latencies.push(t.elapsed());
                let at = from.elapsed();
                match answer {
                    Ok((true, _)) => {}
                    Ok((false, what)) => failures.push(format!("{at:.1?}: {what}")),
                    Err(e) => failures.push(format!("{at:.1?}: {e}")),
                }
            }
            to_narrative = !to_narrative;
            let done = crate::swarm::update_status(&service)
                .is_ok_and(|now| now.1 != earlier.1 && now.0 == "completed");
            if done || Instant::now() >= deadline {
                break (from.elapsed(), done);
            }
            sleep(Duration::from_millis(100));
        }
    };
    let (took, completed) = update_took;
    if !completed {
        return Err(format!(
            "the rolling update did not complete within {took:.1?}"
        ));
    }
    stack.wait_converged(Duration::from_secs(60))?;
    latencies.sort();
    let figures = format!(
        "rolling update of 3 replicas in {took:.1?}: {requests} requests of {STEADY} users, {} failed, {} sessions lost; latency p50 {:.2?} p95 {:.2?} max {:.2?}",
        failures.len(),
        lost.len(),
        percentile(&latencies, 50),
        percentile(&latencies, 95),
        latencies.last().copied().unwrap_or_default()
    );
    if !failures.is_empty() || !lost.is_empty() {
        return Err(format!(
            "{figures}\n  failed: {failures:?}\n  lost: {lost:?}"
        ));
    }
    Ok(figures)
}
