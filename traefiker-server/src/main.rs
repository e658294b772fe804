//! The `traefiker` binary: parse the command line, load the configuration, set up logging,
//! and hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use traefiker_server::cli::{Cli, Command};
use traefiker_server::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Config { reference: true } = command {
        print!("{}", traefiker_server::config::reference_table());
        return ExitCode::SUCCESS;
    }
    let config = match cli.global.load() {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("traefiker: invalid configuration:");
            for p in problems {
                eprintln!("  {p}");
            }
            return ExitCode::from(2);
        }
    };
    // Before logging: a health check runs every few seconds and must print only its failure.
    if let Command::Probe { path } = &command {
        return commands::probe(&config, path);
    }
    traefiker_server::logging::init(config.log_level);
    // Reading a saved page is plain synchronous work: no runtime and its threads for it.
    if let Command::Activity {
        file: Some(path), ..
    } = &command
    {
        return commands::activity_file(&config, path);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("traefiker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(commands::run(command, config));
    // Calls still running (a backend that hangs, a task past the shutdown's budget) are
    // abandoned rather than waited for: the process must exit in time (SPEC §11).
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %e, "traefiker stopped");
            eprintln!("traefiker: {e}");
            ExitCode::FAILURE
        }
    }
}
