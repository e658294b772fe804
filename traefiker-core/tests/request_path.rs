//! The request path makes exactly the backend calls it must, and no more (mockall: any call
//! not expected fails the test).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use mockall::mock;
use mockall::predicate::eq;

use traefiker_core::{
    Assignment, BackendInfo, ConnectOutcome, ContainerManager, Lifecycle, LifecycleConfig,
    ManagerError, MemoryStore, Narrative, NarrativeKind, NarrativeState, Origin, Owner,
    ServiceName, SessionId, SpawnSpec, SystemClock, UserId, Visit,
};

mock! {
    pub Manager {}
    #[async_trait]
    impl ContainerManager for Manager {
        async fn verify(&self) -> Result<BackendInfo, ManagerError>;
        async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError>;
        async fn list(&self) -> Result<Vec<Narrative>, ManagerError>;
        async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError>;
        async fn assign(&self, narrative: &Narrative, assignment: &Assignment) -> Result<Narrative, ManagerError>;
        async fn mark_connected(&self, narrative: &Narrative, origin: &Origin) -> Result<Narrative, ManagerError>;
        async fn stamp_owner(&self, narrative: &Narrative, owner: &Owner) -> Result<Narrative, ManagerError>;
        fn conditional(&self) -> bool;
        async fn remove(&self, narrative: &Narrative) -> Result<(), ManagerError>;
        async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError>;
        fn traefik_service(&self, narrative_name: &ServiceName) -> String;
    }
}

impl std::fmt::Debug for MockManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockManager")
    }
}

fn narrative(name: &str, kind: NarrativeKind) -> Narrative {
    Narrative {
        id: name.to_owned(),
        name: ServiceName::new(name).unwrap(),
        session: SessionId::generate(),
        image: "kbase/narrative:5.4.3".into(),
        kind,
        state: NarrativeState::Running,
        // Made or marked just now, as a listing shows it: no connection mark is due.
        origin: Some(Origin {
            client_ip: None,
            at: chrono::Utc::now(),
        }),
        replica: None,
        // Alice's, as traefiker records it.
        owner: (kind == NarrativeKind::User).then(|| Owner::of(&UserId::new("alice").unwrap())),
        version: None,
        address: None,
        public_endpoints: vec![],
        created: None,
    }
}

fn lifecycle(mut manager: MockManager) -> Lifecycle {
    // A capability, read once when the lifecycle is built; no backend call.
    manager.expect_conditional().return_const(false);
    Lifecycle::new(
        Arc::new(manager),
        vec![],
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        LifecycleConfig {
            pool_size: 1,
            ..LifecycleConfig::default()
        },
        Some("kbase/narrative:5.4.3".into()),
    )
}

#[tokio::test]
async fn a_known_user_costs_no_call() {
    let alice = narrative("narrative-alice-522b27", NarrativeKind::User);
    let session = alice.session.clone();
    let mut m = MockManager::new();
    let listed = vec![alice.clone()];
    m.expect_list()
        .times(1)
        .returning(move || Ok(listed.clone()));
    m.expect_traefik_service().returning(|n| n.to_string());
    let lc = lifecycle(m);
    lc.track_existing().await.unwrap();
    for _ in 0..3 {
        let c = lc
            .connect(&UserId::new("alice").unwrap(), Visit::default())
            .await
            .unwrap();
        assert_eq!(
            (c.outcome, c.session),
            (ConnectOutcome::Existing, session.clone())
        );
    }
}

#[tokio::test]
async fn a_known_user_that_traefik_did_not_route_costs_exactly_one_find() {
    let alice = narrative("narrative-alice-522b27", NarrativeKind::User);
    let session = alice.session.clone();
    let mut m = MockManager::new();
    let listed = vec![alice.clone()];
    m.expect_list()
        .times(1)
        .returning(move || Ok(listed.clone()));
    m.expect_traefik_service().returning(|n| n.to_string());
    m.expect_find()
        .with(eq(alice.name.clone()))
        .times(1)
        .returning(move |_| Ok(Some(alice.clone())));
    let lc = lifecycle(m);
    lc.track_existing().await.unwrap();
    let visit = Visit {
        client_ip: None,
        session_cookie: Some(session.clone()),
    };
    let c = lc
        .connect(&UserId::new("alice").unwrap(), visit)
        .await
        .unwrap();
    assert_eq!((c.outcome, c.session), (ConnectOutcome::Existing, session));
}

#[tokio::test]
async fn a_new_user_from_the_pool_costs_exactly_one_assign() {
    let mut waiting = narrative("narrativepre-1f2e3d", NarrativeKind::Prespawned);
    waiting.replica = Some(LifecycleConfig::default().replica);
    let mut m = MockManager::new();
    let listed = vec![waiting.clone()];
    m.expect_list()
        .times(1)
        .returning(move || Ok(listed.clone()));
    m.expect_traefik_service().returning(|n| n.to_string());
    m.expect_assign().times(1).returning(|n, a| {
        let mut n = n.clone();
        n.name = a.name.clone();
        n.kind = NarrativeKind::User;
        Ok(n)
    });
    let lc = lifecycle(m);
    lc.track_existing().await.unwrap();
    let c = lc
        .connect(&UserId::new("dave").unwrap(), Visit::default())
        .await
        .unwrap();
    assert_eq!(c.outcome, ConnectOutcome::Assigned);
    assert_eq!(c.session, waiting.session);
    assert_eq!(c.name.as_str(), "narrative-dave-bfcdf3");
}
