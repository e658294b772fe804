//! Issue 13, "nothing leaks, nobody gets in", over real sockets: who may read
//! `/traefik/dynamic`, what polls and probes cost the backend, remembered rejections, the
//! per-address limit of failed logins, the capacity page, and the headers of what a
//! browser keeps. Distinct client addresses come from `X-Forwarded-For` with the test
//! client (127.0.0.1) as a trusted proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Harness, IMAGE};
use reqwest::StatusCode;
use traefiker_core::testing::Op;
use traefiker_core::{Narrative, NarrativeKind, NarrativeState, ServiceName, SessionId};

const PROVIDER_TOKEN: &str = "provider-token-0123456789abcdef";
/// A session the in-memory backend reports with an address, so it gets a route.
const SESSION: &str = "0123456789abcdef0123456789abcdef";

fn with_address(h: &Harness) {
    h.manager.insert(Narrative {
        id: String::new(),
        name: ServiceName::new("narrative-carol-8c1d4e").unwrap(),
        session: SessionId::parse(SESSION).unwrap(),
        image: IMAGE.into(),
        kind: NarrativeKind::User,
        state: NarrativeState::Running,
        origin: None,
        replica: None,
        owner: None,
        version: None,
        address: Some("http://127.0.0.1:9".into()),
        public_endpoints: vec![],
        created: None,
    });
}

/// `/traefik/dynamic` as the holder of the provider token, once it lists carol.
async fn provider_doc(h: &Harness) -> String {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let r = h
                .get("/traefik/dynamic")
                .bearer_auth(PROVIDER_TOKEN)
                .send()
                .await
                .unwrap();
            if r.status() == StatusCode::OK {
                let body = r.text().await.unwrap();
                if body.contains(SESSION) {
                    return body;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the provider lists carol in time")
}

#[tokio::test]
async fn the_provider_answers_only_its_network_or_its_token() {
    let h = Harness::start(&[
        ("traefik_provider", "true"),
        ("traefik_provider_ipnetwork", "10.0.0.0/8"),
        ("traefik_provider_token", PROVIDER_TOKEN),
    ])
    .await;
    with_address(&h);
    // Made behind this replica's back: the next listing (the reconciler's) brings it in.
    h.state.lifecycle.narratives().await.unwrap();
    h.state.kept.refresh().await;
    assert!(provider_doc(&h).await.contains("narrative-carol-8c1d4e"));
    let lowercase = h
        .get("/traefik/dynamic")
        .header("Authorization", format!("bearer {PROVIDER_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        lowercase.status(),
        StatusCode::OK,
        "the scheme is case-insensitive"
    );

    let denied = [
        h.get("/traefik/dynamic"),
        // The peer is not a trusted proxy: its X-Forwarded-For counts for nothing.
        h.get("/traefik/dynamic")
            .header("X-Forwarded-For", "10.1.1.1"),
        h.get("/traefik/dynamic").bearer_auth("wrong"),
        h.get("/traefik/dynamic")
            .bearer_auth(format!("{PROVIDER_TOKEN}x")),
        h.get("/traefik/dynamic")
            .bearer_auth(&PROVIDER_TOKEN[..PROVIDER_TOKEN.len() - 1]),
        h.get("/traefik/dynamic")
            .header("Authorization", PROVIDER_TOKEN),
        h.get("/traefik/dynamic")
            .header("Cookie", format!("kbase_session={PROVIDER_TOKEN}")),
    ];
    for rb in denied {
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body = r.text().await.unwrap();
        assert!(!body.contains(SESSION) && !body.contains("carol"), "{body}");
    }
    h.stop().await;

    let h = Harness::start(&[
        ("traefik_provider", "true"),
        ("traefik_provider_ipnetwork", "10.0.0.0/8"),
        ("trusted_proxies", "127.0.0.1/32"),
    ])
    .await;
    h.wait_ready().await;
    let through_proxy = h
        .get("/traefik/dynamic")
        .header("X-Forwarded-For", "10.1.1.1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        through_proxy.status(),
        StatusCode::OK,
        "a trusted proxy's X-Forwarded-For"
    );
    let other = h
        .get("/traefik/dynamic")
        .header("X-Forwarded-For", "192.0.2.1")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    h.stop().await;
}

#[tokio::test]
async fn the_provider_is_off_unless_the_backend_routes_through_it_or_it_is_asked_for() {
    // The harness's backend is not the local one, and traefik_provider is unset.
    let h = Harness::start(&[]).await;
    let r = h.get("/traefik/dynamic").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    h.stop().await;
}

#[tokio::test]
async fn provider_polls_and_readiness_probes_cost_no_backend_call() {
    let h = Harness::start(&[("traefik_provider", "true")]).await;
    with_address(&h);
    // Made behind this replica's back: the next listing (the reconciler's) brings it in.
    h.state.lifecycle.narratives().await.unwrap();
    h.state.kept.refresh().await;
    let lists = h.manager.calls(Op::List);
    let verifies = h.manager.calls(Op::Verify);
    for _ in 0..200 {
        let r = h.get("/traefik/dynamic").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains(SESSION));
        assert_eq!(
            h.get("/readyz").send().await.unwrap().status(),
            StatusCode::OK
        );
    }
    // Routes come from what the lifecycle keeps: no listing for any of the polls.
    assert_eq!(
        h.manager.calls(Op::List),
        lists,
        "{} listings",
        h.manager.calls(Op::List) - lists
    );
    assert_eq!(h.manager.calls(Op::Verify), verifies);
    h.stop().await;
}

#[tokio::test]
async fn a_rejected_token_is_remembered_and_not_sent_to_auth2_again() {
    let h = Harness::start(&[]).await;
    for _ in 0..5 {
        let r = h.open("/narrative/x", "expired-token").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let asked = h
        .auth2
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| {
            r.headers
                .get("Authorization")
                .is_some_and(|v| v == "expired-token")
        })
        .count();
    assert_eq!(asked, 1);
    let metrics = h
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("traefiker_auth_rejections_remembered_total 4"),
        "{metrics}"
    );
    h.stop().await;
}

async fn open_from(h: &Harness, token: &str, address: &str) -> reqwest::Response {
    h.get("/narrative/x")
        .header("Cookie", format!("kbase_session={token}"))
        .header("X-Forwarded-For", address)
        .send()
        .await
        .unwrap()
}

fn auth2_asked(requests: &[wiremock::Request], token: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.headers.get("Authorization").is_some_and(|v| v == token))
        .count()
}

