//! `GET /traefik/dynamic`: Traefik's dynamic configuration for its HTTP provider
//! (`--providers.http.endpoint`), for deployments where labels are not read (Traefik v3 has no
//! Rancher provider; local processes have no labels).
//!
//! One router per live narrative with the same rule its labels would carry, one service
//! pointing at the narrative's address, and a low-priority catch-all sending `/narrative/` to
//! traefiker itself. The answer contains session ids (in the rules): Traefik must reach this
//! endpoint on a private address only.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};
use traefiker_core::{Narrative, NarrativeState};

use crate::state::AppState;

/// The name of traefiker's own router and service.
pub const SELF_NAME: &str = "traefiker";

/// The dynamic configuration for `entries`.
pub fn dynamic_config(state: &AppState, narratives: &[Narrative]) -> Value {
    let routing = &state.config.routing;
    let manager = state.lifecycle.manager();
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
        json!({"loadBalancer": {"servers": [{"url": state.config.traefik_self_url}]}}),
    );
    json!({"http": {"routers": routers, "services": services}})
}

/// The handler: one backend listing per poll, nothing else. A backend failure answers 503, so
/// Traefik keeps its last good configuration instead of dropping every route.
pub async fn dynamic(state: web::Data<AppState>) -> HttpResponse {
    match state.lifecycle.narratives().await {
        Ok(narratives) => HttpResponse::Ok()
            .content_type("application/json")
            .body(dynamic_config(&state, &narratives).to_string()),
        Err(e) => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!("backend unavailable: {e}")),
    }
}
