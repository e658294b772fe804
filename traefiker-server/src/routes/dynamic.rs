//! `GET /traefik/dynamic`: Traefik's dynamic configuration for its HTTP provider, for
//! deployments where labels are not read (Traefik v3 has no Rancher provider; local processes
//! have no labels); the document is [`crate::render::dynamic`]'s.
//!
//! The rules carry every session id, so only callers inside `traefik_provider_ipnetwork` or
//! bearing `traefik_provider_token` are answered, and the answer is the one [`crate::kept`]
//! rendered from its last listing: polls cost no backend call. No cache keeps it.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

use crate::config::ProviderAccess;
use crate::render::reply::{text, uncached};
use crate::routes::client_address;
use crate::state::AppState;

/// Whether the request may read the provider's answer: its address is inside the allowed
/// networks, or it bears the token (compared in constant time).
pub fn allowed(
    req: &HttpRequest,
    access: &ProviderAccess,
    trusted: &[ipnetwork::IpNetwork],
) -> bool {
    let by_address = client_address(req, trusted)
        .is_some_and(|ip| access.networks.iter().any(|n| n.contains(ip)));
    let by_token = access.token.as_ref().is_some_and(|token| {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| bearer(v.as_bytes()))
            .is_some_and(|presented| bool::from(presented.ct_eq(token.expose().as_bytes())))
    });
    by_address || by_token
}

/// The credentials of a `Bearer` authorization (the scheme is case-insensitive, RFC 9110).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, credentials) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"Bearer ")
        .then_some(credentials)
}

/// The handler: the last rendered configuration, or 503 until the first listing (so Traefik
/// keeps what it has instead of dropping every route).
pub async fn dynamic(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if !allowed(
        &req,
        &state.config.security.provider,
        &state.config.trusted_proxies,
    ) {
        return text(StatusCode::FORBIDDEN, "Access denied");
    }
    match &state.kept.snapshot().dynamic {
        Some(body) => uncached(StatusCode::OK)
            .content_type("application/json")
            .body(body.clone()),
        None => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "No listing of the narratives yet; retry shortly",
        ),
    }
}
