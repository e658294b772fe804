//! The HTTP contract of SPEC §3, end to end over real sockets: the real app on 127.0.0.1:0,
//! auth2 on wiremock answering the fixtures, the in-memory backend, a scripted activity
//! source.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Harness, IMAGE};
use reqwest::StatusCode;
use traefiker_core::testing::Op;
use traefiker_core::{ActivityError, Clock, ManagerError, NarrativeKind};

#[tokio::test]
async fn no_cookie_redirects_to_login_with_the_python_nextrequest() {
    let h = Harness::start(&[]).await;
    let r = h.get("/narrative/ws.1.obj.2?a=b").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        r.headers()["location"],
        "/#login?nextrequest=%7B%22path%22%3A%22%2Fnarrative%2Fws.1.obj.2%3Fa%3Db%22%2C%22external%22%3Atrue%7D"
    );
    h.stop().await;
}

/// An error page as a user sees it: the status, no internals, no caching, and a reference
/// that leads to the log line with the detail.
async fn assert_error_page(
    r: reqwest::Response,
    status: StatusCode,
    detail_in_log: &str,
) -> String {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = r.text().await.unwrap();
    for internal in [
        "http://",
        "127.0.0.1",
        "rancher",
        "auth2",
        "/api/V2",
        "os error",
        "answered",
    ] {
        assert!(
            !body.to_lowercase().contains(internal),
            "{internal:?} in {body:?}"
        );
    }
    let reference = common::reference_in(&body);
    let logs = common::logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&reference))
        .unwrap_or_else(|| panic!("no log line for {reference}"));
    assert!(
        line.contains(detail_in_log),
        "{detail_in_log:?} not in {line}"
    );
    body
}

#[tokio::test]
async fn a_bad_token_is_403_log_in_again_with_the_detail_in_the_log() {
    let h = Harness::start(&[]).await;
    let r = h.open("/narrative/ws.1.obj.2", "bogus").await;
    let body = assert_error_page(r, StatusCode::FORBIDDEN, "10020 Invalid token").await;
    assert!(
        body.starts_with("Session cookie failed validation"),
        "{body}"
    );
    assert!(body.contains("Log in to KBase again"), "{body}");
    h.stop().await;
}

#[tokio::test]
async fn an_unreachable_auth2_is_403_try_again_with_the_detail_in_the_log() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/V2/me", dead.local_addr().unwrap());
    drop(dead);
    let h = Harness::start(&[("auth2", url.as_str())]).await;
    let r = h.open("/narrative/ws.1.obj.2", "alice-token").await;
    let body = assert_error_page(r, StatusCode::FORBIDDEN, &format!("Error querying {url}")).await;
    assert!(body.contains("try again"), "{body}");
    h.stop().await;
}

#[tokio::test]
async fn a_valid_token_gets_201_a_hardened_cookie_and_an_escaped_reload_page() {
    let h = Harness::start(&[]).await;
    let r = h
        .open("/narrative/ws.1.obj.2%3Cb%3E?x=1", "alice-token")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let body = r.text().await.unwrap();
    let alice = h
        .manager
        .containers()
        .into_iter()
        .find(|n| n.name.as_str() == "narrative-alice-522b27")
        .expect("alice's container");
    assert!(
        cookie.starts_with(&format!("narrative_session={};", alice.session.expose())),
        "{cookie}"
    );
    for flag in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing from {cookie}");
    }
    assert!(
        body.contains("URL='/load-narrative.html?n=ws.1.obj.2%3Cb%3E&check=true'"),
        "{body}"
    );
    assert!(!body.contains("<b>"));
    assert_eq!(alice.kind, NarrativeKind::User);
    assert_eq!(h.manager.calls(Op::Assign), 1, "served from the pool");

    let again = h.open("/narrative/ws.1.obj.2", "alice-token").await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["set-cookie"].to_str().unwrap(), cookie);
    h.stop().await;
}

