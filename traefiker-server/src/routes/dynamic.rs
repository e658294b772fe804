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

use std::collections::BTreeMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use subtle::ConstantTimeEq;
use traefiker_core::{ContainerManager, Narrative, NarrativeState, Routing};

use crate::config::ProviderAccess;
use crate::routes::reply::text;
use crate::routes::{client_address, front};
use crate::state::AppState;

/// The name of traefiker's own router and service.
pub const SELF_NAME: &str = "traefiker";

/// The name of the router of the demo's front door.
pub const FRONT_NAME: &str = "traefiker-front";

/// Traefik's dynamic configuration document, typed so that rendering 10,000 narratives is a
/// single pass of serde with borrowed strings rather than a tree of JSON values.
#[derive(Serialize)]
struct Document<'a> {
    http: Http<'a>,
}

#[derive(Serialize)]
struct Http<'a> {
    routers: BTreeMap<String, Router<'a>>,
    services: BTreeMap<String, Service<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Router<'a> {
    rule: String,
    entry_points: &'a [String],
    service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Service<'a> {
    load_balancer: LoadBalancer<'a>,
}

#[derive(Serialize)]
struct LoadBalancer<'a> {
    servers: [Server<'a>; 1],
}

#[derive(Serialize)]
struct Server<'a> {
    url: &'a str,
}

fn service(url: &str) -> Service<'_> {
    Service {
        load_balancer: LoadBalancer {
            servers: [Server { url }],
        },
    }
}

/// The dynamic configuration for `narratives` as JSON; `self_url` is where Traefik reaches
/// traefiker. With `front` (the demo's static tokens), a second route sends the demo's front
/// door to traefiker too, so a browser uses one origin for all of it.
pub fn dynamic_config(
    routing: &Routing,
    manager: &dyn ContainerManager,
    self_url: &str,
    narratives: &[Narrative],
    front: bool,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut routers = BTreeMap::new();
    let mut services = BTreeMap::new();
    for n in narratives {
        let Some(address) = &n.address else { continue };
        if matches!(n.state, NarrativeState::Removing | NarrativeState::Stopped) {
            continue;
        }
        let name = manager.traefik_service(&n.name);
        routers.insert(
            n.name.to_string(),
            Router {
                rule: routing.session_rule(&n.session),
                entry_points: routing.entrypoints(),
                service: name.clone(),
                priority: None,
            },
        );
        services.insert(name, service(address));
    }
    routers.insert(
        SELF_NAME.to_owned(),
        Router {
            rule: routing.catch_all_rule(),
            entry_points: routing.entrypoints(),
            service: SELF_NAME.to_owned(),
            priority: Some(1),
        },
    );
    if front {
        routers.insert(
            FRONT_NAME.to_owned(),
            Router {
                rule: routing.paths_rule(front::EXACT_PATHS, front::PATH_PREFIXES),
                entry_points: routing.entrypoints(),
                service: SELF_NAME.to_owned(),
                priority: Some(1),
            },
        );
    }
    services.insert(SELF_NAME.to_owned(), service(self_url));
    serde_json::to_vec(&Document {
        http: Http { routers, services },
    })
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
