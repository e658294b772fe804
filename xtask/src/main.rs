//! `cargo xtask <command>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `ci`: formatting, lints, every test, then the end-to-end test against a real Traefik.
//! - `demo`: traefiker behind a real Traefik on this machine, until Ctrl-C.
//! - `e2e`: the end-to-end test alone.
//! - `bench-server`: request-path figures of the server (req/s, p50/p99, backend and auth
//!   calls per request, RSS), from `traefiker-server/examples/bench_server.rs` in release mode.
//! - `bench-activity`: `traefiker activity --file` on a 50 MB page: `read_page` against a
//!   `memchr` scan in process, and the whole process against the Python version's loop.

mod bench_activity;
mod demo;
mod e2e;
mod stack;
mod traefik;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("demo") => demo::demo(),
        Some("e2e") => e2e::e2e(),
        Some("bench-server") => run(
            "cargo",
            &[
                "run",
                "--release",
                "--quiet",
                "-p",
                "traefiker-server",
                "--example",
                "bench_server",
            ],
        ),
        Some("bench-activity") => bench_activity::bench_activity(),
        _ => {
            eprintln!("usage: cargo xtask ci|demo|e2e|bench-server|bench-activity");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs each step in order and stops at the first failure.
fn ci() -> Result<(), String> {
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run("cargo", &["test", "--workspace"])?;
    eprintln!("==> cargo xtask e2e");
    e2e::e2e()?;
    Ok(())
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("==> {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}
