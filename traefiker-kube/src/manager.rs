//! [`KubeManager`]: the core's [`ContainerManager`] contract over bare pods.
//!
//! Every write that decides something is conditional on what was read: assigning a waiting
//! pod, marking a connection, stamping an owner and a reaper's claim before it deletes are
//! merge patches carrying the pod's `resourceVersion` (409 Conflict if it moved), and the
//! delete carries it again as a precondition. A user's name is held by a lease named after
//! it ([`wire::claim_name`]): apiserver's unique names make "one narrative per user"
//! unconditional, and the lease's owner reference to its pod lets the garbage collector
//! remove it with the pod. The pod is written first and the lease second, so a lease always
//! names a pod that already carries the user's name: a lease whose pod does not (gone,
//! terminating, claimed by a reaper, given back) is stale, and is deleted under a
//! precondition by whoever finds it in the way.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::ObjectList;
use kube::Resource;
use serde::de::DeserializeOwned;
use traefiker_core::{
    Assignment, BackendInfo, Clock, ContainerManager, ManagerError, Naming, Narrative,
    NarrativeKind, Origin, Owner, ServiceName, SessionId, SpawnSpec,
};

use crate::access;
use crate::config::{Cluster, KubeConfig, PodSettings, Timeouts};
use crate::error::{classify, timed_out, unreadable, KubeError, BACKEND};
use crate::membership::KubeMembership;
use crate::wire::{self, Seen};

/// Items a page of a listing asks for.
const PAGE: u32 = 500;

/// How often a create or an assignment clears a stale claim out of its way before giving up.
const CLAIM_ATTEMPTS: usize = 3;

/// A [`ContainerManager`] over bare pods in one namespace (see the module documentation).
pub struct KubeManager {
    client: kube::Client,
    pods: Api<Pod>,
    leases: Api<Lease>,
    namespace: String,
    cluster_url: String,
    pod_name: Option<String>,
    image_prefix: String,
    naming: Naming,
    settings: PodSettings,
    timeouts: Timeouts,
    orphan_grace: Duration,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for KubeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeManager")
            .field("cluster_url", &self.cluster_url)
            .field("namespace", &self.namespace)
            .field("image_prefix", &self.image_prefix)
            .finish_non_exhaustive()
    }
}

/// Who holds a user's name.
enum Holder {
    /// Nobody.
    Free,
    /// A pod that carries the name; the lease's uid and version.
    Live(Box<Seen>),
    /// A lease whose pod no longer carries the name (uid, resourceVersion).
    Stale(String, String),
}

impl KubeManager {
    /// Finds the API server as `config.cluster` says and checks the settings this backend
    /// constrains. Makes no call: [`ContainerManager::verify`] does.
    pub async fn connect(config: KubeConfig) -> Result<Self, KubeError> {
        check_settings(&config)?;
        let (client, cluster_url) = match &config.cluster {
            Cluster::Client(c) => (c.clone(), "(given client)".to_owned()),
            Cluster::Infer => build(infer().await?, &config.timeouts)?,
            Cluster::Kubeconfig(path) => {
                let shown = path.display().to_string();
                let failed = |e: &dyn std::fmt::Display| KubeError::Kubeconfig {
                    path: shown.clone(),
                    detail: e.to_string(),
                };
                let file = kube::config::Kubeconfig::read_from(path).map_err(|e| failed(&e))?;
                let c = kube::Config::from_custom_kubeconfig(file, &Default::default())
                    .await
                    .map_err(|e| failed(&e))?;
                build(c, &config.timeouts)?
            }
        };
        let namespace = config
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        if !is_dns_label(&namespace) {
            return Err(KubeError::Config {
                setting: "kube_namespace",
                reason: format!(
                    "{namespace:?} is not a namespace name (lowercase letters, digits and '-')"
                ),
            });
        }
        Ok(Self {
            pods: Api::namespaced(client.clone(), &namespace),
            leases: Api::namespaced(client.clone(), &namespace),
            client,
            namespace,
            cluster_url,
            pod_name: config.pod_name,
            image_prefix: format!("{}:", config.image_name),
            naming: config.naming,
            settings: config.pod,
            timeouts: config.timeouts,
            orphan_grace: config.orphan_grace,
            clock: config.clock,
        })
    }

