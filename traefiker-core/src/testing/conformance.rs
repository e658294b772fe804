//! The conformance suite: one async function per rule of the [`ContainerManager`] contract,
//! and [`run_all`] to run them all. Every backend calls it from its own tests, against its
//! real implementation (over a fake server where the real one cannot run), so behaviour cannot
//! drift between backends.
//!
//! The suite creates and removes containers named from `Context::naming` with user ids that
//! start with `conformance-`; it touches nothing else, but point it only at a backend meant
//! for tests.
//!
//! Failures panic with a message naming the rule, like any test assertion.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::Utc;

use crate::error::ManagerError;
use crate::manager::ContainerManager;
use crate::names::{Naming, NarrativeKind, Owner, ReplicaId, ServiceName, SessionId, UserId};
use crate::narrative::{Assignment, Narrative, Origin, SpawnSpec};
use crate::rules::{Routing, REPLICA_LABEL};

/// What a backend can do, where the contract allows a choice. Each capability is still
/// asserted: a backend without zombie detection must answer `Unsupported`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Narratives carry the address they answer on.
    pub reports_address: bool,
    /// `zombies` is supported.
    pub zombies: bool,
    /// `assign` is one atomic compare-and-rename. `false` for a read followed by an
    /// unconditional rename (Rancher, Docker): two concurrent assignments of one candidate
    /// may then both succeed, which the lifecycle prevents by letting only the replica that
    /// made a waiting container assign it (SPEC §9). In the spirit of object_store's
    /// `PutMode`: the suite asserts the stronger guarantee only where it is claimed.
    pub conditional_assign: bool,
    /// `mark_connected` is supported (containers have mutable metadata).
    pub marks_connected: bool,
    /// Every write is compare-and-swap on [`Narrative::version`]
    /// ([`ContainerManager::conditional`]): a stale version fails with `Conflict`.
    pub conditional: bool,
}

/// How the suite names and starts its containers.
#[derive(Clone, Debug)]
pub struct Context {
    /// The naming the backend classifies kinds with.
    pub naming: Naming,
    /// The image the backend lists (`<image_name>:<tag>`).
    pub image: String,
    /// What the backend supports.
    pub caps: Caps,
}

impl Context {
    /// The replica id the suite's waiting containers are labelled with.
    pub const REPLICA: &'static str = "conformance-replica";

    /// A context with the default naming and `image`.
    pub fn new(image: impl Into<String>, caps: Caps) -> Self {
        Self {
            naming: Naming::default(),
            image: image.into(),
            caps,
        }
    }

    fn user(&self) -> UserId {
        let session = SessionId::generate();
        UserId::new(format!("conformance-{}", session.short())).unwrap()
    }

    /// A spec for a new user container, owned by its (random) user.
    pub fn user_spec(&self) -> SpawnSpec {
        let user = self.user();
        let session = SessionId::generate();
        let name = self.naming.user_container(&user);
        SpawnSpec {
            labels: Routing::default().labels(&self.naming.router_for(&name), &session),
            name,
            owner: Some(Owner::of(&user)),
            session,
            image: self.image.clone(),
            kind: NarrativeKind::User,
            env: [("CONFORMANCE".to_owned(), "1".to_owned())].into(),
            origin: Some(Origin {
                client_ip: Some("192.0.2.1".into()),
                at: Utc::now(),
            }),
        }
    }

    /// A spec for a new waiting container, made by replica `conformance-replica`.
    pub fn prespawn_spec(&self) -> SpawnSpec {
        let session = SessionId::generate();
        let mut labels = Routing::default().labels(session.short(), &session);
        labels.insert(REPLICA_LABEL.to_owned(), Self::REPLICA.to_owned());
        SpawnSpec {
            name: self.naming.prespawn_container(&session),
            labels,
            session,
            image: self.image.clone(),
            kind: NarrativeKind::Prespawned,
            env: Default::default(),
            origin: None,
            owner: None,
        }
    }

