//! Parse + extract throughput on a ~50 MB Traefik page, against the `prometheus-parse`
//! crate reading the same page and against `memchr` only finding the line ends (the floor of
//! any line reader), and the heap our extraction holds beyond the body.
//!
//! Run: `cargo bench -p traefiker-metrics --bench parse -- --measurement-time 5 --warm-up-time 1 --sample-size 10`
//! (`cargo xtask bench-activity` prints the same comparison as one line, with the ratio.)
// The counting allocator below needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use traefiker_metrics::{read_page, TraefikVersion};

mod page_gen;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: same layout the caller gave us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What prometheus-parse needs to answer the same question: requests per service.
fn prometheus_parse_extract(page: &str) -> HashMap<String, f64> {
    let lines = page.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("{e}"));
    let mut per_service = HashMap::new();
    for sample in &scrape.samples {
        if sample.metric == "traefik_service_requests_total" {
            if let (Some(service), prometheus_parse::Value::Counter(v)) =
                (sample.labels.get("service"), &sample.value)
            {
                let name = service.rsplit_once('@').map_or(service, |(n, _)| n);
                *per_service.entry(name.to_owned()).or_insert(0.0) += v;
            }
        }
    }
    per_service
}

/// Stops at every line end, as a line reader must: the reference `read_page` is held to.
fn line_scan(page: &[u8]) -> usize {
    let mut lines = 0;
    let mut rest = page;
    while let Some(end) = memchr::memchr(b'\n', rest) {
        lines += 1;
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    lines
}

fn bench(c: &mut Criterion) {
    let page = page_gen::generate(10_000);
    let lines = page.lines().count();

    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let read = read_page(&page, TraefikVersion::Auto).unwrap_or_else(|e| panic!("{e}"));
    let extra = PEAK.load(Ordering::Relaxed) - before;
    eprintln!(
        "page: {:.1} MB, {lines} lines, {} services with counters; read_page peak heap beyond the body: {:.2} MB ({} bytes per service, {:.1} per line)",
        page.len() as f64 / 1e6,
        read.requests.len(),
        extra as f64 / 1e6,
        extra / read.requests.len().max(1),
        extra as f64 / lines as f64,
    );
    let theirs = prometheus_parse_extract(&page);
    assert_eq!(
        theirs.len(),
        read.requests.len(),
        "both parsers see the same services"
    );
    drop(read);

    let mut group = c.benchmark_group("traefik_page_50MB");
    group.throughput(Throughput::Bytes(page.len() as u64));
    group.bench_function("traefiker read_page (parse+extract)", |b| {
        b.iter(|| read_page(black_box(&page), TraefikVersion::Auto))
    });
    group.bench_function("prometheus-parse (parse+extract)", |b| {
        b.iter(|| prometheus_parse_extract(black_box(&page)))
    });
    group.bench_function("memchr line scan (memchr per line)", |b| {
        b.iter(|| line_scan(black_box(page.as_bytes())))
    });
    group.bench_function("memchr line count (memchr_iter().count())", |b| {
        b.iter(|| memchr::memchr_iter(b'\n', black_box(page.as_bytes())).count())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
