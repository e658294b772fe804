//! Which backend the server starts, as the Python version chose: Rancher with `rancher_url`,
//! local processes with `local_command`, otherwise Docker, whose setup errors name the
//! setting to fix. Engine-free: the Docker backend itself is tested against the real engine
//! in traefiker-docker and by `cargo xtask e2e --docker`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use traefiker_server::app::{backend, StartupError};
use traefiker_server::config::{Backend, Config, Layer};

fn config(pairs: &[(&str, &str)]) -> Config {
    let layer: Layer = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_layers(&[layer]).expect("valid configuration")
}

#[tokio::test]
async fn without_rancher_url_or_local_command_the_server_starts_in_docker_mode() {
    let c = config(&[("docker_url", "unix:///nonexistent/traefiker-test.sock")]);
    assert!(matches!(c.backend, Backend::Docker { .. }));
    match backend(&c).await {
        Err(StartupError::Docker(e)) => {
            assert_eq!(e.setting(), "docker_url", "{e}");
            let text = StartupError::Docker(e).to_string();
            assert!(text.contains("/nonexistent/traefiker-test.sock"), "{text}");
        }
        other => panic!("a missing socket is a Docker setup error, got {other:?}"),
    }
    let c = config(&[("docker_url", "https://docker.example:2376")]);
    match backend(&c).await {
        Err(StartupError::Docker(e)) => assert_eq!(e.setting(), "docker_url"),
        other => panic!("TLS is refused naming docker_url, got {other:?}"),
    }
}
