//! One narrative per name on Swarm: a **claim** is a Swarm config, named after the narrative
//! name (hashed, per deployment: [`super::spec::claim_name`]), whose labels name the service
//! that holds it.
//!
//! Why a config: a service's name cannot change, so an assigned waiting service carries the
//! user's name in a label, and two labels can say the same name. Config names are unique in
//! the swarm (a second create answers 409), and a config's labels are updated only at the
//! version read (a stale one answers "update out of sequence"), which makes the claim a
//! compare-and-swap object:
//!
//! - A service is given a name (created under it, or assigned it by a conditional update)
//!   **before** it claims it, so a claim's holder always carried the name once.
//! - Claiming creates the config; if it exists and names another service that still carries
//!   the name (and is not being removed), the name is taken. If its holder is gone or no
//!   longer carries the name, the claim is stale: it is taken over by a conditional update,
//!   so of two services taking over one stale claim only one succeeds.
//! - A removed service's claim is deleted when the removal finds it still names that service.
//!   Deletes are not conditional: a takeover landing between that look and the delete leaves
//!   the new holder without a claim until its own removal, the one window left (a user's new
//!   narrative being assigned at the very moment their old one is removed, and a third
//!   service claiming the same name before the second is removed).

use std::collections::HashMap;

use bollard::models::ConfigSpec;
use bollard::query_parameters::UpdateConfigOptionsBuilder;
use traefiker_core::{ManagerError, ServiceName};

use super::manager::SwarmManager;
use super::spec::{claim_name, SWARM_NETWORK_LABEL};
use super::BACKEND;
use crate::error::status;

/// The claim's label naming the service that holds the name.
pub const HOLDER_LABEL: &str = "traefiker.claim.holder";

/// The claim's label naming the narrative name it holds.
pub const CLAIMED_LABEL: &str = "traefiker.claim.name";

/// A config must carry data; what it says is only for a person reading it.
const DATA: &str = "dHJhZWZpa2VyIG5hcnJhdGl2ZSBuYW1lIGNsYWlt"; // "traefiker narrative name claim"

/// How often a claim is tried again after losing a race for a stale one.
const ATTEMPTS: usize = 3;

/// What a claim said when it was read.
struct Claim {
    version: u64,
    holder: String,
    spec: ConfigSpec,
}

impl SwarmManager {
    /// Claims `name` for the service `holder`, which carries it already. `NameTaken` when
    /// another live service holds it.
    pub(crate) async fn claim(&self, name: &ServiceName, holder: &str) -> Result<(), ManagerError> {
        let config = claim_name(self.network(), name);
        for _ in 0..ATTEMPTS {
            let spec = ConfigSpec {
                name: Some(config.clone()),
                labels: Some(HashMap::from([
                    (HOLDER_LABEL.to_owned(), holder.to_owned()),
                    (CLAIMED_LABEL.to_owned(), name.to_string()),
                    (SWARM_NETWORK_LABEL.to_owned(), self.network().to_owned()),
                ])),
                data: Some(DATA.to_owned()),
                ..ConfigSpec::default()
            };
            let created = self
                .within(
                    "create claim",
                    name.as_str(),
                    self.docker().create_config(spec),
                )
                .await?;
            match created {
                Ok(_) => return Ok(()),
                Err(e) if status(&e) == Some(409) => {}
                Err(e) => return Err(self.classify("create claim", name.as_str(), e)),
            }
            let Some(claim) = self.read_claim(&config, name).await? else {
                continue;
            };
            if claim.holder == holder {
                return Ok(());
            }
            if self.holds(&claim.holder, name).await? {
                return Err(ManagerError::NameTaken {
                    backend: BACKEND.to_owned(),
                    name: name.to_string(),
                });
            }
            let mut spec = claim.spec;
            spec.labels
                .get_or_insert_with(HashMap::new)
                .insert(HOLDER_LABEL.to_owned(), holder.to_owned());
            let options = UpdateConfigOptionsBuilder::default()
                .version(i64::try_from(claim.version).unwrap_or(i64::MAX))
                .build();
            let taken = self
                .within(
                    "take over claim",
                    name.as_str(),
                    self.docker().update_config(&config, spec, options),
                )
                .await?;
            match taken {
                Ok(()) => {
                    tracing::info!(name = %name, service_id = holder, "took over a stale name claim");
                    return Ok(());
                }
                // Another service took it over first, or it was deleted: look again.
                Err(e) if out_of_sequence(&e) || status(&e) == Some(404) => {}
                Err(e) => return Err(self.classify("take over claim", name.as_str(), e)),
            }
        }
        Err(ManagerError::Unavailable {
            backend: BACKEND.to_owned(),
            detail: format!("the claim on {name} kept changing; try again"),
        })
    }

    /// The service holding `name`, if a claim names one.
    pub(crate) async fn holder(&self, name: &ServiceName) -> Result<Option<String>, ManagerError> {
        let config = claim_name(self.network(), name);
        Ok(self.read_claim(&config, name).await?.map(|c| c.holder))
    }

    /// Deletes the claim on `name` if it names `holder` (a removed service); failures are
    /// only logged: a stale claim is taken over by the next service given the name.
    pub(crate) async fn release(&self, name: &ServiceName, holder: &str) {
        let config = claim_name(self.network(), name);
        match self.read_claim(&config, name).await {
            Ok(Some(claim)) if claim.holder == holder => {}
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(name = %name, error = %e, "could not read a removed narrative's name claim");
                return;
            }
        }
        let deleted = self
            .within(
                "delete claim",
                name.as_str(),
                self.docker().delete_config(&config),
            )
            .await;
        match deleted {
            Ok(Ok(())) => {}
            Ok(Err(e)) if status(&e) == Some(404) => {}
            Ok(Err(e)) => {
                tracing::warn!(name = %name, error = %self.classify("delete claim", name.as_str(), e),
                    "could not delete a removed narrative's name claim; the next narrative of that name takes it over");
            }
            Err(e) => {
                tracing::warn!(name = %name, error = %e, "could not delete a removed narrative's name claim");
            }
        }
    }

    async fn read_claim(
        &self,
        config: &str,
        name: &ServiceName,
    ) -> Result<Option<Claim>, ManagerError> {
        let answer = self
            .within(
                "inspect claim",
                name.as_str(),
                self.docker().inspect_config(config),
            )
            .await?;
        match answer {
            Ok(c) => {
                let spec = c.spec.unwrap_or_default();
                Ok(Some(Claim {
                    version: c.version.and_then(|v| v.index).unwrap_or_default(),
                    holder: spec
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(HOLDER_LABEL))
                        .cloned()
                        .unwrap_or_default(),
                    spec,
                }))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.classify("inspect claim", name.as_str(), e)),
        }
    }

    /// Whether the service `id` exists, carries `name` and is not being removed.
    async fn holds(&self, id: &str, name: &ServiceName) -> Result<bool, ManagerError> {
        Ok(self
            .inspect(id)
            .await?
            .is_some_and(|s| s.name() == Some(name.as_str()) && !s.removing()))
    }
}

/// Swarm's answer to a write at a stale version.
pub(crate) fn out_of_sequence(err: &bollard::errors::Error) -> bool {
    matches!(err, bollard::errors::Error::DockerResponseServerError { message, .. }
        if message.contains("out of sequence"))
}
