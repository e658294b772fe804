//! TLS to internal services: a CA made here (rcgen), HTTPS fronts signed by it (rustls) in
//! front of wiremock servers, and the app's clients — auth2, the version URL, Rancher and the
//! Traefik metrics page — trusting that CA only through `ca_bundle`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use traefiker_rancher::testing::FakeRancher;
use traefiker_server::app;
use traefiker_server::auth::AuthError;
use traefiker_server::config::{Config, Layer};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An institution's CA and a server certificate it signed for `localhost`.
struct Ca {
    pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn make_ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Example Institution Test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone(), ca.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    Ca {
        pem: ca.pem(),
        server: Arc::new(server),
    }
}

/// An HTTPS front on 127.0.0.1 that passes each connection's plain bytes to `upstream`.
async fn https_front(ca: &Ca, upstream: SocketAddr) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = TlsAcceptor::from(ca.server.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses our certificate ends the handshake: nothing to do.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut plain) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    port
}

fn write_pem(ca: &Ca, name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("traefiker-{name}-{}.pem", std::process::id()));
    std::fs::write(&path, &ca.pem).unwrap();
    path
}

fn config(pairs: &[(&str, String)]) -> Config {
    let layer: Layer = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Config::from_layers(&[layer]).unwrap()
}

fn addr(server: &MockServer) -> SocketAddr {
    *server.address()
}

#[tokio::test]
async fn auth2_behind_an_institutions_ca_is_trusted_through_ca_bundle_only() {
    let ca = make_ca();
    let auth2 = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/V2/me"))
        .and(header("Authorization", "alice-token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(include_str!("fixtures/me-ok.json"), "application/json"),
        )
        .mount(&auth2)
        .await;
    let port = https_front(&ca, addr(&auth2)).await;
    let url = format!("https://localhost:{port}/api/V2/me");

    let without = app::authenticator(&config(&[("auth2", url.clone())])).unwrap();
    assert!(
        matches!(
            without.validate("alice-token").await,
            Err(AuthError::Unreachable { .. })
        ),
        "an unknown CA must not be trusted"
    );

    let bundle = write_pem(&ca, "auth2-ca");
    let with = app::authenticator(&config(&[
        ("auth2", url),
        ("ca_bundle", bundle.display().to_string()),
    ]))
    .unwrap();
    let identity = with.validate("alice-token").await.unwrap();
    std::fs::remove_file(&bundle).unwrap();
    assert_eq!(identity.user, "alice");
}

#[tokio::test]
async fn rancher_metrics_and_the_version_url_trust_ca_bundle_too() {
    let ca = make_ca();
    let rancher = FakeRancher::start().await;
    let rancher_port = https_front(&ca, rancher_address(&rancher)).await;
    let plain = rancher.url().trim_end_matches("/v2-beta").to_owned();
    let tls = format!("https://localhost:{rancher_port}");
    let services = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/narrative_version"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            include_str!("fixtures/narrative_version.json"),
            "application/json",
        ))
        .mount(&services)
        .await;
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            include_str!("../../traefiker-metrics/tests/fixtures/traefik/v3.7-http.prom"),
            "text/plain",
        ))
        .mount(&services)
        .await;
    let services_port = https_front(&ca, addr(&services)).await;
    let services_url = format!("https://localhost:{services_port}");
    let bundle = write_pem(&ca, "backends-ca");
    let fake = rancher.config();
    let settings = |with_bundle: bool| {
        let mut pairs = vec![
            ("rancher_url", format!("{tls}/v2-beta")),
            ("rancher_user", "FAKEACCESSKEY".to_owned()),
            ("rancher_password", "fake-secret-key".to_owned()),
            ("rancher_env_url", rancher.env_url().replace(&plain, &tls)),
            ("rancher_stack_id", fake.stack_id.clone().unwrap()),
            ("rancher_stack_name", fake.stack_name.clone().unwrap()),
            (
                "narrative_version_url",
                format!("{services_url}/narrative_version"),
            ),
            ("traefik_metrics", format!("{services_url}/metrics")),
            ("traefik_version", "v3".to_owned()),
        ];
        if with_bundle {
            pairs.push(("ca_bundle", bundle.display().to_string()));
        }
        config(&pairs)
    };

    let trusted = settings(true);
    app::backend(&trusted).await.expect("Rancher over HTTPS");
    let image = app::image_source(&trusted).unwrap().current().await;
    assert!(image.unwrap().starts_with("kbase/narrative:"));
    for source in app::sources(&trusted).unwrap() {
        source.snapshot(&[]).await.expect("metrics over HTTPS");
    }

    let untrusted = settings(false);
    assert!(app::backend(&untrusted).await.is_err());
    assert!(app::image_source(&untrusted)
        .unwrap()
        .current()
        .await
        .is_err());
    for source in app::sources(&untrusted).unwrap() {
        assert!(source.snapshot(&[]).await.is_err());
    }
    std::fs::remove_file(&bundle).unwrap();
}

/// The fake's `127.0.0.1:<port>`.
fn rancher_address(rancher: &FakeRancher) -> SocketAddr {
    let url = rancher.url();
    let host_port = url.trim_start_matches("http://").split('/').next().unwrap();
    host_port.parse().unwrap()
}
