//! `cargo xtask <command>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `ci`: formatting, lints, the alerting rules, the Kubernetes manifests, the container
//!   images, every test, the simulation, then the end-to-end tests (local, observed by
//!   Prometheus, in a browser, and Docker and Swarm where an engine answers; a swarm is made
//!   for the Swarm conformance test and the Swarm e2e if none is active, and left after).
//! - `demo [--docker | --swarm | --observe]`: traefiker behind a real Traefik on this
//!   machine, until Ctrl-C; with `--docker`, the compose stack with narratives as containers;
//!   with `--swarm`, the Swarm stack (three replicas, narratives as services) on a swarm made
//!   for it if none is active; with `--observe`, a Prometheus beside it with the project's
//!   rules (its URL is printed).
//! - `e2e [--docker | --swarm | --observe [--docs]]`: one end-to-end test alone; `--swarm`
//!   adds the checks of several replicas (a burst of new users, a replica killed, a rolling
//!   update); `--observe` adds a real Prometheus and checks the rules, the alerts and the
//!   dashboard against it (`--docs` also writes its screenshot of the alerts page to
//!   `docs/img/`).
//! - `rules`: `promtool check` and `promtool test rules` on `deploy/prometheus/`; installs
//!   Debian's prometheus if missing.
//! - `e2e-browser`: the demo in a real browser (Chromium over WebDriver), screenshots under
//!   `target/e2e-browser/screenshots/`; installs Debian's chromium and chromium-driver if
//!   missing.
//! - `images`: the container images, built here with nothing pulled, and their sizes.
//! - `validate-manifests`: `deploy/kubernetes/` against the Kubernetes schemas, offline, with
//!   `kubernetes-validate` pinned by hash in a venv under `target/`.
//! - `sim [--seeds N] [--from S] [--seed S] [--steps M] [--replicas R] [--variant
//!   rancher|conditional|both] [--trace]`: the deterministic simulation of the lifecycle
//!   (`traefiker-sim`), in release mode; both variants (Rancher-like, and replicas sharing
//!   one pool on a conditional backend) unless `--variant` says one.
//! - `bench`: every speed and memory figure in one run (request path, reaper at 10,000,
//!   provider and status answers, activity read), each beside the box's own limit.
//! - `bench-server`: request-path figures of the server (req/s, p50/p99, backend and auth
//!   calls per request, RSS), from `traefiker-server/examples/bench_server.rs` in release mode.
//! - `bench-docker`: a warm-pool assignment against a cold create on the real Docker engine,
//!   from `traefiker-docker/examples/assign_vs_create.rs`.
//! - `bench-swarm`: on the Swarm stack, a new user's 201 with a warm pool against a cold
//!   start (pool 0), and what a rolling update of traefiker costs users.
//! - `bench-activity`: `traefiker activity --file` on a 50 MB page: `read_page` against a
//!   `memchr` scan in process, and the whole process against the Python version's loop.
//! - `bench-burst`: the workshop trace of issue 22 (40 new users in 20 s, creates taking 3 s)
//!   against a fixed pool, a large fixed pool and the pool that follows demand (alone, with a
//!   schedule, after two weeks learned), side by side, in virtual time, from
//!   `traefiker-sim/examples/bench_burst.rs`.

