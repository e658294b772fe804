//! Both sources over real HTTP: every way a page can fail is an error naming what to check,
//! and narratives are asked as Jupyter answers.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use traefiker_core::{Activity, ActivitySource, ActivityTarget};
use traefiker_metrics::{
    MetricsError, NarrativeStatus, NarrativeStatusConfig, PageVersion, TraefikMetrics,
    TraefikMetricsConfig,
};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

async fn serve_metrics(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn source(url: String, timeout: Duration, max_body_bytes: usize) -> TraefikMetrics {
    TraefikMetrics::new(TraefikMetricsConfig {
        timeout,
        max_body_bytes,
        ..TraefikMetricsConfig::new(url)
    })
    .unwrap()
}

async fn fetch(
    response: ResponseTemplate,
) -> Result<traefiker_metrics::PageActivity, MetricsError> {
    let server = serve_metrics(response).await;
    source(
        format!("{}/metrics", server.uri()),
        Duration::from_secs(5),
        1 << 20,
    )
    .fetch()
    .await
}

/// Every await of a test under a bound, so a hang fails instead of stalling CI.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_good_page_is_read_and_the_snapshot_is_named_traefik() {
    bounded(async {
        let server = serve_metrics(
            ResponseTemplate::new(200).set_body_string(fixture("traefik/v2-synthesized.prom")),
        )
        .await;
        let source = source(
            format!("{}/metrics", server.uri()),
            Duration::from_secs(5),
            1 << 20,
        );
        assert_eq!(source.name(), "traefik");
        let snapshot = source.snapshot(&[]).await.unwrap();
        assert_eq!(
            snapshot.get("narrative-alice-522b27_narratives"),
            Activity::Active
        );
    })
    .await;
}

#[tokio::test]
async fn server_error_is_a_status_error_naming_the_url() {
    bounded(async {
        let server = serve_metrics(ResponseTemplate::new(500)).await;
        let url = format!("{}/metrics", server.uri());
        let source = source(url.clone(), Duration::from_secs(5), 1 << 20);
        let err = source.snapshot(&[]).await.unwrap_err();
        assert_eq!(err.source_name, format!("traefik {url}"));
        assert!(matches!(
            source.fetch().await.unwrap_err(),
            MetricsError::Status { status: 500, .. }
        ));
    })
    .await;
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    bounded(async {
        let server = serve_metrics(
            ResponseTemplate::new(200)
                .set_body_string(fixture("traefik/v3.7-http.prom"))
                .set_delay(Duration::from_secs(3)),
        )
        .await;
        let err = source(
            format!("{}/metrics", server.uri()),
            Duration::from_millis(300),
            1 << 20,
        )
        .fetch()
        .await
        .unwrap_err();
        assert!(matches!(err, MetricsError::Timeout { .. }), "{err:?}");
    })
    .await;
}

/// Sends headers and the start of a body at once, then one byte a while: the whole-request
/// timeout must cut the body off too.
#[tokio::test]
async fn a_trickling_body_times_out() {
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100000\r\n\r\n";
            socket.write_all(head.as_bytes()).await.unwrap();
            socket
                .write_all(b"traefik_config_reloads_total 1\n")
                .await
                .unwrap();
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if socket.write_all(b"#").await.is_err() {
                    break;
                }
            }
        });
        let err = source(
            format!("http://{address}/metrics"),
            Duration::from_millis(500),
            1 << 20,
        )
        .fetch()
        .await
        .unwrap_err();
        assert!(matches!(err, MetricsError::Timeout { .. }), "{err:?}");
        server.abort();
    })
    .await;
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn a_gzip_page_is_decompressed() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/metrics"))
            .and(header("accept-encoding", "gzip"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-encoding", "gzip")
                    .set_body_raw(
                        gzip(&fixture("traefik/v3.7-websocket-closed.prom")),
                        "text/plain",
                    ),
            )
            .mount(&server)
            .await;
        let page = source(
            format!("{}/metrics", server.uri()),
            Duration::from_secs(5),
            1 << 20,
        )
        .fetch()
        .await
        .unwrap();
        assert_eq!(page.version, PageVersion::V3);
        assert_eq!(page.requests["narrative-alice"], 2.0);
    })
    .await;
}

