//! What goes wrong reading activity, and how it becomes core's [`ActivityError`].
//!
//! Each variant says what to check. The URL in messages never carries a password: callers
//! pass it through [`redact`] first.

use std::time::Duration;

use traefiker_core::ActivityError;

use crate::parse::ParseError;

/// Why a metrics page or a narrative's status could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The HTTP client could not be built (TLS backend, proxy settings).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// No answer: connection refused, DNS, TLS, reset.
    #[error("cannot reach {url}: {source}; check the URL and that the server listens there")]
    Unreachable {
        /// Where.
        url: String,
        /// The transport's error.
        #[source]
        source: reqwest::Error,
    },
    /// The answer took longer than the configured timeout.
    #[error("{url} did not answer within {after:?}; check that it is up, or raise the timeout")]
    Timeout {
        /// Where.
        url: String,
        /// The whole-request timeout that expired.
        after: Duration,
    },
    /// An answer other than 200.
    #[error("{url} answered HTTP {status}; {hint}")]
    Status {
        /// Where.
        url: String,
        /// What it answered.
        status: u16,
        /// What to check for this status.
        hint: &'static str,
    },
    /// The body grew past the configured cap.
    #[error("{url} sent more than {limit} bytes; raise the body size limit if the page is really that large")]
    TooLarge {
        /// Where.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// The body broke off while being read.
    #[error("reading the body of {url} failed: {source}")]
    Body {
        /// Where.
        url: String,
        /// The transport's error.
        #[source]
        source: reqwest::Error,
    },
    /// A saved page could not be read (`traefiker activity --file`).
    #[error("cannot read the page: {0}")]
    Read(#[source] std::io::Error),
    /// The body is not UTF-8, so not Prometheus text (nor JSON).
    #[error("the page is not UTF-8 text (byte {valid_up_to}); is this really a metrics endpoint?")]
    NotUtf8 {
        /// How far it was valid.
        valid_up_to: usize,
    },
    /// The page is empty: Traefik always lists some metrics, so something in between failed.
    #[error("the page is empty; Traefik always exposes metrics, so check the URL and any proxy in between")]
    Empty,
    /// The page is not Prometheus text.
    #[error(
        "the page is not Prometheus text ({0}); check that the URL is Traefik's metrics endpoint"
    )]
    Parse(#[from] ParseError),
    /// The last line has no line ending: the body was cut off.
    #[error("the page does not end with a line feed: it was cut off; check proxies and timeouts")]
    Truncated,
    /// Valid Prometheus text, but not Traefik's.
    #[error("the page has no traefik_ metric; check that the URL is Traefik's metrics endpoint and that Traefik runs with --metrics.prometheus=true")]
    NotTraefik,
    /// A narrative's `/api/status` answer is not the JSON Jupyter sends.
    #[error("{url} did not answer Jupyter status JSON: {reason}; check the narrative status path")]
    NotJupyterStatus {
        /// Where.
        url: String,
        /// What did not match.
        reason: String,
    },
}

impl MetricsError {
    /// As core's error of the source called `source_name`.
    pub fn into_activity_error(self, source_name: impl Into<String>) -> ActivityError {
        ActivityError::new(source_name, self.to_string())
    }
}

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, which this has.
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// What to check for a status code, in the reaper's terms.
pub(crate) fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => "the endpoint wants credentials: configure them or open it to traefiker",
        404 => "check the path (Traefik serves /metrics on its metrics entry point)",
        500..=599 => "the server failed; check its logs",
        _ => "expected 200",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("http://u:secret@traefik:8080/metrics"),
            "http://u:****@traefik:8080/metrics"
        );
        assert_eq!(
            redact("http://traefik:8080/metrics"),
            "http://traefik:8080/metrics"
        );
        assert_eq!(redact("not a url"), "not a url");
    }
}
