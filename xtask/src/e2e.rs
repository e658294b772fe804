//! `cargo xtask e2e`: traefiker behind a real Traefik v3, loopback only, bounded in time.
//!
//! Every request a user would make goes through Traefik's `web` entrypoint; only the
//! operator's calls (`/reaper/`, `/narrative_status/`, `/traefik/dynamic`) go to traefiker
//! directly. Logs are kept in `target/e2e/`.

use std::collections::HashMap;
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

use crate::stack::{agent, get, wait_for, Stack};
use crate::traefik::workspace_root;

const ALICE: &str = "narrative-alice-522b27";
const TOKENS: &str = "alice-token:alice,bob-token:bob,carol-token:carol,dave-token:dave,\
admin-token:kbadmin:KBASE_ADMIN";
const TIMEOUT_SECS: u64 = 3;
const STEPS: [&str; 6] = [
    "login redirect through Traefik",
    "a token gets a session that Traefik routes to the user's own narrative",
    "a second user reaches only their narrative; a made-up session reaches none",
    "a quiet open websocket (traefik+narrative_status) and HTTP traffic (traefik only) keep narratives alive",
    "once idle, the reaper removes the narrative, its process and its route",
    "a restarted traefiker keeps the idle clocks",
];

/// Runs the end-to-end test; fails with a summary if any step failed.
pub fn e2e() -> Result<(), String> {
    let started = Instant::now();
    crate::stack::stop_all_on_interrupt()?;
    let dir = workspace_root().join("target").join("e2e");
    let mut stack = Stack::start(
        &dir,
        &[
            ("auth_tokens", TOKENS),
            ("num_prespawn", "2"),
            ("reaper_interval_secs", "0"),
            ("reaper_timeout_secs", "3"),
            ("activity_sources", "traefik,narrative_status"),
            ("log_level", "DEBUG"),
        ],
    )?;
    eprintln!(
        "e2e: traefiker on 127.0.0.1:{}, Traefik web on 127.0.0.1:{} (ready after {:.1?})",
        stack.ports.traefiker,
        stack.ports.web,
        started.elapsed()
    );
    let mut run = Run {
        stack: &mut stack,
        http: agent(),
        held: HashMap::new(),
        restarted_at: None,
    };
    let outcome = run.all();
    let (passed, failed) = match &outcome {
        Ok(()) => (STEPS.len(), 0),
        Err((step, _)) => (step - 1, STEPS.len() - (step - 1)),
    };
    if let Err((step, reason)) = &outcome {
        println!("e2e: {step}/6 {} FAILED: {reason}", STEPS[step - 1]);
        if *step < STEPS.len() {
            println!("e2e: steps {}..6 not run", step + 1);
        }
        println!("{}", stack.log_tails(40));
    }
    println!("e2e: {passed} passed, {failed} failed");
    eprintln!("e2e: took {:.1?}", started.elapsed());
    drop(stack);
    match outcome {
        Ok(()) => Ok(()),
        Err(_) => Err(format!("e2e: {failed} of {} steps failed", STEPS.len())),
    }
}

struct Run<'a> {
    stack: &'a mut Stack,
    http: ureq::Agent,
    /// Values carried from one step to a later one.
    held: HashMap<&'static str, String>,
    /// When traefiker was stopped for the restart.
    restarted_at: Option<Instant>,
}

type StepResult = Result<(), (usize, String)>;

fn pass(step: usize) {
    println!("e2e: {step}/6 {} ok", STEPS[step - 1]);
}

fn at<T>(step: usize, r: Result<T, String>) -> Result<T, (usize, String)> {
    r.map_err(|e| (step, e))
}

