//! `cargo xtask e2e --observe` and `cargo xtask demo --observe`: the local stack (traefiker
//! and a real Traefik) with a real Prometheus (Debian's) scraping both, the rules of
//! `deploy/prometheus/` loaded.
//!
//! The e2e, bounded in time:
//!
//! 1. two users arrive through Traefik; one keeps using their narrative, the other goes idle
//!    and is reaped, as Prometheus sees it (`traefiker_reaps_total{reason="idle"}`);
//! 2. Prometheus evaluated every rule without error;
//! 3. every recording rule, alert expression and dashboard query answers through Prometheus's
//!    HTTP API without error; recording rules and panels with series, and every metric an
//!    alert reads exists;
//! 4. Traefik's metrics page is taken away (traefiker reads it through a gate the test
//!    closes, which then answers 404): `TraefikerActivityUnreadable` fires, seen in
//!    `/api/v1/alerts`;
//! 5. Chromium shows Prometheus's alerts page (screenshot in `target/e2e-observe/`; with
//!    `--docs`, also `docs/img/prometheus-alerts.png`).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{sleep, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::promql::{self, Kind, Query, RULES};
use crate::rules::{self, Binaries};
use crate::stack::{agent, get, wait_for, Proc, Stack};
use crate::traefik::{free_port, workspace_root, TraefikPorts};

/// A Prometheus scraping a stack's traefiker (job `traefiker`) and Traefik (job `traefik`),
/// with the project's rules, stopped when dropped.
#[derive(Debug)]
pub struct Prometheus {
    port: u16,
    http: ureq::Agent,
    proc: Proc,
}

