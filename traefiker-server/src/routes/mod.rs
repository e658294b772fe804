//! The HTTP contract (SPEC §3): one module per endpoint, sharing [`crate::app::AppState`].

pub mod connect;
pub mod dynamic;
pub mod health;
pub mod reaper;
pub mod shutdown;
pub mod status;

use actix_web::HttpRequest;

use crate::app::AppState;
use crate::auth::{AuthError, Identity};

/// Validates the request's auth cookie: `None` when there is no cookie.
pub(crate) async fn identify(
    state: &AppState,
    req: &HttpRequest,
) -> Option<Result<Identity, AuthError>> {
    let cookie = req.cookie(&state.config.kbase_cookie)?;
    let token = cookie.value();
    if token.is_empty() {
        return None;
    }
    Some(state.auth.validate(token).await)
}

/// The client address the Python version wrote into descriptions: `X-Real-Ip`, else
/// `X-Forwarded-For`, as the request says.
pub(crate) fn client_ip_header(req: &HttpRequest) -> Option<String> {
    ["X-Real-Ip", "X-Forwarded-For"].iter().find_map(|h| {
        req.headers()
            .get(*h)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s.len() <= 256 && !s.contains(char::is_whitespace))
    })
}
