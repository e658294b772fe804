//! The one place the server builds HTTP clients (auth2, the version URL, the `activity`
//! command): every client gets a connect and a whole-request timeout, and trusts the
//! operating system's roots, the bundled ones, and the operator's `ca_bundle`.
//!
//! The backends (`traefiker-rancher`, `traefiker-metrics`) build their own clients from their
//! configs; [`crate::app`] hands them the same `ca_bundle` PEM.

use std::time::Duration;

use crate::config::CaBundle;

/// A client with these timeouts that also trusts `ca_bundle`.
pub fn client(
    connect: Duration,
    request: Duration,
    ca_bundle: Option<&CaBundle>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect)
        .timeout(request)
        .user_agent(concat!("traefiker/", env!("CARGO_PKG_VERSION")));
    for cert in ca_bundle.map(CaBundle::certificates).unwrap_or_default() {
        builder = builder.add_root_certificate(cert);
    }
    builder.build()
}