impl Prometheus {
    /// Starts one on a free port, scraping and evaluating every `every` (`1s`, `15s`), its data
    /// and log under `dir`; returns once it is ready.
    pub fn start(
        dir: &Path,
        binaries: &Binaries,
        ports: TraefikPorts,
        every: &str,
    ) -> Result<Self, String> {
        let port = free_port()?;
        let rules = workspace_root().join(RULES);
        let config = format!(
            "# Written by cargo xtask: the project's rules, traefiker and Traefik scraped.\n\
             global: {{scrape_interval: {every}, evaluation_interval: {every}}}\n\
             rule_files: [{rules:?}]\n\
             scrape_configs:\n  \
               - job_name: traefiker\n    static_configs: [{{targets: [\"127.0.0.1:{}\"]}}]\n  \
               - job_name: traefik\n    static_configs: [{{targets: [\"127.0.0.1:{}\"]}}]\n",
            ports.traefiker, ports.metrics
        );
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).map_err(|e| format!("{}: {e}", file.display()))?;
        let data = dir.join("prometheus-data");
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_file(dir.join("prometheus.log"));
        let mut cmd = Command::new(&binaries.server);
        cmd.arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        let proc = Proc::spawn("prometheus", cmd, &dir.join("prometheus.log"))?;
        let prometheus = Self {
            port,
            http: agent(),
            proc,
        };
        let ready = prometheus.url("/-/ready");
        wait_for("Prometheus to be ready", Duration::from_secs(30), || {
            get(&prometheus.http, &ready, &[])
                .ok()
                .filter(|r| r.status == 200)
        })
        .map_err(|e| format!("{e}\n{}", prometheus.proc.log_tail(20)))?;
        Ok(prometheus)
    }

    /// A URL on its web interface.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET /api/v1/<path>`'s `data`, or the error Prometheus gave.
    fn api(&self, path: &str) -> Result<Value, String> {
        let url = self.url(&format!("/api/v1/{path}"));
        let r = get(&self.http, &url, &[])?;
        let doc: Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("{url}: {} {e}: {}", r.status, r.body))?;
        if doc["status"] != "success" {
            return Err(format!(
                "{} {}",
                doc["errorType"].as_str().unwrap_or("error"),
                doc["error"].as_str().unwrap_or(&r.body)
            ));
        }
        Ok(doc["data"].clone())
    }

    /// The series an instant query answers now.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let encoded: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let data = self.api(&format!("query?query={encoded}"))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of the first series `expr` answers, if any.
    fn value(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr).ok()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Every metric name it has stored.
    fn names(&self) -> Result<BTreeSet<String>, String> {
        let data = self.api("label/__name__/values")?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }

    /// Every rule it evaluates, with its health.
    fn rules(&self) -> Result<Vec<Value>, String> {
        let data = self.api("rules")?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }

    /// Its alerts page: the classic one Debian's package serves, else the newer one.
    fn alerts_page(&self) -> String {
        let classic = self.url("/classic/alerts");
        match get(&self.http, &classic, &[]) {
            Ok(r) if r.status == 200 => classic,
            _ => self.url("/alerts"),
        }
    }

    /// The alerts pending or firing.
    fn alerts(&self) -> Result<Vec<Value>, String> {
        let data = self.api("alerts")?;
        Ok(data["alerts"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until both jobs' targets answer its scrapes.
    fn wait_targets_up(&self) -> Result<(), String> {
        wait_for(
            "Prometheus to scrape traefiker and Traefik",
            Duration::from_secs(20),
            || {
                let up = self.query("up == 1").ok()?;
                let jobs: BTreeSet<&str> = up
                    .iter()
                    .filter_map(|s| s["metric"]["job"].as_str())
                    .collect();
                (jobs.contains("traefiker") && jobs.contains("traefik")).then_some(())
            },
        )
    }
}

/// Traefik's metrics page as traefiker reads it, through a gate: open, it passes each request
/// on to Traefik; closed, it answers 404 as a Traefik without its metrics page would.
#[derive(Debug)]
struct MetricsGate {
    port: u16,
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsGate {
    /// A gate on a free port in front of Traefik's metrics on `upstream`.
    fn start(upstream: u16) -> Result<Self, String> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("metrics gate: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("metrics gate: {e}"))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("metrics gate: {e}"))?;
        let open = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (gate_open, gate_stop) = (open.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let http = agent();
            while !gate_stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = pass(stream, upstream, &http, gate_open.load(Ordering::SeqCst));
                    }
                    Err(_) => sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Self {
            port,
            open,
            stop,
            thread: Some(thread),
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.port)
    }

    fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
    }
}

impl Drop for MetricsGate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request on `stream`: Traefik's answer to the same path when `open`, else 404.
fn pass(
    mut stream: TcpStream,
    upstream: u16,
    http: &ureq::Agent,
    open: bool,
) -> Result<(), String> {
    let fail = |e: std::io::Error| e.to_string();
    stream.set_nonblocking(false).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(fail)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).map_err(fail)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("/metrics")
        .to_owned();
    let (status, kind, body) = if open {
        let r = get(http, &format!("http://127.0.0.1:{upstream}{path}"), &[])?;
        (r.status, "text/plain; version=0.0.4; charset=utf-8", r.body)
    } else {
        (
            404,
            "text/plain; charset=utf-8",
            "404 page not found\n".to_owned(),
        )
    };
    let reason = if status == 200 { "OK" } else { "Not Found" };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).map_err(fail)
}

const TOKENS: &str = "alice-token:alice,bob-token:bob";
const STEPS: [&str; 5] = [
    "users arrive through Traefik; one keeps working, the idle one is reaped (as Prometheus sees it)",
    "Prometheus evaluates every rule without error",
    "every recording rule, alert expression and dashboard query answers, with its series",
    "Traefik's metrics page taken away: TraefikerActivityUnreadable fires",
    "Prometheus's alerts page in Chromium",
];