impl Run<'_> {
    fn all(&mut self) -> StepResult {
        at(1, self.login_redirect())?;
        pass(1);
        at(2, self.own_narrative())?;
        pass(2);
        at(3, self.isolation())?;
        pass(3);
        at(4, self.websocket_keeps_alive())?;
        at(5, self.reaped())?;
        // The restart switches to the Traefik source only: the second case of step 4 and
        // the timing check of step 6 run after it; lines are printed in step order.
        at(6, self.restart())?;
        at(6, self.restart_reaps_on_old_clock())?;
        at(4, self.http_keeps_alive())?;
        pass(4);
        pass(5);
        pass(6);
        Ok(())
    }

    fn web(&self, path: &str) -> String {
        self.stack.web_url(path)
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

    /// Reloads through Traefik with both cookies until the page names `name` (Traefik polls
    /// the routes every second); returns the page.
    fn reach(&self, token: &str, session: &str, name: &str) -> Result<String, String> {
        let mut last = String::new();
        let url = self.web("/narrative/");
        wait_for(
            &format!("Traefik to route to {name}"),
            Duration::from_secs(10),
            || match get(
                &self.http,
                &url,
                &[("kbase_session", token), ("narrative_session", session)],
            ) {
                Ok(r) if r.status == 200 && r.body.contains(name) => Some(r.body),
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

    /// Step 2.
    fn own_narrative(&mut self) -> Result<(), String> {
        let session = self.connect("alice-token")?;
        if session.len() != 32 || !session.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "narrative_session {session:?} is not 32 hex digits"
            ));
        }
        self.reach("alice-token", &session, ALICE)?;
        self.held.insert("alice", session);
        Ok(())
    }

    /// Step 3.
    fn isolation(&mut self) -> Result<(), String> {
        let bob = self.connect("bob-token")?;
        let page = self.reach("bob-token", &bob, "narrative-bob-")?;
        if page.contains("narrative-alice") {
            return Err("bob's page names alice's narrative".into());
        }
        for _ in 0..5 {
            let r = get(
                &self.http,
                &self.web("/narrative/"),
                &[("kbase_session", "bob-token"), ("narrative_session", &bob)],
            )?;
            if r.body.contains("narrative-alice") || !r.body.contains("narrative-bob-") {
                return Err(format!("bob's cookies reached: {} {}", r.status, r.body));
            }
        }
        let madeup = "0123456789abcdef0123456789abcdef";
        let r = get(
            &self.http,
            &self.web("/narrative/"),
            &[("narrative_session", madeup)],
        )?;
        if r.status != 302 || r.body.contains("narrative-alice") || r.body.contains("narrative-bob")
        {
            return Err(format!(
                "a made-up narrative_session: {} {}, want traefiker's 302",
                r.status, r.body
            ));
        }
        self.held.insert("bob", bob);
        Ok(())
    }

    /// GET /reaper/ on traefiker; the number deleted.
    fn reap(&self) -> Result<usize, String> {
        let r = get(&self.http, &self.stack.traefiker_url("/reaper/"), &[])?;
        let n = r
            .body
            .trim()
            .strip_prefix("Reaper success: ")
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        match (r.status, n) {
            (200, Some(n)) => Ok(n),
            _ => Err(format!("GET /reaper/: {} {}", r.status, r.body)),
        }
    }

    /// The admin view of /narrative_status/: instance → last_seen.
    fn narratives(&self) -> Result<HashMap<String, String>, String> {
        let r = get(
            &self.http,
            &self.stack.traefiker_url("/narrative_status/"),
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

    /// The narrative's address from traefiker's Traefik configuration.
    fn address(&self, name: &str) -> Result<Option<String>, String> {
        let r = get(
            &self.http,
            &self.stack.traefiker_url("/traefik/dynamic"),
            &[],
        )?;
        let doc: Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("/traefik/dynamic is not JSON ({e})"))?;
        Ok(
            doc["http"]["services"][name]["loadBalancer"]["servers"][0]["url"]
                .as_str()
                .map(str::to_string),
        )
    }

    /// Step 4, first case: with `narrative_status` as a source, an open websocket through
    /// Traefik that stays quiet for longer than the idle timeout keeps the narrative.
    fn websocket_keeps_alive(&mut self) -> Result<(), String> {
        let session = self.held.get("alice").cloned().unwrap_or_default();
        let mut ws = self.websocket(&session)?;
        echo(&mut ws, "hello")?;
        let quiet_from = Instant::now();
        let mut cycles = 0;
        while quiet_from.elapsed() < Duration::from_secs(TIMEOUT_SECS + 2) {
            sleep(Duration::from_millis(1300));
            self.reap()?;
            cycles += 1;
            if self.listed(ALICE)?.is_none() {
                return Err(format!(
                    "{ALICE} was reaped after {:.1?} with its websocket open ({cycles} reaper cycles)",
                    quiet_from.elapsed()
                ));
            }
        }
        echo(&mut ws, "still here")?;
        eprintln!(
            "e2e:     websocket open and quiet for {:.1?} over {cycles} reaper cycles: {ALICE} kept",
            quiet_from.elapsed()
        );
        self.held.insert(
            "alice_addr",
            self.address(ALICE)?
                .ok_or_else(|| format!("/traefik/dynamic has no service {ALICE}"))?,
        );
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
        let url = format!("ws://localhost:{}/narrative/ws", self.stack.ports.web);
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
        let stream = TcpStream::connect(("127.0.0.1", self.stack.ports.web))
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

    /// Step 5: after the websocket closed, idle past the timeout → reaped, process gone,
    /// route gone.
    fn reaped(&mut self) -> Result<(), String> {
        let closed = Instant::now();
        let addr = self.held.get("alice_addr").cloned().unwrap_or_default();
        let session = self.held.get("alice").cloned().unwrap_or_default();
        let deadline = closed + Duration::from_secs(TIMEOUT_SECS + 12);
        loop {
            sleep(Duration::from_millis(700));
            self.reap()?;
            if self.listed(ALICE)?.is_none() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{ALICE} still listed {:.1?} after its websocket closed (timeout {TIMEOUT_SECS} s)",
                    closed.elapsed()
                ));
            }
        }
        let reaped_after = closed.elapsed();
        if reaped_after < Duration::from_secs(TIMEOUT_SECS) {
            return Err(format!(
                "{ALICE} reaped {reaped_after:.1?} after its websocket closed, before the timeout"
            ));
        }
        let hostport = addr.trim_start_matches("http://").to_string();
        wait_for(
            &format!("{ALICE}'s process ({hostport}) to stop listening"),
            Duration::from_secs(12),
            || TcpStream::connect(&hostport).is_err().then_some(()),
        )?;
        if self.address(ALICE)?.is_some() {
            return Err(format!(
                "/traefik/dynamic still has {ALICE} after it was reaped"
            ));
        }
        let url = self.web("/narrative/");
        wait_for(
            "Traefik to stop routing alice's cookie",
            Duration::from_secs(6),
            || {
                get(&self.http, &url, &[("narrative_session", &session)])
                    .ok()
                    .filter(|r| r.status == 302 && !r.body.contains(ALICE))
            },
        )?;
        eprintln!("e2e:     {ALICE} reaped {reaped_after:.1?} after its websocket closed");
        Ok(())
    }

    /// Step 6, before and across the restart.
    ///
    /// The local backend's narratives live and die with traefiker (it stops them on
    /// SIGTERM, and a SIGKILLed traefiker's children get a parent-death signal), so no
    /// narrative survives a restart here; what must survive is the activity store. The check:
    /// carol's narrative is tracked (one reaper cycle records her clock at T0), goes quiet for
    /// 2 s, traefiker restarts (SIGTERM) with the same SQLite file, carol logs in again
    /// (a new process under the same name), and the admin `/narrative_status/` reports her
    /// `last_seen` as T0: read back from the store, not reset to the restart (the route falls
    /// back to "now" for an unknown clock, which would be 2+ s later). Then, with only the
    /// Traefik source and no traffic to her, the reaper removes her once the timeout has
    /// passed since T0 -- sooner than the timeout after the restart.
    fn restart(&mut self) -> Result<(), String> {
        let carol = self.connect("carol-token")?;
        self.reach("carol-token", &carol, "narrative-carol-")?;
        self.reap()?;
        let (name, t0) = self
            .listed("narrative-carol-")?
            .ok_or("carol's narrative not listed")?;
        sleep(Duration::from_secs(2));
        let restart = Instant::now();
        self.stack
            .restart_traefiker(&[("activity_sources", "traefik")])?;
        self.connect("carol-token")?;
        let (again, seen) = self
            .listed("narrative-carol-")?
            .ok_or("carol's narrative not listed after the restart and a new login")?;
        if again != name {
            return Err(format!(
                "carol's narrative is {again} after the restart, was {name}"
            ));
        }
        if seen != t0 {
            return Err(format!(
                "{name}'s last_seen was {t0:?} before the restart and is {seen:?} after it: the idle clock was not kept"
            ));
        }
        eprintln!(
            "e2e:     traefiker restarted in {:.1?}; {name} last_seen still {t0}",
            restart.elapsed()
        );
        self.held.insert("carol", name);
        self.restarted_at = Some(restart);
        Ok(())
    }

    /// Step 6, after the restart: carol, idle since T0 (2 s before the restart), is reaped
    /// before the timeout has passed since the restart.
    fn restart_reaps_on_old_clock(&mut self) -> Result<(), String> {
        let name = self.held.get("carol").cloned().unwrap_or_default();
        let restart = self.restarted_at.ok_or("no restart recorded")?;
        let deadline = restart + Duration::from_secs(TIMEOUT_SECS + 6);
        loop {
            let called = restart.elapsed();
            self.reap()?;
            if self.listed(&name)?.is_none() {
                if called >= Duration::from_secs(TIMEOUT_SECS) {
                    return Err(format!(
                        "{name} reaped only {called:.1?} after the restart: its clock restarted"
                    ));
                }
                eprintln!("e2e:     {name} reaped {called:.1?} after the restart (idle since 2+ s before it)");
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{name} not reaped {:.1?} after the restart",
                    restart.elapsed()
                ));
            }
            sleep(Duration::from_millis(300));
        }
    }

    /// Step 4, second case: with only the Traefik source, HTTP requests through Traefik
    /// between reaper cycles keep a narrative alive past the timeout.
    fn http_keeps_alive(&mut self) -> Result<(), String> {
        let dave = self.connect("dave-token")?;
        self.reach("dave-token", &dave, "narrative-dave-")?;
        let from = Instant::now();
        let mut cycles = 0;
        while from.elapsed() < Duration::from_secs(TIMEOUT_SECS + 2) {
            sleep(Duration::from_millis(1000));
            self.reach("dave-token", &dave, "narrative-dave-")?;
            self.reap()?;
            cycles += 1;
            if self.listed("narrative-dave-")?.is_none() {
                return Err(format!(
                    "dave's narrative was reaped after {:.1?} of HTTP traffic ({cycles} cycles)",
                    from.elapsed()
                ));
            }
        }
        eprintln!(
            "e2e:     HTTP through Traefik kept dave's narrative for {:.1?} over {cycles} reaper cycles",
            from.elapsed()
        );
        Ok(())
    }
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
