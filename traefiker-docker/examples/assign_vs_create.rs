//! A warm-pool assignment against a cold create, on the real Docker engine
//! (`cargo xtask bench-docker`, which builds the stand-in image first).
//!
//! On a network of its own (`traefiker-test-bench-<pid>`, removed at the end), it times for
//! the stand-in image `narrative-standin:<version>`:
//!
//! - a **cold create**: `create` (create and start the container, read it back), then until
//!   the narrative answers HTTP on its address, then until Docker's health check passes,
//!   which is when Traefik's Docker provider starts routing to it;
//! - a **warm assignment**: `assign` of a waiting container that is already healthy (the
//!   rename), after which it is routed at once: its labels, and so its route, never change.
//!
//! Rounds alternate the two so a busy machine slows both alike; the figures are medians and
//! maxima over the rounds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// The tests' engine harness: the network of its own, and its removal with every container
// on it at the end.
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use traefiker_core::testing::conformance::{Caps, Context};
use traefiker_core::{Assignment, ContainerManager, NarrativeState, Origin, ServiceName};
use traefiker_docker::DockerManager;

const ROUNDS: usize = 8;

#[tokio::main]
async fn main() {
    let engine = support::Engine::start("bench")
        .await
        .expect("a Docker engine on /var/run/docker.sock and the stand-in image");
    let image = engine.image.clone();
    let manager = engine.manager().await;
    let ctx = Context::new(
        image.clone(),
        Caps {
            reports_address: true,
            zombies: true,
            conditional_assign: false,
            marks_connected: false,
            conditional: false,
        },
    );
    let (mut create, mut healthy, mut answers, mut assign) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Cold: a user's container from nothing.
        let spec = ctx.user_spec();
        let start = Instant::now();
        let created = manager.create(&spec).await.expect("create");
        create.push(start.elapsed());
        let address = created.address.clone().expect("an address");
        until_answers(&address).await;
        answers.push(start.elapsed());
        let ready = until_healthy(&manager, &created.name).await;
        healthy.push(start.elapsed());
        manager.remove(&ready).await.expect("remove");

        // Warm: a waiting container made earlier, already healthy, given to a user.
        let waiting = manager.create(&ctx.prespawn_spec()).await.expect("create");
        until_healthy(&manager, &waiting.name).await;
        let user = ctx.user_spec();
        let assignment = Assignment {
            name: user.name,
            owner: user.owner.expect("a user spec has an owner"),
            origin: Origin {
                client_ip: None,
                at: chrono::Utc::now(),
            },
        };
        let start = Instant::now();
        let given = manager.assign(&waiting, &assignment).await.expect("assign");
        assign.push(start.elapsed());
        assert_eq!(given.state, NarrativeState::Running, "routable at once");
        manager.remove(&given).await.expect("remove");
        eprintln!("round {}/{ROUNDS} done", round + 1);
    }

    println!("traefiker-docker on the real engine, image {image}, {ROUNDS} rounds (median / max):");
    println!(
        "  cold create: create returns      {}",
        figures(&mut create)
    );
    println!(
        "               answers HTTP        {}",
        figures(&mut answers)
    );
    println!(
        "               health check passes {}   (Traefik routes from here)",
        figures(&mut healthy)
    );
    println!(
        "  warm assign: assign returns      {}   (already healthy: routed at once)",
        figures(&mut assign)
    );
}

/// Polls until the narrative's health check has passed.
async fn until_healthy(manager: &DockerManager, name: &ServiceName) -> traefiker_core::Narrative {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = manager.find(name).await.expect("find").expect("exists");
        if found.state == NarrativeState::Running {
            return found;
        }
        assert!(Instant::now() < deadline, "{name} not healthy within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until `GET <address>/narrative/api/status` answers.
async fn until_answers(address: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hostport = address.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(&hostport).await {
            let req = format!("GET /narrative/api/status HTTP/1.0\r\nHost: {hostport}\r\n\r\n");
            if s.write_all(req.as_bytes()).await.is_ok() {
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).await.is_ok() && head.ends_with(b"200") {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{address} not answering within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn figures(samples: &mut [Duration]) -> String {
    samples.sort();
    let median = samples[samples.len() / 2];
    let max = samples[samples.len() - 1];
    format!(
        "{:>7.1} ms / {:>7.1} ms",
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    )
}
