//! Deadlines (SPEC §6a, issue 10): a hung or slow Rancher costs each operation at most its
//! deadline, retries included, and the answer is `Unavailable` naming the URL that did not
//! answer, never a credential. Plain wiremock mocks answering with the fixtures, delayed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{bounded, fixture, json, name};

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;
use traefiker_core::{
    Assignment, ContainerManager, ManagerError, Narrative, NarrativeKind, NarrativeState, Origin,
    Owner, SessionId, SpawnSpec, UserId,
};
use traefiker_rancher::{RancherConfig, RancherManager, RetryPolicy};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer};

/// The deadline of one operation in these tests.
const OPERATION: Duration = Duration::from_millis(600);
/// The deadline of a whole listing in these tests.
const LISTING: Duration = Duration::from_millis(900);
/// How late an answer may come after its deadline: scheduling on a loaded machine, not
/// another request or retry (each of which would take at least a delay below).
const MARGIN: Duration = Duration::from_millis(350);
/// Longer than any test: a Rancher that does not answer.
const HUNG: Duration = Duration::from_secs(30);

/// Generous retries, so that only the deadline can stop them.
fn config(server: &MockServer) -> RancherConfig {
    let mut config = common::config(
        server,
        RetryPolicy {
            max_retries: 50,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
        },
    );
    config.timeouts.request = OPERATION;
    config.timeouts.list = LISTING;
    config
}

fn manager(server: &MockServer) -> RancherManager {
    RancherManager::new(config(server)).unwrap()
}

fn candidate() -> Narrative {
    Narrative {
        id: "1s33".into(),
        name: name("narrativepre-1f2e3d"),
        session: SessionId::parse("1f2e3d7a9c0b4e6f8a1d3c5e7b9f0a2c").unwrap(),
        image: "kbase/narrative:5.4.3".into(),
        kind: NarrativeKind::Prespawned,
        state: NarrativeState::Running,
        origin: None,
        replica: None,
        owner: None,
        version: None,
        address: None,
        public_endpoints: vec![],
        created: None,
    }
}

fn origin() -> Origin {
    Origin {
        client_ip: Some("203.0.113.77".into()),
        at: chrono::DateTime::from_timestamp_millis(1_633_365_902_530).unwrap(),
    }
}

fn assignment() -> Assignment {
    Assignment {
        name: name("narrative-dave-bfcdf3"),
        owner: Owner::of(&UserId::new("dave").unwrap()),
        origin: origin(),
    }
}

fn spec() -> SpawnSpec {
    let session = SessionId::parse("0b7e4d1a9c3f6e2b8d5a1c7f4e0b9d3a").unwrap();
    SpawnSpec {
        name: name("narrative-erin-2a4b17"),
        labels: Default::default(),
        session,
        image: "kbase/narrative:5.4.3".into(),
        kind: NarrativeKind::User,
        env: Default::default(),
        origin: Some(origin()),
        owner: Some(Owner::of(&UserId::new("erin").unwrap())),
    }
}

/// The prespawned service `1s33` as listed.
fn pre(server: &MockServer) -> Value {
    fixture("stack-services.json", server)["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "1s33")
        .unwrap()
        .clone()
}

/// Runs `op`, checks it failed `Unavailable` within `deadline` (plus the margin), naming
/// `url_part` and no credential; returns the error's text.
async fn unavailable_in_time<T: std::fmt::Debug>(
    deadline: Duration,
    url_part: &str,
    op: impl Future<Output = Result<T, ManagerError>>,
) -> String {
    let started = Instant::now();
    let result = bounded(op).await;
    let elapsed = started.elapsed();
    let err = result.expect_err("a hung Rancher is an error");
    assert!(matches!(err, ManagerError::Unavailable { .. }), "{err:?}");
    assert!(
        elapsed < deadline + MARGIN,
        "answered after {elapsed:?}, deadline {deadline:?}"
    );
    let text = err.to_string();
    assert!(text.contains(url_part), "{text}");
    assert!(!text.contains("FAKEACCESSKEY"), "{text}");
    assert!(!text.contains("fake-secret-key"), "{text}");
    text
}

#[tokio::test]
async fn find_on_a_hung_rancher_is_unavailable_within_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json(200, fixture("services-by-name.json", &server)).set_delay(HUNG))
        .mount(&server)
        .await;
    let text = unavailable_in_time(
        OPERATION,
        &format!("{}/v2-beta/projects/1a5/service?name=", server.uri()),
        manager(&server).find(&name("narrative-alice-522b27")),
    )
    .await;
    assert!(text.contains("timed out"), "{text}");
}

#[tokio::test]
async fn assign_whose_read_hangs_is_unavailable_within_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services/1s33"))
        .respond_with(json(200, pre(&server)).set_delay(HUNG))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(json(200, fixture("service-renamed.json", &server)))
        .expect(0)
        .mount(&server)
        .await;
    unavailable_in_time(
        OPERATION,
        "/v2-beta/projects/1a5/services/1s33",
        manager(&server).assign(&candidate(), &assignment()),
    )
    .await;
}

