//! Rancher's JSON, as much of it as traefiker reads or writes. Private to the crate: nothing
//! outside it should depend on Rancher's wire shapes.
//!
//! Reads are lenient (every field optional or defaulted, unknown fields ignored) because
//! Rancher shows different fields to admin and member keys and across 1.x releases; a field
//! we need and do not get is handled where it is used.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A collection answer: `data` plus, for top-level collections, `pagination`.
#[derive(Debug, Deserialize)]
pub(crate) struct Collection<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    /// `null` for child links (a stack's `services`), an object for filtered collections.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Pagination {
    /// The URL of the next page, absent or `null` on the last one.
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Links {
    #[serde(rename = "self", default)]
    pub self_: Option<String>,
}

/// Rancher's error body (`type: "error"`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub field_name: Option<String>,
}

/// A project (what the UI calls an environment).
#[derive(Debug, Deserialize)]
pub(crate) struct Project {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub links: Links,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Stack {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// A service as listed or returned by create, rename and remove.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Service {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub health_state: Option<String>,
    #[serde(default)]
    pub stack_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "createdTS")]
    pub created_ts: Option<i64>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub launch_config: Option<LaunchConfigIn>,
    #[serde(default)]
    pub public_endpoints: Option<Vec<PublicEndpoint>>,
    #[serde(default)]
    pub links: Links,
}

impl Service {
    pub(crate) fn image_uuid(&self) -> Option<&str> {
        self.launch_config.as_ref()?.image_uuid.as_deref()
    }

    pub(crate) fn label(&self, key: &str) -> Option<&str> {
        self.launch_config.as_ref()?.labels.get(key)?.as_deref()
    }

    /// Being removed or gone: not a live container any more (rancher-compose skips these too).
    pub(crate) fn is_removed(&self) -> bool {
        matches!(
            self.state.as_deref(),
            Some("removing" | "removed" | "purging" | "purged")
        )
    }
}

/// `Debug` by hand, below: the labels hold the session id and its Traefik rule.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LaunchConfigIn {
    #[serde(default)]
    pub image_uuid: Option<String>,
    /// Label values may be `null` in the wild; those are ignored.
    #[serde(default)]
    pub labels: BTreeMap<String, Option<String>>,
}

impl std::fmt::Debug for LaunchConfigIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchConfigIn")
            .field("image_uuid", &self.image_uuid)
            .field("labels", &self.labels.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PublicEndpoint {
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub port: Option<u32>,
}

/// Body of `POST {env_url}/service` (SPEC §4, fixture `service-create-request.json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateService<'a> {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub name: &'a str,
    pub stack_id: &'a str,
    pub scale: u32,
    pub start_on_create: bool,
    pub assign_service_ip_address: bool,
    pub description: Option<String>,
    pub launch_config: LaunchConfigOut<'a>,
}

/// `Debug` by hand, below: the labels hold the session id and its rule, the environment may
/// hold secrets.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LaunchConfigOut<'a> {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub kind: &'static str,
    pub image_uuid: String,
    /// Contains the session id: this struct is never logged.
    pub labels: BTreeMap<String, String>,
    pub environment: &'a BTreeMap<String, String>,
    pub ports: [&'static str; 1],
    pub restart_policy: RestartPolicy,
    pub network_mode: &'static str,
    pub tty: bool,
    pub stdin_open: bool,
    pub vcpu: u32,
    pub privileged: bool,
    pub cap_add: [&'static str; 0],
    pub cap_drop: [&'static str; 13],
    pub instance_triggered_stop: &'static str,
    pub start_on_create: bool,
}

impl std::fmt::Debug for LaunchConfigOut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchConfigOut")
            .field("image_uuid", &self.image_uuid)
            .field("labels", &self.labels.keys().collect::<Vec<_>>())
            .field("environment", &self.environment.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct RestartPolicy {
    pub name: &'static str,
}

/// Capabilities every narrative drops (SPEC §4): one list for every backend.
pub(crate) use traefiker_core::narrative::CAP_DROP;

/// Body of `PUT {links.self}` for a rename (fixture `service-rename-request.json`).
#[derive(Debug, Serialize)]
pub(crate) struct RenameService<'a> {
    pub name: &'a str,
    pub description: String,
}

/// The body of a description update (a connection mark).
#[derive(Debug, Serialize)]
pub(crate) struct DescribeService {
    pub description: String,
}

/// One entry of rancher-metadata's `self/service/containers` with a JSON `Accept`: the
/// container's name in metadata version `2015-07-25`, a container object from `2015-12-19` on
/// (fixtures `metadata-service-containers-v1.json` and `-v2.json`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum MetaContainer {
    Name(String),
    Object { name: String },
}

impl MetaContainer {
    pub(crate) fn into_name(self) -> String {
        match self {
            Self::Name(name) | Self::Object { name } => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_a_session_or_a_rule() {
        let page: Collection<Service> =
            serde_json::from_str(include_str!("../tests/fixtures/services-by-name.json")).unwrap();
        let shown = format!("{:?}", page.data);
        assert!(shown.contains("session_id"), "label keys stay: {shown}");
        assert!(
            !shown.contains("8f3a1c9e2b7d4f6a0c5e9b1d3f7a2c4e"),
            "{shown}"
        );
        assert!(!shown.contains("HeadersRegexp"), "{shown}");
    }
}