    fn assignment(&self) -> Assignment {
        let user = self.user();
        Assignment {
            name: self.naming.user_container(&user),
            owner: Owner::of(&user),
            origin: Origin {
                client_ip: Some("192.0.2.2".into()),
                at: Utc::now(),
            },
        }
    }
}

async fn find(m: &dyn ContainerManager, name: &ServiceName) -> Option<Narrative> {
    m.find(name).await.expect("find must succeed")
}

/// Create, find, list and remove one user container.
pub async fn find_create_remove(m: &dyn ContainerManager, ctx: &Context) {
    let spec = ctx.user_spec();
    assert_eq!(
        find(m, &spec.name).await,
        None,
        "find of a new name is None"
    );
    let created = m.create(&spec).await.expect("create must succeed");
    assert_eq!(created.name, spec.name, "create returns the name");
    assert_eq!(created.session, spec.session, "create keeps the session");
    assert_eq!(
        created.kind,
        NarrativeKind::User,
        "a user name is a user narrative"
    );
    assert_eq!(created.image, spec.image, "create reports the image");
    if ctx.caps.reports_address {
        let found = find(m, &spec.name).await.expect("found");
        assert!(found.address.is_some(), "the backend reports addresses");
    }
    let found = find(m, &spec.name)
        .await
        .expect("find sees the created container");
    assert_eq!(found.session, spec.session, "find reads the session back");
    assert_eq!(found.id, created.id, "find returns the created container");
    let listed = m.list().await.expect("list must succeed");
    assert!(
        listed
            .iter()
            .any(|n| n.name == spec.name && n.session == spec.session),
        "list includes the created container"
    );
    m.remove(&found).await.expect("remove must succeed");
    assert_eq!(
        find(m, &spec.name).await,
        None,
        "a removed container is not found"
    );
    let listed = m.list().await.expect("list must succeed");
    assert!(
        !listed.iter().any(|n| n.name == spec.name),
        "list excludes a removed container"
    );
}

/// Removing twice succeeds twice.
pub async fn remove_is_idempotent(m: &dyn ContainerManager, ctx: &Context) {
    let created = m.create(&ctx.user_spec()).await.expect("create");
    m.remove(&created).await.expect("first remove");
    m.remove(&created)
        .await
        .expect("removing a container that is gone is success");
}

/// Creating a name that exists fails with `NameTaken` and leaves the first container alone.
pub async fn create_name_taken(m: &dyn ContainerManager, ctx: &Context) {
    let spec = ctx.user_spec();
    let first = m.create(&spec).await.expect("create");
    let mut again = spec.clone();
    again.session = SessionId::generate();
    let err = m
        .create(&again)
        .await
        .expect_err("a second create of a name fails");
    assert!(
        matches!(err, ManagerError::NameTaken { .. }),
        "a taken name is NameTaken, got {err:?}"
    );
    let found = find(m, &spec.name).await.expect("the first is still there");
    assert_eq!(found.session, first.session, "the winner's session stands");
    m.remove(&found).await.expect("remove");
}

/// Assigning renames a waiting container, keeps its session and sets its origin.
pub async fn assign_renames_prespawned(m: &dyn ContainerManager, ctx: &Context) {
    let spec = ctx.prespawn_spec();
    let waiting = m.create(&spec).await.expect("create waiting");
    assert_eq!(
        waiting.kind,
        NarrativeKind::Prespawned,
        "a prespawn name is waiting"
    );
    let assignment = ctx.assignment();
    let assigned = m.assign(&waiting, &assignment).await.expect("assign");
    assert_eq!(assigned.name, assignment.name, "assign renames");
    assert_eq!(assigned.session, spec.session, "assign keeps the session");
    assert_eq!(
        assigned.kind,
        NarrativeKind::User,
        "an assigned narrative is a user's"
    );
    let found = find(m, &assignment.name)
        .await
        .expect("found by the new name");
    assert_eq!(found.session, spec.session, "found with the same session");
    assert_eq!(
        found.origin.as_ref().and_then(|o| o.client_ip.as_deref()),
        Some("192.0.2.2"),
        "assign sets the description"
    );
    assert_eq!(find(m, &spec.name).await, None, "the old name is gone");
    m.remove(&found).await.expect("remove");
}

