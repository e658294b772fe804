//! The `traefiker` service: connects KBase users to their narrative containers behind
//! Traefik, as a drop-in replacement for the Python narrative-traefiker.
//!
//! How the pieces fit:
//!
//! - [`config`] reads the environment (the Python names), a TOML file and flags into a
//!   validated [`config::Config`].
//! - [`app::build`] turns it into an [`app::AppState`]: the backend (`traefiker-rancher`,
//!   `traefiker-docker` or `traefiker-local`, by `backend`), the activity sources (`traefiker-metrics`), the SQLite store and
//!   the [`traefiker_core::Lifecycle`] over them, token validation ([`auth`]) and metrics
//!   ([`telemetry`]).
//! - [`app::run`] serves the HTTP contract ([`routes`]) on a listener until shutdown, with the
//!   pool filler and the optional interval reaper ([`background`]) beside it.
//! - [`cli`] is the command line; `main.rs` only parses it, sets up logging and calls in.

pub mod app;
pub mod auth;
pub mod background;
pub mod cli;
pub mod commands;
pub mod config;
pub mod logging;
pub mod routes;
pub mod telemetry;
