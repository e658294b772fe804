//! A replica's identity is its pod's name and its peers are the pods of traefiker's
//! Deployment that have not stopped, narratives never among them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use traefiker_core::testing::conformance::{Caps, Context};
use traefiker_core::{ContainerManager, Membership};

fn traefiker_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "traefiker"}},
        "spec": {"containers": [{"name": "traefiker", "image": "traefiker:0.1.0"}]},
    }))
    .unwrap()
}

#[tokio::test]
async fn peers_are_the_live_pods_of_traefikers_deployment() {
    let fake = support::cluster();
    let m = support::manager(&fake).await;
    let pods: Api<Pod> = Api::namespaced(fake.client(), support::NS);
    for name in [
        "traefiker-7d9c-abcde",
        "traefiker-7d9c-fghij",
        "traefiker-7d9c-klmno",
    ] {
        pods.create(&PostParams::default(), &traefiker_pod(name))
            .await
            .unwrap();
    }
    fake.exit_pod("traefiker-7d9c-klmno", 1);
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
    m.create(&ctx.prespawn_spec()).await.unwrap();
    let membership = m.membership();
    assert_eq!(
        membership.identity().await.unwrap().unwrap().as_str(),
        "traefiker-7d9c-abcde",
        "POD_NAME"
    );
    let mut peers: Vec<String> = membership
        .peers()
        .await
        .unwrap()
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    peers.sort();
    assert_eq!(peers, ["traefiker-7d9c-abcde", "traefiker-7d9c-fghij"]);
}

#[tokio::test]
async fn peers_unknown_when_pods_cannot_be_listed() {
    let fake = support::cluster();
    fake.deny(support::NS, "list", "pods");
    let m = support::manager(&fake).await;
    assert!(
        m.membership().peers().await.is_err(),
        "an error means unknown, never no peers"
    );
}