/// Assigning to a name that exists fails with `NameTaken` and leaves the candidate waiting.
/// The name is another user's here, so a backend that keeps per-name claims may say so with
/// `OwnedByAnother`, as the contract allows.
pub async fn assign_to_taken_name(m: &dyn ContainerManager, ctx: &Context) {
    let user_spec = ctx.user_spec();
    let user = m.create(&user_spec).await.expect("create user");
    let waiting = m
        .create(&ctx.prespawn_spec())
        .await
        .expect("create waiting");
    let assignment = Assignment {
        name: user_spec.name.clone(),
        ..ctx.assignment()
    };
    let err = m
        .assign(&waiting, &assignment)
        .await
        .expect_err("assigning to a taken name fails");
    assert!(
        matches!(
            err,
            ManagerError::NameTaken { .. } | ManagerError::OwnedByAnother { .. }
        ),
        "a taken name is NameTaken (or OwnedByAnother), got {err:?}"
    );
    let still = find(m, &waiting.name)
        .await
        .expect("the candidate still waits");
    assert_eq!(still.kind, NarrativeKind::Prespawned);
    let owner = find(m, &user_spec.name)
        .await
        .expect("the user keeps theirs");
    assert_eq!(owner.session, user.session);
    m.remove(&still).await.expect("remove");
    m.remove(&owner).await.expect("remove");
}

/// Assigning a candidate that was removed fails with `NotFound`.
pub async fn assign_vanished_candidate(m: &dyn ContainerManager, ctx: &Context) {
    let waiting = m
        .create(&ctx.prespawn_spec())
        .await
        .expect("create waiting");
    m.remove(&waiting).await.expect("remove");
    let assignment = ctx.assignment();
    let err = m
        .assign(&waiting, &assignment)
        .await
        .expect_err("assigning a removed candidate fails");
    assert!(
        matches!(err, ManagerError::NotFound { .. }),
        "a vanished candidate is NotFound, got {err:?}"
    );
    assert_eq!(find(m, &assignment.name).await, None, "nothing was made");
}

/// Assigning a candidate that was already given to someone else fails with `NotFound` and
/// leaves the first user's narrative alone: two users never share a container, even when a
/// stale listing offers the same candidate twice (another replica's assignment).
pub async fn assign_is_not_repeated(m: &dyn ContainerManager, ctx: &Context) {
    let waiting = m
        .create(&ctx.prespawn_spec())
        .await
        .expect("create waiting");
    let first = ctx.assignment();
    let given = m.assign(&waiting, &first).await.expect("first assign");
    let second = ctx.assignment();
    let err = m
        .assign(&waiting, &second)
        .await
        .expect_err("assigning the same candidate again fails");
    assert!(
        matches!(err, ManagerError::NotFound { .. })
            || (ctx.caps.conditional && matches!(err, ManagerError::Conflict { .. })),
        "an already assigned candidate is NotFound (or Conflict where writes are conditional), got {err:?}"
    );
    let owner = find(m, &first.name).await.expect("the first user keeps it");
    assert_eq!(owner.id, given.id);
    assert_eq!(
        find(m, &second.name).await,
        None,
        "nothing was made for the second"
    );
    m.remove(&owner).await.expect("remove");
}

/// Two concurrent assignments of one candidate to two users: with a conditional rename
/// exactly one wins; without, the backend may let both succeed, but never leaves two
/// containers with one user's name nor loses the candidate's session.
pub async fn concurrent_assign(m: &dyn ContainerManager, ctx: &Context) {
    let waiting = m
        .create(&ctx.prespawn_spec())
        .await
        .expect("create waiting");
    let (a, b) = (ctx.assignment(), ctx.assignment());
    let (ra, rb) = futures::join!(m.assign(&waiting, &a), m.assign(&waiting, &b));
    let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    if ctx.caps.conditional_assign {
        assert_eq!(
            wins, 1,
            "a conditional assign lets exactly one of two concurrent assignments win"
        );
    } else {
        assert!(wins >= 1, "one of two concurrent assignments succeeds");
    }
    for r in [&ra, &rb] {
        if let Err(e) = r {
            assert!(
                matches!(e, ManagerError::NotFound { .. })
                    || (ctx.caps.conditional && matches!(e, ManagerError::Conflict { .. })),
                "the loser of a race for a candidate sees NotFound (or Conflict), got {e:?}"
            );
        }
    }
    let listed = m.list().await.expect("list");
    let holders: Vec<&Narrative> = listed.iter().filter(|n| n.id == waiting.id).collect();
    assert_eq!(holders.len(), 1, "the candidate is one container");
    assert_eq!(
        holders[0].session, waiting.session,
        "the candidate keeps its session"
    );
    for n in listed
        .iter()
        .filter(|n| n.name == a.name || n.name == b.name)
    {
        m.remove(n).await.expect("remove");
    }
}

