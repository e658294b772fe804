//! `cargo xtask bench-swarm`: on the Swarm stack (three replicas sharing one pool), what a
//! new user waits for their 201 when a waiting narrative is assigned against when one is
//! created (pool 0), and what a rolling update of traefiker costs existing users.
//!
//! New users arrive one at a time, each once the previous one was answered and, with the
//! pool, once the pool is full again: every one of them meets the case being measured. Two
//! figures per case: traefiker's 201, and the user's narrative answering through Traefik
//! (what the person waits for: Traefik routes a narrative once Swarm runs its task and its
//! health check passed).

use std::time::{Duration, Instant};

use crate::compose::docker;
use crate::e2e_swarm::{percentile, swarm_settings, SWARM_TIMING};
use crate::stack::{agent_within, get, wait_for};
use crate::swarm::{SwarmGuard, SwarmStack};
use crate::traefik::workspace_root;

/// New users measured per case.
const USERS: usize = 10;
/// The pool's floor in the warm case.
const POOL: usize = 4;
/// The stack's name, and its network's.
const STACK: &str = "traefiker-bench-swarm";

/// Runs both cases and the rolling update; prints the figures.
pub fn bench_swarm() -> Result<(), String> {
    crate::stack::stop_all_on_interrupt()?;
    let _swarm = SwarmGuard::ensure()?;
    crate::images::build_all()?;
    let dir = workspace_root().join("target").join("bench-swarm");
    let mut lines = Vec::new();
    for (case, pool) in [("warm pool", POOL), ("pool 0 (cold start)", 0)] {
        let mut wanted = swarm_settings(SWARM_TIMING);
        wanted.retain(|(k, _)| *k != "num_prespawn" && *k != "log_level");
        wanted.push(("num_prespawn", pool.to_string()));
        wanted.push(("log_level", "INFO".to_owned()));
        let pairs: Vec<(&str, &str)> = wanted.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut stack = SwarmStack::up(STACK, &dir, STACK, &pairs)?;
        let mut latencies = Vec::new();
        let mut answered = Vec::new();
        for i in 0..USERS {
            if pool > 0 {
                wait_for(
                    &format!("{pool} waiting narratives"),
                    Duration::from_secs(120),
                    || (waiting(&stack, i).ok()? >= pool).then_some(()),
                )?;
            }
            let user = format!("b{i:02}");
            let token = format!("{user}-token");
            let from = Instant::now();
            let r = get(
                &agent_within(Duration::from_secs(60)),
                &stack.web_url("/narrative/"),
                &[("kbase_session", &token)],
            )?;
            let took = from.elapsed();
            if r.status != 201 {
                return Err(format!("{case}: {user}'s login answered {}", r.status));
            }
            latencies.push(took);
            // What the person waits for: their narrative's own page through Traefik.
            let session = r
                .cookie("narrative_session")
                .ok_or_else(|| format!("{case}: {user}'s 201 set no narrative_session"))?;
            let http = agent_within(Duration::from_secs(10));
            wait_for(
                &format!("{user}'s narrative to answer"),
                Duration::from_secs(120),
                || {
                    get(
                        &http,
                        &stack.web_url("/narrative/"),
                        &[("kbase_session", &token), ("narrative_session", &session)],
                    )
                    .ok()
                    .filter(|r| r.status == 200)
                },
            )?;
            answered.push(from.elapsed());
        }
        latencies.sort();
        answered.sort();
        let line = format!(
            "bench-swarm: {case}: {USERS} new users' 201 p50 {:.0?} p95 {:.0?} max {:.0?}; their narrative answering through Traefik p50 {:.1?} p95 {:.1?} max {:.1?}",
            percentile(&latencies, 50),
            percentile(&latencies, 95),
            latencies.last().copied().unwrap_or_default(),
            percentile(&answered, 50),
            percentile(&answered, 95),
            answered.last().copied().unwrap_or_default()
        );
        println!("{line}");
        lines.push(line);
        if pool > 0 {
            let cost = crate::e2e_swarm::rolling_update(&mut stack)?;
            let line = format!("bench-swarm: {cost}");
            println!("{line}");
            lines.push(line);
        }
        drop(stack);
    }
    println!();
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// The narrative services on the stack's network beyond the `users` assigned so far: the
/// waiting ones.
fn waiting(stack: &SwarmStack, users: usize) -> Result<usize, String> {
    let names = docker(&[
        "service",
        "ls",
        "--filter",
        &format!("label=traefik.swarm.network={}", stack.network()),
        "--format",
        "{{.Name}} {{.Replicas}}",
    ])?;
    // Only those whose task runs: a waiting narrative still starting is a cold start.
    let running = names
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("1/1"))
        .count();
    Ok(running.saturating_sub(users))
}
