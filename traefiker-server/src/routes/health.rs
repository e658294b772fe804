//! `GET /healthz` (the process answers), `GET /readyz` (the backend answered lately) and
//! `GET /metrics` (traefiker's own metrics).

use actix_web::http::StatusCode;
use actix_web::{get, web, HttpResponse};

use crate::render::reply::text;

use crate::state::AppState;
use crate::telemetry::Standing;

#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Ready when the background loop's last backend check succeeded lately ([`crate::kept`]):
/// a probe costs no backend call, and says nothing about the backend beyond a reference.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.kept.ready() {
        Ok(()) => text(StatusCode::OK, "ready"),
        Err(Some(reference)) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the container backend check failed (reference {reference})"),
        ),
        Err(None) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the container backend has not answered lately",
        ),
    }
}

#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.pool(state.lifecycle.pool_waiting());
    state.metrics.pool_state(
        state.lifecycle.pool_target().size,
        state.lifecycle.pool_unready(),
        state.lifecycle.pool_cost(),
    );
    state
        .metrics
        .peers(state.lifecycle.peers().map(|peers| peers.len()));
    state.metrics.standing(Standing {
        ready: state.kept.ready().is_ok(),
        user_narratives: state.lifecycle.user_count(),
        last_cycle: state.lifecycle.last_cycle().map(|cycle| cycle.at),
    });
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

/// Registers the endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}
