//! What the Kubernetes backend adds to the contract, against the fake API server: a user's
//! name is held by one lease, so one narrative per user holds across replicas even while an
//! old pod terminates; every decision is a compare-and-swap on the pod's resourceVersion;
//! what a crash leaves behind is found as a zombie; and each operation costs the calls it
//! should.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use traefiker_core::testing::conformance::{Caps, Context};
use traefiker_core::testing::ManualClock;
use traefiker_core::{
    Assignment, Clock, ContainerManager, ManagerError, NarrativeKind, Origin, Owner, UserId,
};
use traefiker_kube::testing::{names, Collection, Kind, Termination};

fn context() -> Context {
    Context::new(
        support::IMAGE,
        Caps {
            reports_address: true,
            zombies: true,
            conditional_assign: true,
            marks_connected: true,
            conditional: true,
        },
    )
}

fn owner(user: &str) -> Owner {
    Owner::of(&UserId::new(user).unwrap())
}

fn assignment(name: &traefiker_core::ServiceName, who: &str) -> Assignment {
    Assignment {
        name: name.clone(),
        origin: Origin {
            client_ip: Some("192.0.2.5".into()),
            at: Utc::now(),
        },
        owner: owner(who),
    }
}

#[tokio::test]
async fn two_replicas_creating_one_user_leave_one_pod_and_one_claim() {
    let fake = support::cluster();
    let (a, b) = (support::manager(&fake).await, support::manager(&fake).await);
    let ctx = context();
    let spec = ctx.user_spec();
    let (ra, rb) = futures::join!(a.create(&spec), b.create(&spec));
    let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "exactly one create wins: {ra:?} {rb:?}");
    for r in [&ra, &rb] {
        if let Err(e) = r {
            assert!(
                matches!(e, ManagerError::NameTaken { .. }),
                "the loser sees NameTaken, got {e:?}"
            );
        }
    }
    assert_eq!(
        fake.objects(Kind::Pod).len(),
        1,
        "the loser's pod was removed"
    );
    assert_eq!(fake.objects(Kind::Lease).len(), 1, "one claim");
    let found = a.find(&spec.name).await.unwrap().expect("found");
    let winner = ra.or(rb).unwrap();
    assert_eq!(found.id, winner.id);
}

#[tokio::test]
async fn a_user_gets_a_new_pod_while_the_old_one_still_terminates() {
    let fake = support::cluster();
    fake.set_termination(Termination::Lingering);
    fake.set_collection(Collection::Deferred);
    let m = support::manager(&fake).await;
    let ctx = context();
    let spec = ctx.user_spec();
    let first = m.create(&spec).await.unwrap();
    m.remove(&first).await.unwrap();
    assert_eq!(
        m.find(&spec.name).await.unwrap(),
        None,
        "a terminating pod is not found"
    );
    assert_eq!(
        fake.objects(Kind::Lease).len(),
        1,
        "its claim is still there"
    );
    let second = m
        .create(&spec)
        .await
        .expect("the stale claim does not block the user");
    assert_ne!(second.id, first.id);
    assert_eq!(m.find(&spec.name).await.unwrap().unwrap().id, second.id);
    fake.finish_terminations();
    fake.collect_garbage();
    assert_eq!(fake.objects(Kind::Pod).len(), 1);
    assert_eq!(
        m.find(&spec.name).await.unwrap().unwrap().id,
        second.id,
        "the new claim stays"
    );
}

#[tokio::test]
async fn a_name_held_for_another_owner_is_owned_by_another_and_the_candidate_waits_again() {
    let fake = support::cluster();
    let m = support::manager(&fake).await;
    let ctx = context();
    let mut spec = ctx.user_spec();
    spec.owner = Some(owner("alice"));
    m.create(&spec).await.unwrap();
    let waiting = m.create(&ctx.prespawn_spec()).await.unwrap();
    let err = m
        .assign(&waiting, &assignment(&spec.name, "alice.")) // another id, same name
        .await
        .expect_err("the name is alice's");
    assert!(
        matches!(err, ManagerError::OwnedByAnother { .. }),
        "got {err:?}"
    );
    let again = m
        .find(&waiting.name)
        .await
        .unwrap()
        .expect("the candidate waits again");
    assert_eq!(again.kind, NarrativeKind::Prespawned);
    assert_eq!(again.owner, None, "and carries no owner");
    let err = m
        .assign(&again, &assignment(&spec.name, "alice"))
        .await
        .expect_err("alice has her narrative");
    assert!(matches!(err, ManagerError::NameTaken { .. }), "got {err:?}");
}

