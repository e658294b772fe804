//! `GET /reaper/`: one reaper cycle, for callers inside `reaper_ipnetwork` (SPEC §3).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use traefiker_core::ReapMode;

use crate::routes::client_address;
use crate::routes::reply::text;
use crate::state::AppState;

/// The handler.
pub async fn reaper(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some(ip) = client_address(&req, &state.config.trusted_proxies) else {
        return text(
            StatusCode::FORBIDDEN,
            "Reaper error: access denied from IP unknown",
        );
    };
    if !state.config.reaper_network.contains(ip) {
        return text(
            StatusCode::FORBIDDEN,
            format!("Reaper error: access denied from IP {ip}"),
        );
    }
    match state.reaper.run(ReapMode::Apply).await {
        Ok(report) => match report.activity_error() {
            Some(reason) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Reaper error: activity unavailable: {reason}"),
            ),
            None => text(
                StatusCode::OK,
                format!("Reaper success: {} deleted", report.removed()),
            ),
        },
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Reaper error: {e}"),
        ),
    }
}
