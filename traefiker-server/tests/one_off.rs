//! One-off commands never touch a live server's pool (issue 19): `traefiker reap` run beside
//! a serving traefiker, on a backend where it cannot prove who else runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::Harness;
use traefiker_core::{NarrativeKind, ReapMode, Solo};
use traefiker_server::app::Role;
use traefiker_server::config::{Config, Layer};

fn waiting(h: &Harness) -> Vec<String> {
    let mut names: Vec<String> = h
        .manager
        .containers()
        .into_iter()
        .filter(|n| n.kind == NarrativeKind::Prespawned)
        .map(|n| n.name.to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_reap_leaves_a_serving_replicas_pool_alone() {
    let h = Harness::start(&[]).await;
    let before = waiting(&h);
    assert_eq!(before.len(), 2);
    let db = std::env::temp_dir().join(format!("traefiker-one-off-{}.db", std::process::id()));
    let layer: Layer = [
        ("image_tag", "5.4.3"),
        ("num_prespawn", "2"),
        ("sqlite_reaperdb_path", db.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::from_layers(&[layer]).unwrap();
    let state =
        traefiker_server::app::build_with(config, h.manager.clone(), Arc::new(Solo), Role::OneOff)
            .await
            .unwrap();
    let report = state.reaper.run(ReapMode::Apply).await.unwrap();
    assert!(report.abandoned.is_empty(), "{report:?}");
    assert_eq!(report.pool.created, 0, "a one-off keeps no pool");
    assert_eq!(
        state.lifecycle.peers(),
        None,
        "and says the peers are unknown"
    );
    assert_eq!(waiting(&h), before, "the server's pool, and nothing else");
    h.stop().await;
    let _ = std::fs::remove_file(&db);
}

/// An orchestrator that names the live replicas.
#[derive(Debug)]
struct Live(&'static [&'static str]);

#[async_trait::async_trait]
impl traefiker_core::Membership for Live {
    async fn identity(
        &self,
    ) -> Result<Option<traefiker_core::ReplicaId>, traefiker_core::ManagerError> {
        Ok(Some(traefiker_core::ReplicaId::new("test").unwrap()))
    }

    async fn peers(&self) -> Result<Vec<traefiker_core::ReplicaId>, traefiker_core::ManagerError> {
        Ok(self
            .0
            .iter()
            .map(|id| traefiker_core::ReplicaId::new(*id).unwrap())
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_removes_a_pool_only_where_the_orchestrator_proves_its_replica_gone() {
    let h = Harness::start(&[]).await;
    let before = waiting(&h);
    let db = std::env::temp_dir().join(format!("traefiker-one-off-b-{}.db", std::process::id()));
    let layer: Layer = [
        ("image_tag", "5.4.3"),
        ("sqlite_reaperdb_path", db.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::from_layers(&[layer]).unwrap();
    // Run inside the serving replica's own container: the orchestrator names it "test", as
    // it names the serving replica; the one-off still goes by an id of its own.
    let alive = traefiker_server::app::build_with(
        config.clone(),
        h.manager.clone(),
        Arc::new(Live(&["test"])),
        Role::OneOff,
    )
    .await
    .unwrap();
    assert_ne!(alive.lifecycle.config().replica.as_str(), "test");
    let report = alive.reaper.run(ReapMode::Apply).await.unwrap();
    assert!(report.abandoned.is_empty(), "{report:?}");
    assert_eq!(waiting(&h), before);
    let gone = traefiker_server::app::build_with(
        config,
        h.manager.clone(),
        Arc::new(Live(&["another"])),
        Role::OneOff,
    )
    .await
    .unwrap();
    let report = gone.reaper.run(ReapMode::Apply).await.unwrap();
    assert_eq!(report.abandoned.len(), 2, "{report:?}");
    h.stop().await;
    let _ = std::fs::remove_file(&db);
}
