//! What traefiker sees as active on a Traefik metrics page.
//!
//! ```text
//! cargo run -p traefiker-metrics --example activity -- --url http://traefik:8080/metrics [--reads 2 --every 30] [--version auto|v2|v3]
//! cargo run -p traefiker-metrics --example activity -- --file before.prom [--file after.prom]
//! ```
//!
//! On Traefik v3 activity is a counter that moved between two reads: give two files, or
//! `--reads 2`. The server's `traefiker activity` calls the same library functions.

use std::process::ExitCode;
use std::time::Duration;

use traefiker_metrics::report::ActivityReport;
use traefiker_metrics::{
    read_page_from, CounterTracker, MetricsError, TraefikMetrics, TraefikMetricsConfig,
    TraefikVersion,
};

#[derive(Debug, Default)]
struct Args {
    url: Option<String>,
    files: Vec<String>,
    version: TraefikVersion,
    reads: u32,
    every: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        reads: 1,
        every: 10,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = Some(value()?),
            "--file" => args.files.push(value()?),
            "--version" => args.version = value()?.parse().map_err(|e| format!("{e}"))?,
            "--reads" => args.reads = value()?.parse().map_err(|e| format!("--reads: {e}"))?,
            "--every" => args.every = value()?.parse().map_err(|e| format!("--every: {e}"))?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    // Exactly one of the two: neither, or both, is a mistake.
    if args.url.is_some() != args.files.is_empty() {
        return Err("give either --url URL or --file FILE (repeatable)".to_owned());
    }
    Ok(args)
}

async fn run(args: Args) -> Result<String, String> {
    let mut tracker = CounterTracker::new();
    let mut last = None;
    if let Some(url) = args.url {
        let source = TraefikMetrics::new(TraefikMetricsConfig {
            version: args.version,
            ..TraefikMetricsConfig::new(url)
        })
        .map_err(|e| e.to_string())?;
        for read in 0..args.reads.max(1) {
            if read > 0 {
                tokio::time::sleep(Duration::from_secs(args.every)).await;
            }
            let page = source.fetch().await.map_err(|e| e.to_string())?;
            let snapshot = tracker.observe(&page);
            last = Some(ActivityReport::new(&page, &snapshot));
        }
    } else {
        for file in &args.files {
            let page = std::fs::File::open(file)
                .map_err(MetricsError::Read)
                .and_then(|f| read_page_from(f, args.version))
                .map_err(|e| format!("{file}: {e}"))?;
            let snapshot = tracker.observe(&page);
            last = Some(ActivityReport::new(&page, &snapshot));
        }
    }
    Ok(last.map(|r| r.to_string()).unwrap_or_default())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\nusage: activity --url URL [--reads N --every SECS] | --file FILE [--file FILE...] [--version auto|v2|v3]");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("activity unknown: {e}");
            ExitCode::FAILURE
        }
    }
}
