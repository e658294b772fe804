//! What one Traefik metrics page says about activity, and how successive pages become
//! [`ActivitySnapshot`]s.
//!
//! [`read_page`] is pure: text in, per-service facts out. [`CounterTracker`] keeps the
//! previous page's request counters, which is all Traefik v3 activity can be judged from.
//! The network source ([`crate::TraefikMetrics`]) and the operators' `activity` command both
//! sit on these two.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::str::FromStr;

use memchr::{memchr, memrchr};

use traefiker_core::{Activity, ActivitySnapshot, InvalidInput};

use crate::error::MetricsError;
use crate::parse::{Family, LabelValue, Line, Lines, MetricType, Position};

/// Traefik v2's per-service gauge of open connections, by method and protocol.
pub const SERVICE_OPEN_CONNECTIONS: &str = "traefik_service_open_connections";
/// Traefik v2's per-entrypoint gauge; v3 renamed it `traefik_open_connections`.
pub const ENTRYPOINT_OPEN_CONNECTIONS: &str = "traefik_entrypoint_open_connections";
/// The per-service request counter both versions expose.
pub const SERVICE_REQUESTS_TOTAL: &str = "traefik_service_requests_total";

/// A number per Traefik service name.
///
/// Hashed with foldhash, not std's SipHash: a page's counter lines each look up their
/// service, and SipHash was a tenth of reading a page. The keys are the service names of
/// Traefik's own page, and foldhash still seeds each map at random.
pub type ServiceMap = HashMap<String, f64, foldhash::fast::RandomState>;

/// Which Traefik the page comes from, as configured (`traefik_version`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraefikVersion {
    /// Decide from each page: v2 if it has a v2 open-connections family, else v3.
    #[default]
    Auto,
    /// Traefik v2: open websockets per service.
    V2,
    /// Traefik v3: moved request counters per service.
    V3,
}

impl FromStr for TraefikVersion {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "v2" | "2" => Ok(Self::V2),
            "v3" | "3" => Ok(Self::V3),
            other => Err(InvalidInput::new(
                "traefik_version",
                format!("expected auto, v2 or v3, got {other:?}"),
            )),
        }
    }
}

impl fmt::Display for TraefikVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::V2 => "v2",
            Self::V3 => "v3",
        })
    }
}

/// How a page is read: the version it was decided to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageVersion {
    /// Read as Traefik v2 (open websockets).
    V2,
    /// Read as Traefik v3 (moved counters).
    V3,
}

impl fmt::Display for PageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V2 => "v2",
            Self::V3 => "v3",
        })
    }
}

/// What a page says, per Traefik service name without its `@provider` suffix (the name
/// backends give in [`traefiker_core::ActivityTarget::service`]).
///
/// Memory is per service, never per line: a page of a million lines about ten thousand
/// services holds two maps of at most ten thousand entries.
#[derive(Clone, Debug, PartialEq)]
pub struct PageActivity {
    /// How the page is read.
    pub version: PageVersion,
    /// Whether `version` was detected from the page rather than configured.
    pub detected: bool,
    /// v2 only: open websockets per service, for services with a websocket series.
    pub websockets: ServiceMap,
    /// `traefik_service_requests_total` summed over code, method and protocol, per service.
    pub requests: ServiceMap,
    /// Sample lines on the page.
    pub samples: usize,
}

/// The families [`read_page`] extracts; every other family's samples are only checked by
/// name ([`Lines::reading`]). `ENTRYPOINT_OPEN_CONNECTIONS` is not among them: its `TYPE`
/// line is enough to detect v2.
const READ: &[&str] = &[SERVICE_OPEN_CONNECTIONS, SERVICE_REQUESTS_TOTAL];

/// How much of a file [`read_page_from`] reads at a time: small enough to stay in the CPU's
/// L2 cache while it is parsed, large enough that a read call per piece costs nothing.
const PIECE: usize = 128 * 1024;

/// Reads a Traefik metrics page.
///
/// Fails, rather than answering "nobody is active", when the page is empty, cut off (no
/// final line feed), not Prometheus text, or has no `traefik_` metric at all. A valid v2
/// page without websocket series answers "no open websockets". Samples of families it does
/// not extract are only checked by name ([`Lines::reading`] says exactly what is checked).
pub fn read_page(body: &str, version: TraefikVersion) -> Result<PageActivity, MetricsError> {
    if body.trim().is_empty() {
        return Err(MetricsError::Empty);
    }
    if !body.ends_with('\n') {
        return Err(MetricsError::Truncated);
    }
    let mut reader = PageReader::new(version);
    reader.read_lines(body)?;
    reader.finish()
}