/// The read and the rename share one deadline: a slow read leaves the rename only the rest. (A
/// deadline per request would let it run for `read` + `OPERATION`, past the margin.)
#[tokio::test]
async fn assign_whose_rename_hangs_is_unavailable_within_one_deadline_for_both() {
    let server = MockServer::start().await;
    let read = Duration::from_millis(400);
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services/1s33"))
        .respond_with(json(200, pre(&server)).set_delay(read))
        .expect(1)
        .mount(&server)
        .await;
    // A rename is never retried: it may have happened.
    Mock::given(method("PUT"))
        .and(path("/v2-beta/projects/1a5/services/1s33"))
        .respond_with(json(200, fixture("service-renamed.json", &server)).set_delay(HUNG))
        .expect(1)
        .mount(&server)
        .await;
    let text = unavailable_in_time(
        OPERATION,
        "PUT",
        manager(&server).assign(&candidate(), &assignment()),
    )
    .await;
    assert!(
        text.contains("/v2-beta/projects/1a5/services/1s33"),
        "{text}"
    );
}

#[tokio::test]
async fn create_on_a_hung_rancher_is_unavailable_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2-beta/projects/1a5/service"))
        .respond_with(json(201, fixture("service-created.json", &server)).set_delay(HUNG))
        .expect(1)
        .mount(&server)
        .await;
    unavailable_in_time(OPERATION, "POST", manager(&server).create(&spec())).await;
}

#[tokio::test]
async fn mark_connected_on_a_hung_rancher_is_unavailable_within_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(json(200, pre(&server)).set_delay(HUNG))
        .expect(1)
        .mount(&server)
        .await;
    unavailable_in_time(
        OPERATION,
        "/v2-beta/projects/1a5/services/1s33",
        manager(&server).mark_connected(&candidate(), &origin()),
    )
    .await;
}

#[tokio::test]
async fn remove_on_a_hung_rancher_is_unavailable_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/v2-beta/projects/1a5/services/1s33"))
        .respond_with(json(200, fixture("service-removed.json", &server)).set_delay(HUNG))
        .expect(1)
        .mount(&server)
        .await;
    unavailable_in_time(OPERATION, "DELETE", manager(&server).remove(&candidate())).await;
}

/// The whole listing has one deadline, longer than an operation's: page 1 is slow but within
/// it, page 2 never answers, and the listing fails when the listing deadline ends.
#[tokio::test]
async fn a_listing_whose_second_page_hangs_is_unavailable_within_the_listing_deadline() {
    let server = MockServer::start().await;
    let page1 = Duration::from_millis(400);
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services"))
        .and(query_param("stackId", "1st5"))
        .and(query_param_is_missing("marker"))
        .respond_with(json(200, fixture("stack-services-page1.json", &server)).set_delay(page1))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services"))
        .and(query_param("marker", "m5"))
        .respond_with(json(200, fixture("stack-services-page2.json", &server)).set_delay(HUNG))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.page_size = 5;
    let m = RancherManager::new(config).unwrap();
    unavailable_in_time(LISTING, "marker=m5", m.list()).await;
}

/// Each page answers within an operation's deadline, yet together they exceed the listing's:
/// the listing still ends at its own deadline.
#[tokio::test]
async fn slow_pages_cannot_stretch_a_listing_past_its_deadline() {
    let server = MockServer::start().await;
    let each = Duration::from_millis(500);
    assert!(each < OPERATION && 2 * each > LISTING);
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services"))
        .and(query_param_is_missing("marker"))
        .respond_with(json(200, fixture("stack-services-page1.json", &server)).set_delay(each))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services"))
        .and(query_param("marker", "m5"))
        .respond_with(json(200, fixture("stack-services-page2.json", &server)).set_delay(each))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.page_size = 5;
    let m = RancherManager::new(config).unwrap();
    unavailable_in_time(LISTING, "marker=m5", m.list()).await;
}

#[tokio::test]
async fn a_transient_503_is_retried_to_success_within_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            json(503, fixture("error-500.json", &server)).set_delay(Duration::from_millis(100)),
        )
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(json(200, fixture("services-by-name.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let started = Instant::now();
    let found = bounded(manager(&server).find(&name("narrative-alice-522b27"))).await;
    assert!(matches!(found, Ok(Some(_))), "{found:?}");
    assert!(started.elapsed() < OPERATION, "{:?}", started.elapsed());
}

/// Failures that each take a while stop being retried at the deadline, whatever
/// `max_retries` allows, and the last failure is the answer.
#[tokio::test]
async fn slow_failures_stop_being_retried_at_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            json(503, fixture("error-500.json", &server)).set_delay(Duration::from_millis(200)),
        )
        .mount(&server)
        .await;
    let text = unavailable_in_time(
        OPERATION,
        "/v2-beta/projects/1a5/service?name=",
        manager(&server).find(&name("narrative-alice-522b27")),
    )
    .await;
    let asked = server.received_requests().await.unwrap().len();
    // 200 ms each plus backoff: at most 3 fit in 600 ms, never the 51 allowed.
    assert!((2..=3).contains(&asked), "{asked} requests: {text}");
}

#[tokio::test]
async fn verify_has_one_deadline_for_its_three_reads() {
    let server = MockServer::start().await;
    let each = Duration::from_millis(250);
    for (p, f) in [
        ("/v2-beta", "api-root.json"),
        ("/v2-beta/projects/1a5", "project.json"),
        ("/v2-beta/projects/1a5/stacks/1st5", "stacks.json"),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(json(200, fixture(f, &server)).set_delay(each))
            .mount(&server)
            .await;
    }
    assert!(3 * each > OPERATION);
    unavailable_in_time(
        OPERATION,
        "/v2-beta/projects/1a5/stacks/1st5",
        manager(&server).verify(),
    )
    .await;
}
