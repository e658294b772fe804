//! A narrative belongs to one exact user id (SPEC §10). Container names are many-to-one: the
//! Python naming cuts ids to 44 characters and keeps 24 bits of their SHA-1, so two ids with
//! one name are found in a few thousand hashes (below, at test time). Every path that could
//! hand one user another's narrative is tried: the index, find, adoption after a taken name,
//! a second replica, the pool, Python-made narratives, shutdown, and both at once.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use traefiker_core::testing::{AssignMode, InMemoryManager, ManualClock};
use traefiker_core::{
    ConnectOutcome, Lifecycle, LifecycleConfig, MemoryStore, Naming, Narrative, NarrativeKind,
    NarrativeState, Owner, ReplicaId, SessionId, UserId, Visit,
};

const IMAGE: &str = "kbase/narrative:5.4.3";

/// Two ids the Python naming gives one container name: 49 characters each (cut to 44), found
/// by a birthday search over the 24-bit hash.
fn colliding_ids() -> (UserId, UserId) {
    let naming = Naming::default();
    let mut seen: HashMap<String, String> = HashMap::new();
    for i in 0..1_000_000u32 {
        let id = format!("{}{i}", "collide".repeat(7));
        let name = naming
            .user_container(&UserId::new(&id).unwrap())
            .to_string();
        if let Some(first) = seen.insert(name, id.clone()) {
            return (UserId::new(first).unwrap(), UserId::new(id).unwrap());
        }
    }
    panic!("no collision in a million ids");
}

fn lifecycle(manager: &Arc<InMemoryManager>, replica: &str, pool_size: usize) -> Lifecycle {
    Lifecycle::builder(
        manager.clone(),
        LifecycleConfig {
            pool_size,
            replica: ReplicaId::new(replica).unwrap(),
            ..LifecycleConfig::default()
        },
    )
    .store(Arc::new(MemoryStore::new()))
    .clock(Arc::new(ManualClock::default()))
    .image(Some(IMAGE.to_owned()))
    .build()
}

fn manager(mode: AssignMode) -> Arc<InMemoryManager> {
    Arc::new(InMemoryManager::new(Naming::default()).with_assign_mode(mode))
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test step timed out")
}

/// The container whose session is `session`, as the backend holds it.
fn holder(m: &InMemoryManager, session: &SessionId) -> Narrative {
    let all: Vec<Narrative> = m
        .containers()
        .into_iter()
        .filter(|n| &n.session == session)
        .collect();
    assert_eq!(all.len(), 1, "one container per session");
    all.into_iter().next().unwrap()
}

#[test]
fn the_test_ids_really_share_a_name() {
    let (a, b) = colliding_ids();
    let naming = Naming::default();
    assert_ne!(a, b);
    assert_eq!(naming.user_container(&a), naming.user_container(&b));
    assert_ne!(naming.fallback_container(&a), naming.fallback_container(&b));
}

#[tokio::test]
async fn two_ids_that_share_a_name_never_share_a_narrative() {
    for mode in [
        AssignMode::Conditional,
        AssignMode::ReadThenRename,
        AssignMode::Versioned,
    ] {
        for pool_size in [0, 2] {
            let (first, second) = colliding_ids();
            let m = manager(mode);
            let l = lifecycle(&m, "replica-a", pool_size);
            bounded(l.fill_pool()).await.unwrap();
            let a = bounded(l.connect(&first, Visit::default())).await.unwrap();
            let b = bounded(l.connect(&second, Visit::default())).await.unwrap();
            assert_ne!(a.session, b.session, "{mode:?} pool {pool_size}");
            assert_ne!(a.name, b.name);
            assert_eq!(b.name, Naming::default().fallback_container(&second));
            assert_eq!(holder(&m, &a.session).owner, Some(Owner::of(&first)));
            assert_eq!(holder(&m, &b.session).owner, Some(Owner::of(&second)));
            // Found again, from the index, each their own.
            let a2 = bounded(l.connect(&first, Visit::default())).await.unwrap();
            let b2 = bounded(l.connect(&second, Visit::default())).await.unwrap();
            assert_eq!(
                (a2.session, a2.outcome),
                (a.session.clone(), ConnectOutcome::Existing)
            );
            assert_eq!(
                (b2.session, b2.outcome),
                (b.session.clone(), ConnectOutcome::Existing)
            );
            // And by another replica that knows only what a listing shows.
            let other = lifecycle(&m, "replica-b", 0);
            bounded(other.narratives()).await.unwrap();
            let b3 = bounded(other.connect(&second, Visit::default()))
                .await
                .unwrap();
            assert_eq!(
                b3.session, b.session,
                "the fallback narrative is found again"
            );
            let a3 = bounded(other.connect(&first, Visit::default()))
                .await
                .unwrap();
            assert_eq!(a3.session, a.session);
            let users = m
                .containers()
                .into_iter()
                .filter(|n| n.kind == NarrativeKind::User)
                .count();
            assert_eq!(users, 2, "one narrative each");
        }
    }
}