#[tokio::test]
async fn guessing_is_limited_per_address_and_never_slows_users_with_valid_tokens() {
    let h = Harness::start(&[
        ("auth_failures_per_minute", "3"),
        ("trusted_proxies", "127.0.0.1/32"),
        // Nothing answered from the success cache: the limit alone decides.
        ("auth_cache_secs", "0"),
    ])
    .await;
    const GUESSER: &str = "198.51.100.7";
    // alice logs in from the guesser's address before the guessing starts (a shared NAT).
    assert_eq!(
        open_from(&h, "alice-token", GUESSER).await.status(),
        StatusCode::CREATED
    );

    for i in 1..=3 {
        let r = open_from(&h, &format!("guess-{i}"), GUESSER).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "guess {i}");
    }
    let over = open_from(&h, "guess-4", GUESSER).await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(over.headers()["cache-control"], "no-store");
    let body = over.text().await.unwrap();
    assert!(body.contains("Too many failed logins"), "{body}");
    common::reference_in(&body);

    let blocked = open_from(&h, "guess-5", GUESSER).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let requests = h.auth2.received_requests().await.unwrap();
    assert_eq!(
        auth2_asked(&requests, "guess-5"),
        0,
        "a blocked address costs auth2 nothing"
    );

    // Users elsewhere, and a user of this address whose token auth2 accepted before, pass.
    assert_eq!(
        open_from(&h, "admin-token", "192.0.2.10").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        open_from(&h, "alice-token", GUESSER).await.status(),
        StatusCode::CREATED
    );
    let requests = h.auth2.received_requests().await.unwrap();
    assert_eq!(
        auth2_asked(&requests, "alice-token"),
        2,
        "still validated each time"
    );

    // IPv6 guessers count per /64: another address of the same /64 is the same client.
    for i in 1..=4 {
        open_from(&h, &format!("v6-guess-{i}"), &format!("2001:db8:0:1::{i}")).await;
    }
    let same_64 = open_from(&h, "v6-guess-5", "2001:db8:0:1:ffff::5").await;
    assert_eq!(same_64.status(), StatusCode::TOO_MANY_REQUESTS);

    let metrics = h
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("traefiker_auth_throttled_total"),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test]
async fn the_reload_page_is_not_kept_nor_referred_and_loads_nothing() {
    let h = Harness::start(&[]).await;
    let r = h.open("/narrative/ws.1.obj.2", "alice-token").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let login = h.get("/narrative/x").send().await.unwrap();
    assert_eq!(login.status(), StatusCode::FOUND);
    assert_eq!(login.headers()["cache-control"], "no-store");
    h.stop().await;
}

#[tokio::test]
async fn at_capacity_is_its_own_503_page_and_is_counted() {
    let h = Harness::start(&[]).await;
    let user = traefiker_core::UserId::new("bob").unwrap();
    let response = traefiker_server::routes::connect::connect_failed(
        &h.state,
        &user,
        &traefiker_core::Error::AtCapacity { limit: 1 },
    );
    assert_eq!(response.status().as_u16(), 503);
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.starts_with("KBase is at capacity, try again in a few minutes."),
        "{body}"
    );
    common::reference_in(&body);
    let metrics = h
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("traefiker_capacity_refusals_total 1"),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_new_user_past_max_narratives_gets_the_capacity_page_and_nothing_is_created() {
    let h = Harness::start(&[("max_narratives", "1"), ("num_prespawn", "0")]).await;
    assert_eq!(
        h.open("/narrative/x", "alice-token").await.status(),
        StatusCode::CREATED
    );
    let before = h.manager.containers().len();
    let r = h.open("/narrative/x", "admin-token").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().await.unwrap().starts_with("KBase is at capacity"));
    assert_eq!(h.manager.containers().len(), before, "nothing created");
    assert_eq!(h.manager.calls(Op::Create), 1);
    assert_eq!(
        h.open("/narrative/x", "alice-token").await.status(),
        StatusCode::CREATED,
        "existing users are unaffected"
    );
    h.stop().await;
}
