//! `cargo xtask e2e [--docker]`: traefiker behind a real Traefik v3, bounded in time.
//!
//! Every request a user would make goes through Traefik's `web` entrypoint; only the
//! operator's calls (`/reaper/`, `/narrative_status/`) go to traefiker directly. The same six
//! checks run against two stacks ([`Target`]):
//!
//! - local (default): Traefik and traefiker as processes on loopback, narratives as local
//!   processes routed through traefiker's HTTP provider; logs in `target/e2e/`;
//! - `--docker`: the repository's `docker-compose.yaml` (Traefik's Docker provider, traefiker
//!   with the docker backend), narratives as real containers; logs in `target/e2e-docker/`.

use std::collections::HashMap;
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

use crate::compose::{docker, ComposeStack};
use crate::stack::{agent, get, wait_for, Stack};
use crate::traefik::workspace_root;

/// alice's narrative's name after the `container_name` prefix.
const ALICE: &str = "alice-522b27";
const TOKENS: &str = "alice-token:alice,bob-token:bob,carol-token:carol,dave-token:dave,\
admin-token:kbadmin:KBASE_ADMIN";
const STEPS: [&str; 6] = [
    "login redirect through Traefik",
    "a token gets a session that Traefik routes to the user's own narrative",
    "a second user reaches only their narrative; a made-up session reaches none",
    "a quiet open websocket (traefik+narrative_status) and HTTP traffic (traefik only) keep narratives alive",
    "once idle, the reaper removes the narrative, its process or container, and its route",
    "a restarted traefiker keeps the idle clocks (and adopts running containers)",
];

/// How long things take on a stack.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// `reaper_timeout_secs`. Restarting traefiker must take less than this for the clock
    /// check of step 6 to tell a kept clock from a reset one.
    pub idle_timeout: Duration,
    /// How long a new narrative may take to be routed.
    pub patience: Duration,
}

impl Timing {
    /// How long carol's narrative is quiet before step 6's restart: a kept clock has it
    /// reaped this much sooner than a clock reset by the restart would, so the reaper's
    /// cycles after the restart can tell the two apart.
    pub fn quiet_before_restart(&self) -> Duration {
        (self.idle_timeout / 5).max(Duration::from_secs(2))
    }
}

/// Local processes start in milliseconds and die with traefiker.
const LOCAL_TIMING: Timing = Timing {
    idle_timeout: Duration::from_secs(3),
    patience: Duration::from_secs(10),
};

/// Containers take seconds to start and pass their health check, and recreating the
/// traefiker container takes seconds too.
const DOCKER_TIMING: Timing = Timing {
    idle_timeout: Duration::from_secs(10),
    patience: Duration::from_secs(30),
};

/// What the checks need from a running stack.
pub trait Target {
    /// A URL on Traefik's web entrypoint.
    fn web_url(&self, path: &str) -> String;
    /// Traefik's web port on 127.0.0.1.
    fn web_port(&self) -> u16;
    /// A URL on traefiker itself.
    fn traefiker_url(&self, path: &str) -> String;
    /// The URL on every replica of traefiker, where there are several: each runs its own
    /// reaper cycles, which the checks call on all of them as their periodic cycles would.
    fn replica_urls(&self, path: &str) -> Vec<String> {
        vec![self.traefiker_url(path)]
    }
    /// Restarts traefiker with its settings changed by `overrides`; waits until it answers.
    fn restart_traefiker(&mut self, overrides: &[(&str, &str)]) -> Result<(), String>;
    /// The last lines of the logs, for failure reports.
    fn log_tails(&self, n: usize) -> String;
    /// What the stand-in page of the live narrative `name` shows, so a check can tell which
    /// narrative Traefik routed it to.
    fn marker(&self, name: &str) -> Result<String, String>;
    /// What identifies the live narrative `name`'s process or container.
    fn locate(&self, name: &str) -> Result<String, String>;
    /// Waits until what [`Target::locate`] gave for `name` is gone.
    fn wait_gone(&self, name: &str, located: &str) -> Result<(), String>;
    /// Whether narratives outlive traefiker (containers) instead of dying with it.
    fn narratives_outlive_traefiker(&self) -> bool;
    /// How long things take.
    fn timing(&self) -> Timing;
    /// What `container_name` puts before the user's name.
    fn name_prefix(&self) -> &'static str;
    /// Everything traefiker logged in this run.
    fn traefiker_logs(&self) -> Result<String, String>;
}

