//! Bad input at start-up ends in an error that names what to fix, never a panic or a retry
//! loop: no configuration, a namespace that cannot be listed or does not exist, missing RBAC
//! verbs, settings Kubernetes cannot take, an API server that does not answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use traefiker_core::{ContainerManager, ManagerError, Naming};
use traefiker_kube::{Cluster, KubeConfig, KubeError, KubeManager};

fn rejected(e: ManagerError) -> String {
    match e {
        ManagerError::Rejected { detail, .. } => detail,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_kubeconfig_that_is_not_there_is_named() {
    let dir = std::env::temp_dir().join(format!("traefiker-kube-{}", std::process::id()));
    let path = dir.join("no-such-kubeconfig");
    let err = KubeManager::connect(KubeConfig::new(Cluster::Kubeconfig(path.clone())))
        .await
        .expect_err("no kubeconfig");
    assert!(matches!(err, KubeError::Kubeconfig { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn an_api_server_that_does_not_answer_is_unavailable_within_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let dir = std::env::temp_dir().join(format!("traefiker-kube-down-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n    namespace: narratives\nusers:\n- name: u\n  user:\n    token: not-a-real-token\n"
        ),
    )
    .unwrap();
    let mut config = KubeConfig::new(Cluster::Kubeconfig(path));
    config.timeouts.request = Duration::from_secs(2);
    let manager = KubeManager::connect(config)
        .await
        .expect("nothing is called yet");
    assert_eq!(
        manager.namespace(),
        "narratives",
        "the context's namespace is the default"
    );
    let started = std::time::Instant::now();
    let err = manager.verify().await.expect_err("nobody answers");
    assert!(matches!(err, ManagerError::Unavailable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded: {:?}",
        started.elapsed()
    );
    assert!(!err.to_string().contains("not-a-real-token"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_namespace_it_cannot_list_is_named_with_the_verb() {
    let fake = support::cluster();
    fake.deny(support::NS, "list", "pods");
    let m = support::manager(&fake).await;
    let detail = rejected(m.verify().await.expect_err("cannot list"));
    assert!(
        detail.contains("list pods") && detail.contains("namespace narratives"),
        "{detail}"
    );
    assert!(detail.contains("deploy/kubernetes/rbac.yaml"), "{detail}");
}

#[tokio::test]
async fn every_missing_verb_is_named_at_once() {
    let fake = support::cluster();
    fake.deny("*", "patch", "pods");
    fake.deny(support::NS, "delete", "leases");
    let m = support::manager(&fake).await;
    let detail = rejected(m.verify().await.expect_err("missing verbs"));
    assert!(
        detail.contains("patch pods, delete leases.coordination.k8s.io"),
        "{detail}"
    );
    let calls = fake.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.resource == "pods" && c.verb != "list" && c.verb != "create"),
        "nothing is changed before the check passes: {calls:?}"
    );
}

#[tokio::test]
async fn a_namespace_that_does_not_exist_is_named_with_the_setting() {
    let fake = support::cluster();
    let mut config = KubeConfig::new(Cluster::Client(fake.client()));
    config.namespace = Some("nowhere".into());
    let m = KubeManager::connect(config).await.unwrap();
    let detail = rejected(m.verify().await.expect_err("no such namespace"));
    assert!(
        detail.contains("namespace nowhere does not exist") && detail.contains("kube_namespace"),
        "{detail}"
    );
}

async fn refused(config: KubeConfig, setting: &str) {
    let err = KubeManager::connect(config).await.expect_err("refused");
    assert_eq!(err.setting(), Some(setting), "{err}");
}

#[tokio::test]
async fn settings_kubernetes_cannot_take_are_named() {
    let fake = support::cluster();
    let config = || KubeConfig::new(Cluster::Client(fake.client()));
    let mut bad = config();
    bad.naming = Naming::new("Narrative_{}", "narrativepre-{}").unwrap();
    refused(bad, "container_name").await;
    let mut bad = config();
    bad.naming = Naming::new("narrative-{}", "pre_{}").unwrap();
    refused(bad, "container_name_prespawn").await;
    let mut bad = config();
    bad.namespace = Some("Not A Namespace".into());
    refused(bad, "kube_namespace").await;
    let mut bad = config();
    bad.image_name = "kbase/narrative:5.4.3".into();
    refused(bad, "image_name").await;
}

#[tokio::test]
async fn a_working_cluster_verifies_with_its_location() {
    let fake = support::cluster();
    let m = support::manager(&fake).await;
    let info = m.verify().await.expect("verify");
    assert_eq!(info.backend, "kubernetes");
    assert!(
        info.location.contains("namespace narratives") && info.location.contains("v1.33"),
        "{}",
        info.location
    );
    assert!(
        fake.objects(traefiker_kube::testing::Kind::Pod).is_empty(),
        "the dry run wrote nothing"
    );
}
