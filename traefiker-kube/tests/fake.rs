//! The fake API server enforces each rule of a real one that traefiker relies on: one test
//! per rule, through kube-rs's own typed client, so the wire shapes are the ones kube-rs
//! sends and reads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use traefiker_kube::testing::{Collection, FakeCluster, Kind, Startup, Termination};

const NS: &str = "narratives";

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "narrative"}},
        "spec": {"containers": [{"name": "narrative", "image": "kbase/narrative:5.4.3"}]},
    }))
    .unwrap()
}

fn lease_owned_by(name: &str, owner: &Pod) -> Lease {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Pod",
                "name": owner.metadata.name, "uid": owner.metadata.uid,
            }],
        },
        "spec": {"holderIdentity": owner.metadata.name},
    }))
    .unwrap()
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rv(pod: &Pod) -> String {
    pod.metadata.resource_version.clone().unwrap()
}

fn with_rv(rv: &str, labels: serde_json::Value) -> Patch<serde_json::Value> {
    Patch::Merge(json!({"metadata": {"resourceVersion": rv, "labels": labels}}))
}

#[tokio::test]
async fn a_patch_with_a_stale_resource_version_is_a_conflict_and_changes_nothing() {
    let fake = FakeCluster::new(NS);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    let created = pods
        .create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();
    let first = pods
        .patch(
            "p",
            &PatchParams::default(),
            &with_rv(&rv(&created), json!({"user": "a"})),
        )
        .await
        .unwrap();
    assert_ne!(rv(&first), rv(&created), "a write moves the version");
    let status = api_error(
        pods.patch(
            "p",
            &PatchParams::default(),
            &with_rv(&rv(&created), json!({"user": "b"})),
        )
        .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("the object has been modified"),
        "{}",
        status.message
    );
    let now = pods.get("p").await.unwrap();
    assert_eq!(
        now.metadata.labels.as_ref().unwrap()["user"],
        "a",
        "the loser changed nothing"
    );
    assert_eq!(rv(&now), rv(&first));
    let unconditional = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"user": null}}})),
        )
        .await
        .unwrap();
    assert!(
        !unconditional.metadata.labels.unwrap().contains_key("user"),
        "null removes a label"
    );
}

#[tokio::test]
async fn names_are_unique_even_while_a_pod_terminates() {
    let fake = FakeCluster::new(NS);
    fake.set_termination(Termination::Lingering);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    pods.create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();
    let status = api_error(pods.create(&PostParams::default(), &pod("p")).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    assert_eq!(status.message, "pods \"p\" already exists");
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    let status = api_error(pods.create(&PostParams::default(), &pod("p")).await);
    assert_eq!(
        status.reason, "AlreadyExists",
        "a terminating pod keeps its name"
    );
    fake.finish_terminations();
    pods.create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();
}

#[tokio::test]
async fn generate_name_gives_unique_names_with_the_prefix() {
    let fake = FakeCluster::new(NS);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    let mut template = pod("");
    template.metadata.name = None;
    template.metadata.generate_name = Some("narrative-alice-522b27-".into());
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let p = pods
            .create(&PostParams::default(), &template)
            .await
            .unwrap();
        let name = p.metadata.name.unwrap();
        assert!(
            name.starts_with("narrative-alice-522b27-") && name.len() == 28,
            "{name}"
        );
        names.insert(name);
    }
    assert_eq!(names.len(), 20, "every generated name is new");
    template.metadata.generate_name = Some(format!("{}-", "a".repeat(70)));
    let long = pods
        .create(&PostParams::default(), &template)
        .await
        .unwrap();
    assert_eq!(
        long.metadata.name.unwrap().len(),
        63,
        "the prefix is cut to fit 63"
    );
}

#[tokio::test]
async fn a_delete_whose_preconditions_fail_is_a_conflict_and_deletes_nothing() {
    let fake = FakeCluster::new(NS);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    let created = pods
        .create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();
    pods.patch(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
    )
    .await
    .unwrap();
    let stale = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: Some(rv(&created)),
            uid: None,
        }),
        ..DeleteParams::default()
    };
    let status = api_error(pods.delete("p", &stale).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status
            .message
            .contains("Precondition failed: ResourceVersion in precondition"),
        "{}",
        status.message
    );
    let other_uid = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: None,
            uid: Some("not-this-one".into()),
        }),
        ..DeleteParams::default()
    };
    assert_eq!(api_error(pods.delete("p", &other_uid).await).code, 409);
    let now = pods.get("p").await.unwrap();
    let exact = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: Some(rv(&now)),
            uid: now.metadata.uid.clone(),
        }),
        ..DeleteParams::default()
    };
    pods.delete("p", &exact).await.unwrap();
    assert!(pods.get_opt("p").await.unwrap().is_none());
    let status = api_error(pods.delete("p", &exact).await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, "pods \"p\" not found");
}

