//! The administrators' pages: `GET /narrative_status/` as HTML for a browser of a holder of
//! `status_role` ([`crate::pages::admin`]), and `POST /narrative_status/shutdown`, the form
//! that shuts a narrative down from it: only from a page of this site, with the form token of
//! the caller's login, only for `status_role`, and only after the confirmation page.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use traefiker_core::ServiceName;

use crate::auth::{AuthError, Identity};
use crate::config::SourceKind;
use crate::pages::admin::{admin_policy, confirm_page, status_page, Overview, PoolView};
use crate::pages::{respond, Nonce};
use crate::render::reply::{self, text};
use crate::routes::{form_token, form_token_ok, from_this_site, identify, refused};
use crate::state::AppState;

/// What may stay as it is of a narrative name in a query value.
const NAME_IN_QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// What a redirect back to the status page may say.
#[derive(Debug, Deserialize)]
pub struct Notice {
    shut: Option<String>,
    missing: Option<String>,
}

/// The status page for `req`, whose caller holds `status_role`.
pub fn status_html(state: &AppState, req: &HttpRequest) -> HttpResponse {
    let auth_token = req
        .cookie(&state.config.kbase_cookie)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let notice = web::Query::<Notice>::from_query(req.query_string())
        .ok()
        .and_then(|q| {
            let q = q.into_inner();
            match (q.shut, q.missing) {
                (Some(name), _) => Some(format!("{name} was shut down.")),
                (None, Some(name)) => Some(format!("{name} was already gone.")),
                (None, None) => None,
            }
        });
    let entries = state.lifecycle.status();
    let cycle = state.lifecycle.last_cycle();
    let sources: Vec<&str> = state
        .config
        .activity_sources
        .iter()
        .map(|s| match s {
            SourceKind::Traefik => "traefik",
            SourceKind::NarrativeStatus => "narrative_status",
        })
        .collect();
    let lifecycle = &state.lifecycle;
    let history = lifecycle.pool_history();
    let unready = lifecycle.pool_unready_warning();
    let nonce = Nonce::new();
    let page = status_page(
        &Overview {
            now: Utc::now(),
            replica: state.lifecycle.config().replica.as_str(),
            entries: &entries,
            naming: &state.config.naming,
            pool: PoolView {
                target: lifecycle.pool_target(),
                floor: state.config.num_prespawn,
                max: state.config.pool_max.unwrap_or(state.config.num_prespawn),
                schedule: &state.config.pool_schedule,
                cold_start: lifecycle.cold_start(),
                cost: lifecycle.pool_cost(),
                history: &history,
                unready: unready.as_ref(),
                ready_timeout: state.config.ready_timeout,
            },
            cycle: cycle.as_ref(),
            sources: &sources,
            reaper_interval: state.config.reaper_interval,
            form_token: &form_token(&auth_token),
            notice: notice.as_deref(),
        },
        &nonce,
    );
    respond(StatusCode::OK, admin_policy(&nonce), page)
}

/// The shutdown form.
#[derive(Debug, Deserialize)]
pub struct ShutdownForm {
    narrative: String,
    csrf: String,
    confirm: Option<String>,
}

/// `POST /narrative_status/shutdown`.
pub async fn shutdown(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<ShutdownForm>,
) -> HttpResponse {
    if !from_this_site(&req) {
        return text(
            StatusCode::FORBIDDEN,
            "Shut narratives down from the status page of this site.",
        );
    }
    let identity: Identity = match identify(&state, &req).await {
        Some(Ok(identity)) => identity,
        Some(Err(e @ AuthError::Throttled { .. })) => return refused(&e),
        _ => {
            return text(
                StatusCode::UNAUTHORIZED,
                "Valid kbase authentication token required",
            )
        }
    };
    if !identity.custom_roles.contains(&state.config.status_role) {
        return text(
            StatusCode::FORBIDDEN,
            "Only administrators may shut down narratives from the status page",
        );
    }
    let auth_token = req
        .cookie(&state.config.kbase_cookie)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let form = form.into_inner();
    if !form_token_ok(&auth_token, &form.csrf) {
        return text(
            StatusCode::FORBIDDEN,
            "This form is out of date: reload the status page and try again.",
        );
    }
    let name = match ServiceName::new(form.narrative) {
        Ok(name) => name,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if form.confirm.as_deref() != Some("yes") {
        let nonce = Nonce::new();
        let page = confirm_page(name.as_str(), &form.csrf, &nonce);
        return respond(StatusCode::OK, admin_policy(&nonce), page);
    }
    let back = |key: &str| {
        let value = utf8_percent_encode(name.as_str(), NAME_IN_QUERY);
        reply::uncached(StatusCode::SEE_OTHER)
            .insert_header((
                header::LOCATION,
                format!("/narrative_status/?{key}={value}"),
            ))
            .finish()
    };
    match state.lifecycle.shutdown_narrative(&name).await {
        Ok(Some(_)) => {
            tracing::info!(service = %name, by = %identity.user, "shut down from the status page");
            state.kept.removed().await;
            back("shut")
        }
        Ok(None) => back("missing"),
        Err(traefiker_core::Error::Invalid(e)) => text(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => reply::shutdown_failed(&name, &e),
    }
}
