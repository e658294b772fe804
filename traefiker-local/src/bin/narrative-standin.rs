//! `narrative-standin --port N [--name NAME] [--name-file PATH] [--base /narrative/]
//! [--host 127.0.0.1]`: a narrative stand-in, for the local backend's `local_command` and the
//! `narrative-standin` container image. With `--name-file` (the backend's `{name_file}`) its
//! page follows renames; without `--name` it is named after its host name (`HOSTNAME`, which
//! Docker sets to the container's short id). Stops on SIGTERM (what the local backend, the
//! parent-death signal and `docker stop` send) or Ctrl-C.
//!
//! `narrative-standin --probe --port N`: exits 0 if the stand-in on 127.0.0.1:N answers its
//! status, 1 otherwise: the image's health check, as a scratch image has no shell or curl.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::process::ExitCode;
use std::time::Duration;

use traefiker_local::standin::NarrativeName;

const USAGE: &str = "usage: narrative-standin --port N [--name NAME] [--name-file PATH] \
[--base /narrative/] [--host 127.0.0.1]\n       narrative-standin --probe --port N [--base /narrative/]";

/// How long a probe waits for the stand-in; under Docker's own health-check timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

struct Args {
    port: u16,
    name: String,
    name_file: Option<String>,
    base: String,
    host: IpAddr,
    probe: bool,
}

/// Reads the arguments; `hostname` is the fallback name (the `HOSTNAME` variable).
fn parse(mut args: impl Iterator<Item = String>, hostname: Option<String>) -> Result<Args, String> {
    let (mut port, mut name, mut name_file, mut base) =
        (None, None, None, "/narrative/".to_owned());
    let mut host = IpAddr::from(Ipv4Addr::LOCALHOST);
    let mut probe = false;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => {
                let v = value()?;
                port = Some(
                    v.parse::<u16>()
                        .map_err(|_| format!("--port must be a port number, not {v:?}"))?,
                );
            }
            "--name" => name = Some(value()?),
            "--name-file" => name_file = Some(value()?),
            "--base" => base = value()?,
            "--host" => {
                let v = value()?;
                host = v
                    .parse()
                    .map_err(|_| format!("--host must be an IP address, not {v:?}"))?;
            }
            "--probe" => probe = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let port = port.ok_or("--port is required")?;
    let name = match (name, probe) {
        (Some(name), _) => name,
        (None, true) => String::new(),
        (None, false) => hostname
            .filter(|h| !h.is_empty())
            .ok_or("--name is required when HOSTNAME is not set")?,
    };
    Ok(Args {
        port,
        name,
        name_file,
        base,
        host,
        probe,
    })
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("narrative-standin: cannot watch SIGTERM ({e}); stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1), std::env::var("HOSTNAME").ok()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("narrative-standin: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.probe {
        return match traefiker_local::standin::probe(args.port, &args.base, PROBE_TIMEOUT) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("narrative-standin: probe failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let listener = match TcpListener::bind((args.host, args.port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "narrative-standin: cannot listen on {}:{}: {e}; pick another port or --host",
                args.host, args.port
            );
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "narrative-standin: narrative {} on http://{}:{}{}",
        args.name,
        args.host,
        args.port,
        traefiker_local::standin::normalize_base(&args.base)
    );
    let name = match args.name_file {
        Some(path) => NarrativeName::File {
            path: path.into(),
            fallback: args.name,
        },
        None => NarrativeName::Fixed(args.name),
    };
    match traefiker_local::standin::run(listener, name, args.base, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("narrative-standin: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse(list.iter().map(|s| (*s).to_owned()), None)
    }

    #[test]
    fn arguments_are_read_and_checked() {
        let ok = args(&["--port", "8888", "--name", "narrative-a"]).expect("valid");
        assert_eq!(
            (ok.port, ok.name.as_str(), ok.base.as_str()),
            (8888, "narrative-a", "/narrative/")
        );
        let based = args(&["--name", "n", "--base", "/x/", "--port", "1"]).expect("valid");
        assert_eq!(based.base, "/x/");
        let filed = args(&["--port", "1", "--name", "n", "--name-file", "/f"]).expect("valid");
        assert_eq!(filed.name_file.as_deref(), Some("/f"));
        assert!(args(&["--name", "n"]).is_err(), "port required");
        assert!(
            args(&["--port", "99999", "--name", "n"]).is_err(),
            "port range"
        );
        assert!(args(&["--port", "1", "--name"]).is_err(), "value required");
        assert!(
            args(&["--port", "1", "--name", "n", "--verbose"]).is_err(),
            "unknown flag"
        );
    }

    #[test]
    fn containers_bind_all_addresses_and_are_named_by_host() {
        let list = ["--port", "8888", "--host", "0.0.0.0"].map(str::to_owned);
        let ok = parse(list.clone().into_iter(), Some("3f2a9c1b7d4e".into())).expect("valid");
        assert_eq!(ok.host, IpAddr::from(Ipv4Addr::UNSPECIFIED));
        assert_eq!(ok.name, "3f2a9c1b7d4e", "named after HOSTNAME");
        assert!(
            parse(list.into_iter(), None).is_err(),
            "no name and no HOSTNAME"
        );
        assert!(args(&["--port", "1", "--name", "n", "--host", "localhost"]).is_err());
        let probe = args(&["--probe", "--port", "8888"]).expect("a probe needs no name");
        assert!(probe.probe);
    }
}
