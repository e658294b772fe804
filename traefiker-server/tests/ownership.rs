//! Issue 19, black box: two KBase ids that the Python naming gives one container name each
//! get a narrative of their own, through the HTTP contract (their first visits, their
//! returns, and the shutdown one of them asks for).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::Harness;
use reqwest::StatusCode;
use traefiker_core::{Naming, Owner, UserId};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

/// Two ids of 49 characters with one container name (cut to 44, 24-bit hash), found by a
/// birthday search: a few thousand SHA-1s, as an attacker would.
fn colliding_ids() -> (String, String) {
    let naming = Naming::default();
    let mut seen: HashMap<String, String> = HashMap::new();
    for i in 0..1_000_000u32 {
        let id = format!("{}{i}", "collide".repeat(7));
        let name = naming
            .user_container(&UserId::new(&id).unwrap())
            .to_string();
        if let Some(first) = seen.insert(name, id.clone()) {
            return (first, id);
        }
    }
    panic!("no collision in a million ids");
}

async fn auth2_knows(h: &Harness, token: &str, user: &str) {
    Mock::given(method("GET"))
        .and(path("/api/V2/me"))
        .and(header("Authorization", token))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "user": user,
            "customroles": [],
        })))
        // Before the harness's answer for every other token.
        .with_priority(1)
        .mount(&h.auth2)
        .await;
}

/// The session cookie a 201 sets.
fn session_of(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::CREATED);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    cookie
        .strip_prefix("narrative_session=")
        .and_then(|c| c.split(';').next())
        .expect("a narrative_session cookie")
        .to_owned()
}

#[tokio::test]
async fn a_colliding_id_never_gets_the_first_users_session() {
    for pool in ["0", "2"] {
        let (first, second) = colliding_ids();
        let h = Harness::start(&[("num_prespawn", pool)]).await;
        auth2_knows(&h, "first-token", &first).await;
        auth2_knows(&h, "second-token", &second).await;
        if pool != "0" {
            h.wait_for_pool(2).await;
        }
        let a = session_of(&h.open("/narrative/", "first-token").await);
        let b = session_of(&h.open("/narrative/", "second-token").await);
        assert_ne!(
            a, b,
            "pool {pool}: the second user was routed into the first's narrative"
        );
        assert_eq!(session_of(&h.open("/narrative/", "first-token").await), a);
        assert_eq!(session_of(&h.open("/narrative/", "second-token").await), b);
        let owners: HashMap<String, Option<Owner>> = h
            .manager
            .containers()
            .into_iter()
            .map(|n| (n.session.expose().to_owned(), n.owner))
            .collect();
        assert_eq!(owners[&a], Some(Owner::of(&UserId::new(&first).unwrap())));
        assert_eq!(owners[&b], Some(Owner::of(&UserId::new(&second).unwrap())));
        // The second user's shutdown removes theirs, never the first user's.
        let r = h
            .with_token(
                h.client.delete(format!("{}/narrative_shutdown/", h.base)),
                "second-token",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let left: Vec<String> = h
            .manager
            .containers()
            .into_iter()
            .map(|n| n.session.expose().to_owned())
            .collect();
        assert!(
            left.contains(&a),
            "the first user's narrative is still there"
        );
        assert!(!left.contains(&b));
        h.stop().await;
    }
}
