//! A Traefik v2 page of the size a busy deployment serves: 10,000 narrative services with
//! websocket and http series and request histograms, plus routers and noise services.
//! Generated, not stored: a 50 MB fixture would bloat the repository.

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
    let noise: Vec<String> = (0..services / 20)
        .map(|i| format!("tool{i}_\\\"quoted\\\"_stack@rancher"))
        .collect();
    let all: Vec<String> = (0..services).map(name).chain(noise).collect();

    page.push_str("# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines 187\n");
    page.push_str("# HELP traefik_service_open_connections How many open connections exist on a service, partitioned by method and protocol.\n# TYPE traefik_service_open_connections gauge\n");
    for (i, s) in all.iter().enumerate() {
        let _ = writeln!(page, "traefik_service_open_connections{{method=\"GET\",protocol=\"http\",service=\"{s}\"}} 0");
        let _ = writeln!(page, "traefik_service_open_connections{{method=\"GET\",protocol=\"websocket\",service=\"{s}\"}} {}", i % 3);
    }
    page.push_str("# HELP traefik_service_requests_total How many HTTP requests processed on a service, partitioned by status code, protocol, and method.\n# TYPE traefik_service_requests_total counter\n");
    for (i, s) in all.iter().enumerate() {
        for (code, protocol) in [("200", "http"), ("304", "http"), ("101", "websocket")] {
            let _ = writeln!(page, "traefik_service_requests_total{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",service=\"{s}\"}} {}", i * 13 + 7);
        }
    }
    page.push_str("# HELP traefik_service_request_duration_seconds How long it took to process the request on a service, partitioned by status code, protocol, and method.\n# TYPE traefik_service_request_duration_seconds histogram\n");
    for (i, s) in all.iter().enumerate() {
        for (code, protocol) in [("200", "http"), ("101", "websocket")] {
            for le in ["0.1", "0.3", "1.2", "5", "+Inf"] {
                let _ = writeln!(page, "traefik_service_request_duration_seconds_bucket{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",service=\"{s}\",le=\"{le}\"}} {}", i % 97);
            }
            let _ = writeln!(page, "traefik_service_request_duration_seconds_sum{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",service=\"{s}\"}} {}.{:06}", i % 50, i % 999_983);
            let _ = writeln!(page, "traefik_service_request_duration_seconds_count{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",service=\"{s}\"}} {}", i % 97);
        }
    }
    for family in ["requests_bytes_total", "responses_bytes_total"] {
        let _ = writeln!(page, "# HELP traefik_service_{family} The total size in bytes, partitioned by status code, protocol, and method.\n# TYPE traefik_service_{family} counter");
        for (i, s) in all.iter().enumerate() {
            for (code, protocol) in [("200", "http"), ("304", "http"), ("101", "websocket")] {
                let _ = writeln!(page, "traefik_service_{family}{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",service=\"{s}\"}} {}", i * 1031 + 17);
            }
        }
    }
    page.push_str("# HELP traefik_router_request_duration_seconds How long it took to process the request on a router.\n# TYPE traefik_router_request_duration_seconds histogram\n");
    for (i, s) in all.iter().enumerate() {
        for (code, protocol) in [("200", "http"), ("101", "websocket")] {
            let _ = writeln!(page, "traefik_router_request_duration_seconds_sum{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",router=\"{s}\",service=\"{s}\"}} {}.{:06}", i % 50, i % 999_983);
            let _ = writeln!(page, "traefik_router_request_duration_seconds_count{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",router=\"{s}\",service=\"{s}\"}} {}", i % 97);
        }
    }
    page.push_str("# HELP traefik_router_requests_total How many HTTP requests are processed on a router, partitioned by service, status code, protocol, and method.\n# TYPE traefik_router_requests_total counter\n");
    for (i, s) in all.iter().enumerate() {
        let _ = writeln!(page, "traefik_router_requests_total{{code=\"200\",method=\"GET\",protocol=\"http\",router=\"{s}\",service=\"{s}\"}} {}", i * 3);
    }
    page.push_str("# HELP traefik_service_server_up service server is up, described by gauge value of 0 or 1.\n# TYPE traefik_service_server_up gauge\n");
    for (i, s) in all.iter().enumerate() {
        let _ = writeln!(
            page,
            "traefik_service_server_up{{service=\"{s}\",url=\"http://10.42.{}.{}:8888\"}} 1",
            i / 250 % 256,
            i % 250
        );
    }
    page
}
