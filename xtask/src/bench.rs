//! `cargo xtask bench`: every speed and memory figure of the request path, the reaper, the
//! provider and status answers, and the activity read, in one run, each beside the box's own
//! limit measured in the same run (the no-call answer; a plain `memchr` scan), so a ratio is
//! always between two numbers from the same machine and moment.
//!
//! The figures come from release-mode examples (see each for how it measures):
//! - `traefiker-server/examples/bench_server.rs`: the server's own CPU per request for a
//!   returning user and for `/healthz`, backend and auth calls per request, p50/p99, RSS;
//! - `traefiker-server/examples/bench_reaper.rs`: a reaper cycle of the release binary at
//!   10,000 narratives (plus 2,000 other services): calls, time, CPU, RSS;
//! - `traefiker-server/examples/bench_provider.rs`: `/traefik/dynamic` and the admin's
//!   `/narrative_status/` at 10,000 narratives;
//! - `cargo xtask bench-activity`: the 50 MB page in process and as a whole process.
//!
//! Targets (issue 15): returning-user CPU within 1.5x of the no-call answer with 0.00
//! backend and auth calls; a cycle at 10,000: one metrics read, ceil(N/page size) listing
//! pages, then only the removals, under 1 s of traefiker's own time, RSS under 40 MB;
//! provider and status answers well under 10 ms; the activity read at 2 GB/s in process,
//! within 2.5x of `memchr`, 10x the Python version as a whole process.

use crate::{bench_activity, run};

/// Runs every benchmark and prints its figures.
pub fn bench() -> Result<(), String> {
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
            "--example",
            "bench_server",
            "--example",
            "bench_reaper",
            "--example",
            "bench_provider",
        ],
    )?;
    for (title, example) in [
        ("request path", "bench_server"),
        ("reaper cycle at 10,000 narratives", "bench_reaper"),
        (
            "/traefik/dynamic and /narrative_status/ at 10,000 narratives",
            "bench_provider",
        ),
    ] {
        println!("\n== {title} ==");
        run(
            "cargo",
            &[
                "run",
                "--release",
                "--quiet",
                "-p",
                "traefiker-server",
                "--example",
                example,
            ],
        )?;
    }
    println!("\n== activity read (50 MB Traefik v2 page) ==");
    bench_activity::bench_activity()
}