/// [`read_page`] over a file or any other reader, read 128 KiB at a time: memory
/// stays at a piece plus the per-service totals however large the page, and no page-sized
/// buffer is allocated (on a 50 MB page its page faults cost more than the parse).
pub fn read_page_from(
    mut source: impl Read,
    version: TraefikVersion,
) -> Result<PageActivity, MetricsError> {
    let mut reader = PageReader::new(version);
    let mut buffer = vec![0; PIECE];
    loop {
        match source.read(&mut buffer) {
            Ok(0) => return reader.finish(),
            Ok(n) => reader.feed(buffer.get(..n).unwrap_or_default())?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(MetricsError::Read(e)),
        }
    }
}

/// [`read_page`] for a page that arrives in pieces of any size (a file read by blocks, an
/// HTTP body by chunks): [`PageReader::feed`] each piece in order, then
/// [`PageReader::finish`]. Between pieces it holds only the incomplete last line.
///
/// The answer, and the error if any, are those of [`read_page`] on the whole page, except
/// that an error inside the page is reported as soon as its line is read, before the page
/// is known to be cut off. After an error the page is refused: feed it no more.
#[derive(Debug)]
pub struct PageReader {
    version: TraefikVersion,
    websockets: ServiceMap,
    requests: ServiceMap,
    samples: usize,
    any_traefik: bool,
    has_v2_family: bool,
    /// Whether anything but whitespace was read yet (an all-blank page is empty).
    any_text: bool,
    /// Lines read so far, to number errors across pieces.
    line: usize,
    /// Bytes of complete lines read so far, to place a UTF-8 error.
    offset: usize,
    /// The family of the last `TYPE` line when a piece ends, and whether its samples are
    /// being passed over.
    family: Option<(String, MetricType)>,
    skipping: bool,
    /// The incomplete last line of the pieces fed so far.
    partial: Vec<u8>,
}

impl PageReader {
    /// A reader that has read nothing yet.
    pub fn new(version: TraefikVersion) -> Self {
        Self {
            version,
            websockets: ServiceMap::default(),
            requests: ServiceMap::default(),
            samples: 0,
            any_traefik: false,
            has_v2_family: false,
            any_text: false,
            line: 0,
            offset: 0,
            family: None,
            skipping: false,
            partial: Vec::new(),
        }
    }

