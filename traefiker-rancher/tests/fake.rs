//! Behaviour over the stateful fake Rancher: long listings, duplicates, discovery, faults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::bounded;

use std::time::{Duration, Instant};

use traefiker_core::{
    Assignment, ContainerManager, ManagerError, NarrativeKind, Origin, Owner, ServiceName,
    SessionId, SpawnSpec, UserId,
};
use traefiker_rancher::testing::{FakeRancher, Fault, STACK_ID};
use traefiker_rancher::RancherManager;

fn session(i: usize) -> String {
    format!("{i:032x}")
}

/// A user's narrative for `erin` from `image`.
fn erin(image: &str) -> SpawnSpec {
    SpawnSpec {
        name: ServiceName::new("narrative-erin-2a4b17").unwrap(),
        session: SessionId::parse(&session(7)).unwrap(),
        image: image.into(),
        kind: NarrativeKind::User,
        labels: Default::default(),
        env: Default::default(),
        origin: None,
        owner: Some(Owner::of(&UserId::new("erin").unwrap())),
    }
}

#[tokio::test]
async fn lists_2500_services_over_several_pages() {
    let fake = bounded(FakeRancher::start()).await;
    for i in 0..2_500 {
        let s = session(i + 1);
        fake.add_service(
            &format!("narrativepre-{}", &s[26..]),
            "docker:kbase/narrative:5.4.3",
            Some(&s),
            "healthy",
        );
    }
    // Not narratives: another image with the same prefix, and a bad session label.
    fake.add_service(
        "narrativepre-ffffff",
        "docker:kbase/narrative_version:5.4.3",
        Some(&session(9)),
        "healthy",
    );
    fake.add_service(
        "narrative-broken-000000",
        "docker:kbase/narrative:5.4.3",
        Some("not-a-session"),
        "healthy",
    );
    fake.set_page_size(Some(1000));
    let m = RancherManager::new(fake.config()).unwrap();
    fake.reset_calls();
    let listed = bounded(m.list()).await.unwrap();
    assert_eq!(listed.len(), 2_500);
    assert!(listed.iter().all(|n| n.kind == NarrativeKind::Prespawned));
    let calls = fake.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(
        calls[0].ends_with(&format!("/services?stackId={STACK_ID}&limit=1000")),
        "{}",
        calls[0]
    );
    assert!(calls[2].ends_with("&marker=m2000"), "{}", calls[2]);
}

#[tokio::test]
async fn find_returns_the_oldest_of_duplicates_every_time_and_removes_none() {
    let fake = bounded(FakeRancher::start()).await;
    let name = "narrative-alice-522b27";
    fake.add_service_at(502, name, &session(2), 2_000);
    let oldest = fake.add_service_at(503, name, &session(1), 1_000);
    fake.add_service_at(501, name, &session(3), 2_000);
    let m = RancherManager::new(fake.config()).unwrap();
    for _ in 0..3 {
        let found = bounded(m.find(&ServiceName::new(name).unwrap()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, oldest);
    }
    let live = fake
        .services()
        .iter()
        .filter(|s| s.name == name && s.state == "active")
        .count();
    assert_eq!(live, 3, "find never removes a duplicate");
    // Same createdTS: the lower id wins.
    fake.add_service_at(600, "narrative-bob-smith-79a783", &session(4), 5_000);
    fake.add_service_at(599, "narrative-bob-smith-79a783", &session(5), 5_000);
    let found = bounded(m.find(&ServiceName::new("narrative-bob-smith-79a783").unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, "1s599");
}

#[tokio::test]
async fn discovery_through_the_fake_learns_everything() {
    let fake = bounded(FakeRancher::start()).await;
    let mut config = fake.config();
    config.env_url = None;
    config.stack_id = None;
    config.stack_name = None;
    let m = bounded(RancherManager::discover(config)).await.unwrap();
    assert_eq!(m.env_url(), fake.env_url());
    assert_eq!((m.stack_id(), m.stack_name()), ("1st5", "narratives"));
    let info = bounded(m.verify()).await.unwrap();
    assert_eq!(info.backend, "rancher");
    assert!(info.location.contains("narratives"));
}

#[tokio::test]
async fn stack_name_is_learned_from_the_id() {
    let fake = bounded(FakeRancher::start()).await;
    let mut config = fake.config();
    config.stack_name = None;
    config.meta_url = "http://127.0.0.1:9/".into();
    let m = bounded(RancherManager::discover(config)).await.unwrap();
    assert_eq!(m.stack_name(), "narratives");
}

#[tokio::test]
async fn injected_faults_map_to_variants_and_reads_retry() {
    let fake = bounded(FakeRancher::start()).await;
    let m = RancherManager::new(fake.config()).unwrap();
    fake.inject(Fault::Status(409));
    fake.inject(Fault::Status(502));
    assert!(
        bounded(m.list()).await.is_ok(),
        "two transient failures are retried"
    );
    for _ in 0..3 {
        fake.inject(Fault::Status(500));
    }
    assert!(matches!(
        bounded(m.list()).await,
        Err(ManagerError::Unavailable { .. })
    ));
    fake.inject(Fault::Malformed);
    assert!(matches!(
        bounded(m.list()).await,
        Err(ManagerError::Rejected { .. })
    ));
    fake.inject(Fault::Status(403));
    assert!(matches!(
        bounded(m.zombies()).await,
        Err(ManagerError::Rejected { .. })
    ));
}

#[tokio::test]
async fn latency_beyond_the_listing_deadline_is_unavailable() {
    let fake = bounded(FakeRancher::start()).await;
    let mut config = fake.config();
    config.timeouts.list = Duration::from_millis(100);
    config.retry = traefiker_rancher::RetryPolicy::none();
    let m = RancherManager::new(config).unwrap();
    fake.set_latency(Duration::from_millis(500));
    assert!(matches!(
        bounded(m.list()).await,
        Err(ManagerError::Unavailable { .. })
    ));
    fake.set_latency(Duration::ZERO);
    fake.inject(Fault::Delay(Duration::from_millis(30)));
    assert!(bounded(m.list()).await.is_ok());
}

#[tokio::test]
async fn zombies_are_narratives_of_our_stack() {
    let fake = bounded(FakeRancher::start()).await;
    let zombie = fake.add_service(
        "narrative-kbasetest-2807ff",
        "docker:kbase/narrative:5.4.2",
        Some(&session(7)),
        "started-once",
    );
    let m = RancherManager::new(fake.config()).unwrap();
    let zombies = bounded(m.zombies()).await.unwrap();
    let ids: Vec<&str> = zombies.iter().map(|z| z.id.as_str()).collect();
    assert_eq!(
        ids,
        [zombie.as_str()],
        "mongo-init of stack tools is not ours"
    );
}

#[tokio::test]
async fn wrong_credentials_are_rejected() {
    let fake = bounded(FakeRancher::start()).await;
    let mut config = fake.config();
    config.credentials = Some(traefiker_rancher::Credentials::new(
        "FAKEACCESSKEY",
        "wrong",
    ));
    let m = RancherManager::new(config).unwrap();
    assert!(matches!(
        bounded(m.verify()).await,
        Err(ManagerError::Rejected { .. })
    ));
}

/// Issue 10 point 6: a service Rancher created is never left behind unseen. One that does not
/// read back as a narrative (here: not the configured image) is removed by its id.
#[tokio::test]
async fn a_created_service_that_is_not_a_narrative_is_removed() {
    let fake = bounded(FakeRancher::start()).await;
    let m = RancherManager::new(fake.config()).unwrap();
    let err = bounded(m.create(&erin("kbase/notebook:1.0")))
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::Rejected { .. }), "{err:?}");
    let created = fake
        .services()
        .into_iter()
        .find(|s| s.name == "narrative-erin-2a4b17")
        .expect("Rancher did create it");
    assert_eq!(created.state, "removing");
    assert!(
        fake.calls().contains(&format!(
            "DELETE /v2-beta/projects/1a5/services/{}",
            created.id
        )),
        "{:?}",
        fake.calls()
    );
    assert!(err.to_string().contains("removed"), "{err}");
}

