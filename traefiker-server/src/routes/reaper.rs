//! `GET /reaper/`: one reaper cycle, for callers inside `reaper_ipnetwork` (SPEC §3).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use traefiker_core::ReapMode;

use crate::render::reply::text;
use crate::routes::client_address;
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
    // The cycle runs as a task of its own on the runtime that outlives the HTTP server: a
    // caller that gives up, this answer's deadline or the server stopping never leaves a
    // cycle half done (only the process's exit does).
    let reaper = state.reaper.clone();
    let cycle = state
        .runtime
        .spawn(async move { reaper.run(ReapMode::Apply).await });
    let deadline = state.config.reaper_call_timeout;
    let outcome = match tokio::time::timeout(deadline, cycle).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(stopped)) => {
            tracing::error!(error = %stopped, "the reaper cycle stopped before answering");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Reaper error: the cycle stopped before answering (see the logs)",
            );
        }
        Err(_) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "Reaper error: the cycle is still running after {} s; it goes on in the background (reaper_call_timeout_secs)",
                    deadline.as_secs()
                ),
            )
        }
    };
    match outcome {
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
