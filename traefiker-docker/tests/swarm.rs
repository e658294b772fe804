//! The Swarm backend against a real engine in Swarm mode: the core's conformance suite, and
//! what Swarm adds to it: label updates that leave the narrative running, conditional writes
//! that close the reaper's window, two replicas racing for one waiting narrative or for one
//! name, the errors that name what to fix, and membership from the tasks of a service.
//!
//! Needs an engine in Swarm mode on /var/run/docker.sock and the stand-in image from
//! `cargo xtask images`; see `support::swarm` for what happens without them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
};
use bollard::query_parameters::ListTasksOptionsBuilder;
use chrono::Utc;
use support::eventually;
use support::swarm::Swarm;
use traefiker_core::testing::conformance::{run_all, Caps, Context};
use traefiker_core::{
    Assignment, ContainerManager, ManagerError, Membership, NarrativeKind, NarrativeState, Origin,
    Owner, UserId,
};
use traefiker_docker::{OwnContainer, SwarmManager};

const CAPS: Caps = Caps {
    reports_address: true,
    zombies: true,
    conditional_assign: true,
    marks_connected: true,
    conditional: true,
};

fn context(swarm: &Swarm) -> Context {
    Context::new(swarm.image.clone(), CAPS)
}

async fn bounded<F: std::future::Future>(what: &str, limit: Duration, f: F) -> F::Output {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took more than {limit:?}"))
}

fn assignment(ctx: &Context, user: &str) -> Assignment {
    let user = UserId::new(user).unwrap();
    Assignment {
        name: ctx.naming.user_container(&user),
        owner: Owner::of(&user),
        origin: Origin {
            client_ip: Some("192.0.2.1".into()),
            at: Utc::now(),
        },
    }
}

