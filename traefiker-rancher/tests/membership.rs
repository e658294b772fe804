//! `RancherMembership` (SPEC §9, issue 11): identity and peers from rancher-metadata, over
//! wiremock answering with the metadata fixtures, and over `FakeRancher`'s metadata. Every
//! failure is an error (peers unknown), never an empty or partial list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::bounded;

use std::time::{Duration, Instant};

use traefiker_core::{ManagerError, Membership, ReplicaId};
use traefiker_rancher::testing::{FakeRancher, PeerForm, DEFAULT_REPLICA};
use traefiker_rancher::{Credentials, RancherConfig, RancherMembership, RetryPolicy};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NAME: &str = "/metadata/2016-07-29/self/container/name";
const CONTAINERS: &str = "/metadata/2016-07-29/self/service/containers";
const DEADLINE: Duration = Duration::from_millis(500);

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).expect("fixture exists")
}

/// rancher-metadata labels every answer `text/plain`, JSON included.
fn text(status: u16, body: impl Into<String>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.into(), "text/plain; charset=utf-8")
}

/// With the API key set, to show it is never sent to metadata.
fn membership(meta: &str) -> RancherMembership {
    let mut config = RancherConfig::new("http://rancher.example:8080/v2-beta")
        .with_credentials(Credentials::new("FAKEACCESSKEY", "fake-secret-key"));
    config.meta_url = meta.to_owned();
    config.timeouts.request = DEADLINE;
    config.retry = RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    };
    RancherMembership::new(&config).unwrap()
}

fn ids(names: &[&str]) -> Vec<ReplicaId> {
    names.iter().map(|n| ReplicaId::new(*n).unwrap()).collect()
}

async fn no_credentials_sent(server: &MockServer) {
    let requests = server.received_requests().await.unwrap();
    assert!(!requests.is_empty());
    assert!(requests
        .iter()
        .all(|r| !r.headers.contains_key("authorization")));
}

#[tokio::test]
async fn identity_is_this_containers_name_asked_anonymously() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(NAME))
        .respond_with(text(200, "traefiker-traefiker-1"))
        .expect(1)
        .mount(&server)
        .await;
    let m = membership(&format!("{}/metadata/", server.uri()));
    let id = bounded(m.identity()).await.unwrap();
    assert_eq!(id, Some(ReplicaId::new("traefiker-traefiker-1").unwrap()));
    no_credentials_sent(&server).await;
}

#[tokio::test]
async fn peers_read_the_names_only_form() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(CONTAINERS))
        .and(header("accept", "application/json"))
        .respond_with(text(200, fixture("metadata-service-containers-v1.json")))
        .expect(1)
        .mount(&server)
        .await;
    let m = membership(&format!("{}/metadata/", server.uri()));
    let peers = bounded(m.peers()).await.unwrap();
    assert_eq!(
        peers,
        ids(&["traefiker_traefiker_1", "traefiker_traefiker_2"])
    );
    no_credentials_sent(&server).await;
}

#[tokio::test]
async fn peers_read_the_object_form() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(CONTAINERS))
        .and(header("accept", "application/json"))
        .respond_with(text(200, fixture("metadata-service-containers-v2.json")))
        .expect(1)
        .mount(&server)
        .await;
    // `rancher_meta` without its trailing slash works the same.
    let m = membership(&format!("{}/metadata", server.uri()));
    let peers = bounded(m.peers()).await.unwrap();
    assert_eq!(
        peers,
        ids(&["traefiker-traefiker-1", "traefiker-traefiker-2"])
    );
}

