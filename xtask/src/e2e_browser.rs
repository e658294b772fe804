//! `cargo xtask e2e-browser`: the demo as a person uses it, in a real browser. Debian's
//! Chromium, driven over WebDriver (chromedriver, with fantoccini), against the local demo
//! stack with real Traefik:
//!
//! 1. alice opens the printed URL, lands on the login page, chooses alice, and ends in her
//!    narrative through Traefik, seeing no 404 or 5xx and only the one 201 on the way;
//! 2. bob, in a second browser profile, opens a narrative path, logs in with the keyboard
//!    alone, and lands in his narrative under that path, never alice's;
//! 3. the admin logs in, sees both narratives with their idle times, shuts bob's down from
//!    the page (confirming), and it is gone from the page and from the backend; bob's next
//!    visit starts a new one, which the admin's open page shows by itself.
//!
//! Every navigation is read from Chromium's performance log (status, URL, and whether
//! traefiker answered it: its `X-Traefiker` marker), so "no 201/404/502 seen" is what the
//! browser saw. The stack runs the demo's settings without a pool, so every login starts a
//! narrative whose route Traefik has yet to load: the reload page must wait, and does.
//! Screenshots of every page go to `target/e2e-browser/screenshots/`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::demo;
use crate::stack::{agent, get, wait_for, Proc, Stack};
use crate::traefik::{free_port, workspace_root};

const STEPS: [&str; 3] = [
    "the printed URL, the login page, alice: her narrative through Traefik, no 201/404/502 on the way",
    "a second profile logs in as bob with the keyboard: his narrative under the path asked, never alice's",
    "the admin sees both with idle times, shuts bob's down from the page; gone; bob's next visit starts anew",
];

/// How long one page may take to be what a step waits for.
const PATIENCE: Duration = Duration::from_secs(20);

/// Runs the browser test; fails with a summary if a step failed.
pub fn e2e_browser() -> Result<(), String> {
    let started = Instant::now();
    crate::stack::stop_all_on_interrupt()?;
    let (chromium, chromedriver) = browser()?;
    let dir = workspace_root().join("target").join("e2e-browser");
    let shots = dir.join("screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).map_err(|e| format!("{}: {e}", shots.display()))?;
    let mut settings = demo::settings();
    settings.retain(|(k, _)| *k != "num_prespawn");
    settings.push(("num_prespawn", "0"));
    let stack = Stack::start(&dir, &settings)?;
    let port = free_port()?;
    let mut cmd = Command::new(&chromedriver);
    // Without --allowed-ips chromedriver accepts local connections only.
    cmd.arg(format!("--port={port}"));
    let _driver = Proc::spawn("chromedriver", cmd, &dir.join("chromedriver.log"))?;
    let driver = format!("http://127.0.0.1:{port}/");
    let http = agent();
    wait_for("chromedriver to answer", Duration::from_secs(15), || {
        get(&http, &format!("{driver}status"), &[])
            .ok()
            .filter(|r| r.status == 200)
    })?;
    eprintln!(
        "e2e-browser: Traefik web on 127.0.0.1:{}, chromedriver on 127.0.0.1:{port} (ready after {:.1?})",
        stack.ports.web,
        started.elapsed()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let mut run = Run {
        stack: &stack,
        driver,
        chromium,
        shots,
        spent: [Duration::ZERO; 3],
        secrets: demo::TOKENS
            .split(',')
            .filter_map(|t| t.split(':').next())
            .map(str::to_owned)
            .collect(),
    };
    let outcome = runtime.block_on(run.all());
    let outcome = outcome.and_then(|()| run.logs_carry_no_secret());
    match &outcome {
        Ok(()) => println!("e2e-browser: {} passed, 0 failed", STEPS.len()),
        Err((step, reason)) => {
            println!("e2e-browser: {step}/3 {} FAILED: {reason}", STEPS[step - 1]);
            println!("{}", stack.log_tails(30));
            println!("e2e-browser: {} passed, 1 failed", step - 1);
        }
    }
    eprintln!(
        "e2e-browser: took {:.1?}; screenshots in {}",
        started.elapsed(),
        run.shots.display()
    );
    outcome.map_err(|(step, _)| format!("e2e-browser: step {step} failed"))
}

/// Chromium and chromedriver: on PATH, else installed from Debian's packages.
pub fn browser() -> Result<(PathBuf, PathBuf), String> {
    let find = |names: &[&str]| names.iter().find_map(|n| on_path(n));
    let found = || {
        Some((
            find(&["chromium", "chromium-browser"])?,
            find(&["chromedriver"])?,
        ))
    };
    if let Some(both) = found() {
        return Ok(both);
    }
    eprintln!("==> apt-get install chromium chromium-driver (Debian's packages)");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("could not run apt-get: {e}"))
            .and_then(|s| {
                s.success()
                    .then_some(())
                    .ok_or(format!("apt-get {} failed ({s})", args.join(" ")))
            })
    };
    apt(&["update", "-qq"])?;
    apt(&[
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "chromium",
        "chromium-driver",
    ])?;
    found().ok_or_else(|| {
        "chromium and chromedriver still not on PATH after apt-get install; install Debian's \
         chromium and chromium-driver packages"
            .to_owned()
    })
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// One navigation or poll as the browser saw it.
#[derive(Clone, Debug)]
struct Seen {
    url: String,
    status: u16,
    /// traefiker answered it (the `X-Traefiker` marker), not the narrative.
    traefiker: bool,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self
            .url
            .split_once("//")
            .map_or(self.url.as_str(), |(_, r)| {
                r.find('/').map_or("/", |i| &r[i..])
            });
        let who = if self.traefiker {
            "traefiker"
        } else {
            "narrative"
        };
        write!(f, "{} {path} ({who})", self.status)
    }
}

