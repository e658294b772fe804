//! Wire-level tests against plain wiremock mocks answering with the fixtures: every call's
//! method, path, query and body, basic auth, pagination, the escaped-slash wire form, and the
//! error variant of each failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{bounded, fixture, fixture_text, json, name};

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime};
use traefiker_core::{
    Assignment, ContainerManager, ManagerError, Narrative, NarrativeKind, NarrativeState, Origin,
    Owner, Routing, RuleSyntax, SessionId, SpawnSpec, UserId,
};
use traefiker_rancher::{RancherConfig, RancherManager, RetryPolicy};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Basic auth of `FAKEACCESSKEY:fake-secret-key`.
const AUTH: &str = "Basic RkFLRUFDQ0VTU0tFWTpmYWtlLXNlY3JldC1rZXk=";

fn config(server: &MockServer) -> RancherConfig {
    let mut config = common::config(
        server,
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        },
    );
    config.timeouts.request = Duration::from_millis(500);
    config.meta_url = format!("{}/metadata/", server.uri());
    config
}

fn manager(server: &MockServer) -> RancherManager {
    RancherManager::new(config(server)).unwrap()
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.fZ")
        .unwrap()
        .and_utc()
}

fn waiting(id: &str, n: &str, session: &str) -> Narrative {
    Narrative {
        id: id.into(),
        name: name(n),
        session: SessionId::parse(session).unwrap(),
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

#[tokio::test]
async fn find_reads_the_escaped_slash_wire_form_with_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/service"))
        .and(query_param("name", "narrative-alice-522b27"))
        .and(header("authorization", AUTH))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture_text("services-by-name.wire.json", &server),
            "application/json; charset=utf-8",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let found = bounded(manager(&server).find(&name("narrative-alice-522b27")))
        .await
        .unwrap()
        .expect("alice's narrative");
    assert_eq!(found.id, "1s31");
    assert_eq!(found.session.expose(), "8f3a1c9e2b7d4f6a0c5e9b1d3f7a2c4e");
    assert_eq!(found.kind, NarrativeKind::User);
    assert_eq!(found.state, NarrativeState::Running);
    assert_eq!(found.image, "kbase/narrative:5.4.3");
    assert_eq!(
        found.address.as_deref(),
        Some("http://narrative-alice-522b27.narratives:8888")
    );
    let origin = found.origin.expect("description parsed");
    assert_eq!(origin.client_ip.as_deref(), Some("198.51.100.23"));
    assert_eq!(
        found.created,
        DateTime::from_timestamp_millis(1_633_360_927_000)
    );
}

#[tokio::test]
async fn find_of_an_unknown_name_is_none() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/service"))
        .and(query_param("name", "narrative-erin-2a4b17"))
        .respond_with(json(200, fixture("services-by-name-empty.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let found = bounded(manager(&server).find(&name("narrative-erin-2a4b17"))).await;
    assert_eq!(found, Ok(None));
}

#[tokio::test]
async fn list_follows_pagination_next_and_keeps_only_narratives() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services"))
        .and(query_param("stackId", "1st5"))
        .and(query_param("limit", "5"))
        .and(query_param_is_missing("marker"))
        .and(header("authorization", AUTH))
        .respond_with(json(200, fixture("stack-services-page1.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services"))
        .and(query_param("stackId", "1st5"))
        .and(query_param("marker", "m5"))
        .respond_with(json(200, fixture("stack-services-page2.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.page_size = 5;
    let listed = bounded(RancherManager::new(config).unwrap().list())
        .await
        .unwrap();
    let names: Vec<&str> = listed.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "narrative-alice-522b27",
            "narrative-bob-smith-79a783",
            "narrativepre-1f2e3d",
            "narrativepre-a0b1c2",
            "narrativepre-5e0d8b",
            "narrative-kbasetest-2807ff"
        ]
    );
    let kinds: Vec<NarrativeKind> = listed.iter().map(|n| n.kind).collect();
    assert_eq!(kinds[1], NarrativeKind::User);
    assert_eq!(kinds[2], NarrativeKind::Prespawned);
    assert_eq!(listed[5].image, "kbase/narrative:5.4.2");
}

#[tokio::test]
async fn list_reads_an_unpaginated_collection_in_one_call() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services"))
        .respond_with(json(200, fixture("stack-services.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let listed = bounded(manager(&server).list()).await.unwrap();
    assert_eq!(listed.len(), 6);
}

/// `healthState` decides whether an `active` service is `Running`: only those may be handed
/// to a user. The fixture's services with the health states Rancher computes for a service.
#[tokio::test]
async fn health_decides_whether_an_active_narrative_is_running() {
    let server = MockServer::start().await;
    let mut services = fixture("stack-services.json", &server);
    for s in services["data"].as_array_mut().unwrap() {
        let health = match s["id"].as_str().unwrap() {
            "1s33" => "initializing",
            "1s34" => "unhealthy",
            "1s35" => "reinitializing",
            "1s32" => "degraded",
            _ => continue,
        };
        s["healthState"] = health.into();
    }
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services"))
        .respond_with(json(200, services))
        .expect(1)
        .mount(&server)
        .await;
    let listed = bounded(manager(&server).list()).await.unwrap();
    let state = |id: &str| {
        listed
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.state.clone())
            .unwrap()
    };
    assert_eq!(state("1s31"), NarrativeState::Running, "healthy");
    assert_eq!(state("1s33"), NarrativeState::Starting);
    assert_eq!(state("1s35"), NarrativeState::Starting);
    assert_eq!(state("1s34"), NarrativeState::Other("unhealthy".into()));
    assert_eq!(state("1s32"), NarrativeState::Other("degraded".into()));
    // The fixture's zombie: its container stopped after starting once.
    assert_eq!(state("1s36"), NarrativeState::Stopped);
    let running: Vec<&str> = listed
        .iter()
        .filter(|n| n.state == NarrativeState::Running)
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(running, ["1s31"]);
}

fn erin_spec() -> SpawnSpec {
    let session = SessionId::parse("0b7e4d1a9c3f6e2b8d5a1c7f4e0b9d3a").unwrap();
    let routing = Routing::new(
        vec!["ci.kbase.us".into()],
        vec!["web".into()],
        RuleSyntax::V2,
    )
    .unwrap();
    SpawnSpec {
        name: name("narrative-erin-2a4b17"),
        labels: routing.labels("erin-2a4b17", &session),
        session,
        image: "kbase/narrative:5.4.3".into(),
        kind: NarrativeKind::User,
        env: [
            ("CONFIG_ENV".to_owned(), "ci".to_owned()),
            (
                "VERSION_CHECK".to_owned(),
                "https://ci.kbase.us/narrative_version".to_owned(),
            ),
        ]
        .into(),
        origin: Some(Origin {
            client_ip: Some("198.51.100.77".into()),
            at: at("2021-10-04T16:46:12.095531Z"),
        }),
        owner: Some(owner("erin")),
    }
}

fn owner(user: &str) -> Owner {
    Owner::of(&UserId::new(user).unwrap())
}

#[tokio::test]
async fn create_posts_the_spec_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2-beta/projects/1a5/service"))
        .and(header("authorization", AUTH))
        .and(header("content-type", "application/json"))
        .and(body_json(fixture("service-create-request.json", &server)))
        .respond_with(json(201, fixture("service-created.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let created = bounded(manager(&server).create(&erin_spec()))
        .await
        .unwrap();
    assert_eq!(created.id, "1s37");
    assert_eq!(created.name.as_str(), "narrative-erin-2a4b17");
    assert_eq!(created.state, NarrativeState::Starting);
    assert_eq!(created.kind, NarrativeKind::User);
}

#[tokio::test]
async fn create_of_a_taken_name_is_name_taken_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json(422, fixture("error-422-notunique.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let err = bounded(manager(&server).create(&erin_spec()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ManagerError::NameTaken { ref name, .. } if name == "narrative-erin-2a4b17"),
        "{err:?}"
    );
}

#[tokio::test]
async fn create_is_not_retried_on_500() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json(500, fixture("error-500.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let err = bounded(manager(&server).create(&erin_spec()))
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::Unavailable { .. }), "{err:?}");
}

/// The created service is not of the configured image, so it is removed by its id before the
/// error; Rancher still busy creating it answers 409 (nothing done), and the removal is asked
/// again.
#[tokio::test]
async fn a_created_service_that_is_not_a_narrative_is_removed_even_while_busy() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2-beta/projects/1a5/service"))
        .respond_with(json(201, fixture("service-created.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2-beta/projects/1a5/services/1s37"))
        .respond_with(json(409, fixture("error-409.json", &server)))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2-beta/projects/1a5/services/1s37"))
        .respond_with(json(200, fixture("service-removed.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.image_name = "kbase/notebook".into();
    let err = bounded(RancherManager::new(config).unwrap().create(&erin_spec()))
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::Rejected { .. }), "{err:?}");
    assert!(err.to_string().contains("1s37"), "{err}");
}

#[tokio::test]
async fn assign_reads_the_service_then_puts_name_and_description_to_its_self_link() {
    let server = MockServer::start().await;
    let services = fixture("stack-services.json", &server);
    let pre = services["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "1s33")
        .unwrap()
        .clone();
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services/1s33"))
        .respond_with(json(200, pre))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2-beta/projects/1a5/services/1s33"))
        .and(header("authorization", AUTH))
        .and(header("content-type", "application/json"))
        .and(body_json(fixture("service-rename-request.json", &server)))
        .respond_with(json(200, fixture("service-renamed.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let candidate = waiting(
        "1s33",
        "narrativepre-1f2e3d",
        "1f2e3d7a9c0b4e6f8a1d3c5e7b9f0a2c",
    );
    let assignment = Assignment {
        name: name("narrative-dave-bfcdf3"),
        owner: owner("dave"),
        origin: Origin {
            client_ip: Some("203.0.113.77".into()),
            at: at("2021-10-04T16:45:02.530917Z"),
        },
    };
    let assigned = bounded(manager(&server).assign(&candidate, &assignment))
        .await
        .unwrap();
    assert_eq!(assigned.name.as_str(), "narrative-dave-bfcdf3");
    assert_eq!(assigned.session, candidate.session);
    assert_eq!(assigned.kind, NarrativeKind::User);
    assert_eq!(assigned.state, NarrativeState::Updating);
    assert_eq!(
        assigned.owner,
        Some(owner("dave")),
        "the owner is read back"
    );
}

#[tokio::test]
async fn assign_of_a_vanished_candidate_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services/1s33"))
        .respond_with(json(404, fixture("error-404.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let candidate = waiting(
        "1s33",
        "narrativepre-1f2e3d",
        "1f2e3d7a9c0b4e6f8a1d3c5e7b9f0a2c",
    );
    let assignment = Assignment {
        name: name("narrative-dave-bfcdf3"),
        owner: owner("dave"),
        origin: Origin {
            client_ip: None,
            at: at("2021-10-04T16:45:02.530917Z"),
        },
    };
    let err = bounded(manager(&server).assign(&candidate, &assignment))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ManagerError::NotFound { ref name, .. } if name == "narrativepre-1f2e3d"),
        "{err:?}"
    );
}

#[tokio::test]
async fn remove_deletes_the_service_and_404_is_success() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/v2-beta/projects/1a5/services/1s36"))
        .and(header("authorization", AUTH))
        .respond_with(json(200, fixture("service-removed.json", &server)))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2-beta/projects/1a5/services/1s36"))
        .respond_with(json(404, fixture("error-404.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let zombie = waiting(
        "1s36",
        "narrative-kbasetest-2807ff",
        "6d2f9a4c1e8b3d7f0a5c2e9b4d1f8a6c",
    );
    let m = manager(&server);
    assert_eq!(bounded(m.remove(&zombie)).await, Ok(()));
    assert_eq!(bounded(m.remove(&zombie)).await, Ok(()));
}

#[tokio::test]
async fn zombies_keep_only_narratives_of_the_stack() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/service"))
        .and(query_param("healthState", "started-once"))
        .respond_with(json(200, fixture("services-started-once.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let zombies = bounded(manager(&server).zombies()).await.unwrap();
    let ids: Vec<&str> = zombies.iter().map(|z| z.id.as_str()).collect();
    assert_eq!(ids, ["1s36"]);
}

async fn find_error(server: &MockServer) -> ManagerError {
    bounded(manager(server).find(&name("narrative-alice-522b27")))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn unauthorized_is_rejected_without_the_credentials_in_the_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json(401, fixture("error-401.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let err = find_error(&server).await;
    assert!(matches!(err, ManagerError::Rejected { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("401") && text.contains("rancher_password"),
        "{text}"
    );
    assert!(
        !text.contains("fake-secret-key") && !text.contains("FAKEACCESSKEY"),
        "{text}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json(500, fixture("error-500.json", &server)))
        .expect(3)
        .mount(&server)
        .await;
    let err = find_error(&server).await;
    assert!(matches!(err, ManagerError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("500"), "{err}");
}

#[tokio::test]
async fn a_transient_failure_is_retried_to_success() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json(503, fixture("error-500.json", &server)))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(json(200, fixture("services-by-name.json", &server)))
        .expect(1)
        .mount(&server)
        .await;
    let found = bounded(manager(&server).find(&name("narrative-alice-522b27"))).await;
    assert!(matches!(found, Ok(Some(_))), "{found:?}");
}

#[tokio::test]
async fn a_malformed_body_is_rejected() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("<html>", "text/html"))
        .expect(1)
        .mount(&server)
        .await;
    let err = find_error(&server).await;
    assert!(matches!(err, ManagerError::Rejected { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_rancher_is_unavailable() {
    let server = MockServer::start().await;
    let mut config = config(&server);
    config.env_url = Some("http://127.0.0.1:9/v2-beta/projects/1a5".into());
    config.retry = RetryPolicy::none();
    let err = bounded(RancherManager::new(config).unwrap().list())
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::Unavailable { .. }), "{err:?}");
}

async fn mount_discovery_world(server: &MockServer) {
    for (p, f) in [
        ("/v2-beta", "api-root.json"),
        ("/v2-beta/projects", "projects.json"),
        ("/v2-beta/projects/1a5", "project.json"),
        ("/v2-beta/projects/1a5/stacks", "stacks.json"),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .and(header("authorization", AUTH))
            .respond_with(json(200, fixture(f, server)))
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn discovery_learns_environment_and_stack_from_metadata() {
    let server = MockServer::start().await;
    mount_discovery_world(&server).await;
    for (p, f) in [
        ("environment_name", "metadata-environment_name.txt"),
        ("name", "metadata-stack_name.txt"),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/metadata/2016-07-29/self/stack/{p}")))
            .respond_with(ResponseTemplate::new(200).set_body_string(fixture_text(f, &server)))
            .expect(2)
            .mount(&server)
            .await;
    }
    for url in [
        format!("{}/v2-beta", server.uri()),
        format!("{}/v2-beta/", server.uri()),
    ] {
        let mut config = config(&server);
        config.url = url;
        config.env_url = None;
        config.stack_id = None;
        config.stack_name = None;
        let m = bounded(RancherManager::discover(config)).await.unwrap();
        assert_eq!(
            m.env_url(),
            format!("{}/v2-beta/projects/1a5", server.uri())
        );
        assert_eq!(m.stack_id(), "1st5");
        assert_eq!(m.stack_name(), "narratives");
    }
    // Metadata never receives the API key.
    for request in server.received_requests().await.unwrap() {
        if request.url.path().starts_with("/metadata/") {
            assert!(!request.headers.contains_key("authorization"));
        }
    }
}

#[tokio::test]
async fn discovery_names_the_setting_when_metadata_is_missing() {
    let server = MockServer::start().await;
    mount_discovery_world(&server).await;
    Mock::given(method("GET"))
        .and(path("/metadata/2016-07-29/self/stack/environment_name"))
        .respond_with(ResponseTemplate::new(404).set_body_string("Not found\n"))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.env_url = None;
    let err = bounded(RancherManager::discover(config)).await.unwrap_err();
    assert_eq!(err.setting(), "rancher_env_url");
    assert!(err.to_string().contains("set rancher_env_url"), "{err}");
}

#[tokio::test]
async fn discovery_with_a_bad_key_names_the_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json(401, fixture("error-401.json", &server)))
        .mount(&server)
        .await;
    let err = bounded(RancherManager::discover(config(&server)))
        .await
        .unwrap_err();
    assert_eq!(err.setting(), "rancher_password");
}

#[tokio::test]
async fn discovery_of_an_unknown_stack_names_the_stack_setting() {
    let server = MockServer::start().await;
    mount_discovery_world(&server).await;
    let mut config = config(&server);
    config.stack_id = None;
    config.stack_name = Some("nosuchstack".into());
    let err = bounded(RancherManager::discover(config)).await.unwrap_err();
    assert_eq!(err.setting(), "rancher_stack_id");
}

#[tokio::test]
async fn the_manager_never_shows_its_credentials() {
    let server = MockServer::start().await;
    let m = manager(&server);
    let shown = format!("{m:?}");
    assert!(!shown.contains("fake-secret-key"), "{shown}");
    assert!(!shown.contains("FAKEACCESSKEY"), "{shown}");
}

/// The Python-made service 1s31 (alice's), as listed.
fn python_made(server: &MockServer) -> serde_json::Value {
    fixture("stack-services.json", server)["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "1s31")
        .unwrap()
        .clone()
}

#[tokio::test]
async fn stamp_owner_reads_the_description_again_then_puts_it_with_the_owner() {
    let server = MockServer::start().await;
    let service = python_made(&server);
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services/1s31"))
        .respond_with(json(200, service.clone()))
        .expect(1)
        .mount(&server)
        .await;
    let alice = owner("alice");
    let description =
        format!("client-ip:198.51.100.23 timestamp:2021-10-04T15:22:07.412853Z owner:{alice}");
    let mut stamped = service.clone();
    stamped["description"] = description.clone().into();
    Mock::given(method("PUT"))
        .and(path("/v2-beta/projects/1a5/services/1s31"))
        .and(header("authorization", AUTH))
        .and(body_json(serde_json::json!({ "description": description })))
        .respond_with(json(200, stamped))
        .expect(1)
        .mount(&server)
        .await;
    let m = manager(&server);
    let mut narrative = waiting(
        "1s31",
        "narrative-alice-522b27",
        "6a0c4d2e8f1b3a5c7e9d0b2f4a6c8e1d",
    );
    narrative.kind = NarrativeKind::User;
    let result = bounded(m.stamp_owner(&narrative, &alice)).await.unwrap();
    assert_eq!(result.owner, Some(alice));
    assert_eq!(
        result.origin.unwrap().client_ip.as_deref(),
        Some("198.51.100.23"),
        "the Python fields are kept"
    );
}

#[tokio::test]
async fn stamp_owner_of_a_service_another_owner_stamped_since_is_refused_without_a_write() {
    let server = MockServer::start().await;
    let mut service = python_made(&server);
    service["description"] = format!(
        "client-ip:198.51.100.23 timestamp:2021-10-04T15:22:07.412853Z owner:{}",
        owner("alice")
    )
    .into();
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services/1s31"))
        .respond_with(json(200, service))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(json(500, serde_json::json!({})))
        .expect(0)
        .mount(&server)
        .await;
    let mut narrative = waiting(
        "1s31",
        "narrative-alice-522b27",
        "6a0c4d2e8f1b3a5c7e9d0b2f4a6c8e1d",
    );
    narrative.kind = NarrativeKind::User;
    let err = bounded(manager(&server).stamp_owner(&narrative, &owner("alice.")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ManagerError::OwnedByAnother { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_client_address_cannot_forge_an_owner_in_the_description() {
    let server = MockServer::start().await;
    let mut service = python_made(&server);
    // What a client-ip header with no whitespace could inject: the owner record is always the
    // description's last field, so a forged one inside the address is never read.
    service["description"] = format!(
        "client-ip:1.2.3.4owner:{} timestamp:2021-10-04T15:22:07.412853Z",
        owner("mallory")
    )
    .into();
    Mock::given(method("GET"))
        .and(path("/v2-beta/projects/1a5/services/1s31"))
        .respond_with(json(200, service))
        .mount(&server)
        .await;
    let mut narrative = waiting(
        "1s31",
        "narrative-alice-522b27",
        "6a0c4d2e8f1b3a5c7e9d0b2f4a6c8e1d",
    );
    narrative.kind = NarrativeKind::User;
    // No PUT is mounted: a stamp must first see "no owner" and try to write (404 from the
    // mock server), never "owned by mallory".
    let err = bounded(manager(&server).stamp_owner(&narrative, &owner("alice")))
        .await
        .unwrap_err();
    assert!(
        !matches!(err, ManagerError::OwnedByAnother { .. }),
        "{err:?}"
    );
}
