//! The Role shipped in `deploy/kubernetes/rbac.yaml` grants exactly the verbs the code uses:
//! the table the start-up check asks about (`access::REQUIRED`) equals the Role's rules, and
//! equals every verb the backend and its membership were seen to send to the fake API server
//! while running the conformance suite, verifying, reaping zombies and learning peers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use traefiker_core::testing::conformance::{run_all, Caps, Context};
use traefiker_core::{ContainerManager, Membership};
use traefiker_kube::access::REQUIRED;

type Grants = BTreeSet<(String, String, String)>;

fn required() -> Grants {
    REQUIRED
        .iter()
        .flat_map(|g| {
            g.verbs
                .iter()
                .map(|v| (g.group.to_owned(), g.resource.to_owned(), (*v).to_owned()))
        })
        .collect()
}

fn role() -> Grants {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kubernetes/rbac.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let role = docs.iter().find(|d| d["kind"] == "Role").expect("a Role");
    let mut out = Grants::new();
    for rule in role["rules"].as_array().unwrap() {
        let strings = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                for verb in strings("verbs") {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

#[test]
fn the_role_grants_exactly_the_required_verbs() {
    assert_eq!(role(), required());
}

#[tokio::test]
async fn the_code_uses_exactly_the_required_verbs() {
    let fake = support::cluster();
    let m = support::manager(&fake).await;
    m.verify().await.unwrap();
    let ctx = Context::new(
        support::IMAGE,
        Caps {
            reports_address: true,
            zombies: true,
            conditional_assign: true,
            marks_connected: true,
            conditional: true,
        },
    );
    run_all(&m, &ctx).await;
    // A user back while their old pod still terminates: the stale claim is cleared.
    fake.set_termination(traefiker_kube::testing::Termination::Lingering);
    fake.set_collection(traefiker_kube::testing::Collection::Deferred);
    let spec = ctx.user_spec();
    let old = m.create(&spec).await.unwrap();
    m.remove(&old).await.unwrap();
    m.create(&spec).await.unwrap();
    m.zombies().await.unwrap();
    m.membership().peers().await.unwrap();
    let used: Grants = fake
        .calls()
        .iter()
        .filter(|c| c.resource == "pods" || c.resource == "leases")
        .map(|c| {
            let group = if c.resource == "leases" {
                "coordination.k8s.io"
            } else {
                ""
            };
            (group.to_owned(), c.resource.clone(), c.verb.clone())
        })
        .collect();
    assert_eq!(used, required(), "verbs used vs access::REQUIRED");
}
