//! Owner records (SPEC §10) on an engine whose labels are fixed at creation.
//!
//! A container made for a user carries its owner in a label ([`OWNER_LABEL`]). A waiting
//! container gets its owner only when it is assigned, by a rename that cannot change labels,
//! so its record is a **claim**: a Docker volume named after the container's id
//! (`traefiker-owner-<id>`), labelled with the owner, created before the rename (no listing
//! ever shows the user's name without its owner) and removed with the container. Creating a
//! volume is create-or-get by name in the engine (an existing volume is answered as it is,
//! labels and all), so the first claim of a container stays: that is also what makes stamping
//! the first owner of a Python-made container atomic across replicas.
//!
//! Ids are never reused, so a claim whose container is gone is an orphan any listing may
//! remove; claims are listed before containers, so a claim made after its container was listed
//! is never taken for one.

use std::collections::HashMap;

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder};
use traefiker_core::{ManagerError, Owner, OWNER_LABEL};

use crate::error::{classify, status, BACKEND};
use crate::manager::{DockerManager, NETWORK_LABEL};

/// Label of a claim volume naming the container it is the owner record of.
pub const CLAIM_LABEL: &str = "traefiker.claim";

/// Orphan claims removed per listing at most, so one listing never turns into a long sweep.
const ORPHANS_PER_LISTING: usize = 16;

fn claim_name(container_id: &str) -> String {
    format!("traefiker-owner-{container_id}")
}

impl DockerManager {
    /// Claims container `id` for `owner`; answers the owner the claim records, which is
    /// another's if the container was claimed before.
    pub(crate) async fn claim(&self, id: &str, owner: &Owner) -> Result<Owner, ManagerError> {
        let name = claim_name(id);
        let request = VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(HashMap::from([
                (OWNER_LABEL.to_owned(), owner.as_str().to_owned()),
                (CLAIM_LABEL.to_owned(), id.to_owned()),
                (NETWORK_LABEL.to_owned(), self.network().to_owned()),
            ])),
            ..VolumeCreateRequest::default()
        };
        let volume = self
            .request("create volume", &name, self.docker().create_volume(request))
            .await?;
        volume
            .labels
            .get(OWNER_LABEL)
            .and_then(|o| Owner::parse(o).ok())
            .ok_or_else(|| ManagerError::Rejected {
                backend: BACKEND.to_owned(),
                detail: format!(
                    "volume {name} exists but is not an owner record of traefiker's; remove it"
                ),
            })
    }

    /// The owner container `id`'s claim records, if it has one.
    pub(crate) async fn claimed_owner(&self, id: &str) -> Result<Option<Owner>, ManagerError> {
        let name = claim_name(id);
        let answer = self
            .within(
                "inspect volume",
                &name,
                self.timeouts().request,
                self.docker().inspect_volume(&name),
            )
            .await?;
        match answer {
            Ok(volume) => Ok(volume
                .labels
                .get(OWNER_LABEL)
                .and_then(|o| Owner::parse(o).ok())),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(classify("inspect volume", &name, e)),
        }
    }

    /// Every claim of this deployment: container id → owner.
    pub(crate) async fn claims(&self) -> Result<HashMap<String, Owner>, ManagerError> {
        let filters = HashMap::from([(
            "label",
            vec![
                CLAIM_LABEL.to_owned(),
                format!("{NETWORK_LABEL}={}", self.network()),
            ],
        )]);
        let options = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = self
            .request(
                "list volumes",
                "owner records",
                self.docker().list_volumes(Some(options)),
            )
            .await?;
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| {
                let id = v.labels.get(CLAIM_LABEL)?.clone();
                let owner = Owner::parse(v.labels.get(OWNER_LABEL)?).ok()?;
                Some((id, owner))
            })
            .collect())
    }

    /// Removes container `id`'s claim; a claim already gone is fine, a failure is only logged
    /// (an orphan claim is removed by a later listing).
    pub(crate) async fn drop_claim(&self, id: &str) {
        let name = claim_name(id);
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        let removed = self
            .within(
                "remove volume",
                &name,
                self.timeouts().request,
                self.docker().remove_volume(&name, Some(options)),
            )
            .await;
        match removed {
            Ok(Ok(())) => {}
            Ok(Err(e)) if status(&e) == Some(404) => {}
            _ => {
                tracing::warn!(volume = %name, "could not remove an owner record; a later listing will")
            }
        }
    }

    /// Removes the claims, among `claims`, of containers that `live` does not hold (some at
    /// most per call).
    pub(crate) async fn drop_orphans(
        &self,
        claims: &HashMap<String, Owner>,
        live: impl Fn(&str) -> bool,
    ) {
        let orphans: Vec<&String> = claims
            .keys()
            .filter(|id| !live(id))
            .take(ORPHANS_PER_LISTING)
            .collect();
        for id in orphans {
            self.drop_claim(id).await;
        }
    }
}
