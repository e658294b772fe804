//! Bounded waits over real sockets (SPEC §6a): a dependency that hangs yields the step's
//! error answer within that step's time, and never holds up requests that do not need it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use reqwest::StatusCode;
use traefiker_core::testing::Faults;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn a_hung_auth2_answers_403_within_its_timeout_while_others_are_served() {
    let h = Harness::start(&[]).await;
    // auth2 never answers for this token (the harness gives auth2 2 s).
    Mock::given(method("GET"))
        .and(path("/api/V2/me"))
        .and(header("Authorization", "hung-token"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .with_priority(1)
        .mount(&h.auth2)
        .await;
    let started = Instant::now();
    let hung = tokio::spawn({
        let request = h.with_token(h.get("/narrative/x"), "hung-token");
        async move { request.send().await.unwrap() }
    });
    // Meanwhile alice is served, auth2 and all.
    let alice = h.open("/narrative/x", "alice-token").await;
    assert_eq!(alice.status(), StatusCode::CREATED);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "alice waited on the hung call"
    );
    let hung = hung.await.unwrap();
    assert_eq!(hung.status(), StatusCode::FORBIDDEN);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    h.stop().await;
}

#[tokio::test]
async fn a_reaper_cycle_longer_than_the_call_answers_500_within_it_and_goes_on() {
    let h = Harness::start(&[("reaper_call_timeout_secs", "1")]).await;
    h.open("/narrative/x", "alice-token").await;
    // Every backend call now takes 3 s: the cycle outlasts the answer's deadline.
    h.manager.set_faults(Some(Faults {
        seed: 1,
        latency: (Duration::from_secs(3), Duration::from_secs(3)),
        fail_before: 0.0,
        fail_after: 0.0,
        slow: 0.0,
    }));
    let started = Instant::now();
    let r = h.get("/reaper/").send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with("Reaper error: the cycle is still running after 1 s"),
        "{body}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    h.manager.set_faults(None);
    h.stop().await;
}
