//! traefiker on one machine: narratives as local child processes instead of Rancher
//! containers, and a narrative stand-in for them to be.
//!
//! - [`LocalManager`] implements [`traefiker_core::ContainerManager`] by starting the
//!   configured command ([`LocalConfig`]) once per narrative, on a free loopback port. It
//!   passes the core's conformance suite like every backend; its narratives report their
//!   address, which traefiker's Traefik HTTP provider turns into routes.
//! - The `process` module holds what touches the operating system: process groups, the parent-death
//!   signal, SIGTERM then SIGKILL. Nothing else in the crate sends a signal.
//! - [`standin`] is a tiny narrative (an HTML page naming it, an echoing websocket, Jupyter
//!   Server's `/api/status`), so the demo and the end-to-end tests need no Jupyter install.
//!   The `narrative-standin` binary runs it; the server exposes the same as a subcommand.
//!
//! Nothing here reads configuration files or the environment of traefiker beyond the
//! variables [`LocalConfig::pass_env`] names: the server builds a [`LocalConfig`] and hands
//! it over.
//!
//! ```no_run
//! use traefiker_local::{LocalConfig, LocalManager};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = LocalConfig::new(["narrative-standin", "--port", "{port}", "--name", "{name}"]);
//! let manager = LocalManager::new(config)?;
//! // ... hand `manager` to a traefiker_core::Lifecycle, then on shutdown:
//! manager.shutdown_all().await?;
//! # Ok(())
//! # }
//! ```

pub mod config;
mod error;
pub mod manager;
mod name_file;
pub(crate) mod process;
pub mod standin;

pub use config::{LocalConfig, DEFAULT_PASS_ENV};
pub use manager::LocalManager;