#[tokio::test]
async fn two_replicas_assigning_one_candidate_give_it_to_one_user() {
    let fake = support::cluster();
    let (a, b) = (support::manager(&fake).await, support::manager(&fake).await);
    let ctx = context();
    let waiting = a.create(&ctx.prespawn_spec()).await.unwrap();
    let (x, y) = (
        assignment(&ctx.user_spec().name, "x"),
        assignment(&ctx.user_spec().name, "y"),
    );
    let (ra, rb) = futures::join!(a.assign(&waiting, &x), b.assign(&waiting, &y));
    assert_eq!(
        [&ra, &rb].iter().filter(|r| r.is_ok()).count(),
        1,
        "{ra:?} {rb:?}"
    );
    let lost = ra.as_ref().err().or(rb.as_ref().err()).unwrap();
    assert!(
        matches!(lost, ManagerError::Conflict { .. }),
        "the loser sees Conflict, got {lost:?}"
    );
    assert_eq!(
        fake.objects(Kind::Lease).len(),
        1,
        "one claim, the winner's"
    );
}

#[tokio::test]
async fn every_decision_is_a_compare_and_swap_on_the_version_read() {
    let fake = support::cluster();
    let m = support::manager(&fake).await;
    let ctx = context();
    let mut spec = ctx.user_spec();
    spec.owner = None;
    let created = m.create(&spec).await.unwrap();
    let origin = Origin {
        client_ip: None,
        at: Utc::now(),
    };
    let marked = m.mark_connected(&created, &origin).await.unwrap();
    assert_ne!(marked.version, created.version, "a mark moves the version");
    let stale = m
        .mark_connected(&created, &origin)
        .await
        .expect_err("stale");
    assert!(
        matches!(stale, ManagerError::Conflict { .. }),
        "got {stale:?}"
    );
    let stale = m
        .remove(&created)
        .await
        .expect_err("a reaper that read before the mark");
    assert!(
        matches!(stale, ManagerError::Conflict { .. }),
        "got {stale:?}"
    );
    assert!(
        m.find(&created.name).await.unwrap().is_some(),
        "the connected narrative stays"
    );
    let stale = m
        .stamp_owner(&created, &owner("bob"))
        .await
        .expect_err("stale");
    assert!(
        matches!(stale, ManagerError::Conflict { .. }),
        "got {stale:?}"
    );
    let stamped = m
        .stamp_owner(&marked, &owner("bob"))
        .await
        .expect("stamped");
    assert_eq!(stamped.owner, Some(owner("bob")));
    let theirs = m
        .stamp_owner(&stamped, &owner("carol"))
        .await
        .expect_err("bob's");
    assert!(
        matches!(theirs, ManagerError::OwnedByAnother { .. }),
        "got {theirs:?}"
    );
    let stale = m.remove(&marked).await.expect_err("stamped since");
    assert!(
        matches!(stale, ManagerError::Conflict { .. }),
        "got {stale:?}"
    );
    m.remove(&stamped)
        .await
        .expect("the current version is removed");
    assert_eq!(m.find(&created.name).await.unwrap(), None);
}