/// Runs the observing e2e; with `docs`, the screenshot also goes to `docs/img/`.
pub fn e2e(docs: bool) -> Result<(), String> {
    let started = Instant::now();
    crate::stack::stop_all_on_interrupt()?;
    let binaries = rules::binaries()?;
    let dir = workspace_root().join("target").join("e2e-observe");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ports = TraefikPorts::free()?;
    let gate = MetricsGate::start(ports.metrics)?;
    let metrics_url = gate.url();
    let settings = [
        ("auth_tokens", TOKENS),
        ("num_prespawn", "1"),
        ("reaper_interval_secs", "1"),
        ("reaper_timeout_secs", "3"),
        ("activity_sources", "traefik"),
        ("max_narratives", "20"),
        ("traefik_metrics", metrics_url.as_str()),
    ];
    let stack = Stack::start_on(&dir, &settings, ports)?;
    let prometheus = Prometheus::start(&dir, &binaries, ports, "1s")?;
    prometheus.wait_targets_up()?;
    eprintln!(
        "e2e --observe: Prometheus on {}, Traefik web on 127.0.0.1:{} (ready after {:.1?})",
        prometheus.url("/"),
        ports.web,
        started.elapsed()
    );
    let mut run = Run {
        stack: &stack,
        prometheus: &prometheus,
        gate: &gate,
        http: agent(),
        dir: dir.clone(),
        docs,
    };
    let mut passed = 0;
    let mut failure = None;
    for (n, step) in STEPS.iter().enumerate() {
        let from = Instant::now();
        let outcome = match n {
            0 => run.users_and_a_reap(),
            1 => run.rules_healthy(),
            2 => run.every_query_answers(),
            3 => run.an_alert_fires(),
            _ => run.alerts_page(),
        };
        match outcome {
            Ok(()) => {
                passed += 1;
                println!(
                    "e2e --observe: {}/5 {} ok ({:.1?})",
                    n + 1,
                    step,
                    from.elapsed()
                );
            }
            Err(e) => {
                println!("e2e --observe: {}/5 {step} FAILED: {e}", n + 1);
                println!(
                    "{}\n--- last lines of {}/prometheus.log ---\n{}",
                    stack.log_tails(30),
                    dir.display(),
                    prometheus.proc.log_tail(20)
                );
                failure = Some(n + 1);
                break;
            }
        }
    }
    println!(
        "e2e --observe: {passed} passed, {} failed",
        STEPS.len() - passed
    );
    eprintln!("e2e --observe: took {:.1?}", started.elapsed());
    match failure {
        None => Ok(()),
        Some(step) => Err(format!("e2e --observe: step {step} failed")),
    }
}

struct Run<'a> {
    stack: &'a Stack,
    prometheus: &'a Prometheus,
    gate: &'a MetricsGate,
    http: ureq::Agent,
    dir: PathBuf,
    docs: bool,
}