#[tokio::test]
async fn cookie_secure_can_be_turned_off() {
    let h = Harness::start(&[("cookie_secure", "false")]).await;
    let r = h.open("/narrative/x", "alice-token").await;
    assert!(!r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
    h.stop().await;
}

#[tokio::test]
async fn a_backend_failure_is_503_try_again_with_the_detail_in_the_log() {
    let h = Harness::start(&[("num_prespawn", "0")]).await;
    h.manager.fail_next(
        Op::Create,
        ManagerError::Unavailable {
            backend: "rancher".into(),
            detail: "http://rancher/v2-beta answered 500".into(),
        },
    );
    let r = h.open("/narrative/x", "alice-token").await;
    let body = assert_error_page(r, StatusCode::SERVICE_UNAVAILABLE, "answered 500").await;
    assert!(body.contains("try again in a minute"), "{body}");
    h.stop().await;
}

#[tokio::test]
async fn fifty_parallel_first_requests_make_one_container_and_one_cookie() {
    let h = Harness::start(&[("num_prespawn", "0")]).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let rb = h.with_token(h.get("/narrative/x"), "alice-token");
        tasks.push(tokio::spawn(async move { rb.send().await }));
    }
    let mut cookies = HashSet::new();
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        cookies.insert(r.headers()["set-cookie"].to_str().unwrap().to_owned());
    }
    assert_eq!(cookies.len(), 1);
    assert_eq!(h.manager.calls(Op::Create), 1);
    h.stop().await;
}

#[tokio::test]
async fn shutdown_answers_401_404_200_and_403_for_others() {
    let h = Harness::start(&[]).await;
    let del = |p: &str| h.client.delete(format!("{}{p}", h.base));
    let r = del("/narrative_shutdown/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.text().await.unwrap(),
        "Valid kbase authentication token required"
    );

    let r = h
        .with_token(del("/narrative_shutdown/"), "alice-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.text().await.unwrap(), "No sessions found for user");

    h.open("/narrative/x", "alice-token").await;
    let r = h
        .with_token(del("/narrative_shutdown/kbadmin"), "alice-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "alice may not name another user"
    );

    let r = h
        .with_token(del("/narrative_shutdown/"), "alice-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.text().await.unwrap(),
        "Service narrative-alice-522b27 deleted"
    );

    h.open("/narrative/x", "alice-token").await;
    let r = h
        .with_token(del("/narrative_shutdown/alice"), "admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "an admin may name another user");
    assert!(!h
        .manager
        .containers()
        .iter()
        .any(|n| n.name.as_str() == "narrative-alice-522b27"));
    h.stop().await;
}

#[tokio::test]
async fn status_is_public_and_full_for_the_status_role() {
    let h = Harness::start(&[("COMMIT_SHA", "abc1234")]).await;
    h.with_token(h.get("/narrative/x"), "alice-token")
        .header("X-Real-Ip", "192.0.2.7")
        .send()
        .await
        .unwrap();
    let public: serde_json::Value = h
        .get("/narrative_status/")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(public["git_hash"], "abc1234");
    assert_eq!(public["version"], env!("CARGO_PKG_VERSION"));
    assert!(public["timestamp"].as_str().unwrap().len() >= 19);
    assert!(public.get("narrative_services").is_none());

    let user: serde_json::Value = h
        .open("/narrative_status/", "alice-token")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        user.get("narrative_services").is_none(),
        "alice lacks KBASE_ADMIN"
    );

    let admin: serde_json::Value = h
        .open("/narrative_status/", "admin-token")
        .await
        .json()
        .await
        .unwrap();
    let services = admin["narrative_services"].as_array().unwrap();
    let alice = services
        .iter()
        .find(|s| s["instance"] == "narrative-alice-522b27")
        .unwrap();
    assert_eq!(alice["state"], "active");
    assert_eq!(alice["session_id"], "alice-522b27");
    assert_eq!(alice["last_ip"], "192.0.2.7");
    assert_eq!(alice["image"], IMAGE);
    assert_eq!(alice["standing"], "user");
    assert!(services
        .iter()
        .any(|s| s["state"] == "queued" && s["session_id"] == "*"));
    // Added beside the Python fields: which replica answers, and whose pool each is in.
    assert_eq!(admin["replica"], "test");
    assert!(public.get("replica").is_none());
    assert!(services
        .iter()
        .filter(|s| s["state"] == "queued")
        .all(|s| s["standing"] == "waiting" && s["replica"] == "test"));
    h.stop().await;
}

#[tokio::test]
async fn reaper_checks_the_caller_and_reports() {
    let h = Harness::start(&[]).await;
    let r = h.get("/reaper/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "Reaper success: 0 deleted");

    h.open("/narrative/x", "alice-token").await;
    h.get("/reaper/").send().await.unwrap();
    // The idle timeout plus the interval at which connects refresh their marks.
    h.clock.advance(Duration::from_secs(600 + 60 + 1));
    h.traefik.set(Err(ActivityError::new(
        "traefik",
        "http://traefik:8080/metrics timed out",
    )));
    let r = h.get("/reaper/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.text().await.unwrap(),
        "Reaper error: activity unavailable: traefik: http://traefik:8080/metrics timed out"
    );
    assert!(h
        .manager
        .containers()
        .iter()
        .any(|n| n.name.as_str() == "narrative-alice-522b27"));

    h.traefik.set(Ok(Default::default()));
    let r = h.get("/reaper/").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "Reaper success: 1 deleted");
    h.stop().await;

    let h = Harness::start(&[("reaper_ipnetwork", "10.0.0.0/8")]).await;
    let r = h
        .get("/reaper/")
        .header("X-Forwarded-For", "10.1.1.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.text().await.unwrap(),
        "Reaper error: access denied from IP 127.0.0.1"
    );
    h.stop().await;

    let h = Harness::start(&[
        ("reaper_ipnetwork", "10.0.0.0/8"),
        ("trusted_proxies", "127.0.0.1/32"),
    ])
    .await;
    let r = h
        .get("/reaper/")
        .header("X-Forwarded-For", "10.1.1.1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a trusted proxy's X-Forwarded-For counts"
    );
    h.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let h = Harness::start(&[]).await;
    assert_eq!(
        h.get("/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );
    h.wait_ready().await;
    h.open("/narrative/x", "alice-token").await;
    h.open("/narrative/x", "alice-token").await;
    let text = h
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "traefiker_connects_total{outcome=\"assigned\"} 1",
        "traefiker_connects_total{outcome=\"existing\"} 1",
        "traefiker_auth_cache_hits_total 1",
        "traefiker_backend_call_seconds_count{operation=\"assign\"}",
        "traefiker_pool_waiting",
        "traefiker_replica_info{replica=\"test\"} 1",
        // The in-memory harness has no orchestrator: peers known, none listed.
        "traefiker_peers_known 1",
        // The pool that follows demand (SPEC §14), by the names alerts are written against.
        "traefiker_pool_hits_total 1",
        "traefiker_cold_starts_total 0",
        "traefiker_time_to_narrative_seconds_count{outcome=\"assigned\"} 1",
        "# TYPE traefiker_time_to_narrative_seconds histogram",
        "# TYPE traefiker_waiting_narrative_seconds counter",
        "traefiker_waiting_narrative_seconds_total ",
        "traefiker_pool_target 2",
        "traefiker_pool_unready 0",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    h.manager.fail_next(
        Op::List,
        ManagerError::Unavailable {
            backend: "rancher".into(),
            detail: "http://rancher.internal:8080 down".into(),
        },
    );
    // The reaper's cycle lists (and fails), and ends with a refresh of what /readyz reads.
    h.get("/reaper/").send().await.unwrap();
    let r = h.get("/readyz").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = r.text().await.unwrap();
    assert!(!body.contains("rancher.internal"), "{body}");
    h.stop().await;
}

/// The value of the sample `series` (name and labels as encoded) in a `/metrics` page.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split(' ').next()?.parse().ok()
    })
}

