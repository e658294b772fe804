//! Property tests over everything that comes off the wire into the server: cookie headers,
//! narrative paths, `X-Forwarded-For`, user ids from auth2, Rancher's and Jupyter's JSON.
//! Nothing panics, every answer is one of the contract's, and no input reaches a Traefik
//! rule or label except the session id itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::sync::OnceLock;

use common::Harness;
use ipnetwork::IpNetwork;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use serde_json::{json, Value};
use traefiker_core::{Naming, Routing, RuleSyntax, SessionId, UserId};
use traefiker_rancher::{RancherConfig, RancherManager};
use traefiker_server::render::dynamic::dynamic_config;
use traefiker_server::routes::caller_ip;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// One app for all cases: a runtime of its own, so proptest's synchronous cases can drive it.
fn world() -> &'static (tokio::runtime::Runtime, Harness) {
    static WORLD: OnceLock<(tokio::runtime::Runtime, Harness)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let h = rt.block_on(Harness::start(&[
            ("num_prespawn", "0"),
            // Random tokens would soon be throttled: the answers are what is tested here.
            ("auth_failures_per_minute", "0"),
        ]));
        (rt, h)
    })
}

fn is_session_rule(rule: &str, routing: &Routing) -> bool {
    let Some(start) = rule
        .rfind('`')
        .and_then(|end| rule[..end].rfind('`').map(|s| (s, end)))
    else {
        return false;
    };
    let session = &rule[start.0 + 1..start.1];
    SessionId::parse(session).is_ok_and(|s| routing.session_rule(&s) == rule)
}

