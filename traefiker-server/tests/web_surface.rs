//! Issue 19 against the web surface, over real sockets: failed logins are limited per client
//! and never per proxy, every `X-Forwarded-For` line counts, the demo's front door exists
//! only with the local backend, and no cache keeps an answer that carries a session id or a
//! token (SPEC §10).
//!
//! The test client connects from 127.0.0.1: as Traefik would when `trusted_proxies` does not
//! name it, or as a trusted proxy when it does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Harness;
use reqwest::StatusCode;
use wiremock::matchers::{header_regex, method, path};
use wiremock::{Mock, ResponseTemplate};

/// A request for `/narrative/x` with `token`, sent on behalf of `chain` (one
/// `X-Forwarded-For` line each).
async fn open_via(h: &Harness, token: &str, chain: &[&str]) -> reqwest::Response {
    let mut rb = h
        .get("/narrative/x")
        .header("Cookie", format!("kbase_session={token}"));
    for line in chain {
        rb = rb.header("X-Forwarded-For", *line);
    }
    rb.send().await.unwrap()
}

/// auth2 accepts every token starting `valid-` as alice's: a user who has just logged in to
/// KBase again brings a token the gate has never seen.
async fn fresh_valid_tokens(h: &Harness) {
    Mock::given(method("GET"))
        .and(path("/api/V2/me"))
        .and(header_regex("Authorization", "^valid-"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(include_str!("fixtures/me-ok.json"), "application/json"),
        )
        .with_priority(1)
        .mount(&h.auth2)
        .await;
}

#[tokio::test]
async fn bad_tokens_through_a_proxy_never_stop_a_valid_user_behind_it() {
    // The defaults: 20 failures a minute, no trusted proxy. Traefik (here, the test client)
    // forwards for many clients under one address.
    let h = Harness::start(&[("auth_cache_secs", "0")]).await;
    fresh_valid_tokens(&h).await;
    const BAD: usize = 300;
    const EVERY: usize = 10;
    let mut logins = 0;
    for i in 1..=BAD {
        let bad = open_via(
            &h,
            &format!("guess-{i}"),
            &[&format!("198.51.100.{}", i % 250)],
        )
        .await;
        assert_eq!(bad.status(), StatusCode::FORBIDDEN, "bad token {i}");
        if i % EVERY == 0 {
            let valid = open_via(&h, &format!("valid-{i}"), &["192.0.2.10"]).await;
            assert_eq!(
                valid.status(),
                StatusCode::CREATED,
                "a valid user behind the proxy after {i} bad tokens"
            );
            logins += 1;
        }
    }
    // A bad token sent again is answered from memory: it costs auth2 nothing.
    let again = open_via(&h, "guess-1", &["198.51.100.1"]).await;
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    let asked = h
        .auth2
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| {
            r.headers
                .get("Authorization")
                .is_some_and(|v| v == "guess-1")
        })
        .count();
    assert_eq!(asked, 1, "a rejected token is remembered");
    eprintln!(
        "through an untrusted proxy: {BAD} bad tokens, {logins} logins with fresh valid tokens among them, every one 201"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_direct_client_sending_bad_tokens_still_gets_429() {
    let h = Harness::start(&[("auth_failures_per_minute", "5")]).await;
    for i in 1..=5 {
        let r = open_via(&h, &format!("guess-{i}"), &[]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "guess {i}");
    }
    assert_eq!(
        open_via(&h, "guess-6", &[]).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    h.stop().await;
}

#[tokio::test]
async fn only_the_trusted_end_of_every_forwarded_line_names_the_client() {
    // The client forges a first line; the trusted proxy appends its own line with the
    // address it saw. Only that one may decide, for /reaper/, the provider and the limit.
    const FORGED: &str = "198.51.100.66";
    const SEEN: &str = "203.0.113.5";
    let h = Harness::start(&[
        ("trusted_proxies", "127.0.0.1/32"),
        ("reaper_ipnetwork", "198.51.100.66/32"),
        ("traefik_provider", "true"),
        ("traefik_provider_ipnetwork", "198.51.100.66/32"),
        ("auth_failures_per_minute", "5"),
    ])
    .await;
    let reaper = h
        .get("/reaper/")
        .header("X-Forwarded-For", FORGED)
        .header("X-Forwarded-For", SEEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reaper.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        reaper.text().await.unwrap(),
        format!("Reaper error: access denied from IP {SEEN}")
    );
    let provider = h
        .get("/traefik/dynamic")
        .header("X-Forwarded-For", FORGED)
        .header("X-Forwarded-For", SEEN)
        .send()
        .await
        .unwrap();
    assert_eq!(provider.status(), StatusCode::FORBIDDEN);
    // A guesser who forges a new first line each time is still one client.
    for i in 1..=5 {
        let r = open_via(&h, &format!("guess-{i}"), &[&format!("192.0.2.{i}"), SEEN]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "guess {i}");
    }
    let over = open_via(&h, "guess-6", &["192.0.2.99", SEEN]).await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    // The one line a trusted proxy writes still names its client.
    let allowed = h
        .get("/reaper/")
        .header("X-Forwarded-For", FORGED)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    h.stop().await;
}

#[tokio::test]
async fn the_front_door_is_the_local_backends_only() {
    let h = Harness::start(&[
        ("rancher_url", "http://rancher.invalid/v2-beta"),
        ("auth_tokens", "admin-token:kbadmin:KBASE_ADMIN"),
        ("allow_static_tokens", "true"),
    ])
    .await;
    let login = h
        .client
        .post(format!("{}/login", h.base))
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[("user", "kbadmin")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::NOT_FOUND);
    assert!(login.headers().get("set-cookie").is_none());
    for page in ["/", "/load-narrative.html?n=ws.1.obj.2"] {
        assert_eq!(
            h.get(page).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn no_cache_keeps_an_answer_that_carries_a_session_or_a_token() {
    let h = Harness::start(&[("traefik_provider", "true")]).await;
    let created = h.open("/narrative/ws.1.obj.2", "alice-token").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(created.headers().get("set-cookie").is_some());
    let status_json = h.open("/narrative_status/", "admin-token").await;
    let status_page = h
        .with_token(h.get("/narrative_status/"), "admin-token")
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    let anonymous = h.get("/narrative_status/").send().await.unwrap();
    h.wait_ready().await;
    let dynamic = h.get("/traefik/dynamic").send().await.unwrap();
    for (what, r) in [
        ("the 201 with the session cookie", created),
        ("the status JSON of an administrator", status_json),
        ("the status page", status_page),
        ("the status JSON of anyone", anonymous),
        ("/traefik/dynamic", dynamic),
    ] {
        assert!(r.status().is_success(), "{what}: {}", r.status());
        assert_eq!(
            r.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{what}"
        );
    }
    // The demo's login answer (local backend): its cookie is the token.
    let demo = Harness::start(&[
        ("local_command", "narrative-standin --port {port}"),
        ("auth_tokens", "alice-token:alice"),
    ])
    .await;
    let login = demo
        .client
        .post(format!("{}/login", demo.base))
        .form(&[("user", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert!(login.headers().get("set-cookie").is_some());
    assert_eq!(login.headers()["cache-control"], "no-store");
    demo.stop().await;
    h.stop().await;
}
