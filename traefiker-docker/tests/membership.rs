//! Membership from the real engine: traefiker's replicas are the running containers of its own
//! Compose service (`docker compose up --scale traefiker=2`), and nothing is claimed where that
//! cannot be proven.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeSet, HashMap};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StopContainerOptionsBuilder};
use support::Engine;
use traefiker_core::{ManagerError, Membership};
use traefiker_docker::{OwnContainer, COMPOSE_PROJECT, COMPOSE_SERVICE};

/// Starts a container named `name` on the test's network with `labels`; its id.
async fn run(engine: &Engine, name: &str, labels: &[(&str, String)]) -> String {
    let body = ContainerCreateBody {
        image: Some(engine.image.clone()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ),
        host_config: Some(HostConfig {
            network_mode: Some(engine.network.clone()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    let made = engine
        .docker
        .create_container(Some(options), body)
        .await
        .unwrap_or_else(|e| panic!("docker create {name}: {e}"));
    engine
        .docker
        .start_container(&made.id, None)
        .await
        .unwrap_or_else(|e| panic!("docker start {name}: {e}"));
    made.id
}

fn names(peers: &[traefiker_core::ReplicaId]) -> BTreeSet<String> {
    peers.iter().map(|p| p.as_str().to_owned()).collect()
}

#[tokio::test]
async fn the_replicas_are_the_running_containers_of_traefikers_compose_service() {
    let Some(engine) = Engine::start("membership").await else {
        return;
    };
    let manager = engine.manager().await;
    let pid = std::process::id();
    let project = format!("s19-membership-{pid}");
    let service = |s: &str| {
        vec![
            (COMPOSE_PROJECT, project.clone()),
            (COMPOSE_SERVICE, s.to_owned()),
        ]
    };
    let one = format!("membership-traefiker-1-{pid}");
    let two = format!("membership-traefiker-2-{pid}");
    let traefik = format!("membership-traefik-1-{pid}");
    let plain = format!("membership-plain-{pid}");
    let first = run(&engine, &one, &service("traefiker")).await;
    let second = run(&engine, &two, &service("traefiker")).await;
    run(&engine, &traefik, &service("traefik")).await;
    let alone = run(&engine, &plain, &[]).await;

    let membership = manager.membership(OwnContainer::Is(first.clone()));
    assert_eq!(
        membership.identity().await.unwrap().unwrap().as_str(),
        one,
        "its identity is its container's name"
    );
    assert_eq!(
        names(&membership.peers().await.unwrap()),
        [one.clone(), two.clone()].into(),
        "its own service's running containers, and nothing else"
    );

    // A replica that stops is no peer any more.
    let quick = StopContainerOptionsBuilder::default().t(1).build();
    engine
        .docker
        .stop_container(&second, Some(quick))
        .await
        .unwrap();
    assert_eq!(
        names(&membership.peers().await.unwrap()),
        [one.clone()].into()
    );

    // Not started by Compose: peers unknown, never "none".
    let outside = manager.membership(OwnContainer::Is(alone));
    assert_eq!(outside.identity().await.unwrap().unwrap().as_str(), plain);
    assert!(matches!(
        outside.peers().await,
        Err(ManagerError::Unsupported { .. })
    ));
    // In no container of this engine: no identity, peers unknown.
    let nowhere = manager.membership(OwnContainer::Is(format!("no-such-container-{pid}")));
    assert_eq!(nowhere.identity().await.unwrap(), None);
    assert!(matches!(
        nowhere.peers().await,
        Err(ManagerError::Unsupported { .. })
    ));
}