/// The replica label of a waiting container is read back by `find` and `list`, and survives
/// an assignment.
pub async fn replica_label_is_read_back(m: &dyn ContainerManager, ctx: &Context) {
    let replica = ReplicaId::new(Context::REPLICA).unwrap();
    let spec = ctx.prespawn_spec();
    let waiting = m.create(&spec).await.expect("create waiting");
    assert_eq!(
        waiting.replica.as_ref(),
        Some(&replica),
        "create reports it"
    );
    let listed = m.list().await.expect("list");
    let seen = listed.iter().find(|n| n.id == waiting.id).expect("listed");
    assert_eq!(seen.replica.as_ref(), Some(&replica), "list reads it back");
    let user = m.create(&ctx.user_spec()).await.expect("create user");
    assert_eq!(user.replica, None, "a container made without it has none");
    m.remove(&waiting).await.expect("remove");
    m.remove(&user).await.expect("remove");
}

/// `mark_connected` changes the description that `find` and `list` read back, or answers
/// `Unsupported`.
pub async fn mark_connected_is_read_back(m: &dyn ContainerManager, ctx: &Context) {
    let created = m.create(&ctx.user_spec()).await.expect("create");
    let origin = Origin {
        client_ip: Some("192.0.2.9".into()),
        at: Utc::now() + chrono::Duration::seconds(5),
    };
    // Where writes are conditional, only the narrative as it now reads may be removed.
    let mut latest = created.clone();
    match m.mark_connected(&created, &origin).await {
        Ok(marked) => {
            latest = marked.clone();
            assert_eq!(
                marked.id, created.id,
                "mark_connected returns the narrative"
            );
            assert_eq!(marked.owner, created.owner, "a mark keeps the owner");
            assert!(
                ctx.caps.marks_connected,
                "marked although caps say unsupported"
            );
            let found = find(m, &created.name).await.expect("found");
            let read = found.origin.expect("the mark is read back");
            assert_eq!(read.client_ip.as_deref(), Some("192.0.2.9"));
            assert!(
                (read.at - origin.at).num_milliseconds().abs() < 1000,
                "the mark's time is read back"
            );
            assert_eq!(found.session, created.session, "the session is kept");
            assert_eq!(found.owner, created.owner, "the owner is kept");
        }
        Err(ManagerError::Unsupported { .. }) => {
            assert!(
                !ctx.caps.marks_connected,
                "unsupported although caps say supported"
            )
        }
        Err(e) => panic!("mark_connected failed: {e}"),
    }
    m.remove(&latest).await.expect("remove");
}

