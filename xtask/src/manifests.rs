//! `cargo xtask validate-manifests`: the Kubernetes manifests under `deploy/kubernetes/`
//! checked offline against the API's OpenAPI schemas, by `kubernetes-validate` (PyPI), which
//! ships the schemas of every Kubernetes release. It is installed pinned and hash-checked
//! (`xtask/kubernetes-validate-requirements.txt`) into a venv under `target/`, once.
//!
//! Strict: a misspelt or misplaced field fails, as does a wrong type. Checked against the
//! oldest Kubernetes the crate's types target (1.33) and the newest the validator knows.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::traefik::{target_dir, workspace_root};

const REQUIREMENTS: &str = "kubernetes-validate-requirements.txt";
/// Named after the release, so a pin change installs afresh.
const VENV: &str = "kubernetes-validate-1.37.0";
/// The releases checked against.
const VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

pub fn validate_manifests() -> Result<(), String> {
    let validator = install()?;
    let dir = workspace_root().join("deploy").join("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no manifests under {}", dir.display()));
    }
    for version in VERSIONS {
        let mut cmd = Command::new(&validator);
        cmd.args(["--strict", "--quiet", "-k", version])
            .args(&files);
        crate::run_command(
            &format!("kubernetes-validate --strict -k {version} deploy/kubernetes/*.yaml"),
            cmd,
        )?;
    }
    println!(
        "validate-manifests: {} files valid against Kubernetes {}",
        files.len(),
        VERSIONS.join(" and ")
    );
    Ok(())
}

/// The validator in its venv, installing it there first if it is missing.
pub fn install() -> Result<PathBuf, String> {
    let venv = target_dir().join(VENV);
    let validator = venv.join("bin").join("kubernetes-validate");
    if validator.is_file() {
        return Ok(validator);
    }
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join(REQUIREMENTS);
    let mut make = Command::new("python3");
    make.args(["-m", "venv"]).arg(&venv);
    crate::run_command(&format!("python3 -m venv {}", venv.display()), make).map_err(|e| {
        format!("{e} (is Python's venv module installed? apt-get install python3-venv)")
    })?;
    let mut pip = Command::new(venv.join("bin").join("pip"));
    pip.args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--require-hashes",
        "-r",
    ])
    .arg(&requirements);
    crate::run_command(
        &format!("pip install --require-hashes -r xtask/{REQUIREMENTS} (into the venv)"),
        pip,
    )
    .map_err(|e| {
        format!("{e}: a hash mismatch means a file is not the one pinned in xtask/{REQUIREMENTS}")
    })?;
    if validator.is_file() {
        Ok(validator)
    } else {
        Err(format!(
            "kubernetes-validate installed but {} is missing",
            validator.display()
        ))
    }
}
