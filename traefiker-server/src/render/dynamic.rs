//! Traefik's dynamic configuration for its HTTP provider (`--providers.http.endpoint`), as
//! `/traefik/dynamic` serves it: one router per live narrative with the same rule its labels
//! would carry, one service pointing at the narrative's address, and a low-priority catch-all
//! sending `/narrative/` to traefiker itself.

use std::collections::BTreeMap;

use serde::Serialize;
use traefiker_core::{ContainerManager, Narrative, NarrativeState, Routing};

/// The name of traefiker's own router and service.
pub const SELF_NAME: &str = "traefiker";

/// The name of the router of the demo's front door.
pub const FRONT_NAME: &str = "traefiker-front";

/// The paths of the demo's front door that Traefik sends to traefiker (with the local backend,
/// by the route of `/traefik/dynamic`): these, and everything under [`FRONT_PATH_PREFIXES`].
pub const FRONT_EXACT_PATHS: &[&str] = &["/", "/login", "/load-narrative.html"];

/// The status page and its form, so an administrator's browser reaches them on the same
/// origin as the login.
pub const FRONT_PATH_PREFIXES: &[&str] = &["/narrative_status/"];

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
                rule: routing.paths_rule(FRONT_EXACT_PATHS, FRONT_PATH_PREFIXES),
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
