//! Who is active: the reaper's activity sources, read from Traefik's Prometheus page and from
//! each narrative's own Jupyter server.
//!
//! # What Traefik v2 and v3 can see (for operators)
//!
//! **Traefik v2** exposes `traefik_service_open_connections{protocol="websocket",service=…}`,
//! the open websockets per service. Jupyter keeps one open per open notebook, so a narrative
//! is active exactly while someone has it open in a browser, quiet or not; this is what the
//! Python traefiker read. A v2 page without websocket series means nobody has a notebook
//! open. Nothing else is needed on v2: `activity_sources = traefik` (the default).
//!
//! **Traefik v3** removed per-service open-connection gauges. What it still counts per
//! service is `traefik_service_requests_total`, and a websocket is counted only *when it
//! closes*. So on v3 a narrative is active when its request counter moved since the previous
//! reaper cycle (any page load, API call, or a websocket that closed), but a notebook left
//! open in a tab, even one busy executing cells, shows nothing until the tab is closed: with
//! Traefik alone it would be reaped after `reaper_timeout_secs`. The first read after
//! traefiker starts, and a counter that went down or vanished (Traefik restarted), tell
//! nothing: those narratives are *unknown* for one cycle and never reaped for idleness then.
//! On v3 set `activity_sources = traefik,narrative_status`: the second source asks each
//! narrative's Jupyter `GET /narrative/api/status`, whose `connections` counts open kernel
//! websockets (an open tab is active) and whose `last_activity` moves on kernel traffic. To
//! check what traefiker sees, run the `activity` example (`--url`, or two `--file`s for v3).
//!
//! # How the pieces fit
//!
//! - [`parse`] reads the Prometheus text format without copying. The lines of the families
//!   read are checked in full, and so is every line before the first `# TYPE` and every line
//!   that does not start with the name its family declared (an HTML page, a cut-off body or
//!   a stray line fails); the samples of other declared families are only checked by name
//!   ([`parse::Lines::reading`] says exactly what is checked).
//! - [`page`]: [`read_page`] turns a page into [`PageActivity`] (version, open websockets and
//!   request counters per service, `@provider` stripped to match
//!   [`traefiker_core::ActivityTarget::service`]); [`PageReader`] does the same for a page
//!   that arrives in pieces and [`read_page_from`] for a file (what `traefiker activity
//!   --file` uses); [`CounterTracker`] turns successive pages into snapshots. The version is
//!   detected per page (a v2 open-connections family means v2) unless [`TraefikVersion`] is
//!   configured.
//! - [`TraefikMetrics`] is the [`traefiker_core::ActivitySource`] over them: one GET with a
//!   connect and a whole-request timeout, gzip, and a body cap. A non-200, timeout, oversize,
//!   non-UTF-8, empty, cut-off, non-Prometheus or non-Traefik page is an error, so the
//!   reaper reaps nobody for idleness rather than everybody.
//! - [`NarrativeStatus`] is the second source: per narrative, bounded parallelism and a
//!   deadline for the whole snapshot; a narrative that does not answer (or has no address) is
//!   unknown, the source as a whole never fails.
//! - Sources are joined by core's [`traefiker_core::activity::join_activity`], the one
//!   combinator: a narrative is active if any source says so, idle only if every configured
//!   source answered and said idle, unknown otherwise. `activity_sources = traefik` builds
//!   `vec![TraefikMetrics]`; `traefik,narrative_status` builds
//!   `vec![TraefikMetrics, NarrativeStatus]` for [`traefiker_core::Lifecycle::new`].
//! - [`report::ActivityReport`] is what the operators' `activity` command prints.
//!
//! # Performance
//!
//! `cargo xtask bench-activity` prints the `read_page`, `memchr` and whole-process figures
//! below in one go; `cargo bench -p traefiker-metrics --bench parse -- --measurement-time 5
//! --warm-up-time 1 --sample-size 10` measures the in-process ones and `prometheus-parse`
//! with criterion, and the heap. Both read a generated 50.2 MB v2 page (10,000
//! narrative services plus 500 noise services with escaped quotes; histograms with buckets,
//! websocket and http series, router and byte counters; 325,519 lines), its series in the
//! order Traefik writes them (one service's series spread over each family). Measured on the
//! 2-core development machine (AMD EPYC) while other engineers' builds kept its load at 3 to
//! 4; at a load of 5 to 7 `read_page` slows to 24–27 ms.
//!
//! | in process, one page in memory | time per page | throughput |
//! |---|---|---|
//! | [`read_page`] (parse + extract) | 17.0 ms | 2.96 GB/s |
//! | `memchr` per line: finding every line end and nothing else | 2.90 ms | 17.3 GB/s |
//! | `memchr_iter().count()`: counting line ends, never stopping at one | 2.39 ms | 21.0 GB/s |
//! | `prometheus-parse` 0.2 `Scrape::parse` + the same extraction | 1.14 s | 44 MB/s |
//!
//! `read_page` takes 5.8 times the per-line `memchr` scan (7.1 times the count) and is 67
//! times faster than `prometheus-parse`; before unread families were passed over by name it
//! took 38.1 ms (on the same page ordered by service). Of its 17 ms, about 5 go to the
//! 273,000 lines of families it does not read, each a name compare and a `memchr` (about
//! 1.7 times the bare scan, the floor of a reader that looks at every line), and about 12
//! to the 52,500 lines it reads: each checked in full (labels, escapes, value), and 42,000
//! counter updates in per-service maps. Since then two changes cut the instructions of a read
//! by 12.6% (cachegrind, a 2,000-service page: 38.2 M before, 33.4 M after): a sample of the
//! last `TYPE` line's family skips the second check of its name, and the maps hash with
//! foldhash (seeded per map) instead of SipHash, which was a tenth of a read. On a later,
//! noisier machine `cargo xtask bench-activity` measured `read_page` at 1.76–2.57 GB/s
//! against a per-line `memchr` scan of 4.85–11.43 GB/s in the same runs (2.25–4.44 times),
//! and the whole process at 9.7–10.3 times the Python loop. Getting within 2.5 times the scan
//! every time would mean not checking the lines that decide who is reaped: they are kept.
//!
//! | whole process, `activity --file` on the saved page | time |
//! |---|---|
//! | `traefiker activity --file` (release) | 29.2 ms |
//! | the Python traefiker's loop (`xtask/bench/activity_python.py`) | 414.6 ms |
//!
//! Medians of 11 alternating runs: 14.2 times faster. In CPU time (`perf stat`) it is 28 ms
//! against 278–300 ms, about 10 times: the Python process also loses more to page faults and
//! to the other processes. Of traefiker's 28 ms, about 1 is starting and stopping, 5 copying
//! the file out of the page cache (read 128 KiB at a time, [`read_page_from`]: one 50 MB
//! buffer cost 25 ms of page faults more), 18 checking and reading the page and 3 sorting
//! and writing the 10,500 lines of the report.
//!
//! Beyond the body, `read_page` peaks at 1.98 MB of heap for the 10,500 services (188 bytes
//! per service): two maps of per-service totals, nothing per line; [`PageReader`] adds one
//! 128 KiB piece. `prometheus-parse` copies every line into a `String` and every sample
//! into a map.

pub mod error;
mod http;
pub mod jupyter;
pub mod page;
pub mod parse;
pub mod report;
pub mod traefik;

pub use error::MetricsError;
pub use jupyter::{JupyterStatus, NarrativeStatus, NarrativeStatusConfig};
pub use page::{
    read_page, read_page_from, CounterTracker, PageActivity, PageReader, PageVersion, ServiceMap,
    TraefikVersion,
};
pub use traefik::{fetch_page, TraefikMetrics, TraefikMetricsConfig};
