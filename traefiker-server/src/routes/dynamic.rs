//! `GET /traefik/dynamic`: Traefik's dynamic configuration for its HTTP provider
//! (`--providers.http.endpoint`), for deployments where labels are not read (Traefik v3 has no
//! Rancher provider; local processes have no labels).
//!
//! One router per live narrative with the same rule its labels would carry, one service
//! pointing at the narrative's address, and a low-priority catch-all sending `/narrative/` to
//! traefiker itself. The rules carry every session id, so only callers inside
//! `traefik_provider_ipnetwork` or bearing `traefik_provider_token` are answered, and the
//! answer is the one [`crate::kept`] rendered from its last listing: polls cost no backend
//! call.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;
use traefiker_core::{ContainerManager, Narrative, NarrativeState, Routing};

use crate::config::ProviderAccess;
use crate::routes::client_address;
use crate::routes::reply::text;
use crate::state::AppState;

/// The name of traefiker's own router and service.
pub const SELF_NAME: &str = "traefiker";

/// The dynamic configuration for `narratives`; `self_url` is where Traefik reaches traefiker.
pub fn dynamic_config(
    routing: &Routing,
    manager: &dyn ContainerManager,
    self_url: &str,
    narratives: &[Narrative],
) -> Value {
    let mut routers = Map::new();
    let mut services = Map::new();
    for n in narratives {
        let Some(address) = &n.address else { continue };
        if matches!(n.state, NarrativeState::Removing | NarrativeState::Stopped) {
            continue;
        }
        let service = manager.traefik_service(&n.name);
        routers.insert(
            n.name.to_string(),
            json!({
                "rule": routing.session_rule(&n.session),
                "entryPoints": routing.entrypoints(),
                "service": service,
            }),
        );
        services.insert(
            service,
            json!({"loadBalancer": {"servers": [{"url": address}]}}),
        );
    }
    routers.insert(
        SELF_NAME.to_owned(),
        json!({
            "rule": routing.catch_all_rule(),
            "entryPoints": routing.entrypoints(),
            "service": SELF_NAME,
            "priority": 1,
        }),
    );
    services.insert(
        SELF_NAME.to_owned(),
        json!({"loadBalancer": {"servers": [{"url": self_url}]}}),
    );
    json!({"http": {"routers": routers, "services": services}})
}

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
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|presented| bool::from(presented.ct_eq(token.expose().as_bytes())))
    });
    by_address || by_token
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
        Some(body) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("application/json")
            .body(body.clone()),
        None => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "No listing of the narratives yet; retry shortly",
        ),
    }
}