/// The local stack: narratives are processes whose page names them.
impl Target for Stack {
    fn web_url(&self, path: &str) -> String {
        Stack::web_url(self, path)
    }

    fn web_port(&self) -> u16 {
        self.ports.web
    }

    fn traefiker_url(&self, path: &str) -> String {
        Stack::traefiker_url(self, path)
    }

    fn restart_traefiker(&mut self, overrides: &[(&str, &str)]) -> Result<(), String> {
        Stack::restart_traefiker(self, overrides)
    }

    fn log_tails(&self, n: usize) -> String {
        Stack::log_tails(self, n)
    }

    fn marker(&self, name: &str) -> Result<String, String> {
        Ok(name.to_owned())
    }

    /// The narrative's address from traefiker's Traefik configuration.
    fn locate(&self, name: &str) -> Result<String, String> {
        dynamic_address(self, name)?
            .ok_or_else(|| format!("/traefik/dynamic has no service {name}"))
    }

    /// The process stops listening, and traefiker's Traefik configuration drops its route.
    fn wait_gone(&self, name: &str, located: &str) -> Result<(), String> {
        let hostport = located.trim_start_matches("http://").to_string();
        wait_for(
            &format!("{name}'s process ({hostport}) to stop listening"),
            Duration::from_secs(12),
            || TcpStream::connect(&hostport).is_err().then_some(()),
        )?;
        if dynamic_address(self, name)?.is_some() {
            return Err(format!(
                "/traefik/dynamic still has {name} after it was reaped"
            ));
        }
        Ok(())
    }

    fn narratives_outlive_traefiker(&self) -> bool {
        false
    }

    fn timing(&self) -> Timing {
        LOCAL_TIMING
    }

    fn name_prefix(&self) -> &'static str {
        "narrative-"
    }

    fn traefiker_logs(&self) -> Result<String, String> {
        let path = self.dir.join("traefiker.log");
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The compose stack: narratives are containers, and the stand-in page names its host, the
/// container's short id.
impl Target for ComposeStack {
    fn web_url(&self, path: &str) -> String {
        ComposeStack::web_url(self, path)
    }

    fn web_port(&self) -> u16 {
        self.web_port
    }

    fn traefiker_url(&self, path: &str) -> String {
        ComposeStack::traefiker_url(self, path)
    }

    fn restart_traefiker(&mut self, overrides: &[(&str, &str)]) -> Result<(), String> {
        ComposeStack::restart_traefiker(self, overrides)
    }

    fn log_tails(&self, n: usize) -> String {
        ComposeStack::log_tails(self, n)
    }

    fn marker(&self, name: &str) -> Result<String, String> {
        Ok(self.locate(name)?.chars().take(12).collect())
    }

    /// The container's id.
    fn locate(&self, name: &str) -> Result<String, String> {
        let id = docker(&["inspect", "--format", "{{.Id}}", name])?;
        Ok(id.trim().to_owned())
    }

    /// The container no longer exists.
    fn wait_gone(&self, name: &str, located: &str) -> Result<(), String> {
        wait_for(
            &format!("{name}'s container to be removed"),
            Duration::from_secs(20),
            || {
                docker(&["inspect", "--format", "{{.Id}}", located])
                    .is_err()
                    .then_some(())
            },
        )
    }

    fn narratives_outlive_traefiker(&self) -> bool {
        true
    }

    fn timing(&self) -> Timing {
        DOCKER_TIMING
    }

    fn name_prefix(&self) -> &'static str {
        "narrative-"
    }

    fn traefiker_logs(&self) -> Result<String, String> {
        self.all_traefiker_logs()
    }
}

/// The settings both stacks run traefiker with, for `timing`.
pub(crate) fn settings(timing: Timing) -> Vec<(&'static str, String)> {
    vec![
        ("auth_tokens", TOKENS.to_owned()),
        ("num_prespawn", "2".to_owned()),
        ("reaper_interval_secs", "0".to_owned()),
        (
            "reaper_timeout_secs",
            timing.idle_timeout.as_secs().to_string(),
        ),
        ("activity_sources", "traefik,narrative_status".to_owned()),
        ("log_level", "DEBUG".to_owned()),
    ]
}

