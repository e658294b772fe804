//! `GET /narrative/{path}`: authenticate, find or start the user's narrative, answer the
//! session cookie and a page that reloads into it (SPEC §3).

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use traefiker_core::{ConnectOutcome, Error, SessionId, UserId, Visit};

use crate::routes::reply::{self, Reference};
use crate::routes::{client_ip_header, identify, refused};
use crate::state::AppState;

/// Python's `quote_plus`: everything but `A-Za-z0-9_.-~` is escaped.
const QUOTE_PLUS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// A path in a query value: `/` may stay.
const PATH_IN_QUERY: &AsciiSet = &QUOTE_PLUS.remove(b'/');

/// The login redirect target for a request without the auth cookie.
pub fn login_location(path: &str, query: &str) -> String {
    // Werkzeug's `full_path` always carries the `?`.
    let full_path = format!("{path}?{query}");
    // Key order as the Python version wrote it; serde_json escapes the path.
    let next = format!(
        "{{\"path\":{},\"external\":true}}",
        serde_json::Value::from(full_path)
    );
    let encoded = utf8_percent_encode(&next, QUOTE_PLUS)
        .to_string()
        .replace("%20", "+");
    format!("/#login?nextrequest={encoded}")
}

/// The reload page: a meta refresh to the narrative loader, the path escaped twice over
/// (percent-encoded for the URL, HTML-escaped for the attribute).
pub fn reload_page(narrative_path: &str) -> String {
    let encoded = utf8_percent_encode(narrative_path, PATH_IN_QUERY).to_string();
    let escaped = html_escape(&encoded);
    format!(
        "\n<html><head><META HTTP-EQUIV=\"refresh\" CONTENT=\"0;URL='/load-narrative.html?n={escaped}&check=true'\">\n</head>\n<body>\n</body>\n</html>\n"
    )
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Policy of the reload page: it loads nothing, runs nothing and cannot be framed; its meta
/// refresh is a navigation, which no CSP directive governs, so it still reloads. No referrer:
/// the next URL must not learn this one.
pub const RELOAD_PAGE_CSP: &str =
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The answer to a lifecycle failure: capacity is its own page; anything else is "try again"
/// with a reference, the detail in the log.
pub fn connect_failed(state: &AppState, user: &UserId, error: &Error) -> HttpResponse {
    let reference = Reference::new();
    match error {
        Error::AtCapacity { limit } => {
            state.metrics.capacity_refused();
            tracing::warn!(%reference, user = %user, limit, "at capacity: new user refused");
            reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                &reference,
                "KBase is at capacity, try again in a few minutes.",
            )
        }
        _ => {
            state.metrics.connect("error");
            tracing::error!(%reference, user = %user, error = %error, "could not connect a narrative");
            reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                &reference,
                "Your narrative could not be started right now. Please try again in a minute.",
            )
        }
    }
}

/// The handler.
pub async fn narrative(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let Some(identity) = identify(&state, &req).await else {
        return reply::uncached(StatusCode::FOUND)
            .insert_header((
                header::LOCATION,
                login_location(req.path(), req.query_string()),
            ))
            .finish();
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err(e) => return refused(&e),
    };
    let user = match UserId::new(identity.user) {
        Ok(user) => user,
        Err(e) => {
            let reference = Reference::new();
            tracing::warn!(%reference, error = %e, "auth2 named a user id that cannot be used");
            return reply::error(
                StatusCode::FORBIDDEN,
                &reference,
                "Your KBase user name cannot be used for a narrative.",
            );
        }
    };
    let visit = Visit {
        client_ip: client_ip_header(&req),
        // Only a well-formed session can be the user's own; anything else is just stale.
        session_cookie: req
            .cookie(&state.config.session_cookie)
            .and_then(|c| SessionId::parse(c.value()).ok()),
    };
    match state.lifecycle.connect(&user, visit).await {
        Ok(connection) => {
            state.metrics.connect(connection.outcome.as_str());
            if connection.outcome != ConnectOutcome::Existing {
                // Its route: Traefik learns it from the next listing.
                state.kept.refresh_soon();
            }
            tracing::info!(
                service = %connection.name,
                outcome = connection.outcome.as_str(),
                "connected"
            );
            let cookie = Cookie::build(
                state.config.session_cookie.clone(),
                connection.session.expose().to_owned(),
            )
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(state.config.cookie_secure)
            .finish();
            reply::uncached(StatusCode::CREATED)
                .cookie(cookie)
                .insert_header((header::REFERRER_POLICY, "no-referrer"))
                .insert_header((header::CONTENT_SECURITY_POLICY, RELOAD_PAGE_CSP))
                .content_type("text/html; charset=utf-8")
                .body(reload_page(&path))
        }
        Err(e) => connect_failed(&state, &user, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_redirect_is_the_python_one() {
        assert_eq!(
            login_location("/narrative/ws.1.obj.2", ""),
            "/#login?nextrequest=%7B%22path%22%3A%22%2Fnarrative%2Fws.1.obj.2%3F%22%2C%22external%22%3Atrue%7D"
        );
    }

    #[test]
    fn the_reload_page_escapes_the_path() {
        let page = reload_page("ws.1/<script>alert('x')</script>\"&");
        assert!(!page.contains("<script>"));
        assert!(
            page.contains("n=ws.1/%3Cscript%3Ealert%28%27x%27%29%3C/script%3E%22%26&check=true")
        );
        assert!(reload_page("ws.1.obj.2")
            .contains("URL='/load-narrative.html?n=ws.1.obj.2&check=true'"));
    }
}
