//! `GET /narrative_status/`: always the service's timestamp and version; every narrative for
//! holders of `status_role` (SPEC §3) — as JSON, or as a page ([`crate::routes::admin`]) when
//! such a holder's browser asks for HTML.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use traefiker_core::{NarrativeKind, Standing, StatusEntry};

use crate::routes::{admin, identify, wants_html};
use crate::state::AppState;

/// Python's `time.asctime`: `Wed Nov 25 23:59:59 2026`.
fn asctime(t: DateTime<Utc>) -> String {
    t.format("%a %b %e %H:%M:%S %Y").to_string()
}

/// Where a narrative stands as this replica sees it (SPEC §9), added beside the Python fields:
/// `user`, `waiting` (in this replica's pool), `leaving` (this replica's, being assigned or
/// removed) or `foreign` (another replica's waiting narrative, or one the Python version left).
fn standing(s: Standing) -> (&'static str, Option<bool>) {
    match s {
        Standing::User => ("user", None),
        Standing::Waiting { ready } => ("waiting", Some(ready)),
        Standing::Leaving => ("leaving", None),
        Standing::Foreign => ("foreign", None),
        // A standing added to the core later shows as such rather than as a wrong one.
        _ => ("unknown", None),
    }
}

/// One narrative as the Python version described it, with where it stands and the replica
/// that made it (`null` if none did: a user's created for them, or the Python version's).
pub fn describe(entry: &StatusEntry, user_prefix: &str, now: DateTime<Utc>) -> Value {
    let mut doc = describe_python(entry, user_prefix, now);
    let (standing, ready) = standing(entry.standing);
    doc["standing"] = standing.into();
    if let Some(ready) = ready {
        doc["ready"] = ready.into();
    }
    doc["replica"] = entry.narrative.replica.as_ref().map(|r| r.as_str()).into();
    doc
}

fn describe_python(entry: &StatusEntry, user_prefix: &str, now: DateTime<Utc>) -> Value {
    let n = &entry.narrative;
    let last_seen = asctime(entry.last_seen.unwrap_or(now));
    match n.kind {
        NarrativeKind::Prespawned => json!({
            "instance": n.name.as_str(),
            "state": "queued",
            "session_id": "*",
            "last_seen": last_seen,
        }),
        NarrativeKind::User => {
            let user = n
                .name
                .as_str()
                .strip_prefix(user_prefix)
                .unwrap_or(n.name.as_str());
            json!({
                "instance": n.name.as_str(),
                "state": "active",
                "session_id": user,
                "last_seen": last_seen,
                "session_key": n.session.expose(),
                "image": n.image,
                "publicEndpoints": format!("{:?}", n.public_endpoints),
                "last_ip": n.origin.as_ref().map(|o| o.client_ip.clone().unwrap_or_else(|| "None".into())),
                "created": n.origin.as_ref().map(|o| o.at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
            })
        }
    }
}

/// Every narrative, described, as one JSON array: what [`crate::kept::Kept::services_json`]
/// renders and keeps for a moment.
pub fn render_services(entries: &[StatusEntry], user_prefix: &str, now: DateTime<Utc>) -> String {
    Value::Array(
        entries
            .iter()
            .map(|e| describe(e, user_prefix, now))
            .collect(),
    )
    .to_string()
}

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
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(doc.to_string());
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
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}