/// Runs the end-to-end test on the local stack, or with `docker` on the compose stack; fails
/// with a summary if any step failed.
pub fn e2e(docker: bool) -> Result<(), String> {
    let started = Instant::now();
    crate::stack::stop_all_on_interrupt()?;
    if docker {
        crate::images::build_all()?;
        let dir = workspace_root().join("target").join("e2e-docker");
        let mut wanted = settings(DOCKER_TIMING);
        // The e2e calls /reaper/ from this host through the published port, so the peer is
        // the network's gateway; the port is published on 127.0.0.1 only.
        wanted.push(("reaper_ipnetwork", "0.0.0.0/0".to_owned()));
        let pairs: Vec<(&str, &str)> = wanted.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut stack = ComposeStack::up("traefiker-test-e2e", &dir, "traefiker-test-e2e", &pairs)?;
        eprintln!(
            "e2e (docker): traefiker on 127.0.0.1:{}, Traefik web on 127.0.0.1:{} (ready after {:.1?})",
            stack.traefiker_port,
            stack.web_port,
            started.elapsed()
        );
        run("e2e (docker)", &mut stack, started)
    } else {
        let dir = workspace_root().join("target").join("e2e");
        let wanted = settings(LOCAL_TIMING);
        let pairs: Vec<(&str, &str)> = wanted.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut stack = Stack::start(&dir, &pairs)?;
        eprintln!(
            "e2e: traefiker on 127.0.0.1:{}, Traefik web on 127.0.0.1:{} (ready after {:.1?})",
            stack.ports.traefiker,
            stack.ports.web,
            started.elapsed()
        );
        run("e2e", &mut stack, started)
    }
}

/// Runs the six steps on `target`, printing one line per step with its time.
pub(crate) fn run(
    label: &'static str,
    target: &mut dyn Target,
    started: Instant,
) -> Result<(), String> {
    let mut run = Run {
        label,
        timing: target.timing(),
        target,
        http: agent(),
        held: HashMap::new(),
        restarted_at: None,
        spent: [Duration::ZERO; 6],
    };
    let outcome = run.all();
    if outcome.is_ok() {
        run.logs_carry_no_secret()?;
    }
    let (passed, failed) = match &outcome {
        Ok(()) => (STEPS.len(), 0),
        Err((step, _)) => (step - 1, STEPS.len() - (step - 1)),
    };
    if let Err((step, reason)) = &outcome {
        println!("{label}: {step}/6 {} FAILED: {reason}", STEPS[step - 1]);
        if *step < STEPS.len() {
            println!("{label}: steps {}..6 not run", step + 1);
        }
        println!("{}", run.target.log_tails(40));
    }
    println!("{label}: {passed} passed, {failed} failed");
    eprintln!("{label}: took {:.1?}", started.elapsed());
    match outcome {
        Ok(()) => Ok(()),
        Err(_) => Err(format!("{label}: {failed} of {} steps failed", STEPS.len())),
    }
}

/// The address traefiker's Traefik HTTP provider gives narrative `name`, if any.
fn dynamic_address(target: &dyn Target, name: &str) -> Result<Option<String>, String> {
    let r = get(&agent(), &target.traefiker_url("/traefik/dynamic"), &[])?;
    let doc: Value =
        serde_json::from_str(&r.body).map_err(|e| format!("/traefik/dynamic is not JSON ({e})"))?;
    Ok(
        doc["http"]["services"][name]["loadBalancer"]["servers"][0]["url"]
            .as_str()
            .map(str::to_string),
    )
}

struct Run<'a> {
    label: &'static str,
    target: &'a mut dyn Target,
    timing: Timing,
    http: ureq::Agent,
    /// Values carried from one step to a later one.
    held: HashMap<&'static str, String>,
    /// When traefiker was stopped for the restart.
    restarted_at: Option<Instant>,
    /// Time spent in each step (some run in two parts).
    spent: [Duration; 6],
}

