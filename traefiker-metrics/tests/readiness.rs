//! Jupyter's status as the pool's readiness check, with the real lifecycle: a waiting
//! narrative that does not answer is never handed out, and is replaced once the ready timeout
//! passes; one that answers is.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use traefiker_core::testing::{InMemoryManager, ManualClock};
use traefiker_core::{
    ConnectOutcome, Lifecycle, LifecycleConfig, Naming, NarrativeKind, Readiness, UserId, Visit,
};
use traefiker_metrics::{NarrativeStatus, NarrativeStatusConfig};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const IMAGE: &str = "kbase/narrative:5.4.3";
const READY_WITHIN: Duration = Duration::from_secs(60);

fn status_source() -> NarrativeStatus {
    NarrativeStatus::new(NarrativeStatusConfig {
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        ..NarrativeStatusConfig::default()
    })
    .unwrap()
}

/// The narratives' Jupyter answers its status with `status`.
async fn jupyter_answers(server: &MockServer, status: u16) {
    server.reset().await;
    let body = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jupyter/status-fresh.json"),
    )
    .unwrap();
    Mock::given(method("GET"))
        .and(path("/narrative/api/status"))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
        .mount(server)
        .await;
}

fn waiting(manager: &InMemoryManager) -> Vec<String> {
    manager
        .containers()
        .into_iter()
        .filter(|n| n.kind == NarrativeKind::Prespawned)
        .map(|n| n.id)
        .collect()
}

#[tokio::test]
async fn a_waiting_narrative_that_does_not_answer_is_not_handed_out_and_is_replaced() {
    let jupyter = MockServer::start().await;
    jupyter_answers(&jupyter, 503).await;
    let manager = Arc::new(InMemoryManager::new(Naming::default()));
    manager.set_address(Some(jupyter.uri()));
    let clock = Arc::new(ManualClock::default());
    let lifecycle = Lifecycle::builder(
        manager.clone(),
        LifecycleConfig {
            pool_size: 1,
            ready_timeout: READY_WITHIN,
            ..LifecycleConfig::default()
        },
    )
    .clock(clock.clone())
    .readiness(Arc::new(status_source()))
    .image(Some(IMAGE.to_owned()))
    .build();

    let report = lifecycle.fill_pool().await.unwrap();
    assert_eq!((report.created, report.waiting, report.unready), (1, 1, 1));
    let first = waiting(&manager);
    assert_eq!(first.len(), 1);

    let alice = lifecycle
        .connect(&UserId::new("alice").unwrap(), Visit::default())
        .await
        .unwrap();
    assert_eq!(
        alice.outcome,
        ConnectOutcome::Created,
        "a narrative whose Jupyter answers 503 must not be given to a user"
    );
    assert_eq!(waiting(&manager), first, "the unready one is still waiting");

    // Not ready within the bound: removed and replaced.
    clock.advance(READY_WITHIN + Duration::from_secs(1));
    let report = lifecycle.fill_pool().await.unwrap();
    assert_eq!(
        (report.excess_removed, report.created),
        (1, 1),
        "{report:?}"
    );
    let second = waiting(&manager);
    assert_eq!(second.len(), 1);
    assert_ne!(second, first, "the narrative that never answered is gone");
    // And the operator is told why, with the likely cause.
    assert_eq!(lifecycle.pool_unready(), 1);
    let warning = lifecycle.pool_unready_warning().unwrap();
    assert_eq!(warning.address.as_deref(), Some(jupyter.uri().as_str()));
    assert!(warning.answer.contains("503"), "{warning:?}");
    assert!(
        warning.likely_cause.contains("set ready_check = backend"),
        "{warning:?}"
    );

    // Its replacement answers: it is handed out.
    jupyter_answers(&jupyter, 200).await;
    let report = lifecycle.fill_pool().await.unwrap();
    assert_eq!((report.waiting, report.unready), (1, 0), "{report:?}");
    assert_eq!(lifecycle.pool_unready(), 0, "the check works again");
    assert_eq!(lifecycle.pool_unready_warning(), None);
    let bob = lifecycle
        .connect(&UserId::new("bob").unwrap(), Visit::default())
        .await
        .unwrap();
    assert_eq!(bob.outcome, ConnectOutcome::Assigned);
}

#[tokio::test]
async fn a_narrative_without_an_address_is_as_ready_as_its_backend_says() {
    let manager = InMemoryManager::new(Naming::default());
    let lifecycle = Lifecycle::builder(Arc::new(manager), LifecycleConfig::default())
        .image(Some(IMAGE.to_owned()))
        .build();
    lifecycle.fill_pool().await.unwrap();
    let any = lifecycle.status().remove(0).narrative;
    assert!(any.address.is_none());
    assert_eq!(status_source().check(&any).await, Ok(()));
}

#[tokio::test]
async fn an_address_that_refuses_connections_is_not_ready() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let manager = InMemoryManager::new(Naming::default());
    manager.set_address(Some(address.clone()));
    let lifecycle = Lifecycle::builder(Arc::new(manager), LifecycleConfig::default())
        .image(Some(IMAGE.to_owned()))
        .build();
    lifecycle.fill_pool().await.unwrap();
    let any = lifecycle.status().remove(0).narrative;
    let why = status_source().check(&any).await.unwrap_err();
    assert!(why.contains(&address), "names the address it asked: {why}");
}