#[tokio::test]
async fn a_deleted_pod_terminates_until_its_kubelet_is_done() {
    let fake = FakeCluster::new(NS);
    fake.set_termination(Termination::Lingering);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    pods.create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();
    let answer = pods.delete("p", &DeleteParams::default()).await.unwrap();
    let terminating = answer.left().expect("a graceful delete answers the pod");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    let listed = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1, "still listed while terminating");
    assert!(listed.items[0].metadata.deletion_timestamp.is_some());
    pods.delete("p", &DeleteParams::default())
        .await
        .expect("deleting again is fine");
    fake.finish_terminations();
    assert!(pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn dependents_go_with_their_owner_unless_orphaned() {
    let fake = FakeCluster::new(NS);
    let client = fake.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let leases: Api<Lease> = Api::namespaced(client, NS);
    let a = pods
        .create(&PostParams::default(), &pod("a"))
        .await
        .unwrap();
    leases
        .create(&PostParams::default(), &lease_owned_by("claim-a", &a))
        .await
        .unwrap();
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(
        leases.get_opt("claim-a").await.unwrap().is_none(),
        "collected with its owner"
    );

    fake.set_collection(Collection::Deferred);
    let b = pods
        .create(&PostParams::default(), &pod("b"))
        .await
        .unwrap();
    leases
        .create(&PostParams::default(), &lease_owned_by("claim-b", &b))
        .await
        .unwrap();
    pods.delete("b", &DeleteParams::default()).await.unwrap();
    assert!(
        leases.get_opt("claim-b").await.unwrap().is_some(),
        "the collector is not done yet"
    );
    fake.collect_garbage();
    assert!(leases.get_opt("claim-b").await.unwrap().is_none());

    fake.set_collection(Collection::Immediate);
    let c = pods
        .create(&PostParams::default(), &pod("c"))
        .await
        .unwrap();
    leases
        .create(&PostParams::default(), &lease_owned_by("claim-c", &c))
        .await
        .unwrap();
    pods.delete("c", &DeleteParams::orphan()).await.unwrap();
    let kept = leases.get("claim-c").await.expect("an orphan stays");
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "and loses its owner"
    );

    let mut ghost = pod("ghost");
    ghost.metadata.uid = Some("00000000-0000-4000-8000-ffffffffffff".into());
    leases
        .create(
            &PostParams::default(),
            &lease_owned_by("claim-ghost", &ghost),
        )
        .await
        .unwrap();
    assert!(
        leases.get_opt("claim-ghost").await.unwrap().is_none(),
        "an owner that does not exist is gone"
    );
}