/// The ids of the tasks Swarm wants running for the service `id`.
async fn running_tasks(swarm: &Swarm, id: &str) -> Vec<String> {
    let filters = HashMap::from([
        ("service", vec![id.to_owned()]),
        ("desired-state", vec!["running".to_owned()]),
    ]);
    let options = ListTasksOptionsBuilder::default().filters(&filters).build();
    swarm
        .docker
        .list_tasks(Some(options))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|t| t.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_manager_passes_the_conformance_suite() {
    let Some(swarm) = Swarm::start("conformance").await else {
        return;
    };
    let manager = swarm.manager().await;
    bounded(
        "the suite",
        Duration::from_secs(240),
        run_all(&manager, &context(&swarm)),
    )
    .await;
    assert_eq!(
        swarm.services().await,
        Vec::<String>::new(),
        "the suite removes every service it makes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_and_a_mark_leave_the_narrative_running() {
    let Some(swarm) = Swarm::start("relabel").await else {
        return;
    };
    let m = swarm.manager().await;
    let ctx = context(&swarm);
    let waiting = m.create(&ctx.prespawn_spec()).await.expect("create");
    let running = eventually("the narrative runs", Duration::from_secs(60), || async {
        let n = m.find(&waiting.name).await.unwrap()?;
        (n.state == NarrativeState::Running).then_some(n)
    })
    .await;
    assert!(
        running.address.is_some(),
        "its address on dock_net is reported"
    );
    let tasks = running_tasks(&swarm, &waiting.id).await;
    assert_eq!(tasks.len(), 1);
    // The image's health check, made lenient: Swarm replaces an unhealthy task, and a busy
    // node must not restart users' kernels.
    let task = swarm
        .docker
        .inspect_task(&tasks[0])
        .await
        .expect("the task");
    let container = task
        .status
        .and_then(|s| s.container_status)
        .and_then(|c| c.container_id)
        .expect("the task's container");
    let health = swarm
        .docker
        .inspect_container(&container, None)
        .await
        .expect("the container")
        .config
        .and_then(|c| c.healthcheck)
        .expect("a health check");
    let image = swarm
        .docker
        .inspect_image(&swarm.image)
        .await
        .expect("the stand-in image")
        .config
        .and_then(|c| c.healthcheck)
        .expect("the stand-in image has a health check");
    assert_eq!(health.test, image.test, "the image's own test");
    assert_eq!(health.interval, image.interval, "the image's own interval");
    assert_eq!(health.retries, Some(100));
    assert_eq!(health.timeout, Some(10_000_000_000));
    let a = assignment(&ctx, "swarm-relabel");
    let assigned = m.assign(&running, &a).await.expect("assign");
    assert_eq!(assigned.name, a.name);
    assert_eq!(assigned.session, waiting.session, "the session stays");
    assert_ne!(
        assigned.version, running.version,
        "a write moves the version"
    );
    let origin = Origin {
        client_ip: Some("192.0.2.7".into()),
        at: Utc::now(),
    };
    let marked = m.mark_connected(&assigned, &origin).await.expect("mark");
    assert_eq!(
        marked.origin.and_then(|o| o.client_ip).as_deref(),
        Some("192.0.2.7")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        running_tasks(&swarm, &waiting.id).await,
        tasks,
        "label updates do not replace the narrative's task"
    );
    let found = m
        .find(&a.name)
        .await
        .unwrap()
        .expect("found under the user's name");
    assert_eq!(found.state, NarrativeState::Running);
    assert_eq!(
        m.find(&waiting.name).await.unwrap(),
        None,
        "no longer waiting"
    );
    m.remove(&found).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reapers_removal_cannot_overtake_a_connect() {
    let Some(swarm) = Swarm::start("reaper").await else {
        return;
    };
    let m = swarm.manager().await;
    let ctx = context(&swarm);
    let seen_by_reaper = m.create(&ctx.user_spec()).await.expect("create");
    // A connect marks it after the reaper looked: the reaper's removal at what it saw fails.
    let origin = Origin {
        client_ip: None,
        at: Utc::now(),
    };
    let marked = m
        .mark_connected(&seen_by_reaper, &origin)
        .await
        .expect("mark");
    let err = m
        .remove(&seen_by_reaper)
        .await
        .expect_err("a stale removal");
    assert!(matches!(err, ManagerError::Conflict { .. }), "got {err:?}");
    assert!(
        m.find(&marked.name).await.unwrap().is_some(),
        "the connected narrative stays"
    );
    // The reaper's claim first: the connect's mark fails, and nobody finds it any more.
    m.remove(&marked)
        .await
        .expect("remove at the current version");
    let err = m
        .mark_connected(&marked, &origin)
        .await
        .expect_err("mark after removal");
    assert!(
        matches!(
            err,
            ManagerError::NotFound { .. } | ManagerError::Conflict { .. }
        ),
        "got {err:?}"
    );
    assert_eq!(m.find(&marked.name).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_race_for_one_waiting_narrative_and_one_wins() {
    let Some(swarm) = Swarm::start("race").await else {
        return;
    };
    let (a, b) = (swarm.manager().await, swarm.manager().await);
    let ctx = context(&swarm);
    for round in 0..3 {
        let waiting = a.create(&ctx.prespawn_spec()).await.expect("create");
        let listed = b
            .list()
            .await
            .unwrap()
            .into_iter()
            .find(|n| n.id == waiting.id)
            .expect("listed");
        let (to_a, to_b) = (
            assignment(&ctx, &format!("race-a-{round}")),
            assignment(&ctx, &format!("race-b-{round}")),
        );
        let (ra, rb) = tokio::join!(a.assign(&waiting, &to_a), b.assign(&listed, &to_b));
        let won = usize::from(ra.is_ok()) + usize::from(rb.is_ok());
        assert_eq!(
            won, 1,
            "round {round}: exactly one assignment wins: {ra:?} / {rb:?}"
        );
        for r in [&ra, &rb] {
            if let Err(e) = r {
                assert!(
                    matches!(
                        e,
                        ManagerError::Conflict { .. } | ManagerError::NotFound { .. }
                    ),
                    "the loser is told it lost: {e:?}"
                );
            }
        }
        let found_a = a.find(&to_a.name).await.unwrap();
        let found_b = a.find(&to_b.name).await.unwrap();
        assert_eq!(
            usize::from(found_a.is_some()) + usize::from(found_b.is_some()),
            1,
            "one user has it, the other has nothing"
        );
        for n in [found_a, found_b].into_iter().flatten() {
            a.remove(&n).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_waiting_narratives_raced_to_one_name_leave_one_holder() {
    let Some(swarm) = Swarm::start("name").await else {
        return;
    };
    let (a, b) = (swarm.manager().await, swarm.manager().await);
    let ctx = context(&swarm);
    for round in 0..3 {
        let w1 = a.create(&ctx.prespawn_spec()).await.expect("create");
        let w2 = b.create(&ctx.prespawn_spec()).await.expect("create");
        let same = assignment(&ctx, &format!("same-name-{round}"));
        let (r1, r2) = tokio::join!(a.assign(&w1, &same), b.assign(&w2, &same));
        let winners = usize::from(r1.is_ok()) + usize::from(r2.is_ok());
        assert_eq!(
            winners, 1,
            "round {round}: one name, one holder: {r1:?} / {r2:?}"
        );
        let (winner, loser) = if r1.is_ok() { (&w1, &w2) } else { (&w2, &w1) };
        let lost = if r1.is_ok() { &r2 } else { &r1 };
        assert!(
            matches!(lost, Err(ManagerError::NameTaken { .. })),
            "the loser is told the name is taken: {lost:?}"
        );
        let found = a.find(&same.name).await.unwrap().expect("the name is held");
        assert_eq!(found.id, winner.id);
        let back = a
            .find(&loser.name)
            .await
            .unwrap()
            .expect("the loser waits again");
        assert_eq!(back.kind, NarrativeKind::Prespawned);
        assert_eq!(back.owner, None, "and belongs to nobody");
        let users = a
            .list()
            .await
            .unwrap()
            .into_iter()
            .filter(|n| n.name == same.name)
            .count();
        assert_eq!(users, 1, "one listed narrative carries the name");
        a.remove(&found).await.unwrap();
        a.remove(&back).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_network_is_named_with_what_to_do() {
    let Some(swarm) = Swarm::start("nets").await else {
        return;
    };
    let pid = std::process::id();
    let missing = format!("tft-missing-{pid}");
    let local = format!("tft-bridge-{pid}");
    let closed = format!("tft-closed-{pid}");
    Swarm::network(&swarm.docker, &local, "bridge", false).await;
    Swarm::network(&swarm.docker, &closed, "overlay", false).await;
    let verify = |net: String| {
        let config = swarm.config_on(&net);
        async move {
            SwarmManager::connect(config)
                .await
                .unwrap()
                .verify()
                .await
                .expect_err("verify refuses it")
                .to_string()
        }
    };
    let (m, l, c) = (
        verify(missing.clone()).await,
        verify(local.clone()).await,
        verify(closed.clone()).await,
    );
    for net in [&local, &closed] {
        swarm.docker.remove_network(net).await.unwrap();
    }
    assert!(
        m.contains(&format!(
            "docker network create --driver overlay --attachable {missing}"
        )),
        "{m}"
    );
    assert!(l.contains("not a swarm (overlay) network"), "{l}");
    assert!(c.contains("not attachable"), "{c}");
    let m = swarm.manager().await;
    let info = m.verify().await.expect("the test's own network is right");
    assert!(info.location.contains(&swarm.network), "{}", info.location);
    let mut spec = context(&swarm).user_spec();
    spec.image = "narrative-standin:no-such-tag".into();
    let err = m
        .create(&spec)
        .await
        .expect_err("a missing image")
        .to_string();
    assert!(
        err.contains("narrative-standin:no-such-tag") && err.contains("docker load"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replicas_are_the_running_tasks_of_traefikers_own_service() {
    let Some(swarm) = Swarm::start("members").await else {
        return;
    };
    let name = format!("tft-members-{}", std::process::id());
    let spec = ServiceSpec {
        name: Some(name.clone()),
        labels: Some(HashMap::from([(
            traefiker_docker::swarm::SWARM_NETWORK_LABEL.to_owned(),
            swarm.network.clone(),
        )])),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(swarm.image.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(2) }),
            ..Default::default()
        }),
        ..Default::default()
    };
    swarm
        .docker
        .create_service(spec, None)
        .await
        .expect("a service of two");
    let containers = eventually("two running tasks", Duration::from_secs(60), || async {
        let filters = HashMap::from([(
            "label",
            vec![format!("com.docker.swarm.service.name={name}")],
        )]);
        let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = swarm.docker.list_containers(Some(options)).await.ok()?;
        let names: Vec<(String, String)> = listed
            .into_iter()
            .filter(|c| c.state.as_ref().map(|s| s.to_string()).as_deref() == Some("running"))
            .filter_map(|c| Some((c.id?, c.names?.first()?.trim_start_matches('/').to_owned())))
            .collect();
        (names.len() == 2).then_some(names)
    })
    .await;
    let m = swarm.manager().await;
    let membership = m.membership(OwnContainer::Is(containers[0].0.clone()));
    let me = membership.identity().await.unwrap().expect("an identity");
    assert_eq!(
        me.as_str(),
        containers[0].1,
        "the identity is the task's container name"
    );
    let mut peers: Vec<String> = membership
        .peers()
        .await
        .unwrap()
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    peers.sort();
    let mut expected: Vec<String> = containers.iter().map(|c| c.1.clone()).collect();
    expected.sort();
    assert_eq!(peers, expected, "the peers are the service's running tasks");
    let outsider = m.membership(OwnContainer::Is("no-such-container".into()));
    assert_eq!(outsider.identity().await.unwrap(), None);
    assert!(matches!(
        outsider.peers().await,
        Err(ManagerError::Unsupported { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_and_an_unfinished_removal_are_zombies() {
    let Some(swarm) = Swarm::start("zombies").await else {
        return;
    };
    let m = swarm.manager().await;
    let ctx = context(&swarm);
    let stopped = m.create(&ctx.user_spec()).await.expect("create");
    let left = m.create(&ctx.user_spec()).await.expect("create");
    let healthy = m.create(&ctx.user_spec()).await.expect("create");
    // Scaled to nothing behind traefiker's back: Swarm wants no task running.
    let service = swarm
        .docker
        .inspect_service(&stopped.id, None)
        .await
        .unwrap();
    let mut spec = service.spec.unwrap();
    spec.mode = Some(ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated { replicas: Some(0) }),
        ..Default::default()
    });
    let version = i32::try_from(service.version.unwrap().index.unwrap()).unwrap();
    let options = bollard::query_parameters::UpdateServiceOptionsBuilder::default()
        .version(version)
        .build();
    swarm
        .docker
        .update_service(&stopped.id, spec, options, None)
        .await
        .unwrap();
    // A removal that claimed its narrative and stopped before the delete.
    let service = swarm.docker.inspect_service(&left.id, None).await.unwrap();
    let mut spec = service.spec.unwrap();
    spec.labels.get_or_insert_with(HashMap::new).insert(
        traefiker_docker::swarm::REMOVING_LABEL.to_owned(),
        "true".to_owned(),
    );
    let version = i32::try_from(service.version.unwrap().index.unwrap()).unwrap();
    let options = bollard::query_parameters::UpdateServiceOptionsBuilder::default()
        .version(version)
        .build();
    swarm
        .docker
        .update_service(&left.id, spec, options, None)
        .await
        .unwrap();
    let zombies = eventually("both are zombies", Duration::from_secs(30), || async {
        let mut ids: Vec<String> = m
            .zombies()
            .await
            .unwrap()
            .into_iter()
            .map(|z| z.id)
            .collect();
        ids.sort();
        (ids.len() == 2).then_some(ids)
    })
    .await;
    let mut expected = vec![stopped.id.clone(), left.id.clone()];
    expected.sort();
    assert_eq!(
        zombies, expected,
        "the stopped one and the claimed one, not the healthy one"
    );
    assert!(
        m.find(&left.name).await.unwrap().is_none(),
        "a claimed one is found by nobody"
    );
    assert!(
        m.list().await.unwrap().iter().all(|n| n.id != left.id),
        "nor listed"
    );
    for z in m.zombies().await.unwrap() {
        m.remove(&z).await.expect("a zombie is removed");
    }
    m.remove(&healthy).await.unwrap();
    assert_eq!(swarm.services().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_moved_by_a_write_that_is_not_traefikers_is_no_change_of_the_narrative() {
    let Some(swarm) = Swarm::start("bumps").await else {
        return;
    };
    let m = swarm.manager().await;
    let ctx = context(&swarm);
    let waiting = m.create(&ctx.prespawn_spec()).await.expect("create");
    // Swarm's allocator writes a service after its creation (under load, after the create's
    // answer was read) and an operator may add a label: the version moves, the narrative
    // does not.
    let service = swarm
        .docker
        .inspect_service(&waiting.id, None)
        .await
        .unwrap();
    let mut spec = service.spec.unwrap();
    spec.labels
        .get_or_insert_with(HashMap::new)
        .insert("com.example.note".to_owned(), "looked at".to_owned());
    // The API client drops the health check it reads (the engine names it `Healthcheck`);
    // an operator's `docker service update --label-add` keeps it, and so does this write.
    spec.task_template
        .as_mut()
        .and_then(|t| t.container_spec.as_mut())
        .unwrap()
        .health_check = Some(bollard::models::HealthConfig {
        timeout: Some(10_000_000_000),
        retries: Some(100),
        ..Default::default()
    });
    let version = i32::try_from(service.version.unwrap().index.unwrap()).unwrap();
    let options = bollard::query_parameters::UpdateServiceOptionsBuilder::default()
        .version(version)
        .build();
    swarm
        .docker
        .update_service(&waiting.id, spec, options, None)
        .await
        .unwrap();
    let a = assignment(&ctx, "swarm-bumped");
    let given = m
        .assign(&waiting, &a)
        .await
        .expect("an assignment from the create's answer still wins");
    assert_eq!(given.name, a.name);
    assert_ne!(given.version, waiting.version);
    let origin = Origin {
        client_ip: None,
        at: Utc::now(),
    };
    let marked = m.mark_connected(&given, &origin).await.expect("mark");
    let err = m
        .remove(&given)
        .await
        .expect_err("a narrative marked since is not removed");
    assert!(matches!(err, ManagerError::Conflict { .. }), "{err:?}");
    m.remove(&marked).await.unwrap();
}