/// Metadata's 404 (text and JSON forms), a body that is not the list, a list with no
/// container, a name that is not a replica id (even one among good ones: skipping it would
/// make a live replica look gone): each is an error, never a list.
#[tokio::test]
async fn every_unusable_answer_is_an_error() {
    let cases: [(&str, ResponseTemplate); 8] = [
        (NAME, text(404, fixture("metadata-not-found.txt"))),
        (NAME, text(200, "")),
        (NAME, text(200, "<html>not a name</html>")),
        (CONTAINERS, text(404, fixture("metadata-not-found.json"))),
        (CONTAINERS, text(200, "0=traefiker-traefiker-1\n")),
        (CONTAINERS, text(200, "[]")),
        (
            CONTAINERS,
            text(200, r#"["traefiker-1", {"uuid": "no name"}]"#),
        ),
        (CONTAINERS, text(200, r#"["traefiker-1", "bad name/2"]"#)),
    ];
    for (key, answer) in cases {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(key))
            .respond_with(answer)
            .mount(&server)
            .await;
        let m = membership(&format!("{}/metadata/", server.uri()));
        let result = if key == NAME {
            bounded(m.identity()).await.map(|_| ())
        } else {
            bounded(m.peers()).await.map(|_| ())
        };
        let err = result.expect_err(key);
        assert!(
            matches!(err, ManagerError::Rejected { .. }),
            "{key}: {err:?}"
        );
    }
}

#[tokio::test]
async fn metadata_down_or_hung_is_unavailable_within_the_deadline() {
    // Nothing listens on port 9 (discard) here.
    let down = membership("http://127.0.0.1:9/");
    assert!(matches!(
        bounded(down.identity()).await,
        Err(ManagerError::Unavailable { .. })
    ));
    assert!(matches!(
        bounded(down.peers()).await,
        Err(ManagerError::Unavailable { .. })
    ));

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            text(200, fixture("metadata-service-containers-v2.json"))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    let hung = membership(&format!("{}/metadata/", server.uri()));
    for peers in [true, false] {
        let started = Instant::now();
        let err = if peers {
            bounded(hung.peers()).await.map(|_| ()).unwrap_err()
        } else {
            bounded(hung.identity()).await.map(|_| ()).unwrap_err()
        };
        assert!(matches!(err, ManagerError::Unavailable { .. }), "{err:?}");
        assert!(started.elapsed() < DEADLINE + Duration::from_millis(350));
    }
}

#[tokio::test]
async fn the_fake_answers_identity_and_peers_in_both_forms() {
    let fake = bounded(FakeRancher::start()).await;
    let m = RancherMembership::new(&fake.config()).unwrap();
    assert_eq!(
        bounded(m.identity()).await.unwrap(),
        Some(ReplicaId::new(DEFAULT_REPLICA).unwrap())
    );
    assert_eq!(bounded(m.peers()).await.unwrap(), ids(&[DEFAULT_REPLICA]));

    fake.set_identity(Some("traefiker-traefiker-2"));
    fake.set_peers(Some(&["traefiker-traefiker-1", "traefiker-traefiker-2"]));
    let both = ids(&["traefiker-traefiker-1", "traefiker-traefiker-2"]);
    for form in [PeerForm::Names, PeerForm::Objects] {
        fake.set_peer_form(form);
        assert_eq!(bounded(m.peers()).await.unwrap(), both, "{form:?}");
    }
    assert_eq!(
        bounded(m.identity()).await.unwrap(),
        Some(ReplicaId::new("traefiker-traefiker-2").unwrap())
    );
    // Without a JSON `Accept`, metadata lists `index=name` lines, as rancher-metadata does.
    let listing = bounded(async {
        reqwest::get(format!(
            "{}2016-07-29/self/service/containers",
            fake.meta_url()
        ))
        .await?
        .text()
        .await
    })
    .await
    .unwrap();
    assert_eq!(
        listing,
        "0=traefiker-traefiker-1\n1=traefiker-traefiker-2\n"
    );

    // Outside Rancher, or metadata without an answer for this container: unknown.
    fake.set_identity(None);
    fake.set_peers(None);
    assert!(bounded(m.identity()).await.is_err());
    assert!(bounded(m.peers()).await.is_err());
    assert!(fake
        .calls()
        .iter()
        .any(|c| c == &format!("GET {CONTAINERS}")));
}