#[tokio::test]
async fn label_selectors_filter_lists() {
    let fake = FakeCluster::new(NS);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    for (name, kind) in [("a", "user"), ("b", "waiting"), ("c", "waiting")] {
        let mut p = pod(name);
        p.metadata
            .labels
            .get_or_insert_default()
            .insert("kind".into(), kind.into());
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let names = |l: kube::core::ObjectList<Pod>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect()
    };
    let waiting = pods
        .list(&ListParams::default().labels("app=narrative,kind=waiting"))
        .await
        .unwrap();
    assert_eq!(names(waiting), ["b", "c"]);
    let not = pods
        .list(&ListParams::default().labels("kind notin (waiting)"))
        .await
        .unwrap();
    assert_eq!(names(not), ["a"]);
    let status = api_error(
        pods.list(&ListParams::default().labels("kind in waiting"))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
}

#[tokio::test]
async fn pages_come_from_the_first_page_snapshot_at_its_revision() {
    let fake = FakeCluster::new(NS);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    for i in 0..5 {
        pods.create(&PostParams::default(), &pod(&format!("p{i}")))
            .await
            .unwrap();
    }
    let first = pods.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("more pages");
    let revision = first.metadata.resource_version.clone().unwrap();
    pods.create(&PostParams::default(), &pod("p9"))
        .await
        .unwrap();
    let mut seen = first.items.len();
    let mut next = Some(token.clone());
    while let Some(token) = next {
        let page = pods
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .unwrap();
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(revision.as_str())
        );
        seen += page.items.len();
        next = page.metadata.continue_.filter(|c| !c.is_empty());
    }
    assert_eq!(
        seen, 5,
        "a pod created after the first page is not in that list"
    );
    let status = api_error(
        pods.list(&ListParams::default().continue_token(&token))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn a_namespace_that_does_not_exist_refuses_creates_and_lists_empty() {
    let fake = FakeCluster::new(NS);
    let pods: Api<Pod> = Api::namespaced(fake.client(), "elsewhere");
    let status = api_error(pods.create(&PostParams::default(), &pod("p")).await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, "namespaces \"elsewhere\" not found");
    assert!(pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn rbac_refuses_with_the_verb_and_resource_and_reviews_agree() {
    let fake = FakeCluster::new(NS);
    fake.deny(NS, "list", "pods");
    fake.deny("*", "delete", "leases");
    let client = fake.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let status = api_error(pods.list(&ListParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "pods is forbidden: User \"system:serviceaccount:narratives:traefiker\" cannot list \
         resource \"pods\" in API group \"\" in the namespace \"narratives\""
    );
    pods.create(&PostParams::default(), &pod("p"))
        .await
        .expect("create is allowed");
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let status = api_error(leases.delete("x", &DeleteParams::default()).await);
    assert!(
        status
            .message
            .contains("cannot delete resource \"leases\" in API group \"coordination.k8s.io\""),
        "{}",
        status.message
    );

    let reviews: Api<SelfSubjectAccessReview> = Api::all(client);
    let ask = |verb: &str, group: &str, resource: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(NS.into()),
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    for (verb, group, resource, allowed) in [
        ("list", "", "pods", false),
        ("create", "", "pods", true),
        ("delete", "coordination.k8s.io", "leases", false),
        ("get", "coordination.k8s.io", "leases", true),
        ("get", "", "secrets", false),
    ] {
        let answer = reviews
            .create(&PostParams::default(), &ask(verb, group, resource))
            .await
            .unwrap();
        assert_eq!(
            answer.status.unwrap().allowed,
            allowed,
            "{verb} {group}/{resource}"
        );
    }
}

#[tokio::test]
async fn invalid_names_labels_owner_references_and_pod_changes_are_refused() {
    let fake = FakeCluster::new(NS);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    let status = api_error(
        pods.create(&PostParams::default(), &pod("Narrative_1"))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let mut long_label = pod("p");
    long_label
        .metadata
        .labels
        .get_or_insert_default()
        .insert("name".into(), "x".repeat(64));
    assert_eq!(
        api_error(pods.create(&PostParams::default(), &long_label).await).code,
        422
    );
    let mut no_uid = pod("p");
    no_uid.metadata.owner_references = Some(vec![serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Pod", "name": "x", "uid": ""}),
    )
    .unwrap()]);
    assert_eq!(
        api_error(pods.create(&PostParams::default(), &no_uid).await).code,
        422
    );
    pods.create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();
    let status = api_error(
        pods.patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"containers": [{"name": "other", "image": "x"}]}})),
        )
        .await,
    );
    assert_eq!(
        status.code, 422,
        "a pod's spec cannot change: {}",
        status.message
    );
    let status = api_error(
        pods.patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"bad key": "x"}}})),
        )
        .await,
    );
    assert_eq!(status.code, 422);
    let patched = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Failed"}, "metadata": {"labels": {"ok": "1"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.status.unwrap().phase.as_deref(),
        Some("Running"),
        "status is not patched through the pod"
    );
}

#[tokio::test]
async fn the_kubelet_starts_pods_and_lets_them_exit() {
    let fake = FakeCluster::new(NS);
    let pods: Api<Pod> = Api::namespaced(fake.client(), NS);
    let running = pods
        .create(&PostParams::default(), &pod("a"))
        .await
        .unwrap();
    let status = running.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(
        status.pod_ip.unwrap().starts_with("127.42."),
        "pod IPs are loopback addresses"
    );
    fake.set_startup(Startup::Manual);
    let pending = pods
        .create(&PostParams::default(), &pod("b"))
        .await
        .unwrap();
    assert_eq!(
        pending.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    fake.start_pods();
    let started = pods.get("b").await.unwrap();
    assert_eq!(
        started.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert_ne!(
        rv(&started),
        rv(&pending),
        "the kubelet's write moves the version"
    );
    fake.exit_pod("b", 1);
    assert_eq!(
        pods.get("b")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Failed")
    );
    assert_eq!(fake.objects(Kind::Pod).len(), 2);
}