#[tokio::test]
async fn a_replica_whose_index_never_saw_the_first_users_narrative_does_not_hand_it_out() {
    let (first, second) = colliding_ids();
    let m = manager(AssignMode::ReadThenRename);
    let a = lifecycle(&m, "replica-a", 0);
    let b = lifecycle(&m, "replica-b", 0);
    // B lists before A creates: B's index says the name is free.
    bounded(b.narratives()).await.unwrap();
    let mine = bounded(a.connect(&first, Visit::default())).await.unwrap();
    let theirs = bounded(b.connect(&second, Visit::default())).await.unwrap();
    assert_ne!(
        theirs.session, mine.session,
        "create found the name taken, adopt refused it"
    );
    assert_eq!(holder(&m, &theirs.session).owner, Some(Owner::of(&second)));
}

#[tokio::test]
async fn both_at_once_get_one_narrative_each() {
    let (first, second) = colliding_ids();
    for mode in [
        AssignMode::Conditional,
        AssignMode::ReadThenRename,
        AssignMode::Versioned,
    ] {
        let m = manager(mode);
        let l = lifecycle(&m, "replica-a", 2);
        bounded(l.fill_pool()).await.unwrap();
        let (a, b) = bounded(async {
            tokio::join!(
                l.connect(&first, Visit::default()),
                l.connect(&second, Visit::default())
            )
        })
        .await;
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(
            a.session, b.session,
            "{mode:?}: concurrent flights are per user"
        );
        assert_eq!(holder(&m, &a.session).owner, Some(Owner::of(&first)));
        assert_eq!(holder(&m, &b.session).owner, Some(Owner::of(&second)));
    }
}

/// A user's narrative as the Python version left it: the user's name, no owner record.
fn python_made(m: &InMemoryManager, user: &UserId) -> SessionId {
    let session = SessionId::generate();
    m.insert(Narrative {
        id: String::new(),
        name: Naming::default().user_container(user),
        session: session.clone(),
        image: IMAGE.into(),
        kind: NarrativeKind::User,
        state: NarrativeState::Running,
        origin: None,
        replica: None,
        owner: None,
        version: None,
        address: None,
        public_endpoints: vec![],
        created: None,
    });
    session
}

#[tokio::test]
async fn a_python_made_narrative_is_stamped_by_the_first_user_and_kept_from_the_second() {
    let (first, second) = colliding_ids();
    let m = manager(AssignMode::ReadThenRename);
    let old = python_made(&m, &first);
    let l = lifecycle(&m, "replica-a", 0);
    bounded(l.track_existing()).await.unwrap();
    let a = bounded(l.connect(&first, Visit::default())).await.unwrap();
    assert_eq!(a.session, old, "the first user adopts it");
    assert_eq!(
        holder(&m, &old).owner,
        Some(Owner::of(&first)),
        "and it is stamped"
    );
    let b = bounded(l.connect(&second, Visit::default())).await.unwrap();
    assert_ne!(b.session, old, "the second is refused it");
    // A replica that listed before the stamp still cannot hand it to the second user: the
    // stamp is looked at again before it is written.
    let m2 = manager(AssignMode::ReadThenRename);
    let old2 = python_made(&m2, &first);
    let early = lifecycle(&m2, "replica-b", 0);
    bounded(early.narratives()).await.unwrap();
    let l2 = lifecycle(&m2, "replica-a", 0);
    bounded(l2.connect(&first, Visit::default())).await.unwrap();
    let b2 = bounded(early.connect(&second, Visit::default()))
        .await
        .unwrap();
    assert_ne!(b2.session, old2);
}

#[tokio::test]
async fn a_user_cannot_shut_down_a_narrative_that_shares_their_name() {
    let (first, second) = colliding_ids();
    let m = manager(AssignMode::ReadThenRename);
    let l = lifecycle(&m, "replica-a", 0);
    let a = bounded(l.connect(&first, Visit::default())).await.unwrap();
    assert_eq!(bounded(l.shutdown(&second)).await.unwrap(), None);
    assert_eq!(holder(&m, &a.session).owner, Some(Owner::of(&first)));
    let b = bounded(l.connect(&second, Visit::default())).await.unwrap();
    assert_eq!(bounded(l.shutdown(&second)).await.unwrap(), Some(b.name));
    assert_eq!(
        holder(&m, &a.session).owner,
        Some(Owner::of(&first)),
        "still there"
    );
    assert_eq!(bounded(l.shutdown(&first)).await.unwrap(), Some(a.name));
    assert!(m.containers().is_empty());
}
