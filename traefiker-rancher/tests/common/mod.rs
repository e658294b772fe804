//! Helpers the wire-level tests share: a bound on every step, the fixtures pointed at a
//! wiremock server, and a manager configured for it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use traefiker_core::ServiceName;
use traefiker_rancher::{Credentials, RancherConfig, RetryPolicy};
use wiremock::{MockServer, ResponseTemplate};

/// Fails the test instead of hanging it.
pub async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test step finished in time")
}

/// The fixture `name` with its Rancher URL (plain and in the escaped-slash wire form)
/// replaced by `server`'s.
pub fn fixture_text(name: &str, server: &MockServer) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    let escaped = server.uri().replace('/', "\\/");
    text.replace("http://rancher.example:8080", &server.uri())
        .replace("http:\\/\\/rancher.example:8080", &escaped)
}

/// [`fixture_text`] as JSON.
pub fn fixture(name: &str, server: &MockServer) -> Value {
    serde_json::from_str(&fixture_text(name, server)).expect("fixture is JSON")
}

pub fn json(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

/// A manager of the `narratives` stack (`1st5`) of project `1a5` on `server`, with the
/// fixtures' credentials, retrying reads `max_retries` times.
pub fn config(server: &MockServer, retry: RetryPolicy) -> RancherConfig {
    let mut config = RancherConfig::new(format!("{}/v2-beta", server.uri()))
        .with_credentials(Credentials::new("FAKEACCESSKEY", "fake-secret-key"))
        .with_stack(
            format!("{}/v2-beta/projects/1a5", server.uri()),
            "1st5",
            "narratives",
        );
    config.retry = retry;
    config
}

pub fn name(n: &str) -> ServiceName {
    ServiceName::new(n).unwrap()
}
