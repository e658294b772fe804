//! Logs: JSON lines on stdout, one object per event with `message` and fields, like the
//! Python version's. Nothing that is logged carries a token, a session id or a credential:
//! those types print masked, and labels and rules are never logged.

use crate::config::LogLevel;

/// Installs the JSON subscriber at `level`; `RUST_LOG` refines it when set.
pub fn init(level: LogLevel) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_directives(level)));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}

/// traefiker's crates at `level`; dependencies at warnings, so a DEBUG deployment does not
/// log HTTP client internals (which would include request headers).
fn default_directives(level: LogLevel) -> String {
    let l = level.directive();
    format!("warn,traefiker={l},traefiker_server={l},traefiker_core={l},traefiker_rancher={l},traefiker_metrics={l},traefiker_local={l},traefiker_docker={l}")
}