    /// Reads the next piece of the page; lines may be split across pieces anywhere.
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), MetricsError> {
        if !self.partial.is_empty() {
            let Some(end) = memchr(b'\n', piece) else {
                self.partial.extend_from_slice(piece);
                return Ok(());
            };
            let (head, tail) = piece.split_at(end + 1);
            self.partial.extend_from_slice(head);
            let line = std::mem::take(&mut self.partial);
            let read = self.read_bytes(&line);
            // The allocation is kept for the next partial line.
            self.partial = line;
            self.partial.clear();
            read?;
            piece = tail;
        }
        let whole = memrchr(b'\n', piece).map_or(0, |end| end + 1);
        let (lines, tail) = piece.split_at(whole);
        self.read_bytes(lines)?;
        self.partial.extend_from_slice(tail);
        Ok(())
    }

    /// What the page says, once every piece was fed.
    pub fn finish(self) -> Result<PageActivity, MetricsError> {
        if !self.partial.is_empty() {
            let tail = std::str::from_utf8(&self.partial).map_err(|e| MetricsError::NotUtf8 {
                valid_up_to: self.offset + e.valid_up_to(),
            })?;
            return Err(if !self.any_text && tail.trim().is_empty() {
                MetricsError::Empty
            } else {
                MetricsError::Truncated
            });
        }
        if !self.any_text {
            return Err(MetricsError::Empty);
        }
        if !self.any_traefik {
            return Err(MetricsError::NotTraefik);
        }
        let (version, detected) = match self.version {
            TraefikVersion::V2 => (PageVersion::V2, false),
            TraefikVersion::V3 => (PageVersion::V3, false),
            TraefikVersion::Auto if self.has_v2_family => (PageVersion::V2, true),
            TraefikVersion::Auto => (PageVersion::V3, true),
        };
        Ok(PageActivity {
            version,
            detected,
            websockets: self.websockets,
            requests: self.requests,
            samples: self.samples,
        })
    }

    fn read_bytes(&mut self, lines: &[u8]) -> Result<(), MetricsError> {
        let text = simdutf8::compat::from_utf8(lines).map_err(|e| MetricsError::NotUtf8 {
            valid_up_to: self.offset + e.valid_up_to(),
        })?;
        self.read_lines(text)
    }

    /// Reads `text`, whole lines that follow those read before.
    fn read_lines(&mut self, text: &str) -> Result<(), MetricsError> {
        self.offset += text.len();
        if !self.any_text {
            self.any_text = !text.trim().is_empty();
        }
        let family = self.family.take();
        let at = Position {
            line: self.line,
            family: family
                .as_ref()
                .map(|(name, kind)| Family { name, kind: *kind }),
            skipping: self.skipping,
        };
        let mut lines = Lines::reading(text, READ).continuing(at);
        for line in &mut lines {
            match line? {
                Line::Sample(sample) => {
                    self.samples += 1;
                    // Checked per line but cheap: a prefix compare of a name already in cache.
                    if !sample.name.starts_with("traefik_") {
                        continue;
                    }
                    self.any_traefik = true;
                    match sample.name {
                        SERVICE_OPEN_CONNECTIONS => {
                            self.has_v2_family = true;
                            let [service, protocol] =
                                sample.labels.get_many(["service", "protocol"]);
                            if let (Some(service), Some(protocol)) = (service, protocol) {
                                if protocol.eq_str("websocket") {
                                    add(&mut self.websockets, service, sample.value);
                                }
                            }
                        }
                        SERVICE_REQUESTS_TOTAL => {
                            if let Some(service) = sample.labels.get("service") {
                                add(&mut self.requests, service, sample.value);
                            }
                        }
                        ENTRYPOINT_OPEN_CONNECTIONS => self.has_v2_family = true,
                        _ => {}
                    }
                }
                Line::Type { name, .. } | Line::Help { name, .. } => {
                    self.any_traefik |= name.starts_with("traefik_");
                    self.has_v2_family |=
                        name == SERVICE_OPEN_CONNECTIONS || name == ENTRYPOINT_OPEN_CONNECTIONS;
                }
                Line::Blank | Line::Comment(_) => {}
            }
        }
        self.samples += lines.skipped();
        let end = lines.position();
        self.line = end.line;
        self.family = end.family.map(|f| (f.name.to_owned(), f.kind));
        self.skipping = end.skipping;
        Ok(())
    }
}

/// Adds `value` to the entry of `service` (provider suffix stripped), allocating the key
/// only the first time a service is seen.
fn add(map: &mut ServiceMap, service: LabelValue<'_>, value: f64) {
    // A NaN or infinite counter is broken data: the service is known, its count is not.
    let value = if value.is_finite() { value } else { 0.0 };
    let full = service.unescape();
    let name = strip_provider(&full);
    match map.get_mut(name) {
        Some(total) => *total += value,
        None => {
            map.insert(name.to_owned(), value);
        }
    }
}

/// `narrative-alice@file` → `narrative-alice`; backends name services without the provider,
/// and the same service seen through two providers is one narrative.
pub fn strip_provider(service: &str) -> &str {
    // `memchr`'s search: `rsplit_once` looks at one byte at a time, once per counter line.
    memrchr(b'@', service.as_bytes())
        .and_then(|at| service.get(..at))
        .unwrap_or(service)
}

/// Turns successive pages into snapshots; keeps the previous page's request counters.
///
/// On a v2 page a service is active while it has an open websocket. On a v3 page a service
/// is active if its request counter moved since the previous page; on the first page (no
/// baseline) every service with a counter is unknown, and a counter that went down or
/// vanished (Traefik restarted) is unknown for one read: neither activity nor idleness.
/// Services with no counter at all are idle (not mentioned).
#[derive(Clone, Debug, Default)]
pub struct CounterTracker {
    previous: Option<ServiceMap>,
}

impl CounterTracker {
    /// A tracker that has seen no page yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// What `page` says, given the pages seen before; remembers its counters.
    pub fn observe(&mut self, page: &PageActivity) -> ActivitySnapshot {
        let snapshot = match page.version {
            PageVersion::V2 => websocket_snapshot(page),
            PageVersion::V3 => counter_snapshot(self.previous.as_ref(), page),
        };
        // Kept on v2 pages too, so a switch of `traefik_version` does not start from nothing.
        self.previous = Some(page.requests.clone());
        snapshot
    }
}

fn websocket_snapshot(page: &PageActivity) -> ActivitySnapshot {
    page.websockets
        .iter()
        .map(|(service, open)| {
            let activity = if *open > 0.0 {
                Activity::Active
            } else {
                Activity::Idle
            };
            (service.clone(), activity)
        })
        .collect()
}