/// The owner given at creation and at assignment is read back by `find` and `list`; a
/// waiting narrative has none.
pub async fn owners_are_read_back(m: &dyn ContainerManager, ctx: &Context) {
    let spec = ctx.user_spec();
    let created = m.create(&spec).await.expect("create");
    assert_eq!(created.owner, spec.owner, "create reports the owner");
    let found = find(m, &spec.name).await.expect("found");
    assert_eq!(found.owner, spec.owner, "find reads the owner back");
    let waiting = m
        .create(&ctx.prespawn_spec())
        .await
        .expect("create waiting");
    assert_eq!(waiting.owner, None, "a waiting narrative has no owner");
    let assignment = ctx.assignment();
    let given = m.assign(&waiting, &assignment).await.expect("assign");
    assert_eq!(
        given.owner.as_ref(),
        Some(&assignment.owner),
        "assign records the owner"
    );
    let found = find(m, &assignment.name).await.expect("found");
    assert_eq!(
        found.owner.as_ref(),
        Some(&assignment.owner),
        "find reads the assigned owner back"
    );
    let listed = m.list().await.expect("list");
    for (name, owner) in [
        (&spec.name, spec.owner.as_ref()),
        (&assignment.name, Some(&assignment.owner)),
    ] {
        let n = listed.iter().find(|n| &n.name == name).expect("listed");
        assert_eq!(
            n.owner.as_ref(),
            owner,
            "list reads the owner of {name} back"
        );
    }
    m.remove(&found).await.expect("remove");
    m.remove(&created).await.expect("remove");
}

/// A user's narrative without an owner record (as the Python version made them) is stamped
/// by the first owner, again by the same owner, and never by another.
pub async fn stamp_owner_once(m: &dyn ContainerManager, ctx: &Context) {
    let spec = SpawnSpec {
        owner: None,
        ..ctx.user_spec()
    };
    let created = m.create(&spec).await.expect("create without an owner");
    let found = find(m, &spec.name).await.expect("found");
    assert_eq!(found.owner, None, "no owner was recorded");
    let first = Owner::of(&ctx.user());
    let stamped = m
        .stamp_owner(&found, &first)
        .await
        .expect("the first stamp");
    assert_eq!(
        stamped.owner.as_ref(),
        Some(&first),
        "stamp_owner returns the owner"
    );
    assert_eq!(
        stamped.session, created.session,
        "a stamp keeps the session"
    );
    let found = find(m, &spec.name).await.expect("found");
    assert_eq!(found.owner.as_ref(), Some(&first), "the stamp is read back");
    let again = m
        .stamp_owner(&found, &first)
        .await
        .expect("the same owner again");
    assert_eq!(again.owner.as_ref(), Some(&first));
    let other = Owner::of(&ctx.user());
    // Even from a read made before the first stamp: the backend looks again (or its version
    // check fails).
    let err = m
        .stamp_owner(&created, &other)
        .await
        .expect_err("another owner is refused");
    assert!(
        matches!(err, ManagerError::OwnedByAnother { .. })
            || (ctx.caps.conditional && matches!(err, ManagerError::Conflict { .. })),
        "a second owner is OwnedByAnother, got {err:?}"
    );
    let found = find(m, &spec.name).await.expect("found");
    assert_eq!(found.owner.as_ref(), Some(&first), "the first owner stays");
    m.remove(&found).await.expect("remove");
}

/// `conditional` says what the caps say; where writes are conditional, a stale version
/// fails with `Conflict` on `mark_connected`, `remove` and `assign` and changes nothing.
pub async fn conditional_writes(m: &dyn ContainerManager, ctx: &Context) {
    assert_eq!(
        m.conditional(),
        ctx.caps.conditional,
        "conditional() says what the caps say"
    );
    if !ctx.caps.conditional {
        return;
    }
    let created = m.create(&ctx.user_spec()).await.expect("create");
    let read = find(m, &created.name).await.expect("found");
    assert!(
        read.version.is_some(),
        "a conditional backend reports versions"
    );
    let origin = Origin {
        client_ip: Some("192.0.2.10".into()),
        at: Utc::now(),
    };
    let marked = m
        .mark_connected(&read, &origin)
        .await
        .expect("mark at the version read");
    assert_ne!(marked.version, read.version, "a write makes a new version");
    let stale = m
        .mark_connected(&read, &origin)
        .await
        .expect_err("a stale mark fails");
    assert!(
        matches!(stale, ManagerError::Conflict { .. }),
        "a stale mark is Conflict, got {stale:?}"
    );
    let stale = m.remove(&read).await.expect_err("a stale removal fails");
    assert!(
        matches!(stale, ManagerError::Conflict { .. }),
        "a stale removal is Conflict, got {stale:?}"
    );
    let still = find(m, &created.name)
        .await
        .expect("a stale removal removed nothing");
    assert_eq!(still.version, marked.version);
    m.remove(&still)
        .await
        .expect("a removal at the current version");
    assert_eq!(find(m, &created.name).await, None);

    // A waiting narrative changed since it was listed is not assigned from that listing.
    let waiting = m
        .create(&ctx.prespawn_spec())
        .await
        .expect("create waiting");
    let read = find(m, &waiting.name).await.expect("found");
    let moved = m
        .mark_connected(&read, &origin)
        .await
        .expect("a write to a waiting narrative");
    let assignment = ctx.assignment();
    let stale = m
        .assign(&read, &assignment)
        .await
        .expect_err("a stale assignment fails");
    assert!(
        matches!(stale, ManagerError::Conflict { .. }),
        "a stale assignment is Conflict, got {stale:?}"
    );
    assert_eq!(
        find(m, &assignment.name).await,
        None,
        "a stale assignment gives nobody the narrative"
    );
    let still = find(m, &waiting.name)
        .await
        .expect("it still waits, unchanged");
    assert_eq!(still.version, moved.version);
    m.remove(&still).await.expect("remove");
}

