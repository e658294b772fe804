//! `cargo xtask rules`: the Prometheus rules of `deploy/prometheus/` checked and unit-tested
//! with Debian's promtool (`promtool check config`, `check rules`, `test rules`), and where
//! Prometheus and promtool come from: on PATH, else Debian's `prometheus` package, installed
//! with apt-get.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use crate::promql::{PROMETHEUS_CONFIG, RULES, RULE_TESTS};
use crate::traefik::workspace_root;

/// The Prometheus server and its promtool.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `prometheus`.
    pub server: PathBuf,
    /// `promtool`.
    pub promtool: PathBuf,
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Prometheus and promtool: on PATH, else installed from Debian's `prometheus` package.
pub fn binaries() -> Result<Binaries, String> {
    let found = || {
        Some(Binaries {
            server: on_path("prometheus")?,
            promtool: on_path("promtool")?,
        })
    };
    if let Some(both) = found() {
        return Ok(both);
    }
    eprintln!("==> apt-get install prometheus (Debian's package: prometheus and promtool)");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("could not run apt-get: {e}"))
            .and_then(|s| {
                s.success()
                    .then_some(())
                    .ok_or(format!("apt-get {} failed ({s})", args.join(" ")))
            })
    };
    apt(&["update", "-qq"])?;
    apt(&[
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "prometheus",
    ])?;
    found().ok_or_else(|| {
        "prometheus and promtool still not on PATH after apt-get install; install Debian's \
         prometheus package"
            .to_owned()
    })
}

/// Checks the example configuration (and through it the rules), the rules alone, and runs
/// every alert's unit test.
pub fn rules() -> Result<(), String> {
    let started = Instant::now();
    let promtool = binaries()?.promtool;
    let root = workspace_root();
    for args in [
        ["check", "config", PROMETHEUS_CONFIG],
        ["check", "rules", RULES],
        ["test", "rules", RULE_TESTS],
    ] {
        let what = format!("promtool {}", args.join(" "));
        eprintln!("==> {what}");
        let status = Command::new(&promtool)
            .args(args)
            .current_dir(&root)
            .status()
            .map_err(|e| format!("could not run {what}: {e}"))?;
        if !status.success() {
            return Err(format!("`{what}` failed ({status})"));
        }
    }
    eprintln!(
        "rules: checked and unit-tested in {:.1?}",
        started.elapsed()
    );
    Ok(())
}