    /// The namespace narratives run in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// This replica's identity and peers, from the same cluster and namespace.
    pub fn membership(&self) -> KubeMembership {
        KubeMembership::new(
            self.pods.clone(),
            self.pod_name.clone(),
            self.timeouts.request,
        )
    }

    /// One call within the request timeout: the outer error is the timeout, the inner the
    /// API's answer, for the caller to read statuses from.
    async fn within<T>(
        &self,
        call: &str,
        subject: &str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<Result<T, kube::Error>, ManagerError> {
        let limit = self.timeouts.request;
        tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| timed_out(call, subject, limit))
    }

    /// [`Self::within`] with every error classified.
    async fn request<T>(
        &self,
        call: &str,
        subject: &str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ManagerError> {
        self.within(call, subject, fut)
            .await?
            .map_err(|e| classify(call, subject, e))
    }

    /// Every object `api` lists with traefiker's label, all pages, within the list timeout.
    async fn list_all<K>(&self, api: &Api<K>, what: &str) -> Result<Vec<K>, ManagerError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let pages = async {
            let mut items = Vec::new();
            let mut params = ListParams::default()
                .labels(&wire::managed_selector())
                .limit(PAGE);
            loop {
                let page: ObjectList<K> = api
                    .list(&params)
                    .await
                    .map_err(|e| classify("list", what, e))?;
                items.extend(page.items);
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => return Ok(items),
                }
            }
        };
        tokio::time::timeout(self.timeouts.list, pages)
            .await
            .map_err(|_| timed_out("list", what, self.timeouts.list))?
    }

    fn read(&self, pod: &Pod) -> Seen {
        wire::read(pod, &self.naming, &self.image_prefix)
    }

    /// `seen` as a narrative, or an error naming the pod and why it is none.
    fn narrative(&self, seen: Seen) -> Result<Narrative, ManagerError> {
        seen.narrative
            .map_err(|why| unreadable(&format!("pod {}", seen.pod_name), why))
    }

    /// The pod named `pod_name`, or `None`.
    async fn get_pod(&self, pod_name: &str) -> Result<Option<Pod>, ManagerError> {
        self.request("get pod", pod_name, self.pods.get_opt(pod_name))
            .await
    }

    /// Who holds the user name `name`.
    async fn holder(&self, name: &ServiceName) -> Result<Holder, ManagerError> {
        let claim = wire::claim_name(name);
        let Some(lease) = self
            .request("get lease", &claim, self.leases.get_opt(&claim))
            .await?
        else {
            return Ok(Holder::Free);
        };
        let stale = || {
            Holder::Stale(
                lease.metadata.uid.clone().unwrap_or_default(),
                lease.metadata.resource_version.clone().unwrap_or_default(),
            )
        };
        let Some(pod_name) = wire::claim_holder(&lease) else {
            return Ok(stale());
        };
        let Some(pod) = self.get_pod(pod_name).await? else {
            return Ok(stale());
        };
        let seen = self.read(&pod);
        let owned = lease
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|refs| refs.iter().any(|r| r.uid == seen.uid));
        if !owned || seen.removing || seen.name.as_deref() != Some(name.as_str()) {
            return Ok(stale());
        }
        Ok(Holder::Live(Box::new(seen)))
    }

    /// Claims the user name `name` for the pod `pod_name` (uid `uid`), which already carries
    /// it. A stale claim in the way is deleted (under its uid and version) and the claim made
    /// again; a live one is `NameTaken`, or `OwnedByAnother` if its pod records an owner
    /// other than `owner`.
    async fn claim(
        &self,
        name: &ServiceName,
        pod_name: &str,
        uid: &str,
        owner: Option<&Owner>,
    ) -> Result<(), ManagerError> {
        let lease = wire::claim(name, pod_name, uid).map_err(|e| ManagerError::Rejected {
            backend: BACKEND.to_owned(),
            detail: format!("cannot build the claim of {name}: {e}"),
        })?;
        let claim = wire::claim_name(name);
        for _ in 0..CLAIM_ATTEMPTS {
            match self
                .within(
                    "create lease",
                    &claim,
                    self.leases.create(&PostParams::default(), &lease),
                )
                .await?
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {}
                Err(e) => return Err(classify("create lease", &claim, e)),
            }
            match self.holder(name).await? {
                Holder::Free => {}
                Holder::Live(seen) => {
                    let theirs = seen.narrative.ok().and_then(|n| n.owner);
                    return Err(match (theirs, owner) {
                        (Some(t), Some(o)) if &t != o => ManagerError::OwnedByAnother {
                            backend: BACKEND.to_owned(),
                            name: name.to_string(),
                        },
                        _ => ManagerError::NameTaken {
                            backend: BACKEND.to_owned(),
                            name: name.to_string(),
                        },
                    });
                }
                Holder::Stale(lease_uid, version) => {
                    tracing::info!(name = %name, "clearing a stale claim");
                    let params = DeleteParams {
                        preconditions: Some(Preconditions {
                            uid: Some(lease_uid),
                            resource_version: Some(version),
                        }),
                        ..DeleteParams::default()
                    };
                    match self
                        .within("delete lease", &claim, self.leases.delete(&claim, &params))
                        .await?
                    {
                        // 404: gone already; 409: someone else cleared or replaced it.
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                        Err(e) => return Err(classify("delete lease", &claim, e)),
                    }
                }
            }
        }
        Err(ManagerError::Unavailable {
            backend: BACKEND.to_owned(),
            detail: format!(
                "claiming {name}: the claim changed {CLAIM_ATTEMPTS} times while it was being made"
            ),
        })
    }

    /// Deletes the pod `pod_name` under `preconditions`; already gone is success.
    async fn delete_pod(
        &self,
        subject: &str,
        pod_name: &str,
        preconditions: Preconditions,
    ) -> Result<(), ManagerError> {
        let params = DeleteParams {
            preconditions: Some(preconditions),
            ..DeleteParams::default()
        };
        match self
            .within("delete pod", subject, self.pods.delete(pod_name, &params))
            .await?
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(classify("delete pod", subject, e)),
        }
    }

    /// Removes a pod this call made and could not hand out; a failure is only logged (the
    /// pod is a zombie for any reaper after `orphan_grace`).
    async fn discard(&self, pod_name: &str, uid: &str) {
        let pre = Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        };
        if let Err(e) = self.delete_pod(pod_name, pod_name, pre).await {
            tracing::warn!(pod = pod_name, error = %e, "could not remove a pod made for a name that was taken");
        }
    }

    /// After a delete's precondition failed with `conflict`: success if the pod is gone or
    /// being removed all the same, else the conflict (it changed since the claim).
    async fn removed_already(
        &self,
        pod_name: &str,
        conflict: ManagerError,
    ) -> Result<(), ManagerError> {
        match self.get_pod(pod_name).await? {
            None => Ok(()),
            Some(pod) if self.read(&pod).removing => Ok(()),
            Some(_) => Err(conflict),
        }
    }

    /// A conditional merge patch of the pod behind `narrative`: 404, or a 409 on a pod that
    /// is now being removed, is `NotFound`; any other 409 is `Conflict`; both are named after
    /// the narrative.
    async fn patch(
        &self,
        call: &str,
        narrative: &Narrative,
        patch: serde_json::Value,
    ) -> Result<Pod, ManagerError> {
        let (pod_name, _) = wire::split_id(&narrative.id);
        let conflict = match self
            .request(
                call,
                narrative.name.as_str(),
                self.pods
                    .patch(pod_name, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await
        {
            Err(e @ ManagerError::Conflict { .. }) => e,
            other => return other,
        };
        // A pod that is gone or being removed has not changed under the caller: it vanished.
        match self.get_pod(pod_name).await? {
            Some(pod) if !self.read(&pod).removing => Err(conflict),
            _ => Err(ManagerError::NotFound {
                backend: BACKEND.to_owned(),
                name: narrative.name.to_string(),
            }),
        }
    }

    /// The version to compare with: the narrative's own, or, for one read without (never
    /// from this backend), the pod's as read now, if it still is that narrative.
    async fn version_of(&self, narrative: &Narrative) -> Result<String, ManagerError> {
        if let Some(v) = &narrative.version {
            return Ok(v.clone());
        }
        let gone = || ManagerError::NotFound {
            backend: BACKEND.to_owned(),
            name: narrative.name.to_string(),
        };
        let (pod_name, _) = wire::split_id(&narrative.id);
        let pod = self.get_pod(pod_name).await?.ok_or_else(gone)?;
        let seen = self.read(&pod);
        if seen.removing || seen.name.as_deref() != Some(narrative.name.as_str()) {
            return Err(gone());
        }
        pod.metadata.resource_version.ok_or_else(gone)
    }

    /// A narrative pod for `spec` as apiserver would take it, written nowhere: `verify`
    /// checks the namespace, RBAC and admission (PodSecurity) with it.
    async fn dry_run(&self) -> Result<(), ManagerError> {
        let session = SessionId::generate();
        let spec = SpawnSpec {
            name: self.naming.prespawn_container(&session),
            session,
            image: format!("{}verify", self.image_prefix),
            kind: NarrativeKind::Prespawned,
            labels: Default::default(),
            env: Default::default(),
            origin: None,
            owner: None,
        };
        let pod = wire::pod(&spec, &self.settings).map_err(|e| ManagerError::Rejected {
            backend: BACKEND.to_owned(),
            detail: format!("cannot build a narrative pod: {e}"),
        })?;
        let params = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        match self
            .within(
                "create pod (dry run)",
                spec.name.as_str(),
                self.pods.create(&params, &pod),
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(ManagerError::Rejected {
                backend: BACKEND.to_owned(),
                detail: format!(
                    "namespace {} does not exist: create it, or set kube_namespace ({})",
                    self.namespace, s.message
                ),
            }),
            Err(e) => Err(classify("create pod (dry run)", spec.name.as_str(), e)),
        }
    }
}

#[async_trait]
impl ContainerManager for KubeManager {
    async fn verify(&self) -> Result<BackendInfo, ManagerError> {
        let version = self
            .request(
                "version",
                "of the API server",
                self.client.apiserver_version(),
            )
            .await?;
        access::check(&self.client, &self.namespace, self.timeouts.request).await?;
        self.request(
            "list",
            "pods",
            self.pods.list(&ListParams::default().limit(1)),
        )
        .await?;
        self.dry_run().await?;
        Ok(BackendInfo {
            backend: BACKEND.to_owned(),
            location: format!(
                "{} namespace {} (Kubernetes {})",
                self.cluster_url, self.namespace, version.git_version
            ),
        })
    }

    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
        let seen = match self.naming.kind_of(name.as_str()) {
            Some(NarrativeKind::User) => match self.holder(name).await? {
                Holder::Live(seen) => *seen,
                Holder::Free | Holder::Stale(..) => return Ok(None),
            },
            Some(NarrativeKind::Prespawned) => {
                let Some(pod) = self.get_pod(name.as_str()).await? else {
                    return Ok(None);
                };
                let seen = self.read(&pod);
                if seen.removing || seen.name.as_deref() != Some(name.as_str()) {
                    return Ok(None);
                }
                seen
            }
            None => return Ok(None),
        };
        self.narrative(seen).map(Some)
    }

    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        let pods = self.list_all(&self.pods, "pods").await?;
        let leases = self.list_all(&self.leases, "leases").await?;
        let held = holders(&leases);
        Ok(pods
            .iter()
            .filter_map(|p| {
                let seen = self.read(p);
                if seen.removing {
                    return None;
                }
                let n = seen.narrative.ok()?;
                let claimed = n.kind == NarrativeKind::Prespawned
                    || held.get(&wire::claim_name(&n.name)) == Some(&seen.pod_name);
                claimed.then_some(n)
            })
            .collect())
    }

    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        let pod = wire::pod(spec, &self.settings).map_err(|e| ManagerError::Rejected {
            backend: BACKEND.to_owned(),
            detail: format!("cannot build the pod of {}: {e}", spec.name),
        })?;
        let created = self
            .request(
                "create pod",
                spec.name.as_str(),
                self.pods.create(&PostParams::default(), &pod),
            )
            .await?;
        let seen = self.read(&created);
        if spec.kind == NarrativeKind::User {
            if let Err(e) = self
                .claim(&spec.name, &seen.pod_name, &seen.uid, spec.owner.as_ref())
                .await
            {
                self.discard(&seen.pod_name, &seen.uid).await;
                return Err(e);
            }
        }
        tracing::info!(name = %spec.name, pod = %seen.pod_name, "created narrative pod");
        self.narrative(seen)
    }

    async fn assign(
        &self,
        narrative: &Narrative,
        assignment: &Assignment,
    ) -> Result<Narrative, ManagerError> {
        let gone = || ManagerError::NotFound {
            backend: BACKEND.to_owned(),
            name: narrative.name.to_string(),
        };
        if narrative.kind != NarrativeKind::Prespawned {
            return Err(gone());
        }
        let version = self.version_of(narrative).await?;
        let assigned = self
            .patch(
                "assign pod",
                narrative,
                wire::assign_patch(Some(&version), assignment),
            )
            .await?;
        let seen = self.read(&assigned);
        if let Err(e) = self
            .claim(
                &assignment.name,
                &seen.pod_name,
                &seen.uid,
                Some(&assignment.owner),
            )
            .await
        {
            // The name is someone else's (or the claim failed): the pod goes back to waiting.
            let back = wire::unassign_patch(
                assigned
                    .metadata
                    .resource_version
                    .as_deref()
                    .unwrap_or_default(),
                &narrative.name,
            );
            if let Err(undo) = self.patch("unassign pod", narrative, back).await {
                tracing::warn!(name = %narrative.name, error = %undo,
                    "could not give a waiting pod back after its assignment failed; removing it");
                self.discard(&seen.pod_name, &seen.uid).await;
            }
            return Err(e);
        }
        tracing::info!(from = %narrative.name, to = %assignment.name, pod = %seen.pod_name,
            "assigned a waiting narrative");
        self.narrative(seen)
    }

    async fn mark_connected(
        &self,
        narrative: &Narrative,
        origin: &Origin,
    ) -> Result<Narrative, ManagerError> {
        let version = self.version_of(narrative).await?;
        let pod = self
            .patch(
                "mark pod",
                narrative,
                wire::mark_patch(Some(&version), origin),
            )
            .await?;
        self.narrative(self.read(&pod))
    }

    async fn stamp_owner(
        &self,
        narrative: &Narrative,
        owner: &Owner,
    ) -> Result<Narrative, ManagerError> {
        match &narrative.owner {
            Some(o) if o == owner => return Ok(narrative.clone()),
            Some(_) => {
                return Err(ManagerError::OwnedByAnother {
                    backend: BACKEND.to_owned(),
                    name: narrative.name.to_string(),
                })
            }
            None => {}
        }
        let version = self.version_of(narrative).await?;
        let pod = self
            .patch(
                "stamp pod",
                narrative,
                wire::owner_patch(Some(&version), owner),
            )
            .await?;
        self.narrative(self.read(&pod))
    }

    async fn remove(&self, narrative: &Narrative) -> Result<(), ManagerError> {
        let (pod_name, uid) = wire::split_id(&narrative.id);
        let subject = narrative.name.as_str();
        let preconditions = match &narrative.version {
            Some(version) => {
                // Claim it first, so that no replica hands it out or marks it from now on,
                // and delete exactly the version this claim made.
                let claimed = match self
                    .patch(
                        "claim pod for removal",
                        narrative,
                        wire::removing_patch(version),
                    )
                    .await
                {
                    Ok(pod) => pod,
                    // Gone, or already being removed (by this call before, or another
                    // replica's reaper).
                    Err(ManagerError::NotFound { .. }) => return Ok(()),
                    Err(e) => return Err(e),
                };
                Preconditions {
                    uid: claimed.metadata.uid,
                    resource_version: claimed.metadata.resource_version,
                }
            }
            None => Preconditions {
                uid: uid.map(str::to_owned),
                resource_version: None,
            },
        };
        match self.delete_pod(subject, pod_name, preconditions).await {
            Ok(()) => {}
            Err(e @ ManagerError::Conflict { .. }) => {
                return self.removed_already(pod_name, e).await
            }
            Err(e) => return Err(e),
        }
        tracing::info!(name = %narrative.name, pod = pod_name, "removed narrative pod");
        Ok(())
    }

    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        let pods = self.list_all(&self.pods, "pods").await?;
        let leases = self.list_all(&self.leases, "leases").await?;
        let held = holders(&leases);
        let now = self.clock.now();
        let grace = chrono::Duration::from_std(self.orphan_grace).unwrap_or(chrono::Duration::MAX);
        Ok(pods
            .iter()
            .filter_map(|p| {
                let seen = self.read(p);
                let deleting = p.metadata.deletion_timestamp.is_some();
                let n = seen.narrative.ok()?;
                let since = n.origin.as_ref().map(|o| o.at).or(n.created)?;
                let orphan = n.kind == NarrativeKind::User
                    && held.get(&wire::claim_name(&n.name)) != Some(&seen.pod_name)
                    && now - since > grace;
                // Claimed by a reaper that did not get to delete it.
                let abandoned = seen.removing && !deleting;
                (!deleting && (seen.stopped || orphan || abandoned)).then_some(n)
            })
            .collect())
    }

    fn traefik_service(&self, narrative_name: &ServiceName) -> String {
        // traefiker's own HTTP provider names each narrative's service after it.
        narrative_name.to_string()
    }

    fn conditional(&self) -> bool {
        true
    }
}