/// Listing reports both kinds, classified by name.
pub async fn list_sees_both_kinds(m: &dyn ContainerManager, ctx: &Context) {
    let user = m.create(&ctx.user_spec()).await.expect("create user");
    let waiting = m
        .create(&ctx.prespawn_spec())
        .await
        .expect("create waiting");
    let listed = m.list().await.expect("list");
    let kind_of = |name: &ServiceName| listed.iter().find(|n| &n.name == name).map(|n| n.kind);
    assert_eq!(kind_of(&user.name), Some(NarrativeKind::User));
    assert_eq!(kind_of(&waiting.name), Some(NarrativeKind::Prespawned));
    m.remove(&user).await.expect("remove");
    m.remove(&waiting).await.expect("remove");
}

/// `zombies` answers narratives only, or `Unsupported` — never a silent empty list.
pub async fn zombies_contract(m: &dyn ContainerManager, ctx: &Context) {
    match m.zombies().await {
        Ok(zombies) => {
            assert!(
                ctx.caps.zombies,
                "zombies answered although caps say unsupported"
            );
            for z in zombies {
                assert!(
                    ctx.naming.kind_of(z.name.as_str()).is_some(),
                    "zombies are narratives only: {}",
                    z.name
                );
            }
        }
        Err(ManagerError::Unsupported { .. }) => {
            assert!(
                !ctx.caps.zombies,
                "zombies unsupported although caps say supported"
            )
        }
        Err(e) => panic!("zombies failed: {e}"),
    }
}

/// The Traefik service name is a pure function of the container name.
pub async fn traefik_service_is_stable(m: &dyn ContainerManager, ctx: &Context) {
    let name = ctx.user_spec().name;
    let a = m.traefik_service(&name);
    assert_eq!(a, m.traefik_service(&name), "same name, same service");
    assert!(
        a.contains(name.as_str()),
        "the service name contains the container name"
    );
    assert!(!a.contains('@'), "no provider suffix");
}

/// Runs every rule above.
pub async fn run_all(m: &dyn ContainerManager, ctx: &Context) {
    m.verify().await.expect("verify must succeed");
    find_create_remove(m, ctx).await;
    remove_is_idempotent(m, ctx).await;
    create_name_taken(m, ctx).await;
    assign_renames_prespawned(m, ctx).await;
    assign_to_taken_name(m, ctx).await;
    assign_vanished_candidate(m, ctx).await;
    assign_is_not_repeated(m, ctx).await;
    concurrent_assign(m, ctx).await;
    replica_label_is_read_back(m, ctx).await;
    mark_connected_is_read_back(m, ctx).await;
    owners_are_read_back(m, ctx).await;
    stamp_owner_once(m, ctx).await;
    conditional_writes(m, ctx).await;
    list_sees_both_kinds(m, ctx).await;
    zombies_contract(m, ctx).await;
    traefik_service_is_stable(m, ctx).await;
}
