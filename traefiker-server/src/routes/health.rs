//! `GET /healthz` (the process answers), `GET /readyz` (the backend answers) and
//! `GET /metrics` (traefiker's own metrics).

use actix_web::{get, web, HttpResponse};

use crate::app::AppState;

#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.lifecycle.manager().verify().await {
        Ok(info) => HttpResponse::Ok()
            .content_type("text/plain")
            .body(format!("ready: {} at {}", info.backend, info.location)),
        Err(e) => HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(format!("not ready: {e}")),
    }
}

#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.pool(state.lifecycle.pool_waiting());
    state
        .metrics
        .peers(state.lifecycle.peers().map(|peers| peers.len()));
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

/// Registers the endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}
