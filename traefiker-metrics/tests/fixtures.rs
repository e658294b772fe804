//! Every captured page and status answer, read as traefiker reads them in production.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use traefiker_core::Activity;
use traefiker_metrics::jupyter::parse_status;
use traefiker_metrics::{
    read_page, read_page_from, CounterTracker, PageActivity, PageReader, PageVersion,
    TraefikVersion,
};

fn fixture(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn page(name: &str) -> PageActivity {
    read_page(&fixture(&format!("traefik/{name}")), TraefikVersion::Auto).unwrap()
}

/// Each `.prom` file with what it must read as; a new capture without an entry fails.
const PAGES: &[(&str, PageVersion)] = &[
    ("v2-synthesized.prom", PageVersion::V2),
    ("v3.7-before.prom", PageVersion::V3),
    ("v3.7-http.prom", PageVersion::V3),
    ("v3.7-websocket-open-messages.prom", PageVersion::V3),
    ("v3.7-websocket-closed.prom", PageVersion::V3),
];

#[test]
fn every_capture_is_listed_parses_and_is_detected() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/traefik");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".prom"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = PAGES.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    for (name, version) in PAGES {
        let read = page(name);
        assert_eq!(read.version, *version, "{name}");
        assert!(read.detected, "{name}");
        assert!(read.samples > 20, "{name}: {} samples", read.samples);
    }
}

#[test]
fn every_capture_parses_with_crlf_line_ends_too() {
    for (name, version) in PAGES {
        let crlf = fixture(&format!("traefik/{name}")).replace('\n', "\r\n");
        let read = read_page(&crlf, TraefikVersion::Auto).unwrap();
        assert_eq!(read, page(name), "{name}");
        assert_eq!(read.version, *version);
    }
}

#[test]
fn v2_reads_open_websockets_per_service_without_provider() {
    let read = page("v2-synthesized.prom");
    let snapshot = CounterTracker::new().observe(&read);
    assert_eq!(
        snapshot.get("narrative-alice-522b27_narratives"),
        Activity::Active
    );
    assert_eq!(
        snapshot.get("narrative-x-y-z-0-4e3c94_narratives"),
        Activity::Active
    );
    assert_eq!(
        snapshot.get("narrative-carol-1b2c3d_otherstack"),
        Activity::Active
    );
    assert_eq!(
        snapshot.get("narrative-bob-smith-79a783_narratives"),
        Activity::Idle
    );
    // An open plain-HTTP connection (a prespawned narrative's health check) is no user.
    assert_eq!(
        snapshot.get("narrativepre-1f2e3d_narratives"),
        Activity::Idle
    );
    assert_eq!(snapshot.get("auth2_narratives"), Activity::Idle);
    let mut active: Vec<&str> = snapshot
        .iter()
        .filter(|(_, a)| *a == Activity::Active)
        .map(|(s, _)| s)
        .collect();
    active.sort_unstable();
    assert_eq!(
        active,
        [
            "narrative-alice-522b27_narratives",
            "narrative-carol-1b2c3d_otherstack",
            "narrative-x-y-z-0-4e3c94_narratives"
        ]
    );
    assert_eq!(read.websockets["narrative-alice-522b27_narratives"], 2.0);
    assert_eq!(read.requests["narrative-alice-522b27_narratives"], 796.0);
}

#[test]
fn v3_counters_show_exactly_the_captured_services() {
    assert!(page("v3.7-before.prom").requests.is_empty());
    for name in ["v3.7-http.prom", "v3.7-websocket-open-messages.prom"] {
        let read = page(name);
        assert_eq!(read.requests.len(), 1, "{name}");
        assert_eq!(read.requests["narrative-alice"], 1.0, "{name}");
        assert!(read.websockets.is_empty());
    }
    let closed = page("v3.7-websocket-closed.prom");
    assert_eq!(closed.requests.len(), 1);
    assert_eq!(closed.requests["narrative-alice"], 2.0);
}