/// A create whose answer is lost after Rancher performed it is `Unavailable` within the
/// deadline, is not repeated, and the name then finds the container (so the lifecycle can
/// adopt it, as the `ContainerManager` contract says).
#[tokio::test]
async fn a_create_whose_answer_is_lost_is_unavailable_and_then_found_by_name() {
    let fake = bounded(FakeRancher::start()).await;
    let mut config = fake.config();
    let deadline = Duration::from_millis(400);
    config.timeouts.request = deadline;
    let m = RancherManager::new(config).unwrap();
    fake.set_create_latency(Duration::from_secs(5));
    let spec = erin("kbase/narrative:5.4.3");
    let started = Instant::now();
    let err = bounded(m.create(&spec)).await.unwrap_err();
    assert!(matches!(err, ManagerError::Unavailable { .. }), "{err:?}");
    assert!(started.elapsed() < deadline + Duration::from_millis(350));
    let posts = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("POST "))
        .count();
    assert_eq!(posts, 1, "a create is never repeated blindly");
    let found = bounded(m.find(&spec.name))
        .await
        .unwrap()
        .expect("the lost create happened");
    assert_eq!(found.session, spec.session);
}

/// Like Rancher, the fake renames when the PUT arrives, however late its answer: a rename whose
/// answer is lost is `Unavailable`, and the new name is already taken by the renamed service.
#[tokio::test]
async fn a_rename_whose_answer_is_lost_has_happened() {
    let fake = bounded(FakeRancher::start()).await;
    let s = session(11);
    fake.add_service(
        &format!("narrativepre-{}", &s[26..]),
        "docker:kbase/narrative:5.4.3",
        Some(&s),
        "healthy",
    );
    let mut config = fake.config();
    config.timeouts.request = Duration::from_millis(400);
    let m = RancherManager::new(config).unwrap();
    let waiting = bounded(m.list()).await.unwrap().remove(0);
    fake.set_put_latency(Duration::from_secs(5));
    let to = ServiceName::new("narrative-dave-bfcdf3").unwrap();
    let assignment = Assignment {
        name: to.clone(),
        owner: Owner::of(&UserId::new("dave").unwrap()),
        origin: Origin {
            client_ip: None,
            at: chrono::Utc::now(),
        },
    };
    let err = bounded(m.assign(&waiting, &assignment)).await.unwrap_err();
    assert!(matches!(err, ManagerError::Unavailable { .. }), "{err:?}");
    let found = bounded(m.find(&to)).await.unwrap().expect("renamed");
    assert_eq!(found.id, waiting.id);
    assert_eq!(found.session, waiting.session);
}
