//! Work a request starts outlives the HTTP server that took the request (SPEC §11): a
//! connect's flight and a `/reaper/` cycle run on the runtime the state was made on, not on
//! an actix worker's, which dies when the server stops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Harness;
use traefiker_core::testing::{InMemoryManager, Op};
use traefiker_core::{ActivityStore, ManagerError, NarrativeKind, SqliteStore, Standing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_that_outlives_its_request_finishes_after_the_server_stopped() {
    // Every call acts 0.9 s after it is made and answers 0.9 s later; a request waits 2 s
    // (rancher_timeout_secs + 1) for its connect. Both of alice's candidates turn out gone
    // (each found so at 0.9 s), so her narrative is created 2.7 s into her connect: after her
    // request stopped waiting, and after the server that took it stopped.
    let h = Harness::start_with(&[("rancher_timeout_secs", "1")], |naming| {
        InMemoryManager::new(naming).with_latency(Duration::from_millis(1800))
    })
    .await;
    let lifecycle = h.state.lifecycle.clone();
    let ready = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let ready = lifecycle
                .status()
                .iter()
                .filter(|e| e.standing == Standing::Waiting { ready: true })
                .count();
            if ready == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(ready.is_ok(), "the pool got ready");
    for _ in 0..2 {
        h.manager.fail_next(
            Op::Assign,
            ManagerError::NotFound {
                backend: "in-memory".into(),
                name: "a candidate".into(),
            },
        );
    }
    // No keep-alive: a connection left open would hold the server's graceful stop.
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = h
        .with_token(
            once.get(format!("{}/narrative/ws.1.obj.2", h.base)),
            "alice-token",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "the request stopped waiting");
    let manager = h.manager.clone();
    h.stop().await;
    let made = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if manager.containers().iter().any(|n| {
                n.kind == NarrativeKind::User && n.name.as_str() == "narrative-alice-522b27"
            }) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        made.is_ok(),
        "alice's narrative was never made: the connect died with the server's workers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_holding_the_stores_write_lock_holds_up_no_request() {
    let dir = std::env::temp_dir().join(format!("traefiker-store-lock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("reaper.db");
    let _ = std::fs::remove_file(&path);
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let h = Harness::start_full(&[], InMemoryManager::new, store.clone()).await;
    // A backup, or sqlite3 at a prompt, takes the write lock and keeps it.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Each first connect records itself as last-seen; none may wait for the lock (SQLite
    // waits 5 s for it before it gives up).
    let answers = futures::future::join_all(
        ["alice-token", "admin-token"].map(|token| h.open("/narrative/ws.1.obj.2", token)),
    );
    let answered = tokio::time::timeout(Duration::from_millis(2500), answers).await;
    other.execute_batch("COMMIT").unwrap();
    let answered = answered.expect("the answers while another process held the store's lock");
    assert!(answered.iter().all(|r| r.status() == 201));
    // Nothing is lost: once the lock is free, the records are written.
    let flushed = tokio::task::spawn_blocking({
        let store = store.clone();
        move || store.flush().and_then(|()| store.load())
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        flushed.contains_key("narrative-alice-522b27"),
        "{flushed:?}"
    );
    h.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