/// Chromium's performance log since the last read: the command fantoccini has no method for.
#[derive(Debug)]
struct PerformanceLog;

impl fantoccini::wd::WebDriverCompatibleCommand for PerformanceLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "performance"}).to_string()),
        )
    }
}

/// One browser profile (a chromedriver session has its own), and what it saw.
struct Browser {
    client: Client,
    who: &'static str,
    /// Documents: every page and redirect.
    pages: Vec<Seen>,
    /// The reload page's polls.
    polls: Vec<Seen>,
}

fn marked(headers: &Value) -> bool {
    headers
        .as_object()
        .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("x-traefiker")))
}

/// What the browser saw of an HTTP answer; `None` for its own pages (`data:`, `about:`).
fn seen(response: &Value) -> Option<Seen> {
    let url = response["url"].as_str().unwrap_or_default();
    url.starts_with("http").then(|| Seen {
        url: url.to_owned(),
        status: response["status"].as_u64().unwrap_or(0) as u16,
        traefiker: marked(&response["headers"]),
    })
}

impl Browser {
    async fn open(driver: &str, chromium: &Path, who: &'static str) -> Result<Self, String> {
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                // Root in CI needs --no-sandbox; containers have a small /dev/shm.
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1200,900"],
            },
            "goog:loggingPrefs": { "performance": "ALL" },
        });
        let Value::Object(caps) = caps else {
            return Err("capabilities are not an object".into());
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(driver)
            .await
            .map_err(|e| format!("{who}: no browser session from chromedriver: {e}"))?;
        Ok(Self {
            client,
            who,
            pages: Vec::new(),
            polls: Vec::new(),
        })
    }

    /// Reads what the browser did since the last read into `pages` and `polls`.
    async fn record(&mut self) -> Result<(), String> {
        let log = self
            .client
            .issue_cmd(PerformanceLog)
            .await
            .map_err(|e| format!("{}: reading the performance log: {e}", self.who))?;
        for entry in log.as_array().into_iter().flatten() {
            let Some(message) = entry["message"].as_str() else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<Value>(message) else {
                continue;
            };
            let params = &event["message"]["params"];
            let kind = params["type"].as_str().unwrap_or_default();
            match event["message"]["method"].as_str() {
                Some("Network.requestWillBeSent")
                    if kind == "Document" && params["redirectResponse"].is_object() =>
                {
                    self.pages.extend(seen(&params["redirectResponse"]))
                }
                Some("Network.responseReceived") if kind == "Document" => {
                    self.pages.extend(seen(&params["response"]))
                }
                Some("Network.responseReceived") if kind == "Fetch" => {
                    self.polls.extend(seen(&params["response"]))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The text of the first element matching `css`, once one exists and `accept` takes it.
    async fn wait_text(&self, css: &str, accept: impl Fn(&str) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::from("(no such element)");
        while Instant::now() < deadline {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                if let Ok(text) = element.text().await {
                    if accept(&text) {
                        return Ok(text);
                    }
                    last = text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let url = self.client.current_url().await.map(String::from);
        Err(format!(
            "{}: no `{css}` as wanted within {PATIENCE:?} on {url:?}; last: {last:?}",
            self.who
        ))
    }

    async fn click(&self, css: &str) -> Result<(), String> {
        let element = self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .map_err(|e| format!("{}: no `{css}` to click: {e}", self.who))?;
        element
            .click()
            .await
            .map_err(|e| format!("{}: clicking `{css}`: {e}", self.who))
    }

    async fn goto(&self, url: &str) -> Result<(), String> {
        self.client
            .goto(url)
            .await
            .map_err(|e| format!("{}: opening {url}: {e}", self.who))
    }

    async fn shot(&self, dir: &Path, name: &str) -> Result<(), String> {
        let png = self
            .client
            .screenshot()
            .await
            .map_err(|e| format!("{}: screenshot {name}: {e}", self.who))?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The value of cookie `name` in this profile.
    async fn cookie(&self, name: &str) -> Result<String, String> {
        self.client
            .get_named_cookie(name)
            .await
            .map(|c| c.value().to_owned())
            .map_err(|e| format!("{}: no {name} cookie: {e}", self.who))
    }

    /// Checks the journey recorded since `from`: only the one 201 (the reload page), no 404
    /// and no 5xx, and it ends in a page the narrative answered. Returns it as a line.
    fn journey(&self, from: usize) -> Result<String, String> {
        let pages = &self.pages[from..];
        let line = pages
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" → ");
        let created = pages.iter().filter(|p| p.status == 201).count();
        if created != 1 || pages.iter().any(|p| p.status == 404 || p.status >= 500) {
            return Err(format!(
                "{}: the browser saw {created} 201s or a 404/5xx: {line}",
                self.who
            ));
        }
        match pages.last() {
            Some(last) if last.status == 200 && !last.traefiker => Ok(line),
            _ => Err(format!(
                "{}: the journey did not end in the narrative: {line}",
                self.who
            )),
        }
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

struct Run<'a> {
    stack: &'a Stack,
    driver: String,
    chromium: PathBuf,
    shots: PathBuf,
    spent: [Duration; 3],
    secrets: Vec<String>,
}

type StepResult = Result<(), (usize, String)>;

impl Run<'_> {
    fn web(&self, path: &str) -> String {
        self.stack.web_url(path)
    }

    async fn all(&mut self) -> StepResult {
        let step = |n: usize| move |e: String| (n, e);
        let from = Instant::now();
        let mut alice = Browser::open(&self.driver, &self.chromium, "alice")
            .await
            .map_err(step(1))?;
        let outcome = self.alice(&mut alice).await.map_err(step(1));
        self.passed(1, from, outcome)?;

        let from = Instant::now();
        let mut bob = Browser::open(&self.driver, &self.chromium, "bob")
            .await
            .map_err(step(2))?;
        let outcome = self.bob(&mut bob, &alice).await.map_err(step(2));
        self.passed(2, from, outcome)?;

        let from = Instant::now();
        let admin = Browser::open(&self.driver, &self.chromium, "admin")
            .await
            .map_err(step(3))?;
        let outcome = self.admin(&admin, &mut bob).await.map_err(step(3));
        self.passed(3, from, outcome)?;
        for b in [alice, bob, admin] {
            // Session ids are secrets too: the log check looks for them.
            if let Ok(session) = b.cookie("narrative_session").await {
                self.secrets.push(session);
            }
            b.close().await;
        }
        Ok(())
    }

    fn passed(&mut self, n: usize, from: Instant, outcome: StepResult) -> StepResult {
        self.spent[n - 1] = from.elapsed();
        outcome?;
        println!(
            "e2e-browser: {n}/3 {} ok ({:.1?})",
            STEPS[n - 1],
            self.spent[n - 1]
        );
        Ok(())
    }

    /// Waits for the narrative page that names `prefix…`; returns its name.
    async fn narrative_page(&self, b: &Browser, prefix: &str) -> Result<String, String> {
        let heading = b.wait_text("h1", |t| t.starts_with("narrative ")).await?;
        let name = heading.trim_start_matches("narrative ").to_owned();
        if !name.starts_with(prefix) {
            return Err(format!("{}: the page names {name}, want {prefix}…", b.who));
        }
        Ok(name)
    }

    /// Step 1.
    async fn alice(&self, b: &mut Browser) -> Result<(), String> {
        b.goto(&self.web("/narrative/")).await?;
        b.wait_text("h1", |t| t.starts_with("Log in")).await?;
        b.shot(&self.shots, "1-login").await?;
        b.click("button[name=user][value=alice]").await?;
        // The reload page, until Traefik routes alice's new session to her narrative.
        if let Ok(h1) = b.client.find(Locator::Css("h1")).await {
            if h1.text().await.is_ok_and(|t| t.starts_with("Starting")) {
                b.shot(&self.shots, "2-starting").await?;
            }
        }
        self.narrative_page(b, "narrative-alice-522b27").await?;
        b.shot(&self.shots, "3-alice-narrative").await?;
        b.record().await?;
        let line = b.journey(0)?;
        let by_traefiker = b.polls.iter().filter(|p| p.traefiker).count();
        eprintln!("e2e-browser:     alice: {line}");
        eprintln!(
            "e2e-browser:     alice's reload page polled {} times: {by_traefiker} answered by traefiker while the route loaded, then by the narrative",
            b.polls.len()
        );
        if !b
            .polls
            .last()
            .is_some_and(|p| !p.traefiker && p.status == 200)
        {
            return Err("alice: the last poll was not the narrative's answer".into());
        }
        Ok(())
    }

    /// Step 2.
    async fn bob(&self, b: &mut Browser, alice: &Browser) -> Result<(), String> {
        b.goto(&self.web("/narrative/ws.1.obj.2")).await?;
        let next = b.wait_text("#next-path", |t| t.contains("ws.1")).await?;
        if next != "/narrative/ws.1.obj.2" {
            return Err(format!("bob: the login page goes on to {next:?}"));
        }
        let token = b
            .client
            .find(Locator::Css("#token"))
            .await
            .map_err(|e| format!("bob: no token field: {e}"))?;
        token
            .send_keys("bob-token\u{E007}")
            .await
            .map_err(|e| format!("bob: typing the token and Enter: {e}"))?;
        let name = self.narrative_page(b, "narrative-bob-").await?;
        let url = b.client.current_url().await.map_err(|e| e.to_string())?;
        if url.path() != "/narrative/ws.1.obj.2" {
            return Err(format!("bob ended on {url}, not the path he asked for"));
        }
        b.shot(&self.shots, "4-bob-narrative").await?;
        b.record().await?;
        eprintln!("e2e-browser:     bob: {}", b.journey(0)?);
        for who in [&*b, alice] {
            who.client.refresh().await.map_err(|e| e.to_string())?;
        }
        self.narrative_page(b, &name).await?;
        self.narrative_page(alice, "narrative-alice-522b27").await?;
        Ok(())
    }

    /// The address `/traefik/dynamic` routes narrative `name` to, if any.
    fn routed(&self, name: &str) -> Result<Option<String>, String> {
        let r = get(&agent(), &self.stack.traefiker_url("/traefik/dynamic"), &[])?;
        let doc: Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("/traefik/dynamic is not JSON ({e})"))?;
        Ok(
            doc["http"]["services"][name]["loadBalancer"]["servers"][0]["url"]
                .as_str()
                .map(str::to_owned),
        )
    }

    /// Step 3.
    async fn admin(&self, a: &Browser, bob: &mut Browser) -> Result<(), String> {
        let bob_name = self.narrative_page(bob, "narrative-bob-").await?;
        let bob_session = bob.cookie("narrative_session").await?;
        let bob_at = self
            .routed(&bob_name)?
            .ok_or_else(|| format!("{bob_name} has no route before the shutdown"))?;
        // One reaper cycle, so the page has one to show (the demo's runs every 30 s).
        let reaped = get(&agent(), &self.stack.traefiker_url("/reaper/"), &[])?;
        if reaped.status != 200 {
            return Err(format!("/reaper/: {} {}", reaped.status, reaped.body));
        }
        a.goto(&self.web(&demo::login_then("/narrative_status/")))
            .await?;
        a.click("button[name=user][value=kbadmin]").await?;
        a.wait_text("h1", |t| t == "Narratives").await?;
        let mut idle = Vec::new();
        for name in ["narrative-alice-522b27", bob_name.as_str()] {
            let cell = format!("tr[data-narrative='{name}'] td.idle");
            let shown = a
                .wait_text(&cell, |t| t.ends_with(" s") || t.contains("min"))
                .await?;
            idle.push(format!("{name} idle {shown}"));
        }
        a.wait_text("#live", |t| t.contains("traefik: answered"))
            .await?;
        eprintln!("e2e-browser:     status page: {}", idle.join(", "));
        a.shot(&self.shots, "5-status").await?;
        a.client
            .set_window_size(390, 844)
            .await
            .map_err(|e| e.to_string())?;
        a.shot(&self.shots, "6-status-phone").await?;
        a.client
            .set_window_size(1200, 900)
            .await
            .map_err(|e| e.to_string())?;

        a.click(&format!("tr[data-narrative='{bob_name}'] button"))
            .await?;
        a.wait_text("h1", |t| t.starts_with("Shut down")).await?;
        a.shot(&self.shots, "7-confirm").await?;
        a.click("button.danger").await?;
        a.wait_text("p.notice", |t| t.contains("was shut down"))
            .await?;
        if a.client
            .find(Locator::Css(&format!("tr[data-narrative='{bob_name}']")))
            .await
            .is_ok()
        {
            return Err(format!(
                "{bob_name} is still on the page after its shutdown"
            ));
        }
        a.shot(&self.shots, "8-after-shutdown").await?;
        if self.routed(&bob_name)?.is_some() {
            return Err(format!("{bob_name} is still routed after its shutdown"));
        }
        let hostport = bob_at.trim_start_matches("http://").to_owned();
        wait_for(
            &format!("{bob_name}'s process ({hostport}) to stop"),
            Duration::from_secs(12),
            || TcpStream::connect(&hostport).is_err().then_some(()),
        )?;

        // Traefik drops the route at its next poll of /traefik/dynamic (1 s here); until then
        // it still sends bob's old session to where the narrative was.
        let http = agent();
        let url = self.web("/narrative/");
        wait_for(
            "Traefik to stop routing bob's old session",
            Duration::from_secs(6),
            || {
                get(&http, &url, &[("narrative_session", &bob_session)])
                    .ok()
                    .filter(|r| r.status == 302)
            },
        )?;
        bob.record().await?;
        let from = bob.pages.len();
        bob.goto(&self.web("/narrative/ws.1.obj.2")).await?;
        self.narrative_page(bob, &bob_name).await?;
        bob.record().await?;
        let line = bob.journey(from)?;
        let session = bob.cookie("narrative_session").await?;
        let now_at = self.routed(&bob_name)?;
        if session == bob_session || now_at.as_deref() == Some(bob_at.as_str()) {
            return Err(format!(
                "bob's next visit did not start a new narrative (same session: {}, now at {now_at:?})",
                session == bob_session
            ));
        }
        bob.shot(&self.shots, "9-bob-new-narrative").await?;
        // The admin's page, left open, shows bob's new narrative by itself.
        a.wait_text(&format!("tr[data-narrative='{bob_name}'] td.idle"), |t| {
            !t.is_empty()
        })
        .await
        .map_err(|e| format!("the status page did not refresh itself: {e}"))?;
        eprintln!("e2e-browser:     bob again: {line}; a new narrative at {now_at:?}");
        Ok(())
    }

    /// After the steps: traefiker's log holds none of the tokens and sessions the browsers
    /// used.
    fn logs_carry_no_secret(&self) -> StepResult {
        let path = self.stack.dir.join("traefiker.log");
        let logs =
            std::fs::read_to_string(&path).map_err(|e| (3, format!("{}: {e}", path.display())))?;
        if let Some(token) = self.secrets.iter().find(|t| logs.contains(t.as_str())) {
            return Err((3, format!("traefiker's log carries the secret {token}")));
        }
        println!(
            "e2e-browser: traefiker's log carries none of {} tokens and session ids",
            self.secrets.len()
        );
        Ok(())
    }
}
