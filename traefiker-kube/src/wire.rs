//! The only module that knows how a narrative looks as Kubernetes objects: the pod made from
//! a [`SpawnSpec`], the lease that claims a user's name, the merge patches that assign,
//! mark, stamp and claim a pod for removal, and the reading of a pod back into a
//! [`Narrative`]. Pure functions, tested without an API server.
//!
//! A pod's name cannot change, so a narrative's name (the Python name, `narrative-<user>`)
//! is its `traefiker.name` label; a waiting pod is named after its waiting name and keeps
//! that pod name once assigned, and a user's pod created directly is named from the user's
//! name by `generateName`. Label values hold at most 63 characters, so the owner (64 hex
//! characters) and everything holding a session id are annotations.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use traefiker_core::{
    Assignment, Naming, Narrative, NarrativeKind, NarrativeState, Origin, Owner, ReplicaId,
    ServiceName, SessionId, SpawnSpec, REPLICA_LABEL, SESSION_LABEL,
};

use crate::config::PodSettings;

/// Port Jupyter answers on inside a narrative.
pub const NARRATIVE_PORT: u16 = 8888;

/// Label on everything traefiker makes; lists select by it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "traefiker");

/// Label naming what a pod is, as the Kubernetes recommended labels do.
pub const APP_NAME: (&str, &str) = ("app.kubernetes.io/name", "narrative");

/// Label holding a narrative's name (a pod's own name cannot change), and a claim's.
pub const NAME_LABEL: &str = "traefiker.name";

/// Label a reaper sets, by compare-and-swap, on a pod it is about to delete: from then on no
/// replica hands it out or marks it.
pub const REMOVING_LABEL: &str = "traefiker.removing";

/// Annotation holding the owner (SHA-256 of the user id, 64 hex characters: too long for a
/// label value).
pub const OWNER_ANNOTATION: &str = traefiker_core::OWNER_LABEL;

/// Annotation holding the `client-ip:… timestamp:…` description.
pub const ORIGIN_ANNOTATION: &str = "traefiker.origin";

/// The container's name in every narrative pod.
pub const CONTAINER: &str = "narrative";

/// The lease that claims the narrative name `name` for one pod.
pub fn claim_name(name: &ServiceName) -> String {
    format!("traefiker-claim.{name}")
}

/// The label selector of everything traefiker makes.
pub fn managed_selector() -> String {
    format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)
}

/// The pod for `spec`: named after a waiting narrative, or by `generateName` from a user's
/// narrative name (the previous pod of that user may still be terminating under its name).
pub fn pod(spec: &SpawnSpec, settings: &PodSettings) -> Result<Pod, serde_json::Error> {
    let mut labels = BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (APP_NAME.0.to_owned(), APP_NAME.1.to_owned()),
        (NAME_LABEL.to_owned(), spec.name.to_string()),
    ]);
    if let Some(replica) = spec.labels.get(REPLICA_LABEL) {
        labels.insert(REPLICA_LABEL.to_owned(), replica.clone());
    }
    let mut annotations =
        BTreeMap::from([(SESSION_LABEL.to_owned(), spec.session.expose().to_owned())]);
    if let Some(origin) = &spec.origin {
        annotations.insert(ORIGIN_ANNOTATION.to_owned(), origin.to_description());
    }
    if let Some(owner) = &spec.owner {
        annotations.insert(OWNER_ANNOTATION.to_owned(), owner.as_str().to_owned());
    }
    let naming = match spec.kind {
        NarrativeKind::Prespawned => json!({"name": spec.name.as_str()}),
        NarrativeKind::User => json!({"generateName": format!("{}-", spec.name)}),
    };
    let env: Vec<Value> = spec
        .env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let mut security = json!({
        "runAsNonRoot": true,
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    if let Some(uid) = settings.run_as_user {
        security["runAsUser"] = json!(uid);
    }
    let mut metadata = json!({"labels": labels, "annotations": annotations});
    if let (Some(m), Some(n)) = (metadata.as_object_mut(), naming.as_object()) {
        m.extend(n.clone());
    }
    serde_json::from_value(json!({
        "metadata": metadata,
        "spec": {
            // A narrative that stops stays stopped and is reaped as a zombie, as Rancher's
            // start-once services were.
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "terminationGracePeriodSeconds": settings.termination_grace_secs,
            "securityContext": security,
            "containers": [{
                "name": CONTAINER,
                "image": spec.image,
                "imagePullPolicy": "Always",
                "ports": [{"name": "http", "containerPort": NARRATIVE_PORT, "protocol": "TCP"}],
                "env": env,
                "tty": true,
                "stdin": true,
                "resources": {
                    "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
                    "limits": {"cpu": settings.cpu_limit, "memory": settings.memory_limit},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "privileged": false,
                    // Every capability, a superset of the list Rancher's services drop.
                    "capabilities": {"drop": ["ALL"]},
                },
                "readinessProbe": {
                    "tcpSocket": {"port": NARRATIVE_PORT},
                    "periodSeconds": 5,
                    "failureThreshold": 3,
                },
            }],
        },
    }))
}

/// The lease claiming `name` for the pod `pod_name` (uid `pod_uid`): unique by name, so at
/// most one pod holds a user's name, and owned by the pod, so the garbage collector removes
/// it with the pod.
pub fn claim(
    name: &ServiceName,
    pod_name: &str,
    pod_uid: &str,
) -> Result<Lease, serde_json::Error> {
    serde_json::from_value(json!({
        "metadata": {
            "name": claim_name(name),
            "labels": {MANAGED_BY.0: MANAGED_BY.1, NAME_LABEL: name.as_str()},
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod_name,
                "uid": pod_uid,
                "blockOwnerDeletion": false,
            }],
        },
        "spec": {"holderIdentity": pod_name},
    }))
}

