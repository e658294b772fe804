//! What the server answers people: plain-text answers, and error pages that say what happened
//! and what to do, with a short reference id. The detail (URLs, backend answers) goes to the
//! log under that id, never into the body.

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, HttpResponseBuilder};

/// The header on every answer of traefiker's (`X-Traefiker: 1`), so a page, a test or an
/// operator can tell traefiker's answer from the narrative's when both come through Traefik
/// under the same path.
pub const MARKER: &str = "X-Traefiker";

/// The header of the reload page's polls: traefiker answers such a request at once with
/// [`waiting`], without looking at the user or the backend, so polling creates nothing and
/// costs no backend call.
pub const POLL_HEADER: &str = "X-Traefiker-Poll";

/// The answer to a poll that reached traefiker: Traefik does not route the user's session to
/// the narrative yet.
pub fn waiting() -> HttpResponse {
    text(
        StatusCode::ACCEPTED,
        "Waiting for Traefik to route your session to your narrative.",
    )
}

/// An id that ties an error page to its log line: 8 hex characters, random.
#[derive(Clone, PartialEq, Eq)]
pub struct Reference(String);

impl Reference {
    /// A fresh id.
    pub fn new() -> Self {
        let mut bytes = [0u8; 4];
        // Uniqueness is a convenience here, not a secret: a failing generator gives zeros.
        let _ = getrandom::fill(&mut bytes);
        Self(hex::encode(bytes))
    }
}

impl Default for Reference {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A response builder that no cache keeps: these answers are per user (cookies, sessions).
pub fn uncached(status: StatusCode) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder.insert_header((header::CACHE_CONTROL, "no-store"));
    builder
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    uncached(status)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .content_type("text/plain; charset=utf-8")
        .body(body.into())
}

/// An error page: `message` (what happened and what to do) and the reference to quote.
pub fn error(status: StatusCode, reference: &Reference, message: &str) -> HttpResponse {
    text(
        status,
        format!(
            "{message}\nIf this keeps happening, contact KBase support and quote reference {reference}.\n"
        ),
    )
}

/// 503 for a shutdown the backend did not carry out; `what` (the narrative, or the user)
/// and the error go to the log under the reference.
pub fn shutdown_failed(
    what: &dyn std::fmt::Display,
    error: &dyn std::fmt::Display,
) -> HttpResponse {
    let reference = Reference::new();
    tracing::error!(%reference, of = %what, %error, "shutdown failed");
    self::error(
        StatusCode::SERVICE_UNAVAILABLE,
        &reference,
        "The narrative could not be shut down right now. Please try again in a minute.",
    )
}

/// 429 with `Retry-After`, for an address with too many failed logins.
pub fn throttled(reference: &Reference, retry_after: std::time::Duration) -> HttpResponse {
    let secs = retry_after.as_secs().max(1) + u64::from(retry_after.subsec_nanos() > 0);
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        reference,
        &format!(
            "Too many failed logins from your address. Wait {secs} seconds, then log in to KBase again."
        ),
    );
    if let Ok(value) = header::HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
