//! `GET /narrative_status/`: always the service's timestamp and version; every narrative for
//! holders of `status_role` (SPEC §3) — as JSON ([`crate::render::status`]), or as a page
//! ([`crate::routes::admin`]) when such a holder's browser asks for HTML.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::json;

use crate::render::reply::uncached;
use crate::routes::{admin, identify, wants_html};
use crate::state::AppState;

/// The handler.
pub async fn status(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let mut doc = json!({
        "timestamp": Utc::now().naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "git_hash": state.config.commit_sha,
    });
    let admin = matches!(
        identify(&state, &req).await,
        Some(Ok(identity)) if identity.custom_roles.contains(&state.config.status_role)
    );
    if !admin {
        return json_answer(doc.to_string().into_bytes());
    }
    if wants_html(&req) {
        return admin::status_html(&state, &req);
    }
    doc["replica"] = state.lifecycle.config().replica.as_str().into();
    // From what the background loops keep, rendered at most every moment: an admin's page
    // never waits on the backend, nor on describing 10,000 narratives again.
    let services = state.kept.services_json().await;
    let mut body = doc.to_string();
    body.pop();
    body.push_str(",\"narrative_services\":");
    let mut body = body.into_bytes();
    body.extend_from_slice(&services);
    body.push(b'}');
    json_answer(body)
}

/// The JSON answer. Never kept by a cache: for administrators it carries every session id,
/// and the same URL answers everyone else (SPEC §10).
fn json_answer(body: Vec<u8>) -> HttpResponse {
    uncached(StatusCode::OK)
        .content_type("application/json")
        .body(body)
}