/// The pod a claim names.
pub fn claim_holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

/// A merge patch that applies only to the version `version` (none: unconditional).
fn conditional(version: Option<&str>, labels: Value, annotations: Value) -> Value {
    let mut metadata = json!({"labels": labels, "annotations": annotations});
    if let Some(v) = version {
        metadata["resourceVersion"] = json!(v);
    }
    json!({ "metadata": metadata })
}

/// Gives a waiting pod to a user: its narrative name, owner and description.
pub fn assign_patch(version: Option<&str>, assignment: &Assignment) -> Value {
    conditional(
        version,
        json!({NAME_LABEL: assignment.name.as_str()}),
        json!({
            ORIGIN_ANNOTATION: assignment.origin.to_description(),
            OWNER_ANNOTATION: assignment.owner.as_str(),
        }),
    )
}

/// Gives a pod back to the pool under its waiting name (an assignment whose name turned out
/// to be taken).
pub fn unassign_patch(version: &str, waiting: &ServiceName) -> Value {
    conditional(
        Some(version),
        json!({NAME_LABEL: waiting.as_str()}),
        json!({ORIGIN_ANNOTATION: null, OWNER_ANNOTATION: null}),
    )
}

/// Records a connection.
pub fn mark_patch(version: Option<&str>, origin: &Origin) -> Value {
    conditional(
        version,
        json!({}),
        json!({ORIGIN_ANNOTATION: origin.to_description()}),
    )
}

/// Records an owner.
pub fn owner_patch(version: Option<&str>, owner: &Owner) -> Value {
    conditional(
        version,
        json!({}),
        json!({OWNER_ANNOTATION: owner.as_str()}),
    )
}

/// A reaper's claim on a pod it is about to delete.
pub fn removing_patch(version: &str) -> Value {
    conditional(Some(version), json!({REMOVING_LABEL: "true"}), json!({}))
}

/// A pod's name and uid, from a narrative's opaque id (`<pod name>/<uid>`).
pub fn split_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once('/') {
        Some((name, uid)) => (name, Some(uid)),
        None => (id, None),
    }
}

/// A pod as the backend reads it: its identity, what it says about itself, and the
/// narrative it is, or why it is none.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The pod's own name.
    pub pod_name: String,
    /// Its uid.
    pub uid: String,
    /// Its `traefiker.name` label.
    pub name: Option<String>,
    /// Being deleted, or claimed for deletion.
    pub removing: bool,
    /// Its phase says it stopped (`Succeeded`, `Failed`).
    pub stopped: bool,
    /// The narrative, if the pod is one of this deployment's.
    pub narrative: Result<Narrative, &'static str>,
}

/// Reads `pod`: `naming` tells users' names from waiting ones, `image_prefix`
/// (`<image_name>:`) which pods are narratives.
pub fn read(pod: &Pod, naming: &Naming, image_prefix: &str) -> Seen {
    let meta = &pod.metadata;
    let labels = meta.labels.clone().unwrap_or_default();
    let annotations = meta.annotations.clone().unwrap_or_default();
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let stopped = matches!(phase, "Succeeded" | "Failed");
    let removing = meta.deletion_timestamp.is_some() || labels.contains_key(REMOVING_LABEL);
    let pod_name = meta.name.clone().unwrap_or_default();
    let uid = meta.uid.clone().unwrap_or_default();
    let name = labels.get(NAME_LABEL).cloned();
    let narrative = (|| {
        if labels.get(MANAGED_BY.0).map(String::as_str) != Some(MANAGED_BY.1) {
            return Err("not made by traefiker");
        }
        let image = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == CONTAINER))
            .and_then(|c| c.image.clone())
            .filter(|i| i.starts_with(image_prefix))
            .ok_or("not the narrative image")?;
        let name = name.as_deref().ok_or("no traefiker.name label")?;
        let kind = naming.kind_of(name).ok_or("not a narrative name")?;
        let name = ServiceName::new(name).map_err(|_| "not a valid name")?;
        let session = annotations
            .get(SESSION_LABEL)
            .and_then(|s| SessionId::parse(s).ok())
            .ok_or("no valid session_id annotation")?;
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let state = if removing {
            NarrativeState::Removing
        } else {
            match phase {
                "Pending" => NarrativeState::Starting,
                "Running" if ready => NarrativeState::Running,
                "Running" => NarrativeState::Starting,
                "Succeeded" | "Failed" => NarrativeState::Stopped,
                other => NarrativeState::Other(other.to_ascii_lowercase()),
            }
        };
        let address = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .filter(|ip| !ip.is_empty())
            .map(|ip| match ip.contains(':') {
                true => format!("http://[{ip}]:{NARRATIVE_PORT}"),
                false => format!("http://{ip}:{NARRATIVE_PORT}"),
            });
        Ok(Narrative {
            id: format!("{pod_name}/{uid}"),
            name,
            session,
            image,
            kind,
            state,
            origin: annotations
                .get(ORIGIN_ANNOTATION)
                .and_then(|d| Origin::parse(d)),
            replica: labels
                .get(REPLICA_LABEL)
                .and_then(|r| ReplicaId::new(r.clone()).ok()),
            owner: annotations
                .get(OWNER_ANNOTATION)
                .and_then(|o| Owner::parse(o).ok()),
            version: meta.resource_version.clone(),
            address,
            public_endpoints: Vec::new(),
            created: meta.creation_timestamp.as_ref().and_then(|t| time(&t.0)),
        })
    })();
    Seen {
        pod_name,
        uid,
        name,
        removing,
        stopped,
        narrative,
    }
}

/// A Kubernetes timestamp as chrono's.
fn time(t: &impl std::fmt::Display) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&t.to_string())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
