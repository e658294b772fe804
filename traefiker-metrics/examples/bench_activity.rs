//! In-process figures for `cargo xtask bench-activity`: writes the generated 50 MB v2 page
//! (`benches/page_gen.rs`) to the path given, for the whole-process comparison that follows,
//! then times [`read_page`] against `memchr` over the same bytes in memory.
//!
//! Two `memchr` references: a scan that stops at every line end (`memchr` per line, what
//! any line reader has to do, and the one the ratio is taken against) and the bulk count
//! `memchr_iter().count()`, which never stops at a line.
//!
//! Timed with `Instant` over [`RUNS`] runs after a warm-up, medians reported: simpler than
//! criterion for figures a script prints, and stable enough on a shared machine because a
//! median ignores the runs another process interrupted. `benches/parse.rs` measures the same
//! three with criterion.
//!
//! ```text
//! cargo run --release -p traefiker-metrics --example bench_activity -- target/bench-activity/page.prom
//! ```

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use traefiker_metrics::{read_page, TraefikVersion};

#[path = "../benches/page_gen.rs"]
mod page_gen;

const RUNS: usize = 31;

/// The median time of `f` over [`RUNS`] runs, after three unmeasured ones.
fn time(mut f: impl FnMut()) -> Duration {
    for _ in 0..3 {
        f();
    }
    let mut runs: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    runs.sort_unstable();
    runs[RUNS / 2]
}

/// Stops at every line end, as a line reader must.
fn line_scan(page: &[u8]) -> usize {
    let mut lines = 0;
    let mut rest = page;
    while let Some(end) = memchr::memchr(b'\n', rest) {
        lines += 1;
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    lines
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: bench_activity PAGE_PATH");
        return ExitCode::from(2);
    };
    let page = page_gen::generate(10_000);
    if let Err(e) = std::fs::write(&path, &page) {
        eprintln!("{path}: {e}");
        return ExitCode::FAILURE;
    }
    let read = match read_page(&page, TraefikVersion::Auto) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("the generated page does not read: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "page: {path}, {:.1} MB, {} lines, {} services",
        page.len() as f64 / 1e6,
        line_scan(page.as_bytes()),
        read.requests.len()
    );
    let ours = time(|| {
        black_box(read_page(black_box(&page), TraefikVersion::Auto).ok());
    });
    let scan = time(|| {
        black_box(line_scan(black_box(page.as_bytes())));
    });
    let count = time(|| {
        black_box(memchr::memchr_iter(b'\n', black_box(page.as_bytes())).count());
    });
    let gbps = |d: Duration| page.len() as f64 / d.as_secs_f64() / 1e9;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "activity in-process: read_page {:.2} GB/s ({:.1} ms), memchr scan {:.2} GB/s ({:.1} ms), ratio {:.2}",
        gbps(ours),
        ms(ours),
        gbps(scan),
        ms(scan),
        ours.as_secs_f64() / scan.as_secs_f64()
    );
    println!(
        "activity in-process: memchr_iter count {:.2} GB/s ({:.1} ms), read_page / count ratio {:.2}",
        gbps(count),
        ms(count),
        ours.as_secs_f64() / count.as_secs_f64()
    );
    ExitCode::SUCCESS
}