#[test]
fn v3_sees_a_websocket_only_once_it_closed() {
    let mut tracker = CounterTracker::new();
    assert!(tracker.observe(&page("v3.7-before.prom")).is_empty());
    let http = tracker.observe(&page("v3.7-http.prom"));
    assert_eq!(
        http.get("narrative-alice"),
        Activity::Unknown,
        "first sight, no baseline"
    );
    let open = tracker.observe(&page("v3.7-websocket-open-messages.prom"));
    assert_eq!(
        open.get("narrative-alice"),
        Activity::Idle,
        "an open websocket with messages flowing is invisible to Traefik v3"
    );
    let closed = tracker.observe(&page("v3.7-websocket-closed.prom"));
    assert_eq!(closed.get("narrative-alice"), Activity::Active);
    let again = tracker.observe(&page("v3.7-websocket-closed.prom"));
    assert_eq!(again.get("narrative-alice"), Activity::Idle);
    let restarted = tracker.observe(&page("v3.7-http.prom"));
    assert_eq!(
        restarted.get("narrative-alice"),
        Activity::Unknown,
        "counter went down"
    );
}

#[test]
fn forcing_v3_on_a_v2_page_reads_its_counters() {
    let text = fixture("traefik/v2-synthesized.prom");
    let read = read_page(&text, TraefikVersion::V3).unwrap();
    assert_eq!(read.version, PageVersion::V3);
    assert!(!read.detected);
    let first = CounterTracker::new().observe(&read);
    assert_eq!(
        first.get("narrative-alice-522b27_narratives"),
        Activity::Unknown
    );
    let forced_v2 = read_page(&fixture("traefik/v3.7-http.prom"), TraefikVersion::V2).unwrap();
    assert!(CounterTracker::new().observe(&forced_v2).is_empty());
}

#[test]
fn every_capture_reads_the_same_in_pieces_of_any_size_and_from_a_file() {
    for (name, _) in PAGES {
        let whole = page(name);
        let text = fixture(&format!("traefik/{name}"));
        for piece in [1, 2, 3, 7, 100, 4096, text.len()] {
            let mut reader = PageReader::new(TraefikVersion::Auto);
            for chunk in text.as_bytes().chunks(piece) {
                reader.feed(chunk).unwrap();
            }
            assert_eq!(reader.finish().unwrap(), whole, "{name} by {piece}");
        }
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/traefik/{name}"));
        let file = std::fs::File::open(path).unwrap();
        assert_eq!(
            read_page_from(file, TraefikVersion::Auto).unwrap(),
            whole,
            "{name}"
        );
    }
}

#[test]
fn a_cut_off_capture_is_an_error_not_an_empty_snapshot() {
    for (name, _) in PAGES {
        let text = fixture(&format!("traefik/{name}"));
        let cut = &text[..text.len() / 2];
        assert!(read_page(cut, TraefikVersion::Auto).is_err(), "{name}");
        assert!(
            read_page_from(cut.as_bytes(), TraefikVersion::Auto).is_err(),
            "{name}"
        );
    }
}

#[test]
fn jupyter_status_captures() {
    let status = |name: &str| parse_status(fixture(&format!("jupyter/{name}")).as_bytes());
    let fresh = status("status-fresh.json").unwrap();
    assert_eq!(fresh.connections, 0);
    let quiet = status("status-websocket-open-quiet.json").unwrap();
    assert_eq!(quiet.connections, 1);
    let executed = status("status-after-execute.json").unwrap();
    assert_eq!(executed.connections, 1);
    assert!(executed.last_activity > quiet.last_activity);
    let closed = status("status-websocket-closed.json").unwrap();
    assert_eq!(closed.connections, 0);
    assert_eq!(closed.last_activity, executed.last_activity);
    assert_eq!(
        closed.last_activity.unwrap().to_rfc3339(),
        "2026-11-25T22:14:41.188894+00:00"
    );
    assert!(status("status-403-no-token.json").is_err());
    assert!(
        status("kernels.json").is_err(),
        "the kernels list is not the status"
    );
}
