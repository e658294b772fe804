//! `narrative-standin --port N --name NAME [--name-file PATH] [--base /narrative/]`: a
//! narrative stand-in on 127.0.0.1, for the local backend's `local_command`. With
//! `--name-file` (the backend's `{name_file}`) its page follows renames. Stops on SIGTERM (what the local
//! backend and the parent-death signal send) or Ctrl-C.

use std::net::{Ipv4Addr, TcpListener};
use std::process::ExitCode;

use traefiker_local::standin::NarrativeName;

const USAGE: &str =
    "usage: narrative-standin --port N --name NAME [--name-file PATH] [--base /narrative/]";

struct Args {
    port: u16,
    name: String,
    name_file: Option<String>,
    base: String,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut port, mut name, mut name_file, mut base) =
        (None, None, None, "/narrative/".to_owned());
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
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        port: port.ok_or("--port is required")?,
        name: name.ok_or("--name is required")?,
        name_file,
        base,
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
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("narrative-standin: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, args.port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "narrative-standin: cannot listen on 127.0.0.1:{}: {e}; pick another port",
                args.port
            );
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "narrative-standin: narrative {} on http://127.0.0.1:{}{}",
        args.name,
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
        parse(list.iter().map(|s| (*s).to_owned()))
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
}