type StepResult = Result<(), (usize, String)>;

impl Run<'_> {
    fn all(&mut self) -> StepResult {
        self.step(1, Self::login_redirect)?;
        self.pass(1);
        self.step(2, Self::own_narrative)?;
        self.pass(2);
        self.step(3, Self::isolation)?;
        self.pass(3);
        self.step(4, Self::websocket_keeps_alive)?;
        self.step(5, Self::reaped)?;
        // The restart switches to the Traefik source only: the second case of step 4 and
        // the timing check of step 6 run after it; lines are printed in step order.
        self.step(6, Self::restart)?;
        self.step(6, Self::restart_reaps_on_old_clock)?;
        self.step(4, Self::http_keeps_alive)?;
        self.pass(4);
        self.pass(5);
        self.pass(6);
        Ok(())
    }

    /// After the steps: traefiker's whole log holds none of the users' session ids or tokens
    /// (labels and rules carry session ids, so they must never be logged either).
    fn logs_carry_no_secret(&self) -> Result<(), String> {
        let logs = self.target.traefiker_logs()?;
        let mut secrets: Vec<(String, &str)> = self
            .held
            .iter()
            .filter(|(k, _)| k.ends_with("_session"))
            .map(|(k, v)| (format!("{k} id"), v.as_str()))
            .collect();
        for token in TOKENS.split(',').filter_map(|t| t.split(':').next()) {
            secrets.push((format!("token {token}"), token));
        }
        for (what, secret) in &secrets {
            if logs.contains(secret) {
                return Err(format!(
                    "{}: traefiker's log carries the {what}",
                    self.label
                ));
            }
        }
        println!(
            "{}: traefiker's log ({} lines) carries none of {} session ids and tokens",
            self.label,
            logs.lines().count(),
            secrets.len()
        );
        Ok(())
    }

    /// Runs one part of step `n`, adding its time to the step's.
    fn step(&mut self, n: usize, part: fn(&mut Self) -> Result<(), String>) -> StepResult {
        let from = Instant::now();
        let result = part(self);
        self.spent[n - 1] += from.elapsed();
        result.map_err(|e| (n, e))
    }

    fn pass(&self, n: usize) {
        println!(
            "{}: {n}/6 {} ok ({:.1?})",
            self.label,
            STEPS[n - 1],
            self.spent[n - 1]
        );
    }

    /// A narrative's name: `rest` after the target's `container_name` prefix.
    fn named(&self, rest: &str) -> String {
        format!("{}{rest}", self.target.name_prefix())
    }

    fn web(&self, path: &str) -> String {
        self.target.web_url(path)
    }

    fn idle_secs(&self) -> u64 {
        self.timing.idle_timeout.as_secs()
    }

    /// Step 1: no cookie → 302 to the login page, answered by traefiker via Traefik's
    /// catch-all route.
    fn login_redirect(&mut self) -> Result<(), String> {
        let r = get(&self.http, &self.web("/narrative/e2e-path"), &[])?;
        let location = r.location.clone().unwrap_or_default();
        if r.status != 302 || !location.contains("#login") {
            return Err(format!(
                "GET /narrative/e2e-path without cookie: {} Location {location:?}, want 302 to the login page",
                r.status
            ));
        }
        Ok(())
    }

    /// Logs `token` in through Traefik: 201 and a `narrative_session` cookie.
    fn connect(&self, token: &str) -> Result<String, String> {
        let r = get(
            &self.http,
            &self.web("/narrative/"),
            &[("kbase_session", token)],
        )?;
        if r.status != 201 {
            return Err(format!(
                "GET /narrative/ with kbase_session={token}: {}, want 201; body: {}",
                r.status,
                r.body.chars().take(300).collect::<String>()
            ));
        }
        r.cookie("narrative_session").ok_or_else(|| {
            format!(
                "201 without a narrative_session cookie (Set-Cookie: {:?})",
                r.set_cookies
            )
        })
    }

    /// Reloads through Traefik with both cookies until the page names narrative `name` (the
    /// routes take a moment to appear); returns the page.
    fn reach(&self, token: &str, session: &str, name: &str) -> Result<String, String> {
        let marker = self.target.marker(name)?;
        let mut last = String::new();
        let url = self.web("/narrative/");
        wait_for(
            &format!("Traefik to route to {name}"),
            self.timing.patience,
            || match get(
                &self.http,
                &url,
                &[("kbase_session", token), ("narrative_session", session)],
            ) {
                Ok(r) if r.status == 200 && r.body.contains(&marker) => Some(r.body),
                Ok(r) => {
                    last = format!(
                        "{} {}",
                        r.status,
                        r.body.chars().take(200).collect::<String>()
                    );
                    None
                }
                Err(e) => {
                    last = e;
                    None
                }
            },
        )
        .map_err(|e| format!("{e}; last answer: {last}"))
    }

    /// Logs `token` in and reaches the narrative named `prefix…`: (session, full name).
    fn log_in(&self, token: &str, prefix: &str) -> Result<(String, String), String> {
        let session = self.connect(token)?;
        // With several replicas, the one asked may list from a moment before another's 201.
        let mut last = Ok(None);
        let (name, _) = wait_for(
            &format!("a narrative {prefix}… listed after a 201"),
            self.timing.patience,
            || {
                last = self.listed(prefix);
                last.clone().ok().flatten()
            },
        )
        .map_err(|e| format!("{e} (last: {last:?})"))?;
        self.reach(token, &session, &name)?;
        Ok((session, name))
    }

    /// Step 2.
    fn own_narrative(&mut self) -> Result<(), String> {
        let session = self.connect("alice-token")?;
        if session.len() != 32 || !session.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "narrative_session {session:?} is not 32 hex digits"
            ));
        }
        self.reach("alice-token", &session, &self.named(ALICE))?;
        self.held.insert("alice_session", session);
        Ok(())
    }

    /// Step 3.
    fn isolation(&mut self) -> Result<(), String> {
        let (bob, name) = self.log_in("bob-token", &self.named("bob-"))?;
        let bob_marker = self.target.marker(&name)?;
        let alice_marker = self.target.marker(&self.named(ALICE))?;
        for _ in 0..5 {
            let r = get(
                &self.http,
                &self.web("/narrative/"),
                &[("kbase_session", "bob-token"), ("narrative_session", &bob)],
            )?;
            if r.body.contains(&alice_marker) || !r.body.contains(&bob_marker) {
                return Err(format!("bob's cookies reached: {} {}", r.status, r.body));
            }
        }
        let madeup = "0123456789abcdef0123456789abcdef";
        let r = get(
            &self.http,
            &self.web("/narrative/"),
            &[("narrative_session", madeup)],
        )?;
        if r.status != 302 || r.body.contains(&alice_marker) || r.body.contains(&bob_marker) {
            return Err(format!(
                "a made-up narrative_session: {} {}, want traefiker's 302",
                r.status, r.body
            ));
        }
        self.held.insert("bob_session", bob);
        Ok(())
    }

    /// GET /reaper/ on traefiker; the number deleted.
    fn reap(&self) -> Result<usize, String> {
        let mut deleted = 0;
        for url in self.target.replica_urls("/reaper/") {
            let r = get(&self.http, &url, &[])?;
            let n = r
                .body
                .trim()
                .strip_prefix("Reaper success: ")
                .and_then(|s| s.split_whitespace().next())
                .and_then(|n| n.parse::<usize>().ok());
            match (r.status, n) {
                (200, Some(n)) => deleted += n,
                _ => return Err(format!("GET {url}: {} {}", r.status, r.body)),
            }
        }
        Ok(deleted)
    }

    /// The admin view of /narrative_status/: instance → last_seen.
    fn narratives(&self) -> Result<HashMap<String, String>, String> {
        let r = get(
            &self.http,
            &self.target.traefiker_url("/narrative_status/"),
            &[("kbase_session", "admin-token")],
        )?;
        let doc: Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("/narrative_status/ is not JSON ({e}): {}", r.body))?;
        let list = doc["narrative_services"].as_array().ok_or_else(|| {
            format!("/narrative_status/ as admin has no narrative_services: {doc}")
        })?;
        Ok(list
            .iter()
            .filter_map(|n| {
                Some((
                    n["instance"].as_str()?.to_string(),
                    n["last_seen"].as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect())
    }

    /// The name of the user narrative starting with `prefix`, if listed.
    fn listed(&self, prefix: &str) -> Result<Option<(String, String)>, String> {
        Ok(self
            .narratives()?
            .into_iter()
            .find(|(name, _)| name.starts_with(prefix)))
    }

    /// Step 4, first case: with `narrative_status` as a source, an open websocket through
    /// Traefik that stays quiet for longer than the idle timeout keeps the narrative.
    fn websocket_keeps_alive(&mut self) -> Result<(), String> {
        let session = self.held.get("alice_session").cloned().unwrap_or_default();
        let mut ws = self.websocket(&session)?;
        echo(&mut ws, "hello")?;
        let quiet_from = Instant::now();
        let mut cycles = 0;
        while quiet_from.elapsed() < self.timing.idle_timeout + Duration::from_secs(2) {
            sleep(Duration::from_millis(1300));
            self.reap()?;
            cycles += 1;
            if self.listed(&self.named(ALICE))?.is_none() {
                return Err(format!(
                    "{} was reaped after {:.1?} with its websocket open ({cycles} reaper cycles)",
                    self.named(ALICE),
                    quiet_from.elapsed()
                ));
            }
        }
        echo(&mut ws, "still here")?;
        eprintln!(
            "{}:     websocket open and quiet for {:.1?} over {cycles} reaper cycles: {} kept",
            self.label,
            quiet_from.elapsed(),
            self.named(ALICE)
        );
        self.held
            .insert("alice_at", self.target.locate(&self.named(ALICE))?);
        let _ = ws.close(None);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            match ws.read() {
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn websocket(&self, session: &str) -> Result<tungstenite::WebSocket<TcpStream>, String> {
        let port = self.target.web_port();
        let url = format!("ws://localhost:{port}/narrative/ws");
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("{url}: {e}"))?;
        req.headers_mut().insert(
            "Cookie",
            format!("narrative_session={session}")
                .parse()
                .map_err(|e| format!("cookie header: {e}"))?,
        );
        let stream = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("connect to Traefik: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let (ws, resp) =
            tungstenite::client(req, stream).map_err(|e| format!("websocket {url}: {e}"))?;
        if resp.status().as_u16() != 101 {
            return Err(format!("websocket {url}: {}", resp.status()));
        }
        Ok(ws)
    }

    /// Step 5: after the websocket closed, idle past the timeout → reaped, process or
    /// container gone, route gone.
    fn reaped(&mut self) -> Result<(), String> {
        let closed = Instant::now();
        let located = self.held.get("alice_at").cloned().unwrap_or_default();
        let session = self.held.get("alice_session").cloned().unwrap_or_default();
        let deadline = closed + self.timing.idle_timeout + Duration::from_secs(12);
        loop {
            sleep(Duration::from_millis(700));
            self.reap()?;
            if self.listed(&self.named(ALICE))?.is_none() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} still listed {:.1?} after its websocket closed (timeout {} s)",
                    self.named(ALICE),
                    closed.elapsed(),
                    self.idle_secs()
                ));
            }
        }
        let reaped_after = closed.elapsed();
        if reaped_after < self.timing.idle_timeout {
            return Err(format!(
                "{} reaped {reaped_after:.1?} after its websocket closed, before the timeout",
                self.named(ALICE)
            ));
        }
        self.target.wait_gone(&self.named(ALICE), &located)?;
        let url = self.web("/narrative/");
        wait_for(
            "Traefik to stop routing alice's cookie",
            Duration::from_secs(6),
            || {
                get(&self.http, &url, &[("narrative_session", &session)])
                    .ok()
                    .filter(|r| r.status == 302 && !r.body.contains(&self.named(ALICE)))
            },
        )?;
        eprintln!(
            "{}:     {} reaped {reaped_after:.1?} after its websocket closed",
            self.label,
            self.named(ALICE)
        );
        Ok(())
    }

    /// Step 6, before and across the restart.
    ///
    /// What must survive a restart is the activity store; with the docker backend the
    /// narratives survive too, and must be adopted. carol's narrative is tracked (one reaper
    /// cycle records her clock at T0), goes quiet for [`Timing::quiet_before_restart`], and traefiker restarts with the
    /// same SQLite file.
    ///
    /// - A container lived on: before anyone visits it (a visit is activity and would move
    ///   the clock), the admin `/narrative_status/` lists it with `last_seen` T0, read back
    ///   from the store, not reset to the restart; it is the same container, and Traefik
    ///   routes her cookie to it. Then, with only the Traefik source and no traffic, the
    ///   reaper removes it once the timeout has passed since T0, sooner than the timeout
    ///   after the restart.
    /// - A local narrative died with traefiker: her next login starts a new one under the
    ///   same name, with a new session, and its clock starts then: a new narrative never
    ///   inherits an old one's clock (which would have it reaped on sight).
    fn restart(&mut self) -> Result<(), String> {
        let (carol, name) = self.log_in("carol-token", &self.named("carol-"))?;
        self.held.insert("carol_session", carol.clone());
        let located = self.target.locate(&name)?;
        self.reap()?;
        let (_, t0) = self.listed(&name)?.ok_or("carol's narrative not listed")?;
        sleep(self.timing.quiet_before_restart());
        let restart = Instant::now();
        self.target
            .restart_traefiker(&[("activity_sources", "traefik")])?;
        if self.target.narratives_outlive_traefiker() {
            let (again, seen) = self
                .listed(&self.named("carol-"))?
                .ok_or("carol's narrative not listed after the restart")?;
            if again != name {
                return Err(format!(
                    "carol's narrative is {again} after the restart, was {name}"
                ));
            }
            if !not_reset(&seen, &t0) {
                return Err(format!(
                    "{name}'s last_seen was {t0:?} before the restart and is {seen:?} after it: the idle clock was not kept"
                ));
            }
            if self.target.locate(&name)? != located {
                return Err(format!(
                    "{name} is another container after the restart: it was replaced, not adopted"
                ));
            }
            self.reach("carol-token", &carol, &name)
                .map_err(|e| format!("carol's route did not survive the restart: {e}"))?;
            eprintln!(
                "{}:     traefiker restarted in {:.1?}; {name} adopted, same container, last_seen still {t0}",
                self.label,
                restart.elapsed(),
            );
            self.held.insert("carol", name);
            self.restarted_at = Some(restart);
        } else {
            let again_session = self.connect("carol-token")?;
            let visited = Instant::now();
            if again_session == carol {
                return Err("carol got her dead narrative's session after the restart".into());
            }
            let (again, seen) = self
                .listed(&self.named("carol-"))?
                .ok_or("carol's narrative not listed after the restart and a new login")?;
            if again != name {
                return Err(format!(
                    "carol's narrative is {again} after the restart, was {name}"
                ));
            }
            if seen == t0 {
                return Err(format!(
                    "{name} is a new narrative but kept the old one's last_seen {t0}: it would be reaped on sight"
                ));
            }
            eprintln!(
                "{}:     traefiker restarted in {:.1?}; carol's new narrative {name} starts a clock of its own ({seen}, was {t0})",
                self.label,
                restart.elapsed(),
            );
            self.held.insert("carol", name);
            self.restarted_at = Some(visited);
        }
        Ok(())
    }

    /// Step 6, after the restart. A container that lived on (idle since T0, a while before the
    /// restart) is reaped before the timeout has passed since the restart; a new local
    /// narrative is kept for the whole timeout from her login.
    fn restart_reaps_on_old_clock(&mut self) -> Result<(), String> {
        let name = self.held.get("carol").cloned().unwrap_or_default();
        let since = self.restarted_at.ok_or("no restart recorded")?;
        let old_clock = self.target.narratives_outlive_traefiker();
        let deadline = since + self.timing.idle_timeout + Duration::from_secs(6);
        let first_call = since.elapsed();
        // Reaped at the first cycles after the restart tells nothing when they come after the
        // timeout counted from the restart: both clocks would have it reaped by then.
        if old_clock && first_call >= self.timing.idle_timeout {
            return Err(format!(
                "the restart took {first_call:.1?}, not less than the idle timeout ({} s): the check cannot tell a kept clock from a reset one; raise the timing's idle timeout",
                self.idle_secs()
            ));
        }
        loop {
            let called = since.elapsed();
            self.reap()?;
            if self.listed(&name)?.is_none() {
                if old_clock && called >= self.timing.idle_timeout {
                    return Err(format!(
                        "{name} reaped only {called:.1?} after the restart: its clock restarted"
                    ));
                }
                if !old_clock && called < self.timing.idle_timeout {
                    return Err(format!(
                        "{name} reaped {called:.1?} after carol's login, within the timeout: it inherited an old clock"
                    ));
                }
                let after = if old_clock {
                    format!(
                        "the restart (idle since {:.0?} before it)",
                        self.timing.quiet_before_restart()
                    )
                } else {
                    "carol's login (its own clock)".to_owned()
                };
                eprintln!(
                    "{}:     {name} reaped {called:.1?} after {after}",
                    self.label
                );
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{name} not reaped {:.1?} after {}",
                    since.elapsed(),
                    if old_clock {
                        "the restart"
                    } else {
                        "the login"
                    }
                ));
            }
            sleep(Duration::from_millis(300));
        }
    }

    /// Step 4, second case: with only the Traefik source, HTTP requests through Traefik
    /// between reaper cycles keep a narrative alive past the timeout.
    fn http_keeps_alive(&mut self) -> Result<(), String> {
        let (dave, name) = self.log_in("dave-token", &self.named("dave-"))?;
        self.held.insert("dave_session", dave.clone());
        let from = Instant::now();
        let mut cycles = 0;
        while from.elapsed() < self.timing.idle_timeout + Duration::from_secs(2) {
            sleep(Duration::from_millis(1000));
            self.reach("dave-token", &dave, &name)?;
            self.reap()?;
            cycles += 1;
            if self.listed(&name)?.is_none() {
                return Err(format!(
                    "dave's narrative was reaped after {:.1?} of HTTP traffic ({cycles} cycles)",
                    from.elapsed()
                ));
            }
        }
        eprintln!(
            "{}:     HTTP through Traefik kept dave's narrative for {:.1?} over {cycles} reaper cycles",
            self.label,
            from.elapsed()
        );
        Ok(())
    }
}

