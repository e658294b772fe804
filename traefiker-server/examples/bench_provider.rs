//! `/traefik/dynamic` and the admin status at 10,000 narratives (run by `cargo xtask bench`):
//! the real server on 127.0.0.1 over the in-memory backend holding 10,000 user narratives
//! with addresses. Prints what one background refresh costs (rendering what the lifecycle
//! keeps), then what pollers get from the kept answer: time to the response head and to the
//! whole body, p50/p99; the admin's `/narrative_status/` the same way; and how many backend
//! calls all those requests caused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use traefiker_core::testing::{InMemoryManager, Op, ScriptedActivity};
use traefiker_core::ReplicaId;
use traefiker_core::{
    MemoryStore, Narrative, NarrativeKind, NarrativeState, ServiceName, SessionId,
};
use traefiker_server::app::run;
use traefiker_server::auth::StaticTokens;
use traefiker_server::background::ImageSource;
use traefiker_server::config::{Config, Layer, Secret, StaticToken};
use traefiker_server::replica::Replica;
use traefiker_server::state::AppState;

const NARRATIVES: usize = 10_000;
const POLLS: usize = 2_000;
const POLLERS: usize = 4;
const ADMIN_TOKEN: &str = "bench-admin-token";

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

/// `POLLS` GETs of `url` by `pollers` concurrent clients: elapsed, and sorted times to the
/// response head and to the whole body.
async fn poll(
    client: &reqwest::Client,
    url: &str,
    pollers: usize,
    body_len: usize,
) -> (Duration, Vec<Duration>, Vec<Duration>) {
    let started = Instant::now();
    let workers: Vec<_> = (0..pollers)
        .map(|_| {
            let client = client.clone();
            let url = url.to_owned();
            tokio::spawn(async move {
                let mut heads = Vec::new();
                let mut wholes = Vec::new();
                for _ in 0..POLLS / pollers {
                    let t = Instant::now();
                    let r = client.get(&url).send().await.unwrap();
                    heads.push(t.elapsed());
                    assert_eq!(r.bytes().await.unwrap().len(), body_len);
                    wholes.push(t.elapsed());
                }
                (heads, wholes)
            })
        })
        .collect();
    let (mut heads, mut wholes) = (Vec::new(), Vec::new());
    for w in workers {
        let (h, b) = w.await.unwrap();
        heads.extend(h);
        wholes.extend(b);
    }
    let elapsed = started.elapsed();
    heads.sort();
    wholes.sort();
    (elapsed, heads, wholes)
}

#[tokio::main]
async fn main() {
    let layer: Layer = [
        ("num_prespawn", "0"),
        ("image_tag", "5.4.3"),
        ("traefik_provider", "true"),
        ("log_level", "ERROR"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = Config::from_layers(&[layer]).unwrap();
    let manager = Arc::new(InMemoryManager::new(config.naming.clone()));
    for i in 0..NARRATIVES {
        manager.insert(Narrative {
            id: String::new(),
            name: ServiceName::new(format!("narrative-user{i}-abcdef")).unwrap(),
            session: SessionId::generate(),
            image: "kbase/narrative:5.4.3".into(),
            kind: NarrativeKind::User,
            state: NarrativeState::Running,
            origin: None,
            replica: None,
            owner: None,
            version: None,
            address: Some(format!("http://10.42.{}.{}:8888", i / 250, i % 250)),
            public_endpoints: vec![],
            created: None,
        });
    }
    let state = AppState::new(
        config,
        manager.clone(),
        vec![Arc::new(ScriptedActivity::new("traefik"))],
        None,
        Arc::new(MemoryStore::new()),
        Arc::new(StaticTokens::new(vec![StaticToken {
            token: Secret::new(ADMIN_TOKEN),
            user: "kbadmin".into(),
            roles: vec!["KBASE_ADMIN".into()],
        }])),
        Arc::new(traefiker_core::SystemClock),
        ImageSource::Fixed("kbase/narrative:5.4.3".into()),
        Some("kbase/narrative:5.4.3".into()),
        Replica::solo(ReplicaId::new("bench").unwrap()),
    );
    let kept = state.kept.clone();
    let started = Instant::now();
    let listed = state.lifecycle.narratives().await.unwrap();
    let listing = started.elapsed();
    let started = Instant::now();
    let doc = traefiker_server::render::dynamic::dynamic_config(
        &state.config.routing,
        state.lifecycle.manager().as_ref(),
        &state.config.traefik_self_url,
        &listed,
        false,
    )
    .unwrap();
    println!(
        "of which: listing {:.1} ms, rendering {:.1} ms ({} bytes)",
        listing.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e3,
        doc.len()
    );
    let started = Instant::now();
    let rounds = 5;
    for _ in 0..rounds {
        kept.refresh().await;
    }
    let body_len = kept.snapshot().dynamic.as_ref().map_or(0, |b| b.len());
    println!(
        "one refresh (render the {NARRATIVES} narratives the lifecycle keeps, no backend call): {:.1} ms; answer {:.1} MB",
        started.elapsed().as_secs_f64() * 1e3 / rounds as f64,
        body_len as f64 / 1e6
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/traefik/dynamic", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, state, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    while !client
        .get(&url)
        .send()
        .await
        .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let snapshots = 100_000;
    let t = Instant::now();
    for _ in 0..snapshots {
        std::hint::black_box(kept.snapshot().dynamic.clone());
    }
    println!(
        "the handler's work (read the kept answer, share its bytes): {:.0} ns",
        t.elapsed().as_secs_f64() * 1e9 / snapshots as f64
    );
    let lists = manager.calls(Op::List);
    for pollers in [1, POLLERS] {
        let (elapsed, heads, wholes) = poll(&client, &url, pollers, body_len).await;
        println!(
            "{POLLS} polls by {pollers} poller(s) in {:.2} s: response head p50 {:.3} ms p99 {:.3} ms; whole {:.1} MB body p50 {:.2} ms p99 {:.2} ms",
            elapsed.as_secs_f64(),
            percentile(&heads, 0.5),
            percentile(&heads, 0.99),
            body_len as f64 / 1e6,
            percentile(&wholes, 0.5),
            percentile(&wholes, 0.99),
        );
    }
    let calls_before: usize = manager.all_calls().values().sum();
    let status_url = url.replace("/traefik/dynamic", "/narrative_status/");
    let mut heads = Vec::new();
    let started = Instant::now();
    let mut status_len = 0;
    for _ in 0..200 {
        let t = Instant::now();
        let r = client
            .get(&status_url)
            .header("Cookie", format!("kbase_session={ADMIN_TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        let body = r.bytes().await.unwrap();
        status_len = body.len();
        heads.push(t.elapsed());
    }
    heads.sort();
    println!(
        "admin /narrative_status/ at {NARRATIVES} narratives ({:.1} MB JSON), 200 requests in {:.2} s: whole answer p50 {:.2} ms p99 {:.2} ms",
        status_len as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        percentile(&heads, 0.5),
        percentile(&heads, 0.99),
    );
    println!(
        "backend listings during the polls: {}; backend calls during the status requests: {}",
        manager.calls(Op::List) - lists,
        manager.all_calls().values().sum::<usize>() - calls_before
    );
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