fn label_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_cookie_header_gets_an_answer_of_the_contract(cookie in "[ -~]{0,200}") {
        let (rt, h) = world();
        let (status, body) = rt.block_on(async {
            let r = h.get("/narrative/x").header("Cookie", &cookie).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        });
        prop_assert!([201, 302, 403].contains(&status), "{status} for {cookie:?}");
        prop_assert!(!body.contains(&h.auth2.uri()), "{body}");
    }

    #[test]
    fn any_narrative_path_is_inert_in_the_reload_page_and_the_login_redirect(path in "\\PC{0,60}") {
        let (rt, h) = world();
        let encoded = utf8_percent_encode(&path, NON_ALPHANUMERIC).to_string();
        let (status, body, location) = rt.block_on(async {
            let r = h.open(&format!("/narrative/{encoded}"), "alice-token").await;
            let login = h.get(&format!("/narrative/{encoded}?q={encoded}")).send().await.unwrap();
            let location = login.headers()["location"].to_str().unwrap().to_owned();
            (r.status().as_u16(), r.text().await.unwrap(), location)
        });
        prop_assert_eq!(status, 201);
        let start = body.find("?n=").unwrap() + 3;
        let end = body.find("&check=true'").unwrap();
        let target = &body[start..end];
        prop_assert!(
            !target.contains(|c: char| matches!(c, '<' | '>' | '"' | '\'') || c.is_whitespace()),
            "{target:?}"
        );
        let next = location.strip_prefix("/#login?nextrequest=").unwrap();
        prop_assert!(
            next.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.~%+-".contains(&b)),
            "{next:?}"
        );
    }

    #[test]
    fn x_forwarded_for_never_moves_an_untrusted_peer(
        chain in "[0-9a-f.:, \\[\\]]{0,80}|\\PC{0,80}",
        peer in any::<[u8; 4]>(),
    ) {
        let trusted: Vec<IpNetwork> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = IpAddr::from(peer);
        let caller = caller_ip(peer, &[chain.as_str()], &trusted);
        if trusted[0].contains(peer) {
            let hops: Vec<IpAddr> = chain.split(',').filter_map(|h| h.trim().parse().ok()).collect();
            prop_assert!(caller == peer || hops.contains(&caller));
        } else {
            prop_assert_eq!(caller, peer);
        }
    }

    #[test]
    fn user_ids_from_auth2_cannot_inject_a_rule_or_a_label(
        user in "\\PC{0,120}|[a-z0-9_.\\-`\"(){}|&, ]{0,60}",
        v3 in any::<bool>(),
    ) {
        // What auth2's JSON carries reaches the naming only through UserId.
        let me = serde_json::to_vec(&json!({"user": user, "customroles": []})).unwrap();
        let user: String = serde_json::from_slice::<Value>(&me).unwrap()["user"]
            .as_str()
            .unwrap()
            .to_owned();
        let Ok(user) = UserId::new(user) else { return Ok(()) };
        let naming = Naming::default();
        let syntax = if v3 { RuleSyntax::V3 } else { RuleSyntax::V2 };
        let routing = Routing::new(vec!["narrative.kbase.us".into()], vec!["web".into()], syntax).unwrap();
        let session = SessionId::generate();
        let router = naming.router_for(&naming.user_container(&user));
        prop_assert!(label_safe(&router), "{router:?}");
        prop_assert!(label_safe(naming.user_container(&user).as_str()));
        for (key, value) in routing.labels(&router, &session) {
            prop_assert!(label_safe(&key), "{key:?}");
            if key.ends_with(".rule") {
                prop_assert!(is_session_rule(&value, &routing), "{value:?}");
            }
        }
    }

    #[test]
    fn jupyter_status_answers_never_panic(body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| serde_json::to_vec(&json!({"connections": v.clone(), "last_activity": v})).unwrap()),
    ]) {
        let _ = traefiker_metrics::jupyter::parse_status(&body);
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
        "[0-9a-f]{32}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("\\PC{0,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A Rancher service: mostly shaped like one (so some are narratives), anything may be off.
fn service() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        3 => "narrative-[a-z0-9-]{1,30}",
        2 => "narrativepre-[0-9a-f]{6}",
        1 => "\\PC{0,40}",
        2 => "narrative-[a-z0-9`\"(){}|&,. -]{1,30}",
    ];
    let session = prop_oneof![3 => "[0-9a-f]{32}", 1 => "\\PC{0,40}", 1 => "[0-9a-f`\"()|&]{32}"];
    let image = prop_oneof![
        3 => Just("docker:kbase/narrative:5.4.3".to_owned()),
        1 => "docker:kbase/narrative:\\PC{0,20}",
        1 => "\\PC{0,30}",
    ];
    let labels = prop::collection::btree_map("\\PC{0,30}", "\\PC{0,60}", 0..4);
    (
        name,
        session,
        image,
        labels,
        prop_oneof![3 => Just("1st5".to_owned()), 1 => "\\PC{0,8}"],
        "\\PC{0,20}",
        "\\PC{0,60}",
        "\\PC{0,20}",
    )
        .prop_map(
            |(name, session, image, labels, stack, state, description, ip)| {
                let mut labels: serde_json::Map<String, Value> = labels
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect();
                labels.insert("session_id".into(), Value::from(session));
                json!({
                    "id": "1s7", "type": "service", "name": name, "stackId": stack, "state": state,
                    "description": description, "createdTS": 1_633_362_119_504_i64,
                    "launchConfig": {"imageUuid": image, "labels": labels},
                    "publicEndpoints": [{"ipAddress": ip, "port": 8888}],
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn rancher_listings_cannot_inject_a_route(
        services in prop::collection::vec(prop_oneof![12 => service(), 1 => json_value()], 0..6)
    ) {
        let (rt, _) = world();
        rt.block_on(async {
            let rancher = MockServer::start().await;
            Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({"type": "collection", "data": services})))
                .mount(&rancher)
                .await;
            let config = RancherConfig::new(format!("{}/v2-beta", rancher.uri()))
                .with_stack(format!("{}/v2-beta/projects/1a5", rancher.uri()), "1st5", "narratives");
            let manager = RancherManager::new(config).unwrap();
            let routing = Routing::default();
            // A malformed page is an error, never a panic; a readable one gives narratives.
            let Ok(narratives) = traefiker_core::ContainerManager::list(&manager).await else {
                return Ok(());
            };
            let doc: Value = serde_json::from_slice(
                &dynamic_config(&routing, &manager, "http://traefiker:5000", &narratives, false).unwrap(),
            )
            .unwrap();
            for (router, spec) in doc["http"]["routers"].as_object().unwrap() {
                prop_assert!(label_safe(router), "{router:?}");
                let rule = spec["rule"].as_str().unwrap();
                if router != "traefiker" {
                    prop_assert!(is_session_rule(rule, &routing), "{rule:?}");
                }
            }
            Ok(())
        })?;
    }
}