impl Run<'_> {
    /// Logs `token` in through Traefik and waits until Traefik routes its session to the
    /// narrative named `narrative-<user>-…`; returns the session.
    fn enter(&self, token: &str, user: &str) -> Result<String, String> {
        let url = self.stack.web_url("/narrative/");
        let r = get(&self.http, &url, &[("kbase_session", token)])?;
        let session = r
            .cookie("narrative_session")
            .filter(|_| r.status == 201)
            .ok_or_else(|| format!("{user}: {} without a session, want 201", r.status))?;
        self.visit(token, &session, user, Duration::from_secs(10))?;
        Ok(session)
    }

    /// Reaches `user`'s narrative through Traefik within `patience`.
    fn visit(
        &self,
        token: &str,
        session: &str,
        user: &str,
        patience: Duration,
    ) -> Result<(), String> {
        let url = self.stack.web_url("/narrative/");
        let marker = format!("narrative-{user}-");
        wait_for(
            &format!("Traefik to route {user}'s session"),
            patience,
            || {
                get(
                    &self.http,
                    &url,
                    &[("kbase_session", token), ("narrative_session", session)],
                )
                .ok()
                .filter(|r| r.status == 200 && r.body.contains(&marker))
            },
        )
        .map(|_| ())
    }

    /// Step 1.
    fn users_and_a_reap(&mut self) -> Result<(), String> {
        let alice = self.enter("alice-token", "alice")?;
        self.enter("bob-token", "bob")?;
        let reaped = "sum(traefiker_reaps_total{reason=\"idle\"})";
        let from = Instant::now();
        // alice's requests move Traefik's counter for her narrative between reaper cycles;
        // bob's narrative sees nothing.
        loop {
            self.visit("alice-token", &alice, "alice", Duration::from_secs(2))
                .map_err(|e| format!("alice lost her narrative while using it: {e}"))?;
            if self.prometheus.value(reaped).is_some_and(|n| n >= 1.0) {
                break;
            }
            if from.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "Prometheus saw no idle reap within 30 s ({reaped} = {:?})",
                    self.prometheus.value(reaped)
                ));
            }
            sleep(Duration::from_millis(400));
        }
        let users = self
            .prometheus
            .value("max(traefiker_user_narratives)")
            .unwrap_or(-1.0);
        if users != 1.0 {
            return Err(format!(
                "after bob's reap Prometheus sees {users} users' narratives, want alice's alone"
            ));
        }
        eprintln!(
            "e2e --observe:     bob's idle narrative reaped {:.1?} after the users arrived, alice's kept",
            from.elapsed()
        );
        Ok(())
    }

    /// Step 2: every rule of the file is loaded and its last evaluation succeeded.
    fn rules_healthy(&mut self) -> Result<(), String> {
        let want = promql::rules()?;
        // Evaluated at least once since the reap.
        sleep(Duration::from_millis(1500));
        let loaded = self.prometheus.rules()?;
        if loaded.len() != want.len() {
            return Err(format!(
                "Prometheus loaded {} rules, the file has {}",
                loaded.len(),
                want.len()
            ));
        }
        let broken: Vec<String> = loaded
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| {
                format!(
                    "{} ({}: {})",
                    r["name"].as_str().unwrap_or("?"),
                    r["health"],
                    r["lastError"].as_str().unwrap_or("")
                )
            })
            .collect();
        if !broken.is_empty() {
            return Err(format!("rules that failed: {broken:?}"));
        }
        eprintln!(
            "e2e --observe:     {} rules loaded, each evaluated without error",
            loaded.len()
        );
        Ok(())
    }

    /// Step 3.
    fn every_query_answers(&mut self) -> Result<(), String> {
        let mut queries: Vec<Query> = promql::rules()?;
        queries.extend(promql::panels()?);
        let stored = self.prometheus.names()?;
        let mut problems = Vec::new();
        let mut counts = [0usize; 3];
        for q in &queries {
            let answer = self.prometheus.query(&q.expr);
            let series = match answer {
                Ok(series) => series,
                Err(e) => {
                    problems.push(format!("{}: {e}", q.name));
                    continue;
                }
            };
            match q.kind {
                Kind::Record => {
                    counts[0] += 1;
                    let recorded = self.prometheus.query(&q.name).unwrap_or_default();
                    if series.is_empty() || recorded.is_empty() {
                        problems.push(format!(
                            "recording rule {} answers {} series and has recorded {}",
                            q.name,
                            series.len(),
                            recorded.len()
                        ));
                    }
                }
                Kind::Alert => counts[1] += 1,
                Kind::Panel => {
                    counts[2] += 1;
                    if series.is_empty() {
                        problems.push(format!("panel {} shows nothing: {}", q.name, q.expr));
                    }
                }
            }
            for name in promql::metric_names(&q.expr)? {
                if !stored.contains(&name) {
                    problems.push(format!(
                        "{} reads {name}, which Prometheus has not stored",
                        q.name
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("\n  "));
        }
        eprintln!(
            "e2e --observe:     {} recording rules, {} alert expressions, {} dashboard queries answered",
            counts[0], counts[1], counts[2]
        );
        Ok(())
    }

    /// Step 4.
    fn an_alert_fires(&mut self) -> Result<(), String> {
        let from = Instant::now();
        self.gate.close();
        let firing = wait_for(
            "TraefikerActivityUnreadable to fire",
            Duration::from_secs(30),
            || {
                self.prometheus.alerts().ok()?.into_iter().find(|a| {
                    a["labels"]["alertname"] == "TraefikerActivityUnreadable"
                        && a["labels"]["source"] == "traefik"
                        && a["state"] == "firing"
                })
            },
        )?;
        eprintln!(
            "e2e --observe:     {:.1?} after the metrics page went: {}",
            from.elapsed(),
            firing["annotations"]["summary"].as_str().unwrap_or("?")
        );
        Ok(())
    }

    /// Step 5.
    fn alerts_page(&mut self) -> Result<(), String> {
        let page = self.prometheus.alerts_page();
        if !page.ends_with("/classic/alerts") {
            return Err(format!(
                "this Prometheus serves no classic alerts page (only {page}); the picture is taken \
                 of Debian's package's (apt-get install prometheus): put it first on PATH"
            ));
        }
        let png = screenshot(&self.dir, &page, "TraefikerActivityUnreadable")?;
        let shot = self.dir.join("prometheus-alerts.png");
        std::fs::write(&shot, &png).map_err(|e| format!("{}: {e}", shot.display()))?;
        eprintln!("e2e --observe:     screenshot in {}", shot.display());
        if self.docs {
            let doc = workspace_root().join("docs/img/prometheus-alerts.png");
            std::fs::write(&doc, &png).map_err(|e| format!("{}: {e}", doc.display()))?;
            eprintln!("e2e --observe:     and in {}", doc.display());
        }
        Ok(())
    }
}

/// Prometheus's classic alerts page in headless Chromium, the firing `alert` opened with its
/// annotations shown: the PNG.
fn screenshot(dir: &Path, url: &str, alert: &str) -> Result<Vec<u8>, String> {
    use fantoccini::{ClientBuilder, Locator};

    let (chromium, chromedriver) = crate::e2e_browser::browser()?;
    let port = free_port()?;
    let mut cmd = Command::new(&chromedriver);
    cmd.arg(format!("--port={port}"));
    let _driver = Proc::spawn("chromedriver", cmd, &dir.join("chromedriver.log"))?;
    let driver = format!("http://127.0.0.1:{port}/");
    let http = agent();
    wait_for("chromedriver to answer", Duration::from_secs(15), || {
        get(&http, &format!("{driver}status"), &[])
            .ok()
            .filter(|r| r.status == 200)
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1200,1300"],
            },
        });
        let Value::Object(caps) = caps else {
            return Err("capabilities are not an object".to_owned());
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver)
            .await
            .map_err(|e| format!("no browser session from chromedriver: {e}"))?;
        let result = async {
            client
                .goto(url)
                .await
                .map_err(|e| format!("opening {url}: {e}"))?;
            let header = client
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::XPath(&format!(
                    "//tr[contains(@class,'alert_header')][.//b[text()='{alert}']]"
                )))
                .await
                .map_err(|e| format!("{url} does not list {alert}: {e}"))?;
            let text = header.text().await.map_err(|e| e.to_string())?;
            if !text.contains("(1 active)") {
                return Err(format!("{url} shows {text:?}, want 1 active"));
            }
            header.click().await.map_err(|e| e.to_string())?;
            if let Ok(toggle) = client.find(Locator::Css("button.show-annotations")).await {
                toggle.click().await.map_err(|e| e.to_string())?;
            }
            client
                .screenshot()
                .await
                .map_err(|e| format!("screenshot: {e}"))
        }
        .await;
        let _ = client.close().await;
        result
    })
}

/// `demo --observe`: the local demo with a Prometheus beside it; prints where to look.
pub fn demo_prometheus(stack: &Stack) -> Result<Prometheus, String> {
    let binaries = rules::binaries()?;
    let prometheus = Prometheus::start(&stack.dir, &binaries, stack.ports, "5s")?;
    println!();
    println!("  Prometheus: {}", prometheus.url("/"));
    println!("          alerts: {}", prometheus.alerts_page());
    println!("          it scrapes traefiker and Traefik every 5 s with {RULES} loaded;");
    println!("          Grafana: import deploy/grafana/traefiker.json (docs/observability.md).");
    Ok(prometheus)
}
