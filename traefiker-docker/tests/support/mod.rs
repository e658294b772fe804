//! A real Docker engine for these tests, or a loud skip where there is none.
//!
//! Where no engine answers (a laptop without Docker), every test that needs one prints
//! `SKIPPED (no Docker engine …)` on stderr and passes; `cargo xtask ci` says so in its last
//! line. With `TRAEFIKER_REQUIRE_DOCKER=1`, which `cargo xtask ci` sets when it finds an
//! engine, a missing engine or image fails the test instead: on the project's machines these
//! tests run.
//!
//! Each test works on a network of its own, `traefiker-test-<test>-<pid>`, and removes it and
//! every container on it when it ends, panics included.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use traefiker_docker::{DockerConfig, DockerManager};

/// The engine the tests use: `DOCKER_HOST` when it names a unix socket, else Docker's
/// default socket.
pub fn docker_url() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| h.starts_with("unix://"))
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

/// The stand-in narrative image `cargo xtask images` builds.
pub fn standin_image() -> String {
    format!("narrative-standin:{}", env!("CARGO_PKG_VERSION"))
}

fn required() -> bool {
    std::env::var("TRAEFIKER_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
}

fn skip(test: &str, why: &str) -> Option<Engine> {
    if required() {
        panic!("{test}: {why} (TRAEFIKER_REQUIRE_DOCKER=1: the Docker tests must run here)");
    }
    // Straight to stderr, past the test harness's capture of `eprintln!`, so a passing run
    // still shows that nothing ran.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why} (the Docker tests need an engine)"
    );
    None
}

/// A Docker client straight to the engine, for what a test does behind the backend's back.
async fn raw() -> Result<Docker, String> {
    let url = docker_url();
    let docker = Docker::connect_with_unix(&url, 30, API_DEFAULT_VERSION)
        .map_err(|e| format!("no Docker engine at {url}: {e}"))?;
    let docker = tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version())
        .await
        .map_err(|_| format!("no Docker engine answers at {url} within 5 s"))?
        .map_err(|e| format!("no Docker engine answers at {url}: {e}"))?;
    Ok(docker)
}

/// An engine, a network of the test's own, and the stand-in image on it.
pub struct Engine {
    /// A client of its own, for what a test does behind the backend's back.
    pub docker: Docker,
    /// The test's network.
    pub network: String,
    /// The narrative image.
    pub image: String,
}

impl Engine {
    /// The engine for `test`, or `None` (after saying why) where there is none.
    pub async fn start(test: &str) -> Option<Self> {
        Self::with_images(test, &[]).await
    }

    /// [`Self::start`], also needing the images `others`.
    pub async fn with_images(test: &str, others: &[&str]) -> Option<Self> {
        let docker = match raw().await {
            Ok(d) => d,
            Err(why) => return skip(test, &why),
        };
        let image = standin_image();
        for wanted in others.iter().copied().chain([image.as_str()]) {
            if docker.inspect_image(wanted).await.is_err() {
                return skip(
                    test,
                    &format!("no image {wanted} on the engine: run `cargo xtask images` first"),
                );
            }
        }
        let network = format!("traefiker-test-{test}-{}", std::process::id());
        let request = bollard::models::NetworkCreateRequest {
            name: network.clone(),
            ..Default::default()
        };
        docker
            .create_network(request)
            .await
            .unwrap_or_else(|e| panic!("creating network {network}: {e}"));
        Some(Self {
            docker,
            network,
            image,
        })
    }

    /// A backend on the test's network, for the stand-in image.
    pub fn config(&self) -> DockerConfig {
        let mut config = DockerConfig::new(docker_url(), &self.network);
        config.image_name = "narrative-standin".into();
        config.timeouts.stop_grace = Duration::from_secs(5);
        config
    }

    /// [`Self::config`], connected.
    pub async fn manager(&self) -> DockerManager {
        DockerManager::connect(self.config())
            .await
            .expect("the backend connects")
    }

    /// The names of every container on the test's network, stopped ones included.
    pub async fn containers(&self) -> Vec<String> {
        let filters = HashMap::from([("network", vec![self.network.clone()])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .expect("list")
            .into_iter()
            .filter_map(|c| {
                c.names?
                    .first()
                    .map(|n| n.trim_start_matches('/').to_owned())
            })
            .collect()
    }

    /// Docker's own view of container `name`.
    pub async fn inspect(&self, name: &str) -> bollard::models::ContainerInspectResponse {
        self.docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .unwrap_or_else(|e| panic!("inspect {name}: {e}"))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Async work cannot run in `drop`; a thread with a runtime of its own can, and joining
        // it keeps the cleanup inside the test.
        let docker = self.docker.clone();
        let network = self.network.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let filters = HashMap::from([("network", vec![network.clone()])]);
                let options = ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build();
                for c in docker
                    .list_containers(Some(options))
                    .await
                    .unwrap_or_default()
                {
                    if let Some(id) = c.id {
                        let force = RemoveContainerOptionsBuilder::default().force(true).build();
                        let _ = docker.remove_container(&id, Some(force)).await;
                    }
                }
                if let Err(e) = docker.remove_network(&network).await {
                    eprintln!("could not remove test network {network}: {e}");
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A plain HTTP/1.0 GET of `url` (`http://ip:port/path`): the status code, or why none came.
pub async fn http_status(url: &str) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").ok_or("not http://")?;
    let (hostport, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".to_owned()));
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(hostport)
            .await
            .map_err(|e| format!("connect {hostport}: {e}"))?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&answer);
        text.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status line in {text:?}"))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .map_err(|_| format!("GET {url}: no answer within 5 s"))?
}

/// Polls `check` every 200 ms until it gives `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub mod swarm;
