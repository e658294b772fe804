//! `DELETE /narrative_shutdown/[{user}]`: a user removes their own narrative; a holder of
//! `status_role` may name another user (SPEC §3).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use traefiker_core::UserId;

use crate::auth::AuthError;
use crate::render::reply::{self, text};
use crate::routes::{identify, refused};
use crate::state::AppState;

/// The handler, for both paths (`user` empty when not named).
pub async fn shutdown(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: Option<web::Path<String>>,
) -> HttpResponse {
    let identity = match identify(&state, &req).await {
        Some(Ok(identity)) => identity,
        Some(Err(e @ AuthError::Throttled { .. })) => return refused(&e),
        _ => {
            return text(
                StatusCode::UNAUTHORIZED,
                "Valid kbase authentication token required",
            )
        }
    };
    let named = user
        .map(|p| p.into_inner())
        .map(|u| u.trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty());
    let target = match named {
        Some(other) if other != identity.user => {
            if !identity.custom_roles.contains(&state.config.status_role) {
                return text(
                    StatusCode::FORBIDDEN,
                    "Only administrators may shut down another user's narrative",
                );
            }
            other
        }
        _ => identity.user.clone(),
    };
    let user = match UserId::new(target) {
        Ok(u) => u,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match state.lifecycle.shutdown(&user).await {
        Ok(Some(name)) => {
            state.kept.removed().await;
            text(StatusCode::OK, format!("Service {name} deleted"))
        }
        Ok(None) => text(StatusCode::NOT_FOUND, "No sessions found for user"),
        Err(e) => reply::shutdown_failed(&user, &e),
    }
}
