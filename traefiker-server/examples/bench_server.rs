//! Load figures for the request path (run with `cargo xtask bench-server`): the real server
//! on 127.0.0.1 with in-process fakes (in-memory backend, a counting authenticator behind
//! the real cache), driven by a bounded number of requests from concurrent clients on
//! loopback. Prints requests/s, p50/p99, backend and auth calls per request, RSS, and the
//! server's own CPU per request — the threads actix serves on, read from `/proc`, so the
//! load generator's share is not counted — for a returning user and, in the same run, for
//! the box's no-call answer (`/healthz`): the ratio is the request path's own cost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use traefiker_core::testing::{InMemoryManager, Op, ScriptedActivity};
use traefiker_core::{MemoryStore, ReplicaId};
use traefiker_server::app::run;
use traefiker_server::auth::{AuthError, Authenticator, Identity};
use traefiker_server::background::ImageSource;
use traefiker_server::config::{Config, Layer};
use traefiker_server::replica::Replica;
use traefiker_server::state::AppState;

const RETURNING_REQUESTS: usize = 100_000;
const CONCURRENCY: usize = 64;
const NEW_USERS: usize = 200;

#[derive(Debug, Default)]
struct CountingAuth {
    calls: AtomicUsize,
}

#[async_trait]
impl Authenticator for CountingAuth {
    async fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(Identity {
            user: token.trim_start_matches("token-").to_owned(),
            custom_roles: vec![],
        })
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// CPU time of this process's actix threads (the server's workers and acceptor): what the
/// server spent, not the load generator.
fn server_cpu() -> Duration {
    let ticks_per_sec = 100.0; // Linux USER_HZ
    let mut ticks = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("actix") {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // After the `(comm)` field: state is field 3, utime 14 and stime 15.
            if let Some((_, rest)) = stat.rsplit_once(") ") {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let field = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
                ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
            }
        }
    }
    Duration::from_secs_f64(ticks as f64 / ticks_per_sec)
}

async fn drive(base: &str, tokens: Vec<String>, concurrency: usize) -> (Duration, Vec<Duration>) {
    drive_path(base, "/narrative/ws.1.obj.2", 201, tokens, concurrency).await
}

async fn drive_path(
    base: &str,
    path: &str,
    status: u16,
    tokens: Vec<String>,
    concurrency: usize,
) -> (Duration, Vec<Duration>) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(tokens);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let next = next.clone();
            let tokens = tokens.clone();
            let url = format!("{base}{path}");
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(token) = tokens.get(i) else { break };
                    let t = Instant::now();
                    let r = client
                        .get(&url)
                        .header("Cookie", format!("kbase_session={token}"))
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(r.status(), status);
                    let _ = r.bytes().await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    (elapsed, all)
}

fn report(label: &str, n: usize, elapsed: Duration, latencies: &[Duration]) {
    println!(
        "{label}: {n} requests in {:.2} s = {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        percentile(latencies, 0.50).as_secs_f64() * 1e3,
        percentile(latencies, 0.99).as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let layer: Layer = [
        ("num_prespawn", NEW_USERS.to_string()),
        ("image_tag", "5.4.3".to_owned()),
        ("log_level", "ERROR".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_layers(&[layer]).unwrap();
    let manager = Arc::new(InMemoryManager::new(config.naming.clone()));
    let auth = Arc::new(CountingAuth::default());
    let state = AppState::new(
        config,
        manager.clone(),
        vec![Arc::new(ScriptedActivity::new("traefik"))],
        None,
        Arc::new(MemoryStore::new()),
        auth.clone(),
        Arc::new(traefiker_core::SystemClock),
        ImageSource::Fixed("kbase/narrative:5.4.3".into()),
        Some("kbase/narrative:5.4.3".into()),
        Replica::solo(ReplicaId::new("bench").unwrap()),
    );
    let lifecycle = state.lifecycle.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, state, async {
        let _ = stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(30);
    while lifecycle.pool_waiting() < NEW_USERS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!(
        "RSS idle (server, pool of {NEW_USERS} filled, before any request): {} KiB",
        rss_kib()
    );

    // New users served from the pool: each a distinct user.
    let calls = |op| manager.calls(op);
    let (finds, assigns, creates, lists) = (
        calls(Op::Find),
        calls(Op::Assign),
        calls(Op::Create),
        calls(Op::List),
    );
    let tokens: Vec<String> = (0..NEW_USERS)
        .map(|i| format!("token-newuser{i}"))
        .collect();
    let (elapsed, lat) = drive(&base, tokens, 16).await;
    report("new users from the pool", NEW_USERS, elapsed, &lat);
    println!(
        "  backend calls on the request path per new user: assign {:.2}, find {:.2}, create {:.2}, list {:.2} (the pool filler's refills run in the background)",
        (calls(Op::Assign) - assigns) as f64 / NEW_USERS as f64,
        (calls(Op::Find) - finds) as f64 / NEW_USERS as f64,
        (calls(Op::Create) - creates) as f64 / NEW_USERS as f64,
        (calls(Op::List) - lists) as f64 / NEW_USERS as f64,
    );

    // The box's no-call answer, for scale: same clients, same request count.
    let tokens: Vec<String> = (0..RETURNING_REQUESTS).map(|_| String::new()).collect();
    drive_path(&base, "/healthz", 200, tokens.clone(), CONCURRENCY).await;
    let cpu = server_cpu();
    let (elapsed, lat) = drive_path(&base, "/healthz", 200, tokens, CONCURRENCY).await;
    let no_call = (server_cpu() - cpu).as_secs_f64() / RETURNING_REQUESTS as f64;
    report(
        "no-call answer (/healthz)",
        RETURNING_REQUESTS,
        elapsed,
        &lat,
    );
    println!("  server CPU per request: {:.1} µs", no_call * 1e6);

    // Returning users with a warm auth cache.
    let users = 100;
    let warm: Vec<String> = (0..users).map(|i| format!("token-newuser{i}")).collect();
    drive(&base, warm, 8).await;
    let before = manager.all_calls();
    let auths = auth.calls.load(Ordering::Relaxed);
    let tokens: Vec<String> = (0..RETURNING_REQUESTS)
        .map(|i| format!("token-newuser{}", i % users))
        .collect();
    let cpu = server_cpu();
    let (elapsed, lat) = drive(&base, tokens, CONCURRENCY).await;
    let returning = (server_cpu() - cpu).as_secs_f64() / RETURNING_REQUESTS as f64;
    report(
        "returning users, auth cache warm",
        RETURNING_REQUESTS,
        elapsed,
        &lat,
    );
    let after = manager.all_calls();
    let backend_calls: usize = after
        .iter()
        .map(|(op, n)| n - before.get(op).copied().unwrap_or(0))
        .sum();
    println!(
        "  server CPU per request: {:.1} µs = {:.2}x the no-call answer (target within 1.5x)",
        returning * 1e6,
        returning / no_call
    );
    println!(
        "  backend calls per returning request: {:.3} (any operation, background loops included); auth calls per request: {:.3}",
        backend_calls as f64 / RETURNING_REQUESTS as f64,
        (auth.calls.load(Ordering::Relaxed) - auths) as f64 / RETURNING_REQUESTS as f64,
    );
    println!(
        "RSS after the run (server and load generator in one process): {} KiB",
        rss_kib()
    );
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
