//! A real engine in Swarm mode for the Swarm backend's tests, or a loud skip where there is
//! none. With `TRAEFIKER_SWARM_TEST=1` (which `cargo xtask ci` sets after making sure a swarm
//! is active) a missing swarm or image fails the test instead.
//!
//! Each test works on an attachable overlay network of its own, `tft-<test>-<pid>`, and
//! removes every service and claim of it, and the network, when it ends, panics included.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::{ListConfigsOptionsBuilder, ListServicesOptionsBuilder};
use bollard::{Docker, API_DEFAULT_VERSION};
use traefiker_docker::swarm::SWARM_NETWORK_LABEL;
use traefiker_docker::{DockerConfig, SwarmManager};

use super::{docker_url, standin_image};

fn required() -> bool {
    std::env::var("TRAEFIKER_SWARM_TEST").is_ok_and(|v| v == "1")
}

fn skip(test: &str, why: &str) -> Option<Swarm> {
    if required() {
        panic!("{test}: {why} (TRAEFIKER_SWARM_TEST=1: the Swarm tests must run here)");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why} (the Swarm tests need an engine in Swarm mode: docker swarm init)"
    );
    None
}

/// An engine managing a swarm, a network of the test's own, and the stand-in image.
pub struct Swarm {
    /// A client of its own, for what a test does behind the backend's back.
    pub docker: Docker,
    /// The test's overlay network.
    pub network: String,
    /// The narrative image.
    pub image: String,
}

impl Swarm {
    /// The swarm for `test`, or `None` (after saying why) where there is none.
    pub async fn start(test: &str) -> Option<Self> {
        let url = docker_url();
        let docker = match Docker::connect_with_unix(&url, 30, API_DEFAULT_VERSION) {
            Ok(d) => d,
            Err(e) => return skip(test, &format!("no Docker engine at {url}: {e}")),
        };
        let docker =
            match tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version()).await {
                Ok(Ok(d)) => d,
                _ => return skip(test, &format!("no Docker engine answers at {url}")),
            };
        let state = docker
            .info()
            .await
            .ok()
            .and_then(|i| i.swarm)
            .and_then(|s| s.local_node_state)
            .map(|s| s.to_string())
            .unwrap_or_default();
        if state != "active" {
            return skip(test, &format!("the engine is not in a swarm ({state:?})"));
        }
        let image = standin_image();
        if docker.inspect_image(&image).await.is_err() {
            return skip(
                test,
                &format!("no image {image}: run `cargo xtask images` first"),
            );
        }
        let network = format!("tft-{test}-{}", std::process::id());
        Self::network(&docker, &network, "overlay", true).await;
        Some(Self {
            docker,
            network,
            image,
        })
    }

    /// Creates the network `name` with `driver`, attachable or not; removed by the caller.
    pub async fn network(docker: &Docker, name: &str, driver: &str, attachable: bool) {
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some(driver.to_owned()),
            attachable: Some(attachable),
            ..Default::default()
        };
        docker
            .create_network(request)
            .await
            .unwrap_or_else(|e| panic!("creating network {name}: {e}"));
    }

    /// A backend configuration on `network`, for the stand-in image.
    pub fn config_on(&self, network: &str) -> DockerConfig {
        let mut config = DockerConfig::new(docker_url(), network);
        config.image_name = "narrative-standin".into();
        config
    }

    /// A backend on the test's network.
    pub async fn manager(&self) -> SwarmManager {
        SwarmManager::connect(self.config_on(&self.network))
            .await
            .expect("the backend connects")
    }

    /// The names of this test's services.
    pub async fn services(&self) -> Vec<String> {
        services(&self.docker, &self.network)
            .await
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    }
}

async fn services(docker: &Docker, network: &str) -> Vec<(String, String)> {
    let filters = HashMap::from([("label", vec![format!("{SWARM_NETWORK_LABEL}={network}")])]);
    let options = ListServicesOptionsBuilder::default()
        .filters(&filters)
        .build();
    docker
        .list_services(Some(options))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| Some((s.id?, s.spec?.name?)))
        .collect()
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let network = self.network.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                for (id, _) in services(&docker, &network).await {
                    let _ = docker.delete_service(&id).await;
                }
                let filters =
                    HashMap::from([("label", vec![format!("{SWARM_NETWORK_LABEL}={network}")])]);
                let options = ListConfigsOptionsBuilder::default()
                    .filters(&filters)
                    .build();
                for c in docker.list_configs(Some(options)).await.unwrap_or_default() {
                    if let Some(id) = c.id {
                        let _ = docker.delete_config(&id).await;
                    }
                }
                // The network goes once the services' tasks have left it.
                for _ in 0..60 {
                    match docker.remove_network(&network).await {
                        Ok(()) => return,
                        Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                    }
                }
                eprintln!("could not remove test network {network}");
            });
        });
        let _ = cleanup.join();
    }
}
