//! `cargo xtask sim [--seeds N] [--seed S] [--steps M] [--replicas R] [--trace]`: the
//! deterministic simulation of traefiker's lifecycle (issue 10, SPEC §9).
//!
//! Each seed runs the real `Lifecycle` — one to three replicas sharing one in-memory backend
//! that renames like Rancher (a read, then an unconditional rename) with seeded latency,
//! failures and lost answers — on a single-threaded tokio runtime with paused time, under a
//! seeded random workload. After every step the invariants are checked (`check`); the first
//! violation stops the run with its seed and the steps that led there, and the same seed
//! replays the same run exactly. FoundationDB's simulation testing and TigerBeetle's VOPR are
//! the model.

mod check;
mod workload;
mod world;

use std::process::ExitCode;
use std::time::Instant;

use workload::{run, Params};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds = 300u64;
    let mut first = 0u64;
    let mut steps = 150usize;
    let mut replicas = None;
    let mut trace = false;
    let mut single = false;
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match args[i].as_str() {
            "--seeds" => seeds = value(i).unwrap_or(seeds),
            "--from" => first = value(i).unwrap_or(first),
            "--seed" => {
                first = value(i).unwrap_or(0);
                seeds = 1;
                single = true;
            }
            "--steps" => steps = value(i).map_or(steps, |v| v as usize),
            "--replicas" => replicas = value(i).map(|v| v as usize),
            "--trace" => {
                trace = true;
                i += 1;
                continue;
            }
            other => {
                eprintln!("sim: unknown argument {other}; usage: sim [--seeds N] [--from S] [--seed S] [--steps M] [--replicas R] [--trace]");
                return ExitCode::from(2);
            }
        }
        i += 2;
    }
    let started = Instant::now();
    let (mut grants, mut reaped, mut raced, mut raised) = (0usize, 0usize, 0usize, 0usize);
    for seed in first..first + seeds {
        let outcome = run(&Params {
            seed,
            steps,
            replicas,
        });
        if trace && single {
            for line in &outcome.trace {
                eprintln!("{line}");
            }
        }
        grants += outcome.grants;
        reaped += outcome.reaped;
        raced += outcome.tally.raced;
        raised += usize::from(outcome.raised);
        if let Some(violation) = outcome.violation {
            eprintln!("sim: seed {seed}: {violation}");
            eprintln!("sim: the steps that led there (last 60):");
            let from = outcome.trace.len().saturating_sub(60);
            for line in &outcome.trace[from..] {
                eprintln!("  {line}");
            }
            eprintln!("sim: replay with `cargo xtask sim --seed {seed} --trace`");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "sim: {seeds} seeds from {first}, {steps} steps each: 0 violations; {grants} connects answered, {reaped} idle reaps, {raced} cross-replica reaps that raced a connect's mark, {raised} runs whose pool rose above its floor with demand; {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
