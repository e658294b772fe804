//! The images `cargo xtask images` builds, each started on the real engine and probed: they
//! run from an empty base as a non-root user, stay small, and answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use support::{eventually, http_status, Engine};

const TRAEFIK: &str = "traefik:local";

fn traefiker() -> String {
    format!("traefiker:{}", env!("CARGO_PKG_VERSION"))
}

/// Starts `image` on the test's network as container `name` with `env` and `cmd` (if any);
/// its IP.
async fn run(engine: &Engine, name: &str, image: &str, env: &[&str], cmd: &[&str]) -> String {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        env: Some(env.iter().map(|e| (*e).to_owned()).collect()),
        cmd: (!cmd.is_empty()).then(|| cmd.iter().map(|c| (*c).to_owned()).collect()),
        host_config: Some(HostConfig {
            network_mode: Some(engine.network.clone()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let name = format!("{}-{name}", engine.network);
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let made = engine
        .docker
        .create_container(Some(options), body)
        .await
        .unwrap_or_else(|e| panic!("create {image}: {e}"));
    engine
        .docker
        .start_container(&made.id, None)
        .await
        .unwrap_or_else(|e| panic!("start {image}: {e}"));
    engine
        .inspect(&made.id)
        .await
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|mut n| n.remove(&engine.network))
        .and_then(|e| e.ip_address)
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| panic!("{image} has no IP on {}", engine.network))
}

/// The image's user and size.
async fn user_and_size(engine: &Engine, image: &str) -> (String, i64) {
    let inspected = engine.docker.inspect_image(image).await.expect("inspect");
    let user = inspected.config.and_then(|c| c.user).unwrap_or_default();
    (user, inspected.size.unwrap_or_default())
}

/// Asserts the traefiker-built `image` is under `bound` bytes, the optimised build's size (`cargo xtask
/// images`); images of another profile (`TRAEFIKER_IMAGE_PROFILE`: `cargo xtask ci` builds
/// them unoptimised, for its tests only) say nothing about what ships, so only their size is
/// printed.
fn assert_size(image: &str, size: i64, bound: i64) {
    match std::env::var("TRAEFIKER_IMAGE_PROFILE") {
        Ok(profile) if profile != "image" => {
            eprintln!("{image} is {size} bytes (profile {profile}: not bounded)");
        }
        _ => assert!(size < bound, "{image} is {size} bytes, over {bound}"),
    }
}

async fn answers(url: &str) {
    eventually(
        &format!("{url} to answer 200"),
        Duration::from_secs(30),
        || async { (http_status(url).await == Ok(200)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standin_image_is_healthy_and_names_its_container() {
    let Some(engine) = Engine::start("image-standin").await else {
        return;
    };
    let (user, size) = user_and_size(&engine, &engine.image).await;
    assert_eq!(user, "10001:10001", "not root");
    assert_size(&engine.image, size, 10_000_000);
    let image = engine.image.clone();
    let ip = run(&engine, "standin", &image, &[], &[]).await;
    let name = format!("{}-standin", engine.network);
    let healthy = eventually(
        "the image's health check",
        Duration::from_secs(30),
        || async {
            let state = engine.inspect(&name).await.state?;
            let health = state.health?.status?.to_string();
            (health == "healthy").then_some(())
        },
    );
    healthy.await;
    answers(&format!("http://{ip}:8888/narrative/api/status")).await;
    let id = engine.inspect(&name).await.id.expect("id");
    let page = page(&format!("{ip}:8888")).await;
    assert!(
        page.contains(&format!("narrative {}", &id[..12])),
        "the page names the container's host name: {page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traefiker_image_serves_as_a_non_root_user() {
    let Some(engine) = Engine::with_images("image-traefiker", &[&traefiker()]).await else {
        return;
    };
    let (user, size) = user_and_size(&engine, &traefiker()).await;
    assert_eq!(user, "10001:10001", "not root");
    assert_size(&traefiker(), size, 40_000_000);
    // The local backend needs no socket: the image's own binary runs the stand-in. The
    // activity store goes to the default /tmp/reaper.db, which the user must be able to write.
    let ip = run(
        &engine,
        "traefiker",
        &traefiker(),
        &[
            "backend=local",
            "local_command=/traefiker narrative-standin --port {port} --name {name}",
            "num_prespawn=0",
            "log_level=INFO",
        ],
        &[],
    )
    .await;
    answers(&format!("http://{ip}:5000/healthz")).await;
    answers(&format!("http://{ip}:5000/narrative_status/")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traefik_image_pings() {
    let Some(engine) = Engine::with_images("image-traefik", &[TRAEFIK]).await else {
        return;
    };
    let (user, size) = user_and_size(&engine, TRAEFIK).await;
    assert_eq!(user, "10001:10001", "not root");
    assert!(size < 250_000_000, "{TRAEFIK} is {size} bytes");
    let ip = run(
        &engine,
        "traefik",
        TRAEFIK,
        &[],
        &[
            "--entrypoints.web.address=:80",
            "--entrypoints.traefik.address=:8080",
            "--ping=true",
            "--ping.entryPoint=traefik",
        ],
    )
    .await;
    answers(&format!("http://{ip}:8080/ping")).await;
}

/// The body of `GET /narrative/` at `hostport`.
async fn page(hostport: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(hostport)
        .await
        .expect("connect");
    stream
        .write_all(format!("GET /narrative/ HTTP/1.0\r\nHost: {hostport}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut body))
        .await
        .expect("an answer within 5 s")
        .expect("read");
    body
}