/// Whether the `last_seen` read after the restart, `after`, is no later than the one read
/// before it, `before` (asctime, `Mon Dec  7 06:00:00 2026`), give or take the second a
/// cycle may straddle: a reset clock reads the restart, at least the quiet period later.
/// Where several replicas keep clocks, the one answering may have seen the narrative first
/// at the user's connect, earlier than the one answering before: that clock is kept too.
fn not_reset(after: &str, before: &str) -> bool {
    let secs = |t: &str| -> Option<i64> {
        let hms = t.split_whitespace().nth(3)?;
        hms.split(':')
            .try_fold(0i64, |acc, part| Some(acc * 60 + part.parse::<i64>().ok()?))
    };
    after == before || matches!((secs(after), secs(before)), (Some(a), Some(b)) if a <= b + 1)
}

/// Sends `text` and waits for its echo, skipping control frames.
fn echo(ws: &mut tungstenite::WebSocket<TcpStream>, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .map_err(|e| format!("websocket send: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match ws.read().map_err(|e| format!("websocket read: {e}"))? {
            Message::Text(t) if t.as_str() == text => return Ok(()),
            Message::Text(t) => return Err(format!("websocket echoed {t:?}, sent {text:?}")),
            Message::Close(c) => return Err(format!("websocket closed: {c:?}")),
            _ => continue,
        }
    }
    Err("no websocket echo within 5 s".into())
}

#[cfg(test)]
mod tests {
    use super::not_reset;

    #[test]
    fn a_clock_read_back_earlier_or_in_the_next_second_is_kept_and_a_later_one_is_reset() {
        let t0 = "Mon Dec  7 07:21:01 2026";
        assert!(not_reset(t0, t0));
        assert!(
            not_reset("Mon Dec  7 07:21:02 2026", t0),
            "a straddled second"
        );
        assert!(
            not_reset("Mon Dec  7 07:20:54 2026", t0),
            "another replica's clock, from the connect"
        );
        assert!(!not_reset("Mon Dec  7 07:21:07 2026", t0), "the restart's");
        assert!(!not_reset("garbage", t0));
    }
}