mod bench;
mod bench_activity;
mod bench_swarm;
mod compose;
mod demo;
mod e2e;
mod e2e_browser;
mod e2e_swarm;
mod images;
mod manifests;
mod observe;
mod promql;
mod rules;
mod stack;
mod swarm;
mod traefik;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().skip(1).any(|a| a == name);
    let (docker, swarm, observe) = (flag("--docker"), flag("--swarm"), flag("--observe"));
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("demo") if docker && observe => {
            Err("demo --observe runs the local demo; --docker has no Prometheus beside it".into())
        }
        Some("demo" | "e2e") if docker && swarm => Err("--docker and --swarm: choose one".into()),
        Some("demo") if swarm && observe => {
            Err("demo --observe runs the local demo; --swarm has no Prometheus beside it".into())
        }
        Some("demo") if swarm => demo::demo_swarm(),
        Some("demo") => demo::demo(docker, observe),
        Some("e2e") if swarm && flag("--burst") => e2e_swarm::e2e(e2e_swarm::Scope::Burst),
        Some("e2e") if swarm && flag("--update") => e2e_swarm::e2e(e2e_swarm::Scope::Update),
        Some("e2e") if swarm => e2e_swarm::e2e(e2e_swarm::Scope::All),
        Some("e2e") if observe => observe::e2e(flag("--docs")),
        Some("e2e") => e2e::e2e(docker),
        Some("rules") => rules::rules(),
        Some("e2e-browser") => e2e_browser::e2e_browser(),
        Some("images") => images::images(),
        Some("validate-manifests") => manifests::validate_manifests(),
        Some("sim") => sim(&args[1..]),
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
        Some("bench-docker") => bench_docker(),
        Some("bench-swarm") => bench_swarm::bench_swarm(),
        Some("bench-activity") => bench_activity::bench_activity(),
        Some("bench-burst") => run(
            "cargo",
            &[
                "run",
                "--release",
                "--quiet",
                "-p",
                "traefiker-sim",
                "--example",
                "bench_burst",
            ],
        ),
        Some("bench") => bench::bench(),
        _ => {
            eprintln!("usage: cargo xtask ci|demo [--docker|--swarm|--observe]|e2e [--docker|--swarm [--burst]|--observe [--docs]]|e2e-browser|rules|images|validate-manifests|sim|bench|bench-server|bench-docker|bench-swarm|bench-activity|bench-burst");
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

/// Runs each step in order and stops at the first failure. Where no Docker engine answers,
/// the Docker steps are skipped (the Docker tests say so themselves) and the last line says
/// so; where one does, they must pass.
///
/// Built for a 2-core machine that starts empty: the tools the later steps need (Debian's
/// prometheus and chromium, the pinned Traefik and kubernetes-validate) are installed
/// beside the build, clippy lints the workspace in the same compilation that builds the
/// tests (not a second pass over every dependency), and the images are built from the
/// unoptimised dev profile ([`images::PROFILE_VAR`]), which saved 5 of the 9 minutes of the
/// optimised build.
fn ci() -> Result<(), String> {
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    let tools = std::thread::spawn(install_tools);
    // Every cargo below inherits these, so none builds the workspace without them again.
    for (key, value) in clippy_wrapper()? {
        std::env::set_var(key, value);
    }
    std::env::set_var(images::PROFILE_VAR, "dev");
    run(
        "cargo",
        &["test", "--workspace", "--all-targets", "--no-run"],
    )?;
    tools
        .join()
        .map_err(|_| "installing the tools panicked".to_owned())??;
    // Seconds: the alerting rules and their unit tests, and the manifests against the
    // Kubernetes schemas.
    eprintln!("==> cargo xtask rules");
    rules::rules()?;
    manifests::validate_manifests()?;
    let engine = images::engine_answers();
    let mut test = Command::new("cargo");
    test.args(["test", "--workspace"]);
    // Held from the tests to the Swarm e2e: the Swarm conformance test needs an active
    // swarm, and one this run made is left when the guard drops (also on failure).
    let mut swarm = None;
    if engine.is_ok() {
        eprintln!("==> cargo xtask images");
        images::images()?;
        // The Docker tests must run, not skip, on a machine with an engine.
        test.env("TRAEFIKER_REQUIRE_DOCKER", "1");
        swarm = Some(swarm::SwarmGuard::ensure()?);
        test.env("TRAEFIKER_SWARM_TEST", "1");
    }
    run_command("cargo test --workspace", test)?;
    // Both variants, one build.
    sim(&["--seeds".to_owned(), "300".to_owned()])?;
    // The browser test first: it is the quickest (seconds) and checks what people see.
    eprintln!("==> cargo xtask e2e-browser");
    e2e_browser::e2e_browser()?;
    eprintln!("==> cargo xtask e2e");
    e2e::e2e(false)?;
    eprintln!("==> cargo xtask e2e --observe");
    observe::e2e(false)?;
    match engine {
        Ok(()) => {
            eprintln!("==> cargo xtask e2e --docker");
            e2e::e2e(true)?;
            eprintln!("==> cargo xtask e2e --swarm");
            let from = std::time::Instant::now();
            e2e_swarm::e2e(e2e_swarm::Scope::All)?;
            eprintln!("==> e2e --swarm took {:.1?}", from.elapsed());
            drop(swarm);
            println!("ci: every step passed, the Docker and Swarm tests, e2e --docker and e2e --swarm included");
        }
        Err(why) => println!(
            "ci: every step passed, but the Docker and Swarm tests and e2e --docker and --swarm were SKIPPED: {why}"
        ),
    }
    Ok(())
}

/// The tools of the later steps, each installed only if missing: run beside the build, where
/// their downloads cost no time.
fn install_tools() -> Result<(), String> {
    rules::binaries()?;
    e2e_browser::browser()?;
    traefik::find_or_install()?;
    manifests::install()?;
    Ok(())
}

/// What `cargo clippy -- -D warnings` sets for cargo: clippy's driver as the compiler of the
/// workspace's crates (dependencies are compiled by rustc as usual) and its arguments. Set on
/// a build, it lints what it compiles.
fn clippy_wrapper() -> Result<[(&'static str, String); 2], String> {
    let out = Command::new("rustup")
        .args(["which", "clippy-driver"])
        .output();
    let driver = match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        // No rustup: the driver beside cargo, as a toolchain installed otherwise has it.
        _ => "clippy-driver".to_owned(),
    };
    let version = Command::new(&driver)
        .arg("--version")
        .output()
        .map_err(|e| format!("no clippy ({driver}: {e}); rustup component add clippy"))?;
    if !version.status.success() {
        return Err(format!(
            "{driver} --version failed; rustup component add clippy"
        ));
    }
    Ok([
        ("RUSTC_WORKSPACE_WRAPPER", driver),
        // cargo-clippy's encoding of `-- -D warnings`.
        (
            "CLIPPY_ARGS",
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__".to_owned(),
        ),
    ])
}

/// The simulation, optimised: a few hundred seeds take seconds instead of minutes.
fn sim(args: &[String]) -> Result<(), String> {
    let mut all = vec!["run", "--release", "--quiet", "-p", "traefiker-sim", "--"];
    all.extend(args.iter().map(String::as_str));
    run("cargo", &all)
}

/// `bench-docker`: the figures of `traefiker-docker/examples/assign_vs_create.rs`, after
/// building the stand-in image it starts.
fn bench_docker() -> Result<(), String> {
    images::images()?;
    run(
        "cargo",
        &[
            "run",
            "--release",
            "--quiet",
            "-p",
            "traefiker-docker",
            "--example",
            "assign_vs_create",
        ],
    )
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_command(&format!("{program} {}", args.join(" ")), cmd)
}

pub(crate) fn run_command(what: &str, mut cmd: Command) -> Result<(), String> {
    eprintln!("==> {what}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not run {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{what}` failed ({status})"))
    }
}