fn counter_snapshot(previous: Option<&ServiceMap>, page: &PageActivity) -> ActivitySnapshot {
    let mut snapshot = ActivitySnapshot::new();
    let Some(previous) = previous else {
        for service in page.requests.keys() {
            snapshot.set(service.clone(), Activity::Unknown);
        }
        return snapshot;
    };
    for (service, now) in &page.requests {
        let activity = match previous.get(service) {
            None => Activity::Unknown,
            Some(before) if now > before => Activity::Active,
            Some(before) if now < before => Activity::Unknown,
            Some(_) => Activity::Idle,
        };
        snapshot.set(service.clone(), activity);
    }
    for service in previous.keys() {
        if !page.requests.contains_key(service) {
            snapshot.set(service.clone(), Activity::Unknown);
        }
    }
    snapshot
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const V3_HEAD: &str = "# TYPE traefik_service_requests_total counter\n";

    fn v3(lines: &[(&str, f64)]) -> PageActivity {
        let mut page = V3_HEAD.to_owned();
        for (service, n) in lines {
            page.push_str(&format!(
                "traefik_service_requests_total{{code=\"200\",method=\"GET\",protocol=\"http\",service=\"{service}@http\"}} {n}\n"
            ));
        }
        read_page(&page, TraefikVersion::Auto).unwrap()
    }

    #[test]
    fn parses_versions() {
        assert_eq!(
            "auto".parse::<TraefikVersion>().unwrap(),
            TraefikVersion::Auto
        );
        assert_eq!("V2".parse::<TraefikVersion>().unwrap(), TraefikVersion::V2);
        assert_eq!(
            " v3 ".parse::<TraefikVersion>().unwrap(),
            TraefikVersion::V3
        );
        assert!("v4".parse::<TraefikVersion>().is_err());
    }

    #[test]
    fn strips_the_provider_suffix() {
        assert_eq!(strip_provider("a_b@rancher"), "a_b");
        assert_eq!(strip_provider("x@y@file"), "x@y");
        assert_eq!(strip_provider("plain"), "plain");
    }

    #[test]
    fn counters_need_a_baseline_move_to_be_active_and_resets_are_unknown() {
        let mut tracker = CounterTracker::new();
        let first = tracker.observe(&v3(&[("a", 1.0), ("b", 5.0), ("c", 7.0)]));
        assert_eq!(first.get("a"), Activity::Unknown);
        assert_eq!(first.get("zz"), Activity::Idle);
        let second = tracker.observe(&v3(&[("a", 2.0), ("b", 5.0), ("c", 3.0), ("d", 1.0)]));
        assert_eq!(second.get("a"), Activity::Active);
        assert_eq!(second.get("b"), Activity::Idle);
        assert_eq!(second.get("c"), Activity::Unknown, "went down: restart");
        assert_eq!(second.get("d"), Activity::Unknown, "first sight");
        let third = tracker.observe(&v3(&[("c", 4.0), ("d", 1.0)]));
        assert_eq!(third.get("a"), Activity::Unknown, "vanished: restart");
        assert_eq!(third.get("c"), Activity::Active);
        assert_eq!(third.get("d"), Activity::Idle);
        let fourth = tracker.observe(&v3(&[("c", 4.0)]));
        assert_eq!(fourth.get("a"), Activity::Idle, "no counter at all");
    }

    #[test]
    fn sums_one_service_over_providers_codes_and_protocols() {
        let page = read_page(
            "traefik_service_requests_total{code=\"0\",protocol=\"websocket\",service=\"s@file\"} 1\n\
             traefik_service_requests_total{code=\"200\",protocol=\"http\",service=\"s@http\"} 2\n\
             traefik_service_requests_total{code=\"200\",protocol=\"http\",service=\"t\\\\x@http\"} 2\n",
            TraefikVersion::Auto,
        )
        .unwrap();
        assert_eq!(page.requests["s"], 3.0);
        assert_eq!(page.requests["t\\x"], 2.0);
        assert_eq!(page.version, PageVersion::V3);
        assert!(page.detected);
    }

    #[test]
    fn refuses_pages_that_say_nothing_about_traefik() {
        assert!(matches!(
            read_page("", TraefikVersion::Auto),
            Err(MetricsError::Empty)
        ));
        assert!(matches!(
            read_page(" \n\n", TraefikVersion::Auto),
            Err(MetricsError::Empty)
        ));
        assert!(matches!(
            read_page("go_goroutines 3\n", TraefikVersion::Auto),
            Err(MetricsError::NotTraefik)
        ));
        assert!(matches!(
            read_page("traefik_x 3", TraefikVersion::Auto),
            Err(MetricsError::Truncated)
        ));
        assert!(matches!(
            read_page(
                "<html><body>502 Bad Gateway</body></html>\n",
                TraefikVersion::Auto
            ),
            Err(MetricsError::Parse(_))
        ));
    }

    /// The page fed to a [`PageReader`] `piece` bytes at a time.
    fn in_pieces(page: &[u8], piece: usize) -> Result<PageActivity, MetricsError> {
        let mut reader = PageReader::new(TraefikVersion::Auto);
        for chunk in page.chunks(piece) {
            reader.feed(chunk)?;
        }
        reader.finish()
    }

    #[test]
    fn bodies_that_are_not_prometheus_text_fail_whole_or_in_pieces() {
        let bodies: &[&str] = &[
            "<!DOCTYPE html>\n<html><body>502 Bad Gateway</body></html>\n",
            "{\"error\": \"unauthorized\"}\n",
            "404 page not found\n",
            "Bad Gateway\n",
            // A valid Traefik family, then something else: the line fails, not the family.
            "# TYPE traefik_service_server_up gauge\ntraefik_service_server_up{service=\"a\"} 1\n<html>\n",
            "# TYPE traefik_service_requests_total counter\ntraefik_service_requests_total{service=\"a} 1\n",
        ];
        for body in bodies {
            assert!(
                matches!(
                    read_page(body, TraefikVersion::Auto),
                    Err(MetricsError::Parse(_))
                ),
                "{body}"
            );
            for piece in [1, 3, 4096] {
                assert!(
                    matches!(
                        in_pieces(body.as_bytes(), piece),
                        Err(MetricsError::Parse(_))
                    ),
                    "{body} by {piece}"
                );
            }
        }
    }

    #[test]
    fn pieces_report_what_the_whole_page_reports() {
        let error = |page: &[u8], piece: usize| in_pieces(page, piece).unwrap_err().to_string();
        let bad_line = b"# TYPE traefik_service_requests_total counter\n\
            traefik_service_requests_total{service=\"a\"} 1\n\n\
            traefik_service_requests_total{service=b} 2\n";
        // In a family that is only checked by name: UTF-8 is still checked everywhere.
        let bad_utf8 = b"# TYPE traefik_x gauge\ntraefik_x{a=\"\xff\"} 1\n";
        let bad_at = memchr(0xff, bad_utf8).unwrap();
        for piece in [1, 2, 5, 64] {
            assert_eq!(
                error(bad_line, piece),
                "the page is not Prometheus text (line 4: expected '\"' to open a label value); \
                 check that the URL is Traefik's metrics endpoint"
            );
            assert!(
                matches!(
                    in_pieces(bad_utf8, piece),
                    Err(MetricsError::NotUtf8 { valid_up_to }) if valid_up_to == bad_at
                ),
                "by {piece}"
            );
            for (body, empty) in [
                ("", true),
                (" \n\n", true),
                ("\n  ", true),
                ("traefik_x 1", false),
            ] {
                let got = in_pieces(body.as_bytes(), piece);
                if empty {
                    assert!(matches!(got, Err(MetricsError::Empty)), "{body:?}");
                } else {
                    assert!(matches!(got, Err(MetricsError::Truncated)), "{body:?}");
                }
            }
            assert!(matches!(
                in_pieces(b"go_goroutines 3\n", piece),
                Err(MetricsError::NotTraefik)
            ));
        }
    }

    #[test]
    fn a_v2_page_without_websockets_means_nobody_is_active() {
        let page = read_page(
            "# TYPE traefik_entrypoint_open_connections gauge\n\
             traefik_entrypoint_open_connections{entrypoint=\"web\",method=\"GET\",protocol=\"http\"} 0\n",
            TraefikVersion::Auto,
        )
        .unwrap();
        assert_eq!(page.version, PageVersion::V2);
        let snapshot = CounterTracker::new().observe(&page);
        assert!(snapshot.is_empty());
    }

    #[test]
    fn the_override_wins_over_detection() {
        let page = read_page(
            "traefik_service_open_connections{protocol=\"websocket\",service=\"a@x\"} 1\n",
            TraefikVersion::V3,
        )
        .unwrap();
        assert_eq!(page.version, PageVersion::V3);
        assert!(!page.detected);
    }
}
