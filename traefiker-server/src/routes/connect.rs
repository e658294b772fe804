//! `GET /narrative/{path}`: authenticate, find or start the user's narrative, answer the
//! session cookie and a page that goes on to it once it answers ([`crate::pages::reload`],
//! SPEC §3). That page's polls are answered here at once, with nothing else done.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use traefiker_core::{ConnectOutcome, Error, SessionId, UserId, Visit};

use crate::pages::reload::{reload_page, reload_policy, Waiting};
use crate::pages::{self, Nonce};
use crate::render::reply::{self, Reference};
use crate::routes::{client_ip_header, identify, refused};
use crate::state::AppState;

/// Python's `quote_plus`: everything but `A-Za-z0-9_.-~` is escaped.
const QUOTE_PLUS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

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
    let received = std::time::Instant::now();
    if req.headers().contains_key(reply::POLL_HEADER) {
        return reply::waiting();
    }
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
    // On the runtime that outlives the HTTP server: the connect's flight is spawned by the
    // task that starts it, and one started on an actix worker's runtime died with it when
    // the server stopped, leaving an assignment half done.
    let lifecycle = state.lifecycle.clone();
    let connecting = {
        let user = user.clone();
        state
            .runtime
            .spawn(async move { lifecycle.connect(&user, visit).await })
    };
    let outcome = connecting.await.unwrap_or_else(|stopped| {
        Err(Error::Backend(traefiker_core::ManagerError::Unavailable {
            backend: "traefiker".into(),
            detail: format!("the connect stopped before answering: {stopped}"),
        }))
    });
    match outcome {
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
            let nonce = Nonce::new();
            let page = reload_page(
                &Waiting {
                    path: &path,
                    narrative: connection.name.as_str(),
                    status_path: &state.config.narrative_status_path,
                    wait: state.config.reload_wait,
                },
                &nonce,
            );
            let mut response = pages::respond(StatusCode::CREATED, reload_policy(&nonce), page);
            if let Err(e) = response.add_cookie(&cookie) {
                let reference = Reference::new();
                tracing::error!(%reference, error = %e, "the session cookie could not be written");
                return reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &reference,
                    "Your narrative could not be opened. Please try again in a minute.",
                );
            }
            state
                .metrics
                .new_user(connection.outcome, received.elapsed());
            response
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
}
