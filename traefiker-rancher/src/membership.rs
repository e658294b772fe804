//! [`RancherMembership`]: which traefiker replica this is and which are alive, from
//! rancher-metadata (SPEC §9).
//!
//! rancher-metadata answers every container about itself, without credentials: this
//! container's name, and the containers of its own service, that is every traefiker replica.
//! Both questions use metadata version `2016-07-29`, so names compare equal between them.

use async_trait::async_trait;
use traefiker_core::{ManagerError, Membership, ReplicaId};
use url::Url;

use crate::client::{join, parse_setting, shown, Client, Deadline};
use crate::config::{RancherConfig, Timeouts};
use crate::error::{RancherError, SetupError, BACKEND};
use crate::wire::MetaContainer;

/// The metadata version asked: the one discovery uses, with container objects in
/// `self/service/containers`.
const META_VERSION: &str = "2016-07-29";

/// [`Membership`] from rancher-metadata: `identity` is `self/container/name`, `peers` are the
/// containers of `self/service`.
///
/// Every failure (metadata down, a 404, an answer that is not a list of names, a timeout) is
/// an error, which the [`Membership`] contract reads as *peers unknown*. So is a list with no
/// container at all: this replica is itself a container of the service, so an empty answer
/// is wrong, and taking it as "no peers" would remove every other replica's pool.
///
/// ```
/// use traefiker_rancher::{RancherConfig, RancherMembership};
///
/// let mut config = RancherConfig::new("http://rancher:8080/v2-beta");
/// config.meta_url = "http://rancher-metadata/".into();
/// let membership = RancherMembership::new(&config)?;
/// # let _ = membership;
/// # Ok::<(), traefiker_rancher::SetupError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RancherMembership {
    /// Without credentials: the API key is never sent to rancher-metadata.
    client: Client,
    meta: Url,
    timeouts: Timeouts,
}

impl RancherMembership {
    /// Membership read from `config.meta_url` (`rancher_meta`), with `config`'s connect
    /// timeout, operation deadline and retries. Makes no call.
    pub fn new(config: &RancherConfig) -> Result<Self, SetupError> {
        Ok(Self {
            client: Client::new(
                None,
                config.timeouts,
                config.retry,
                config.ca_bundle_pem.as_deref(),
            )?,
            meta: parse_setting("rancher_meta", &config.meta_url)?,
            timeouts: config.timeouts,
        })
    }

    fn url(&self, key: &[&str]) -> Url {
        let mut segments = vec![META_VERSION, "self"];
        segments.extend_from_slice(key);
        join(&self.meta, &segments)
    }
}

/// Why an answer of rancher-metadata cannot be used, as the core's error.
fn unusable(url: &Url, detail: impl std::fmt::Display) -> ManagerError {
    ManagerError::Rejected {
        backend: BACKEND.to_owned(),
        detail: format!("rancher-metadata {}: {detail}", shown(url)),
    }
}

/// A failed metadata request: worth retrying later if transient, else a deployment problem
/// (404: not running in a Rancher stack, so set `replica_id`).
fn failed(e: RancherError) -> ManagerError {
    let detail = format!("rancher-metadata: {e}");
    if e.is_transient() {
        ManagerError::Unavailable {
            backend: BACKEND.to_owned(),
            detail,
        }
    } else {
        ManagerError::Rejected {
            backend: BACKEND.to_owned(),
            detail,
        }
    }
}

#[async_trait]
impl Membership for RancherMembership {
    async fn identity(&self) -> Result<Option<ReplicaId>, ManagerError> {
        let url = self.url(&["container", "name"]);
        let text = self
            .client
            .get_text_anonymous(&url, Deadline::after(self.timeouts.request))
            .await
            .map_err(failed)?;
        // rancher-metadata prints a string leaf as is, without a newline; trimming anyway
        // costs nothing if a proxy adds one.
        ReplicaId::new(text.trim())
            .map(Some)
            .map_err(|e| unusable(&url, e))
    }

    async fn peers(&self) -> Result<Vec<ReplicaId>, ManagerError> {
        let url = self.url(&["service", "containers"]);
        let containers: Vec<MetaContainer> = self
            .client
            .get_json_anonymous(&url, Deadline::after(self.timeouts.request))
            .await
            .map_err(failed)?;
        if containers.is_empty() {
            return Err(unusable(
                &url,
                "lists no container, not even this one; peers taken as unknown",
            ));
        }
        // One name that is not a replica id makes the whole answer unknown: skipping it would
        // make a live replica look gone.
        containers
            .into_iter()
            .map(|c| ReplicaId::new(c.into_name()).map_err(|e| unusable(&url, e)))
            .collect()
    }
}
