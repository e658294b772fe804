//! `cargo xtask sim [--seeds N] [--from S] [--seed S] [--steps M] [--replicas R]
//! [--variant rancher|conditional|both] [--trace]`: the deterministic simulation of
//! traefiker's lifecycle (issue 10, SPEC §9, §12).
//!
//! Each seed runs the real `Lifecycle` — one to three replicas sharing one in-memory backend
//! with seeded latency, failures and lost answers — on a single-threaded tokio runtime with
//! paused time, under a seeded random workload, in two variants: on a Rancher-like backend
//! (a read, then an unconditional rename; unconditional deletes; the pool partitioned by
//! replica), and on a conditional one (every write compare-and-swap on the narrative's
//! version, as on Swarm: two or three replicas sharing one pool). After every step the
//! invariants are checked (`check`); a violation stops that seed's run with the steps that
//! led there, and the same seed and variant replay the same run exactly. FoundationDB's
//! simulation testing and TigerBeetle's VOPR are the model.

mod check;
mod workload;
mod world;

use std::process::ExitCode;
use std::time::Instant;

use workload::{run, Params, Variant};

const USAGE: &str = "usage: sim [--seeds N] [--from S] [--seed S] [--steps M] [--replicas R] [--variant rancher|conditional|both] [--trace]";

/// What one variant's seeds added up to.
#[derive(Debug, Default)]
struct Figures {
    seeds: u64,
    violations: Vec<u64>,
    grants: usize,
    reaped: usize,
    raced: usize,
    shared_assigns: usize,
    raised: usize,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds = 300u64;
    let mut first = 0u64;
    let mut steps = 150usize;
    let mut replicas = None;
    let mut variants = vec![Variant::Rancher, Variant::Conditional];
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
            "--variant" => {
                variants = match args.get(i + 1).map(String::as_str) {
                    Some("rancher") => vec![Variant::Rancher],
                    Some("conditional") => vec![Variant::Conditional],
                    Some("both") => vec![Variant::Rancher, Variant::Conditional],
                    other => {
                        eprintln!("sim: unknown variant {other:?}; {USAGE}");
                        return ExitCode::from(2);
                    }
                }
            }
            "--trace" => {
                trace = true;
                i += 1;
                continue;
            }
            other => {
                eprintln!("sim: unknown argument {other}; {USAGE}");
                return ExitCode::from(2);
            }
        }
        i += 2;
    }
    let mut failed = false;
    for variant in variants {
        let started = Instant::now();
        let figures = run_variant(variant, first, seeds, steps, replicas, trace && single);
        let violations = figures.violations.len();
        failed |= violations > 0;
        let raced = match variant {
            Variant::Rancher => format!(
                "{} cross-replica reaps that raced a connect's mark",
                figures.raced
            ),
            // A raced reap is a violation there: counted among them, never here.
            Variant::Conditional => "0 raced reaps (a raced reap is a violation)".to_owned(),
        };
        println!(
            "sim {}: {} seeds from {first}, {steps} steps each: {violations} violations; {} connects answered, {} idle reaps, {raced}, {} waiting narratives assigned by another replica than their maker, {} runs whose pool rose above its floor with demand; {:.1} s",
            variant.name(),
            figures.seeds,
            figures.grants,
            figures.reaped,
            figures.shared_assigns,
            figures.raised,
            started.elapsed().as_secs_f64()
        );
        if violations > 0 {
            let seeds: Vec<String> = figures.violations.iter().map(u64::to_string).collect();
            eprintln!(
                "sim {}: violations at seeds {}",
                variant.name(),
                seeds.join(", ")
            );
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs `seeds` seeds from `first` of `variant`; the first violation is shown with the steps
/// that led there.
fn run_variant(
    variant: Variant,
    first: u64,
    seeds: u64,
    steps: usize,
    replicas: Option<usize>,
    trace: bool,
) -> Figures {
    let mut figures = Figures::default();
    for seed in first..first + seeds {
        let outcome = run(&Params {
            seed,
            steps,
            replicas,
            variant,
        });
        if trace {
            for line in &outcome.trace {
                eprintln!("{line}");
            }
        }
        figures.seeds += 1;
        figures.grants += outcome.grants;
        figures.reaped += outcome.reaped;
        figures.raced += outcome.tally.raced;
        figures.shared_assigns += outcome.shared_assigns;
        figures.raised += usize::from(outcome.raised);
        if let Some(violation) = outcome.violation {
            if figures.violations.is_empty() {
                eprintln!("sim {}: seed {seed}: {violation}", variant.name());
                eprintln!("sim: the steps that led there (last 60):");
                let from = outcome.trace.len().saturating_sub(60);
                for line in &outcome.trace[from..] {
                    eprintln!("  {line}");
                }
                let only = match variant {
                    Variant::Rancher => "rancher",
                    Variant::Conditional => "conditional",
                };
                eprintln!(
                    "sim: replay with `cargo xtask sim --seed {seed} --variant {only} --trace`"
                );
            }
            figures.violations.push(seed);
        }
    }
    figures
}
