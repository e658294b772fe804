//! Learning where traefiker runs (SPEC §7): the environment URL, stack id and stack name that
//! were not configured, from rancher-metadata and the projects and stacks collections.
//!
//! Each step that fails names the setting that would make it unnecessary, because the usual
//! fix for "cannot discover" is to configure the value. Each step is one operation with its
//! own deadline (a listing's for the projects and stacks), like the manager's.

use traefiker_core::ManagerError;
use url::Url;

use crate::client::{join, parse_setting, shown, Client, Deadline};
use crate::config::Timeouts;
use crate::error::{RancherError, SetupError, BACKEND};
use crate::wire::{Project, Stack};

/// Where the narratives live, once known.
#[derive(Clone, Debug)]
pub(crate) struct Location {
    pub env_url: Url,
    pub stack_id: String,
    pub stack_name: String,
}

fn failed(setting: &'static str, reason: impl Into<String>, e: RancherError) -> SetupError {
    SetupError::Discovery {
        setting,
        reason: reason.into(),
        source: e.into_manager(setting),
    }
}

fn missing(setting: &'static str, reason: impl Into<String>, detail: String) -> SetupError {
    SetupError::Discovery {
        setting,
        reason: reason.into(),
        source: ManagerError::Rejected {
            backend: BACKEND.to_owned(),
            detail,
        },
    }
}

/// One rancher-metadata answer (version `2016-07-29`), as text without the credentials.
async fn metadata(
    client: &Client,
    timeouts: Timeouts,
    meta: &Url,
    key: &[&str],
    setting: &'static str,
) -> Result<String, SetupError> {
    let mut segments = vec!["2016-07-29", "self", "stack"];
    segments.extend_from_slice(key);
    let url = join(meta, &segments);
    let deadline = Deadline::after(timeouts.request);
    let text = client
        .get_text_anonymous(&url, deadline)
        .await
        .map_err(|e| {
            failed(
                setting,
                format!(
                    "rancher-metadata at {} (rancher_meta) did not answer",
                    shown(meta)
                ),
                e,
            )
        })?;
    let value = text.trim().to_owned();
    if value.is_empty() {
        return Err(missing(
            setting,
            "rancher-metadata answered nothing",
            shown(&url),
        ));
    }
    Ok(value)
}

/// Fills in what `env_url`, `stack_id` and `stack_name` leave unset.
pub(crate) async fn discover(
    client: &Client,
    timeouts: Timeouts,
    rancher_url: &Url,
    meta_url: &str,
    env_url: Option<Url>,
    stack_id: Option<String>,
    stack_name: Option<String>,
) -> Result<Location, SetupError> {
    // The credentials must work whatever else is configured.
    client
        .get::<serde_json::Value>(rancher_url, Deadline::after(timeouts.request))
        .await
        .map_err(|e| match e.status() {
            Some(401 | 403) => failed("rancher_password", "Rancher refused the API key", e),
            _ => failed("rancher_url", "Rancher's API root did not answer", e),
        })?;

    let meta = || parse_setting("rancher_meta", meta_url);

    let env_url = match env_url {
        Some(url) => url,
        None => {
            let name = metadata(
                client,
                timeouts,
                &meta()?,
                &["environment_name"],
                "rancher_env_url",
            )
            .await?;
            let projects: Vec<Project> = client
                .list_all(
                    join(rancher_url, &["projects"]),
                    Deadline::after(timeouts.list),
                )
                .await
                .map_err(|e| failed("rancher_env_url", "listing projects failed", e))?;
            let project = projects
                .iter()
                .find(|p| {
                    p.name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(&name))
                })
                .ok_or_else(|| {
                    missing(
                        "rancher_env_url",
                        format!("no environment named {name:?} is visible to this API key"),
                        shown(&join(rancher_url, &["projects"])),
                    )
                })?;
            let link = project.links.self_.as_deref().ok_or_else(|| {
                missing(
                    "rancher_env_url",
                    format!("environment {name:?} has no self link"),
                    shown(rancher_url),
                )
            })?;
            client
                .follow(rancher_url, link)
                .map_err(|e| failed("rancher_env_url", "the environment's link is unusable", e))?
        }
    };

    let (stack_id, stack_name) = match (stack_id, stack_name) {
        (Some(id), Some(name)) => (id, name),
        (id, name) => {
            let stacks: Vec<Stack> = client
                .list_all(join(&env_url, &["stacks"]), Deadline::after(timeouts.list))
                .await
                .map_err(|e| failed("rancher_stack_id", "listing stacks failed", e))?;
            match (id, name) {
                (Some(id), _) => {
                    let name = stacks
                        .iter()
                        .find(|s| s.id == id)
                        .and_then(|s| s.name.clone())
                        .ok_or_else(|| {
                            missing(
                                "rancher_stack_name",
                                format!("no stack with id {id:?} in the environment"),
                                shown(&env_url),
                            )
                        })?;
                    (id, name)
                }
                (None, name) => {
                    let name = match name {
                        Some(name) => name,
                        None => {
                            metadata(client, timeouts, &meta()?, &["name"], "rancher_stack_name")
                                .await?
                        }
                    };
                    // rancher-metadata lower-cases stack names; Rancher compares them
                    // case-insensitively too.
                    let stack = stacks
                        .iter()
                        .find(|s| s.name.as_deref() == Some(name.as_str()))
                        .or_else(|| {
                            stacks.iter().find(|s| {
                                s.name
                                    .as_deref()
                                    .is_some_and(|n| n.eq_ignore_ascii_case(&name))
                            })
                        })
                        .ok_or_else(|| {
                            missing(
                                "rancher_stack_id",
                                format!("no stack named {name:?} in the environment"),
                                shown(&env_url),
                            )
                        })?;
                    (stack.id.clone(), stack.name.clone().unwrap_or(name))
                }
            }
        }
    };

    client
        .get::<serde_json::Value>(&env_url, Deadline::after(timeouts.request))
        .await
        .map_err(|e| failed("rancher_env_url", "the environment did not answer", e))?;

    Ok(Location {
        env_url,
        stack_id,
        stack_name,
    })
}
