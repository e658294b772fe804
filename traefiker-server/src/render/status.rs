//! The narratives as `/narrative_status/` describes them to holders of `status_role` (SPEC §3):
//! the Python version's fields, with where each stands and the replica that made it.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use traefiker_core::{NarrativeKind, Standing, StatusEntry};

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

/// Every narrative, described, as one JSON array: what the server renders and keeps for a
/// moment.
pub fn render_services(entries: &[StatusEntry], user_prefix: &str, now: DateTime<Utc>) -> String {
    Value::Array(
        entries
            .iter()
            .map(|e| describe(e, user_prefix, now))
            .collect(),
    )
    .to_string()
}