#[tokio::test]
async fn an_oversize_page_is_refused_plain_or_compressed() {
    bounded(async {
        let big = fixture("traefik/v3.7-websocket-closed.prom").repeat(10);
        let plain = serve_metrics(ResponseTemplate::new(200).set_body_string(big.clone())).await;
        let err = source(
            format!("{}/metrics", plain.uri()),
            Duration::from_secs(5),
            50_000,
        )
        .fetch()
        .await
        .unwrap_err();
        assert!(
            matches!(err, MetricsError::TooLarge { limit: 50_000, .. }),
            "{err:?}"
        );

        // Small on the wire, large once inflated: the cap counts what is decompressed.
        let compressed = gzip(&big);
        assert!(compressed.len() < 50_000);
        let zipped = serve_metrics(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .set_body_raw(compressed, "text/plain"),
        )
        .await;
        let err = source(
            format!("{}/metrics", zipped.uri()),
            Duration::from_secs(5),
            50_000,
        )
        .fetch()
        .await
        .unwrap_err();
        assert!(matches!(err, MetricsError::TooLarge { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn an_empty_or_html_or_foreign_200_is_an_error_never_an_empty_snapshot() {
    bounded(async {
        let empty = fetch(ResponseTemplate::new(200)).await.unwrap_err();
        assert!(matches!(empty, MetricsError::Empty), "{empty:?}");
        let html = fetch(ResponseTemplate::new(200).set_body_raw(
            "<!DOCTYPE html>\n<html><body>Bad gateway</body></html>\n",
            "text/html",
        ))
        .await
        .unwrap_err();
        assert!(matches!(html, MetricsError::Parse(_)), "{html:?}");
        let foreign = fetch(ResponseTemplate::new(200).set_body_string("go_goroutines 3\n"))
            .await
            .unwrap_err();
        assert!(matches!(foreign, MetricsError::NotTraefik), "{foreign:?}");
        let binary = fetch(ResponseTemplate::new(200).set_body_bytes(vec![0xff, 0xfe, b'\n']))
            .await
            .unwrap_err();
        assert!(matches!(binary, MetricsError::NotUtf8 { .. }), "{binary:?}");
    })
    .await;
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    bounded(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let err = source(
            format!("http://{address}/metrics"),
            Duration::from_secs(5),
            1 << 20,
        )
        .fetch()
        .await
        .unwrap_err();
        assert!(matches!(err, MetricsError::Unreachable { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn a_failed_read_keeps_the_counters_so_the_next_read_sees_what_moved() {
    bounded(async {
        let server = MockServer::start().await;
        let url = format!("{}/metrics", server.uri());
        let source = source(url, Duration::from_secs(5), 1 << 20);
        for (status, file) in [
            (200, "v3.7-http.prom"),
            (503, "v3.7-http.prom"),
            (200, "v3.7-websocket-closed.prom"),
        ] {
            server.reset().await;
            Mock::given(method("GET"))
                .respond_with(
                    ResponseTemplate::new(status)
                        .set_body_string(fixture(&format!("traefik/{file}"))),
                )
                .mount(&server)
                .await;
            let answer = source.snapshot(&[]).await;
            match status {
                200 if file == "v3.7-http.prom" => {
                    assert_eq!(answer.unwrap().get("narrative-alice"), Activity::Unknown)
                }
                200 => assert_eq!(answer.unwrap().get("narrative-alice"), Activity::Active),
                _ => assert!(answer.is_err()),
            }
        }
    })
    .await;
}

// --- NarrativeStatus ---------------------------------------------------------------------

fn target(service: &str, address: Option<String>) -> ActivityTarget {
    ActivityTarget {
        service: service.to_owned(),
        address,
    }
}

async fn jupyter(answer: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/narrative/api/status"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture(&format!("jupyter/{answer}")), "application/json"),
        )
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn narrative_status_follows_a_notebook_through_its_captures() {
    bounded(async {
        let server = jupyter("status-fresh.json").await;
        let source = NarrativeStatus::new(NarrativeStatusConfig::default()).unwrap();
        assert_eq!(source.name(), "narrative_status");
        let targets = [target("alice", Some(server.uri()))];
        let mut seen = Vec::new();
        for answer in [
            "status-fresh.json",
            "status-websocket-open-quiet.json",
            "status-after-execute.json",
            "status-websocket-closed.json",
            "status-websocket-closed.json",
        ] {
            server.reset().await;
            Mock::given(method("GET"))
                .and(path("/narrative/api/status"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_raw(fixture(&format!("jupyter/{answer}")), "application/json"),
                )
                .mount(&server)
                .await;
            seen.push(source.snapshot(&targets).await.unwrap().get("alice"));
        }
        assert_eq!(
            seen,
            [
                Activity::Idle,   // fresh: no websocket, no baseline
                Activity::Active, // an open, quiet websocket: what Traefik v3 cannot see
                Activity::Active, // executing
                Activity::Idle,   // closed, last_activity unchanged since the previous read
                Activity::Idle,
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_moved_last_activity_is_active_even_with_no_connection() {
    bounded(async {
        let server = jupyter("status-fresh.json").await;
        let source = NarrativeStatus::new(NarrativeStatusConfig::default()).unwrap();
        let targets = [target("a", Some(server.uri()))];
        assert_eq!(
            source.snapshot(&targets).await.unwrap().get("a"),
            Activity::Idle
        );
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(
                fixture("jupyter/status-websocket-closed.json"),
                "application/json",
            ))
            .mount(&server)
            .await;
        assert_eq!(
            source.snapshot(&targets).await.unwrap().get("a"),
            Activity::Active
        );
    })
    .await;
}

#[tokio::test]
async fn narrative_status_sends_the_token_and_failures_are_unknown_per_target() {
    bounded(async {
        let guarded = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/narrative/api/status"))
            .and(header("authorization", "token abc123"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(
                fixture("jupyter/status-websocket-open-quiet.json"),
                "application/json",
            ))
            .mount(&guarded)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(403).set_body_raw(
                fixture("jupyter/status-403-no-token.json"),
                "application/json",
            ))
            .mount(&guarded)
            .await;
        let broken = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("<html>"))
            .mount(&broken)
            .await;
        let slow = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(fixture("jupyter/status-fresh.json"), "application/json")
                    .set_delay(Duration::from_secs(5)),
            )
            .mount(&slow)
            .await;
        let targets = [
            target("guarded", Some(format!("{}/", guarded.uri()))),
            target("broken", Some(broken.uri())),
            target("slow", Some(slow.uri())),
            target("nowhere", None),
        ];
        let with_token = NarrativeStatus::new(NarrativeStatusConfig {
            token: Some("abc123".to_owned()),
            timeout: Duration::from_millis(500),
            ..NarrativeStatusConfig::default()
        })
        .unwrap();
        assert!(
            !format!("{with_token:?}").contains("abc123"),
            "the token never reaches a log"
        );
        let snapshot = with_token.snapshot(&targets).await.unwrap();
        assert_eq!(snapshot.get("guarded"), Activity::Active);
        assert_eq!(snapshot.get("broken"), Activity::Unknown);
        assert_eq!(snapshot.get("slow"), Activity::Unknown);
        assert_eq!(snapshot.get("nowhere"), Activity::Unknown);

        let without = NarrativeStatus::new(NarrativeStatusConfig::default()).unwrap();
        let err = without.status_of(&guarded.uri()).await.unwrap_err();
        assert!(
            matches!(err, MetricsError::Status { status: 403, .. }),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_snapshot_deadline_bounds_many_hung_narratives() {
    bounded(async {
        let slow = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
            .mount(&slow)
            .await;
        let targets: Vec<ActivityTarget> = (0..8)
            .map(|i| target(&format!("n{i}"), Some(slow.uri())))
            .collect();
        let source = NarrativeStatus::new(NarrativeStatusConfig {
            concurrency: 2,
            deadline: Duration::from_millis(300),
            ..NarrativeStatusConfig::default()
        })
        .unwrap();
        let started = std::time::Instant::now();
        let snapshot = source.snapshot(&targets).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(targets
            .iter()
            .all(|t| snapshot.get(&t.service) == Activity::Unknown));
    })
    .await;
}