/// What the alerting rules of deploy/prometheus/ read follows the process: readiness, the
/// last reaper cycle by the lifecycle's clock, the users' narratives against the cap, each
/// activity source's failures in a row, auth2's answers.
#[tokio::test]
async fn operator_signals_follow_the_process() {
    let h = Harness::start(&[("max_narratives", "5"), ("reaper_interval_secs", "0")]).await;
    let metrics = || async {
        let r = h.get("/metrics").send().await.unwrap();
        r.text().await.unwrap()
    };
    let text = metrics().await;
    assert_eq!(
        sample(&text, "traefiker_reaper_last_cycle_timestamp_seconds"),
        Some(0.0),
        "no cycle yet\n{text}"
    );
    assert_eq!(
        sample(&text, "traefiker_start_time_seconds"),
        Some(h.clock.now().timestamp() as f64)
    );
    h.wait_ready().await;
    assert_eq!(
        h.open("/narrative/x", "alice-token").await.status(),
        StatusCode::CREATED
    );
    h.clock.advance(Duration::from_secs(30));
    assert_eq!(
        h.get("/reaper/").send().await.unwrap().status(),
        StatusCode::OK
    );
    let text = metrics().await;
    for (series, value) in [
        ("traefiker_ready", 1.0),
        ("traefiker_user_narratives", 1.0),
        ("traefiker_max_narratives", 5.0),
        ("traefiker_reaper_interval_seconds", 0.0),
        (
            "traefiker_reaper_last_cycle_timestamp_seconds",
            h.clock.now().timestamp() as f64,
        ),
        ("traefiker_auth_validations_total{outcome=\"valid\"}", 1.0),
        (
            "traefiker_activity_reads_total{source=\"traefik\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "traefiker_activity_consecutive_failures{source=\"traefik\"}",
            0.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }

    h.traefik.set(Err(ActivityError::new("traefik", "down")));
    for _ in 0..2 {
        assert_eq!(
            h.get("/reaper/").send().await.unwrap().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    let text = metrics().await;
    assert_eq!(
        sample(
            &text,
            "traefiker_activity_consecutive_failures{source=\"traefik\"}"
        ),
        Some(2.0),
        "{text}"
    );
    h.manager.fail_next(
        Op::List,
        ManagerError::Unavailable {
            backend: "rancher".into(),
            detail: "down".into(),
        },
    );
    h.get("/reaper/").send().await.unwrap();
    let text = metrics().await;
    assert_eq!(sample(&text, "traefiker_ready"), Some(0.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "traefiker_backend_errors_total{operation=\"list\",kind=\"unavailable\"}"
        ),
        Some(1.0),
        "{text}"
    );
    h.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_removes_this_replicas_waiting_narratives_only() {
    let h = Harness::start(&[]).await;
    assert_eq!(
        h.open("/narrative/x", "alice-token").await.status(),
        StatusCode::CREATED
    );
    h.wait_for_pool(2).await;
    let manager = h.manager.clone();
    h.stop().await;
    let left = manager.containers();
    assert!(
        left.iter().all(|c| c.kind == NarrativeKind::User),
        "waiting narratives left after shutdown: {left:?}"
    );
    assert_eq!(left.len(), 1, "alice's narrative stays: {left:?}");
}

#[tokio::test]
async fn traefik_dynamic_always_routes_the_narrative_prefix_to_traefiker() {
    let h = Harness::start(&[
        ("traefik_rule_syntax", "v3"),
        ("traefik_self_url", "http://127.0.0.1:5000"),
        ("traefik_provider", "true"),
    ])
    .await;
    h.wait_ready().await;
    let doc: serde_json::Value = h.dynamic().await;
    let router = &doc["http"]["routers"]["traefiker"];
    assert_eq!(
        router["rule"],
        "Host(`localhost`) && PathPrefix(`/narrative/`)"
    );
    assert_eq!(router["priority"], 1);
    assert_eq!(router["entryPoints"], serde_json::json!(["web"]));
    assert_eq!(
        doc["http"]["services"]["traefiker"]["loadBalancer"]["servers"][0]["url"],
        "http://127.0.0.1:5000"
    );
    // The in-memory backend knows no addresses, so it publishes no narrative route.
    assert_eq!(doc["http"]["routers"].as_object().unwrap().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_shutdown_answers_only_once_the_narratives_route_is_gone() {
    // No pool: alice's narrative is created after the backend is given an address.
    let h = Harness::start(&[
        ("traefik_provider", "true"),
        ("traefik_self_url", "http://127.0.0.1:5000"),
        ("num_prespawn", "0"),
    ])
    .await;
    h.manager.set_address(Some("http://127.0.0.1:9".into()));
    h.wait_ready().await;
    let routed = || async {
        let doc: serde_json::Value = h.dynamic().await;
        doc["http"]["services"]["narrative-alice-522b27"].is_object()
    };
    assert_eq!(
        h.open("/narrative/x", "alice-token").await.status(),
        StatusCode::CREATED
    );
    // Its route appears with the refresh that the connect asks for; shutting down right
    // after it means the next refresh would wait out the gap between two refreshes.
    tokio::time::timeout(Duration::from_secs(10), async {
        while !routed().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("alice's route appears");
    let r = h
        .with_token(
            h.client.delete(format!("{}/narrative_shutdown/", h.base)),
            "alice-token",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        !routed().await,
        "alice's route is still served after her shutdown was answered"
    );
    h.stop().await;
}
