//! `cargo xtask bench-activity`: how fast `traefiker activity --file` reads a 50 MB Traefik
//! v2 page (10,500 services, 325,519 lines), in process and as a whole process.
//!
//! 1. `traefiker-metrics/examples/bench_activity.rs`, in release mode, writes the generated
//!    page to `target/bench-activity/page.prom` and prints the in-process figures:
//!    `read_page` against a `memchr` scan of the same bytes (see that file for how).
//! 2. The release `traefiker` binary and `xtask/bench/activity_python.py`, the Python
//!    traefiker's per-line regular expression loop, each read that file: once to check they
//!    see the same services, then [`RUNS`] times each, alternating so a burst of load from
//!    another process hits both. Wall time from spawn to exit with the output discarded;
//!    the medians and their ratio are printed.
//!
//! Needs `python3` on PATH (no package beyond its standard library).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::run;
use crate::traefik::{target_dir, workspace_root};

/// Timed runs of each process; two more of each run first, unmeasured.
const RUNS: usize = 11;

/// Prints the in-process and whole-process figures.
pub fn bench_activity() -> Result<(), String> {
    let python = workspace_root().join("xtask/bench/activity_python.py");
    let dir = target_dir().join("bench-activity");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let page = dir.join("page.prom");
    let page_arg = page.to_str().ok_or("the target directory is not UTF-8")?;
    run(
        "cargo",
        &[
            "run",
            "--release",
            "--quiet",
            "-p",
            "traefiker-metrics",
            "--example",
            "bench_activity",
            "--",
            page_arg,
        ],
    )?;
    run(
        "cargo",
        &[
            "build",
            "--release",
            "--quiet",
            "-p",
            "traefiker-server",
            "--bin",
            "traefiker",
        ],
    )?;
    let traefiker = target_dir().join("release/traefiker");
    let ours = || {
        let mut cmd = Command::new(&traefiker);
        cmd.args(["activity", "--file"]).arg(&page);
        cmd
    };
    let theirs = || {
        let mut cmd = Command::new("python3");
        cmd.arg(&python).arg(&page);
        cmd
    };
    // Same services on both sides, or the comparison means nothing: traefiker prints a
    // header line and a line per service, the script a line per service.
    let our_lines = output_lines(ours())?;
    let their_lines = output_lines(theirs())?;
    if our_lines != their_lines + 1 {
        return Err(format!(
            "traefiker reported {} services, the Python loop {their_lines}",
            our_lines.saturating_sub(1)
        ));
    }
    let mut our_times = Vec::with_capacity(RUNS);
    let mut their_times = Vec::with_capacity(RUNS);
    for run in 0..RUNS + 2 {
        let ours = time(ours())?;
        let theirs = time(theirs())?;
        if run >= 2 {
            our_times.push(ours);
            their_times.push(theirs);
        }
    }
    let ours = median(our_times);
    let theirs = median(their_times);
    println!(
        "activity whole process: traefiker {:.1} ms, python {:.1} ms, ratio {:.1} (medians of {RUNS}, {} services)",
        ms(ours),
        ms(theirs),
        theirs.as_secs_f64() / ours.as_secs_f64(),
        their_lines
    );
    Ok(())
}

/// How many lines `cmd` prints; fails unless it succeeds.
fn output_lines(mut cmd: Command) -> Result<usize, String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", program(&cmd)))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", program(&cmd), out.status));
    }
    Ok(out.stdout.iter().filter(|b| **b == b'\n').count())
}

/// Wall time of one run of `cmd`, from spawn to exit, output discarded.
fn time(mut cmd: Command) -> Result<Duration, String> {
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot start {}: {e}", program(&cmd)))?;
    let elapsed = start.elapsed();
    if !status.success() {
        return Err(format!("{} failed ({status})", program(&cmd)));
    }
    Ok(elapsed)
}

fn program(cmd: &Command) -> String {
    Path::new(cmd.get_program()).display().to_string()
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort_unstable();
    runs.get(runs.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
