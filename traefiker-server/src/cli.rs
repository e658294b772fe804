//! The command line: `traefiker [serve]`, `reap`, `status`, `config`, `check`, `activity`,
//! `probe`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config, Layer};

/// traefiker: KBase narrative containers behind Traefik.
#[derive(Debug, Parser)]
#[command(name = "traefiker", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// A TOML file of configuration keys (lower precedence than the environment).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Sets a configuration key, overriding everything else (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Address to serve on (the `listen` key).
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Run one reaper cycle and print its report.
    Reap {
        /// Report what would be removed without removing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the narratives and when each was last seen.
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration, secrets masked.
    Config {
        /// Print the reference table of every key instead (docs/configuration.md).
        #[arg(long)]
        reference: bool,
    },
    /// Check the backend, activity sources, auth2 and the version URL, one line each.
    Check,
    /// Print who Traefik's metrics show as active.
    Activity {
        /// Read this metrics URL.
        #[arg(long, conflicts_with = "file")]
        url: Option<String>,
        /// Read this saved metrics page.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Exit 0 if this container's server answers 200 on `path` (a health check).
    Probe {
        /// The path asked for on the `listen` port.
        #[arg(long, default_value = "/readyz")]
        path: String,
    },
}

impl Global {
    /// The configuration from file, environment and these flags.
    pub fn load(&self) -> Result<Config, Vec<String>> {
        let mut layers: Vec<Layer> = Vec::new();
        if let Some(path) = &self.config {
            layers.push(config::from_toml(path)?);
        }
        layers.push(config::from_env(std::env::vars()));
        let mut flags = config::from_flags(&self.set)?;
        if let Some(listen) = &self.listen {
            flags.insert("listen".into(), listen.clone());
        }
        layers.push(flags);
        Config::from_layers(&layers)
    }
}
