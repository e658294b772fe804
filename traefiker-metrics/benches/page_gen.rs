//! A Traefik v2 page of the size a busy deployment serves: 10,000 narrative services with
//! websocket and http series and request histograms, plus routers and noise services.
//! Generated, not stored: a 50 MB fixture would bloat the repository.
//!
//! Series are in the order Traefik's Prometheus registry (client_golang) writes them: within
//! a family, sorted by label values in label-name order (`code`, `method`, `protocol`,
//! `router`, `service`), a histogram's buckets, sum and count together. So one service's
//! series are spread over the family, as on a real page, and a reader cannot count on them
//! being next to each other.

use std::fmt::Write;

/// The page for `services` narratives (about 4.7 KB each).
pub fn generate(services: usize) -> String {
    let mut page = String::with_capacity(services * 5_500 + 4096);
    let name = |i: usize| {
        format!(
            "narrative-user{i}-{:06x}_narratives@rancher",
            i * 7919 % 0xff_ffff
        )
    };
    // Services that are no narrative, with escapes in their labels.
    let noise = (0..services / 20).map(|i| format!("tool{i}_\\\"quoted\\\"_stack@rancher"));
    // `(index, service)`: values follow the service, not its place in the sorted order.
    let mut all: Vec<(usize, String)> = (0..services).map(name).chain(noise).enumerate().collect();
    all.sort_by(|a, b| a.1.cmp(&b.1));

    page.push_str("# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines 187\n");
    page.push_str("# HELP traefik_service_open_connections How many open connections exist on a service, partitioned by method and protocol.\n# TYPE traefik_service_open_connections gauge\n");
    for protocol in ["http", "websocket"] {
        for (i, s) in &all {
            let open = if protocol == "http" { 0 } else { i % 3 };
            let _ = writeln!(page, "traefik_service_open_connections{{method=\"GET\",protocol=\"{protocol}\",service=\"{s}\"}} {open}");
        }
    }
    // By code: 101 (websocket) sorts before 200 and 304 (http).
    let by_code = [("101", "websocket"), ("200", "http"), ("304", "http")];
    page.push_str("# HELP traefik_service_requests_total How many HTTP requests processed on a service, partitioned by status code, protocol, and method.\n# TYPE traefik_service_requests_total counter\n");
    for (code, protocol) in by_code {
        for (i, s) in &all {
            let _ = writeln!(page, "traefik_service_requests_total{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",service=\"{s}\"}} {}", i * 13 + 7);
        }
    }
    page.push_str("# HELP traefik_service_request_duration_seconds How long it took to process the request on a service, partitioned by status code, protocol, and method.\n# TYPE traefik_service_request_duration_seconds histogram\n");
    for (code, protocol) in [("101", "websocket"), ("200", "http")] {
        for (i, s) in &all {
            for le in ["0.1", "0.3", "1.2", "5", "+Inf"] {
                let _ = writeln!(page, "traefik_service_request_duration_seconds_bucket{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",service=\"{s}\",le=\"{le}\"}} {}", i % 97);
            }
            let _ = writeln!(page, "traefik_service_request_duration_seconds_sum{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",service=\"{s}\"}} {}.{:06}", i % 50, i % 999_983);
            let _ = writeln!(page, "traefik_service_request_duration_seconds_count{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",service=\"{s}\"}} {}", i % 97);
        }
    }
    for family in ["requests_bytes_total", "responses_bytes_total"] {
        let _ = writeln!(page, "# HELP traefik_service_{family} The total size in bytes, partitioned by status code, protocol, and method.\n# TYPE traefik_service_{family} counter");
        for (code, protocol) in by_code {
            for (i, s) in &all {
                let _ = writeln!(page, "traefik_service_{family}{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",service=\"{s}\"}} {}", i * 1031 + 17);
            }
        }
    }
    page.push_str("# HELP traefik_router_request_duration_seconds How long it took to process the request on a router.\n# TYPE traefik_router_request_duration_seconds histogram\n");
    for (code, protocol) in [("101", "websocket"), ("200", "http")] {
        for (i, s) in &all {
            let _ = writeln!(page, "traefik_router_request_duration_seconds_sum{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",router=\"{s}\",service=\"{s}\"}} {}.{:06}", i % 50, i % 999_983);
            let _ = writeln!(page, "traefik_router_request_duration_seconds_count{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",router=\"{s}\",service=\"{s}\"}} {}", i % 97);
        }
    }
    page.push_str("# HELP traefik_router_requests_total How many HTTP requests are processed on a router, partitioned by service, status code, protocol, and method.\n# TYPE traefik_router_requests_total counter\n");
    for (i, s) in &all {
        let _ = writeln!(page, "traefik_router_requests_total{{code=\"200\",method=\"GET\",protocol=\"http\",router=\"{s}\",service=\"{s}\"}} {}", i * 3);
    }
    page.push_str("# HELP traefik_service_server_up service server is up, described by gauge value of 0 or 1.\n# TYPE traefik_service_server_up gauge\n");
    for (i, s) in &all {
        let _ = writeln!(
            page,
            "traefik_service_server_up{{service=\"{s}\",url=\"http://10.42.{}.{}:8888\"}} 1",
            i / 250 % 256,
            i % 250
        );
    }
    page
}
