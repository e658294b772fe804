//! The Docker backend against the real engine: the core's conformance suite, and what Docker
//! adds to it (the container it makes, health, zombies, names under concurrent creates, a
//! failed pull, a missing network).
//!
//! Needs an engine on /var/run/docker.sock and the stand-in image from `cargo xtask images`;
//! see `support` for what happens without them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StopContainerOptionsBuilder};
use support::{eventually, http_status, Engine};
use traefiker_core::narrative::CAP_DROP;
use traefiker_core::testing::conformance::{run_all, Caps, Context};
use traefiker_core::{ContainerManager, ManagerError, NarrativeState, SESSION_LABEL};
use traefiker_docker::{DockerManager, IMAGE_LABEL, NETWORK_LABEL};

const CAPS: Caps = Caps {
    reports_address: true,
    zombies: true,
    conditional_assign: false,
    marks_connected: false,
    conditional: false,
};

fn context(engine: &Engine) -> Context {
    Context::new(engine.image.clone(), CAPS)
}

async fn bounded<F: std::future::Future>(what: &str, limit: Duration, f: F) -> F::Output {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took more than {limit:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_manager_passes_the_conformance_suite() {
    let Some(engine) = Engine::start("conformance").await else {
        return;
    };
    let manager = engine.manager().await;
    bounded(
        "the suite",
        Duration::from_secs(240),
        run_all(&manager, &context(&engine)),
    )
    .await;
    assert_eq!(
        engine.containers().await,
        Vec::<String>::new(),
        "the suite removes every container it makes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrative_is_a_labelled_capped_container_that_answers_once_healthy() {
    let Some(engine) = Engine::start("container").await else {
        return;
    };
    let manager = engine.manager().await;
    let ctx = context(&engine);
    let spec = ctx.user_spec();
    let created = bounded("create", Duration::from_secs(60), manager.create(&spec))
        .await
        .expect("create");
    // The stand-in image's health check has not run yet: Traefik would not route to it.
    assert_eq!(created.state, NarrativeState::Starting, "health: starting");

    let inspected = engine.inspect(spec.name.as_str()).await;
    let config = inspected.config.expect("config");
    let labels = config.labels.expect("labels");
    assert_eq!(
        labels.get("traefik.enable").map(String::as_str),
        Some("True")
    );
    assert_eq!(labels.get(NETWORK_LABEL), Some(&engine.network));
    assert_eq!(labels.get(IMAGE_LABEL), Some(&engine.image));
    assert_eq!(
        labels.get(SESSION_LABEL).map(String::as_str),
        Some(spec.session.expose())
    );
    for (key, value) in &spec.labels {
        assert_eq!(
            labels.get(key),
            Some(value),
            "label {key} as the core made it"
        );
    }
    assert!(
        config
            .env
            .expect("env")
            .contains(&"CONFORMANCE=1".to_owned()),
        "the NARRENV_ environment"
    );
    assert_eq!(config.tty, Some(true));
    let host = inspected.host_config.expect("host config");
    let mut dropped = host.cap_drop.expect("cap_drop");
    dropped.sort();
    let mut wanted: Vec<String> = CAP_DROP.iter().map(|c| (*c).to_owned()).collect();
    wanted.sort();
    assert_eq!(dropped, wanted, "SPEC §4's capability drops");
    assert_eq!(
        host.restart_policy
            .and_then(|p| p.name)
            .map(|n| n.to_string())
            .as_deref(),
        Some("always")
    );
    assert_eq!(host.network_mode.as_deref(), Some(engine.network.as_str()));

    let running = eventually("the health check to pass", Duration::from_secs(30), || {
        let manager = &manager;
        let name = spec.name.clone();
        async move {
            let found = manager.find(&name).await.expect("find")?;
            (found.state == NarrativeState::Running).then_some(found)
        }
    })
    .await;
    let address = running.address.clone().expect("an address on dock_net");
    let ip = inspected
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|mut n| n.remove(&engine.network))
        .and_then(|e| e.ip_address)
        .expect("an IP on the test network");
    assert_eq!(address, format!("http://{ip}:8888"));
    assert_eq!(
        http_status(&format!("{address}/narrative/api/status")).await,
        Ok(200),
        "the narrative answers on its address"
    );
    let listed = manager.list().await.expect("list");
    let seen = listed.iter().find(|n| n.id == created.id).expect("listed");
    assert_eq!(seen.state, NarrativeState::Running, "list reads health too");
    assert_eq!(seen.address.as_deref(), Some(address.as_str()));
    assert_eq!(
        seen.origin.as_ref().and_then(|o| o.client_ip.as_deref()),
        Some("192.0.2.1"),
        "a user container's origin is read back from its label"
    );
    manager.remove(&running).await.expect("remove");
    assert_eq!(engine.containers().await, Vec::<String>::new(), "removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exited_narratives_are_zombies_and_unhealthy_ones_say_so() {
    let Some(engine) = Engine::start("health").await else {
        return;
    };
    let manager = engine.manager().await;
    let ctx = context(&engine);

    let stopped = manager.create(&ctx.user_spec()).await.expect("create");
    let options = StopContainerOptionsBuilder::default().t(2).build();
    engine
        .docker
        .stop_container(&stopped.id, Some(options))
        .await
        .expect("docker stop");
    let found = manager
        .find(&stopped.name)
        .await
        .expect("find")
        .expect("an exited container is still found");
    assert_eq!(found.state, NarrativeState::Stopped);
    let zombies = manager.zombies().await.expect("zombies");
    assert_eq!(
        zombies.iter().map(|z| &z.id).collect::<Vec<_>>(),
        vec![&stopped.id],
        "the exited narrative, and only it, is a zombie"
    );

    // A container made outside the backend with the labels it documents is adopted; its
    // health check fails, so it is reported unhealthy.
    let spec = ctx.user_spec();
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert(NETWORK_LABEL.into(), engine.network.clone());
    labels.insert(IMAGE_LABEL.into(), engine.image.clone());
    let body = ContainerCreateBody {
        image: Some(engine.image.clone()),
        labels: Some(labels),
        healthcheck: Some(HealthConfig {
            // Nothing listens on port 1: every probe fails.
            test: Some(vec![
                "CMD".into(),
                "/narrative-standin".into(),
                "--probe".into(),
                "--port".into(),
                "1".into(),
            ]),
            interval: Some(300_000_000),
            timeout: Some(2_000_000_000),
            retries: Some(1),
            ..HealthConfig::default()
        }),
        host_config: Some(HostConfig {
            network_mode: Some(engine.network.clone()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let options = CreateContainerOptionsBuilder::default()
        .name(spec.name.as_str())
        .build();
    let made = engine
        .docker
        .create_container(Some(options), body)
        .await
        .expect("docker create");
    engine
        .docker
        .start_container(&made.id, None)
        .await
        .expect("docker start");
    let unhealthy = eventually("the failing health check", Duration::from_secs(30), || {
        let manager = &manager;
        let name = spec.name.clone();
        async move {
            let found = manager.find(&name).await.expect("find")?;
            (found.state == NarrativeState::Other("unhealthy".into())).then_some(found)
        }
    })
    .await;
    assert_eq!(unhealthy.session, spec.session, "adopted with its session");
    let listed = manager.list().await.expect("list");
    let seen = listed.iter().find(|n| n.id == made.id).expect("listed");
    assert_eq!(seen.state, NarrativeState::Other("unhealthy".into()));
    assert!(
        !manager
            .zombies()
            .await
            .expect("zombies")
            .iter()
            .any(|z| z.id == made.id),
        "unhealthy but running is not a zombie"
    );

    manager
        .remove(&found)
        .await
        .expect("a stopped narrative is removed");
    manager.remove(&unhealthy).await.expect("remove");
    assert_eq!(engine.containers().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_creates_of_one_name_exactly_one_wins() {
    let Some(engine) = Engine::start("race").await else {
        return;
    };
    let manager = engine.manager().await;
    let ctx = context(&engine);
    let first = ctx.user_spec();
    let mut second = ctx.user_spec();
    second.name = first.name.clone();
    let (a, b) = bounded(
        "two creates",
        Duration::from_secs(60),
        futures::future::join(manager.create(&first), manager.create(&second)),
    )
    .await;
    let (winner, loser) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (a, b) => panic!("exactly one create wins: {a:?} {b:?}"),
    };
    assert!(
        matches!(loser, ManagerError::NameTaken { .. }),
        "the loser sees NameTaken, got {loser:?}"
    );
    let found = manager
        .find(&first.name)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.id, winner.id);
    assert_eq!(found.session, winner.session, "the winner's session stands");
    assert_eq!(engine.containers().await.len(), 1, "one container");
    manager.remove(&found).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pull_names_the_image_and_a_missing_network_names_dock_net() {
    let Some(engine) = Engine::start("pull").await else {
        return;
    };
    let mut config = engine.config();
    config.timeouts.pull = Duration::from_secs(60);
    let manager = DockerManager::connect(config).await.expect("connect");
    let mut spec = context(&engine).user_spec();
    spec.image = "narrative-standin:traefiker-test-missing".into();
    let err = bounded("a create", Duration::from_secs(90), manager.create(&spec))
        .await
        .expect_err("nothing to pull from");
    match &err {
        ManagerError::Rejected { detail, .. } => {
            assert!(
                detail.contains("narrative-standin:traefiker-test-missing"),
                "{detail}"
            );
            assert!(detail.contains("pulling it failed"), "{detail}");
        }
        other => panic!("a failed pull needs an operator: Rejected, got {other:?}"),
    }
    assert_eq!(engine.containers().await, Vec::<String>::new());

    let mut config = engine.config();
    config.network = format!("{}-missing", engine.network);
    let elsewhere = DockerManager::connect(config).await.expect("connect");
    let err = elsewhere.verify().await.expect_err("no such network");
    assert!(
        matches!(&err, ManagerError::Rejected { detail, .. } if detail.contains("-missing") && detail.contains("dock_net")),
        "{err:?}"
    );
    let err = elsewhere
        .create(&context(&engine).user_spec())
        .await
        .expect_err("no network to join");
    assert!(
        matches!(&err, ManagerError::Rejected { detail, .. } if detail.contains("dock_net")),
        "{err:?}"
    );
}