#[tokio::test]
async fn what_a_crash_leaves_behind_is_a_zombie() {
    let fake = support::cluster();
    let clock = Arc::new(ManualClock::at(Utc::now()));
    let m = support::manager_with(&fake, clock.clone()).await;
    let ctx = context();
    // An assignment that relabelled its pod and died before the claim.
    let waiting = m.create(&ctx.prespawn_spec()).await.unwrap();
    let pod_name = waiting.id.split('/').next().unwrap().to_owned();
    let user = ctx.user_spec().name;
    let pods: Api<Pod> = Api::namespaced(fake.client(), support::NS);
    pods.patch(
        &pod_name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {
            "labels": {"traefiker.name": user.as_str()},
            "annotations": {"traefiker.origin": Origin { client_ip: None, at: clock.now() }.to_description()},
        }})),
    )
    .await
    .unwrap();
    assert_eq!(
        m.find(&user).await.unwrap(),
        None,
        "an unclaimed pod is nobody's"
    );
    assert!(
        !m.list().await.unwrap().iter().any(|n| n.name == user),
        "nor listed"
    );
    assert!(
        m.zombies().await.unwrap().is_empty(),
        "in flight, it may still be claimed"
    );
    clock.advance(std::time::Duration::from_secs(301));
    let zombies = m.zombies().await.unwrap();
    assert_eq!(zombies.len(), 1, "past orphan_grace it is a zombie");
    m.remove(&zombies[0]).await.unwrap();
    // A narrative that exited.
    let running = m.create(&ctx.user_spec()).await.unwrap();
    fake.exit_pod(running.id.split('/').next().unwrap(), 137);
    let zombies = m.zombies().await.unwrap();
    assert_eq!(
        zombies.iter().map(|z| &z.name).collect::<Vec<_>>(),
        [&running.name]
    );
}

#[tokio::test]
async fn each_operation_costs_the_calls_it_should() {
    let fake = support::cluster();
    let m = support::manager(&fake).await;
    let ctx = context();
    let count = |verbs: &[(&str, &str)]| {
        let calls = fake.calls();
        let got: Vec<(String, String)> = calls
            .iter()
            .map(|c| (c.verb.clone(), c.resource.clone()))
            .collect();
        let want: Vec<(String, String)> = verbs
            .iter()
            .map(|(v, r)| ((*v).into(), (*r).into()))
            .collect();
        assert_eq!(got, want);
        fake.clear_calls();
    };
    let waiting = m.create(&ctx.prespawn_spec()).await.unwrap();
    count(&[("create", "pods")]);
    let name = ctx.user_spec().name;
    let assigned = m.assign(&waiting, &assignment(&name, "u")).await.unwrap();
    count(&[("patch", "pods"), ("create", "leases")]);
    m.find(&name).await.unwrap().unwrap();
    count(&[("get", "leases"), ("get", "pods")]);
    let marked = m
        .mark_connected(
            &assigned,
            &Origin {
                client_ip: None,
                at: Utc::now(),
            },
        )
        .await
        .unwrap();
    count(&[("patch", "pods")]);
    m.create(&ctx.user_spec()).await.unwrap();
    count(&[("create", "pods"), ("create", "leases")]);
    m.list().await.unwrap();
    count(&[("list", "pods"), ("list", "leases")]);
    m.remove(&marked).await.unwrap();
    count(&[("patch", "pods"), ("delete", "pods")]);
}

#[tokio::test]
async fn a_listing_reads_every_page() {
    let fake = support::cluster();
    let m = support::manager(&fake).await;
    for i in 0..1001 {
        // Written straight into the fake: a thousand creates through the client would cost
        // seconds and test nothing more.
        let name = format!("narrativepre-{i:06x}");
        fake.create(
            Kind::Pod,
            json!({
                "metadata": {
                    "name": name,
                    "labels": {"app.kubernetes.io/managed-by": "traefiker", "traefiker.name": name},
                    "annotations": {"session_id": format!("{i:032x}")},
                },
                "spec": {"containers": [{"name": "narrative", "image": support::IMAGE}]},
            }),
        )
        .unwrap();
    }
    fake.clear_calls();
    let listed = m.list().await.unwrap();
    assert_eq!(listed.len(), 1001);
    let pages = fake
        .calls()
        .iter()
        .filter(|c| c.verb == "list" && c.resource == "pods")
        .count();
    assert_eq!(pages, 3, "500 a page");
    assert_eq!(names(&fake.objects(Kind::Pod)).len(), 1001);
}