/// Each claim's name and the pod it names.
fn holders(leases: &[Lease]) -> HashMap<String, String> {
    leases
        .iter()
        .filter_map(|l| Some((l.metadata.name.clone()?, wire::claim_holder(l)?.to_owned())))
        .collect()
}

/// The name templates must make DNS names (pod and lease names), and the image name carries
/// no tag.
fn check_settings(config: &KubeConfig) -> Result<(), KubeError> {
    let image = config.image_name.as_str();
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.is_empty() || last.contains(':') || last.contains('@') {
        return Err(KubeError::Config {
            setting: "image_name",
            reason: format!("{image:?} must be an image name without a tag, e.g. kbase/narrative"),
        });
    }
    for (setting, template) in [
        ("container_name", config.naming.user_template()),
        ("container_name_prespawn", config.naming.prespawn_template()),
    ] {
        let sample = template.as_str().replace("{}", "a0");
        let dns = sample.len() <= 63
            && sample
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
            && sample.starts_with(|c: char| c.is_ascii_alphanumeric())
            && sample.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !dns {
            return Err(KubeError::Config {
                setting,
                reason: format!(
                    "{:?} must make lowercase DNS names on Kubernetes (letters a-z, digits, '-', '.')",
                    template.as_str()
                ),
            });
        }
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// In a pod, its service account; elsewhere the kubeconfig. kube-rs's own `infer` tries the
/// kubeconfig first; a server in a pod should not be steered by a stray file in its image.
async fn infer() -> Result<kube::Config, KubeError> {
    let in_cluster = match kube::Config::incluster() {
        Ok(c) => return Ok(c),
        Err(e) => e.to_string(),
    };
    kube::Config::from_kubeconfig(&Default::default())
        .await
        .map_err(|e| KubeError::NoConfig {
            in_cluster,
            kubeconfig: e.to_string(),
        })
}

/// A client for `config` with traefiker's connect and read timeouts.
fn build(
    mut config: kube::Config,
    timeouts: &Timeouts,
) -> Result<(kube::Client, String), KubeError> {
    config.connect_timeout = Some(timeouts.connect);
    config.read_timeout = Some(timeouts.list.max(timeouts.request));
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| KubeError::Client(e.to_string()))?;
    Ok((client, url))
}
