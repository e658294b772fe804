//! The `traefiker` service: connects KBase users to their narrative containers behind
//! Traefik, as a drop-in replacement for the Python narrative-traefiker.
//!
//! How the pieces fit:
//!
//! - [`config`] reads the environment (the Python names), a TOML file and flags into a
//!   validated [`config::Config`].
//! - [`app::build`] turns it into a [`state::AppState`]: the backend (`traefiker-rancher`,
//!   `traefiker-docker` or `traefiker-local`, by `backend`), the activity sources
//!   (`traefiker-metrics`), the SQLite store and
//!   the [`traefiker_core::Lifecycle`] over them, token validation ([`auth`]) and metrics
//!   ([`telemetry`]).
//! - [`app::run`] serves the HTTP contract ([`routes`]) on a listener until shutdown, with the
//!   pool filler, the optional interval reaper ([`background`]), the loop that keeps the
//!   listing for `/traefik/dynamic` and `/readyz` ([`kept`]) and the reconciler of
//!   [`replica`] beside it; [`replica`] also removes this replica's pool at graceful
//!   shutdown.
//! - [`pages`] renders the HTML pages: the reload page that waits for a narrative, the demo's
//!   login page, the administrators' status page.
//! - [`render`] renders from the core's values and the configuration only: answers to people,
//!   the status JSON, Traefik's dynamic configuration.
//! - [`outbound`] builds the server's HTTP clients (timeouts, trusted roots, `ca_bundle`).
//! - [`probe`] is the container health check (`traefiker probe`), with no runtime.
//! - [`cli`] is the command line; `main.rs` only parses it, sets up logging and calls in.

pub mod app;
pub mod auth;
pub mod background;
pub mod cli;
pub mod commands;
pub mod config;
pub mod kept;
pub mod logging;
pub mod outbound;
pub mod pages;
pub mod probe;
pub mod render;
pub mod replica;
pub mod routes;
pub mod runtime;
pub mod state;
pub mod telemetry;
