//! What the fake API server holds and every rule it enforces on a write: one revision counter
//! for all objects (etcd's), `resourceVersion` preconditions, unique names, `generateName`,
//! graceful pod deletion, delete preconditions, garbage collection by `ownerReferences`,
//! consistent paged lists, and RBAC denials.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use traefiker_core::Clock;

use super::selector::Selector;
use super::status::ApiError;
use super::validate;

/// The kinds the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `v1` `pods`.
    Pod,
    /// `coordination.k8s.io/v1` `leases`.
    Lease,
}

impl Kind {
    /// The resource, as RBAC and URLs name it.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Pod => "pods",
            Self::Lease => "leases",
        }
    }

    /// The API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            Self::Pod => "",
            Self::Lease => "coordination.k8s.io",
        }
    }

    pub(crate) fn plural_with_group(self) -> String {
        match self.group() {
            "" => self.plural().to_owned(),
            g => format!("{}.{g}", self.plural()),
        }
    }

    pub(crate) fn kind(self) -> &'static str {
        match self {
            Self::Pod => "Pod",
            Self::Lease => "Lease",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Self::Pod => "v1",
            Self::Lease => "coordination.k8s.io/v1",
        }
    }

    /// Whether deleting it sets `deletionTimestamp` and leaves it to a kubelet to finish.
    fn graceful(self) -> bool {
        matches!(self, Self::Pod)
    }
}

/// What the fake kubelet does with a new pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Startup {
    /// Running and Ready, with a pod IP, as soon as it is created.
    Immediate,
    /// Pending until [`super::FakeCluster::start_pods`].
    Manual,
}

/// What the fake kubelet does with a deleted pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// Gone at once (an unscheduled pod, or a kubelet faster than anyone looks).
    Immediate,
    /// Terminating (listed with `deletionTimestamp`, its name still taken) until
    /// [`super::FakeCluster::finish_terminations`].
    Lingering,
}

/// When the garbage collector removes the dependents of a removed owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collection {
    /// In the same step as the owner's removal.
    Immediate,
    /// Only at [`super::FakeCluster::collect_garbage`]: the real collector is asynchronous.
    Deferred,
}

type Key = (Kind, String, String);

/// The pages of one list, kept for its `continue` token.
#[derive(Debug)]
struct Pages {
    items: Vec<Value>,
    revision: u64,
}

/// Everything the fake holds.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) namespaces: BTreeSet<String>,
    objects: BTreeMap<Key, Value>,
    revision: u64,
    serial: u64,
    pages: HashMap<String, Pages>,
    pub(crate) startup: Startup,
    pub(crate) termination: Termination,
    pub(crate) collection: Collection,
    /// `(namespace or "*", verb, resource)` that RBAC refuses.
    pub(crate) denied: BTreeSet<(String, String, String)>,
    pub(crate) user: String,
    pub(crate) clock: Arc<dyn Clock>,
}

/// Characters apiserver's `generateName` appends (no vowels, no look-alikes).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl State {
    pub(crate) fn new(namespace: &str, clock: Arc<dyn Clock>) -> Self {
        Self {
            namespaces: BTreeSet::from([namespace.to_owned()]),
            objects: BTreeMap::new(),
            revision: 1,
            serial: 0,
            pages: HashMap::new(),
            startup: Startup::Immediate,
            termination: Termination::Immediate,
            collection: Collection::Immediate,
            denied: BTreeSet::new(),
            user: format!("system:serviceaccount:{namespace}:traefiker"),
            clock,
        }
    }

    fn now(&self) -> String {
        stamp(self.clock.now())
    }

    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// RBAC: whether `verb` on `kind` in `namespace` is allowed.
    pub(crate) fn allowed(&self, verb: &str, kind: Kind, namespace: &str) -> bool {
        let resource = kind.plural().to_owned();
        !self
            .denied
            .contains(&(namespace.to_owned(), verb.to_owned(), resource.clone()))
            && !self
                .denied
                .contains(&("*".to_owned(), verb.to_owned(), resource))
    }

    /// RBAC as a request meets it.
    pub(crate) fn authorize(
        &self,
        verb: &str,
        kind: Kind,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<(), ApiError> {
        if self.allowed(verb, kind, namespace) {
            Ok(())
        } else {
            Err(ApiError::forbidden(&self.user, verb, kind, namespace, name))
        }
    }

    pub(crate) fn get(&self, kind: Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&(kind, ns.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))
    }

    /// `POST` of a new object: a name or `generateName`, unique names, valid labels and
    /// owner references; `dry_run` checks all of it and stores nothing.
    pub(crate) fn create(
        &mut self,
        kind: Kind,
        ns: &str,
        mut body: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("the body is not a JSON object"));
        }
        let meta = body
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(body_ns) = meta.get("namespace").and_then(Value::as_str) {
            if body_ns != ns {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body_ns}) does not match the \
                     namespace sent on the request ({ns})"
                )));
            }
        }
        if !self.namespaces.contains(ns) {
            return Err(ApiError::namespace_not_found(ns));
        }
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => self.generate_name(kind, ns, prefix),
                _ => {
                    return Err(ApiError::invalid(
                        kind,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ))
                }
            },
        };
        validate::dns_subdomain(&name)
            .map_err(|e| ApiError::invalid(kind, &name, "metadata.name", &e))?;
        if self
            .objects
            .contains_key(&(kind, ns.to_owned(), name.clone()))
        {
            return Err(ApiError::already_exists(kind, &name));
        }
        validate_object(kind, &name, &body)?;
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.next_serial());
        let now = self.now();
        {
            let m = metadata_mut(&mut body);
            m.insert("name".into(), json!(name));
            m.insert("namespace".into(), json!(ns));
            m.insert("uid".into(), json!(uid));
            m.insert("creationTimestamp".into(), json!(now));
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
        }
        body["kind"] = json!(kind.kind());
        body["apiVersion"] = json!(kind.api_version());
        if kind == Kind::Pod {
            default_pod(&mut body);
        }
        if dry_run {
            return Ok(body);
        }
        metadata_mut(&mut body).insert("resourceVersion".into(), json!(self.next_revision()));
        if kind == Kind::Pod && self.startup == Startup::Immediate {
            let serial = self.serial;
            run_pod(&mut body, serial);
        }
        self.objects
            .insert((kind, ns.to_owned(), name), body.clone());
        if self.collection == Collection::Immediate {
            self.collect_garbage();
        }
        Ok(body)
    }

    fn generate_name(&mut self, kind: Kind, ns: &str, prefix: &str) -> String {
        // apiserver cuts the prefix so that the name fits 63 characters with its suffix.
        let base: String = prefix.chars().take(58).collect();
        loop {
            let mut n = self.next_serial().wrapping_mul(2_654_435_761);
            let suffix: String = (0..5)
                .map(|_| {
                    let c = NAME_ALPHABET[(n % NAME_ALPHABET.len() as u64) as usize];
                    n /= NAME_ALPHABET.len() as u64;
                    c as char
                })
                .collect();
            let name = format!("{base}{suffix}");
            if !self
                .objects
                .contains_key(&(kind, ns.to_owned(), name.clone()))
            {
                return name;
            }
        }
    }

    /// `GET` of a collection: filtered by `selector`, `limit` items a page, later pages from
    /// the snapshot the first one was cut from (as etcd serves them), all at its revision.
    pub(crate) fn list(
        &mut self,
        kind: Kind,
        ns: &str,
        selector: &Selector,
        limit: Option<usize>,
        cont: Option<&str>,
    ) -> Result<Value, ApiError> {
        let (mut items, revision) = match cont {
            Some(token) => {
                let pages = self.pages.remove(token).ok_or_else(ApiError::expired)?;
                (pages.items, pages.revision)
            }
            None => (
                self.objects
                    .iter()
                    .filter(|((k, n, _), v)| {
                        *k == kind
                            && n == ns
                            && selector
                                .matches(v.pointer("/metadata/labels").and_then(Value::as_object))
                    })
                    .map(|(_, v)| v.clone())
                    .collect(),
                self.revision,
            ),
        };
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if let Some(limit) = limit.filter(|l| *l > 0 && *l < items.len()) {
            let rest = items.split_off(limit);
            let token = format!("fake-continue-{}", self.next_serial());
            metadata["continue"] = json!(token);
            metadata["remainingItemCount"] = json!(rest.len());
            self.pages.insert(
                token,
                Pages {
                    items: rest,
                    revision,
                },
            );
        }
        Ok(json!({
            "kind": format!("{}List", kind.kind()),
            "apiVersion": kind.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }

    /// `PATCH` with a JSON merge patch (RFC 7386). A `metadata.resourceVersion` in the patch
    /// is a precondition: a stale one is 409 Conflict and nothing changes. Identity fields
    /// and a pod's spec cannot change; `status` is not changed through the main resource.
    pub(crate) fn patch(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        let current = self.get(kind, ns, name)?;
        if !patch.is_object() {
            return Err(ApiError::bad_request("the patch is not a JSON object"));
        }
        let mut next = current.clone();
        merge(&mut next, patch);
        let wanted = next.pointer("/metadata/resourceVersion").cloned();
        if wanted != current.pointer("/metadata/resourceVersion").cloned() {
            return Err(ApiError::modified(kind, name));
        }
        self.store_update(kind, ns, name, &current, next)
    }

    /// `PUT`: the whole object; a `metadata.resourceVersion` in it must be current (pods and
    /// leases allow an unconditional update without one).
    pub(crate) fn replace(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        let current = self.get(kind, ns, name)?;
        if !body.is_object() {
            return Err(ApiError::bad_request("the body is not a JSON object"));
        }
        match body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            Some(rv)
                if Some(rv)
                    != current
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str) =>
            {
                return Err(ApiError::modified(kind, name));
            }
            Some(_) => {}
            None => {
                let rv = current["metadata"]["resourceVersion"].clone();
                metadata_mut(&mut body).insert("resourceVersion".into(), rv);
            }
        }
        self.store_update(kind, ns, name, &current, body)
    }

    fn store_update(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        current: &Value,
        mut next: Value,
    ) -> Result<Value, ApiError> {
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
        ] {
            if next["metadata"].get(field) != current["metadata"].get(field) {
                return Err(ApiError::invalid(
                    kind,
                    name,
                    &format!("metadata.{field}"),
                    "Invalid value: field is immutable",
                ));
            }
        }
        if kind == Kind::Pod && next.get("spec") != current.get("spec") {
            return Err(ApiError::invalid(
                kind,
                name,
                "spec",
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, \
                 `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, \
                 `spec.tolerations` (only additions to existing tolerations), \
                 `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            ));
        }
        if let Some(status) = current.get("status") {
            next["status"] = status.clone();
        }
        validate_object(kind, name, &next)?;
        next["kind"] = json!(kind.kind());
        next["apiVersion"] = json!(kind.api_version());
        if next == *current {
            // apiserver writes nothing (and keeps the version) for a no-op update.
            return Ok(next);
        }
        metadata_mut(&mut next).insert("resourceVersion".into(), json!(self.next_revision()));
        self.objects
            .insert((kind, ns.to_owned(), name.to_owned()), next.clone());
        Ok(next)
    }

    /// `DELETE` with `DeleteOptions`: preconditions on `uid` and `resourceVersion` (409 when
    /// they do not hold), a grace period for pods (left Terminating, see [`Termination`]),
    /// and the propagation policy for dependents (`Orphan` strips their owner references,
    /// anything else lets the collector remove them).
    pub(crate) fn delete(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        options: &Value,
    ) -> Result<Value, ApiError> {
        let current = self.get(kind, ns, name)?;
        let pre = options.get("preconditions");
        let meta = &current["metadata"];
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(want) = pre.and_then(|p| p.get(field)).and_then(Value::as_str) {
                let have = meta.get(field).and_then(Value::as_str).unwrap_or_default();
                if want != have {
                    return Err(ApiError::precondition_failed(
                        kind,
                        name,
                        &format!("{label} in precondition: {want}, {label} in object meta: {have}"),
                    ));
                }
            }
        }
        let policy = options
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                options
                    .get("orphanDependents")
                    .and_then(Value::as_bool)
                    .map(|o| if o { "Orphan" } else { "Background" }.to_owned())
            });
        if let Some(p) = &policy {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::invalid(
                    kind,
                    name,
                    "propagationPolicy",
                    &format!("Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""),
                ));
            }
        }
        let uid = meta["uid"].as_str().unwrap_or_default().to_owned();
        if policy.as_deref() == Some("Orphan") {
            self.orphan_dependents(&uid);
        }
        let key = (kind, ns.to_owned(), name.to_owned());
        if kind.graceful() {
            let grace = options
                .get("gracePeriodSeconds")
                .and_then(Value::as_i64)
                .or_else(|| {
                    current
                        .pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_i64)
                })
                .unwrap_or(30);
            if self.termination == Termination::Immediate || grace == 0 {
                let mut gone = current.clone();
                mark_terminating(&mut gone, &self.now(), grace);
                self.objects.remove(&key);
                if self.collection == Collection::Immediate {
                    self.collect_garbage();
                }
                return Ok(gone);
            }
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(current);
            }
            let mut next = current.clone();
            mark_terminating(&mut next, &self.now(), grace);
            metadata_mut(&mut next).insert("resourceVersion".into(), json!(self.next_revision()));
            self.objects.insert(key, next.clone());
            return Ok(next);
        }
        self.objects.remove(&key);
        if self.collection == Collection::Immediate {
            self.collect_garbage();
        }
        Ok(json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "group": kind.group(), "kind": kind.plural(), "uid": uid},
        }))
    }

    fn orphan_dependents(&mut self, owner_uid: &str) {
        for object in self.objects.values_mut() {
            if let Some(refs) = object
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
            }
        }
    }

    /// The garbage collector: removes (recursively) every object that has owner references
    /// of which none names a live object in its namespace.
    pub(crate) fn collect_garbage(&mut self) {
        loop {
            let live: BTreeSet<(String, String)> = self
                .objects
                .iter()
                .filter_map(|((_, ns, _), v)| {
                    Some((ns.clone(), v["metadata"]["uid"].as_str()?.to_owned()))
                })
                .collect();
            let orphaned: Vec<Key> = self
                .objects
                .iter()
                .filter(|((_, ns, _), v)| {
                    v.pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|refs| {
                            !refs.is_empty()
                                && refs.iter().all(|r| {
                                    let uid =
                                        r.get("uid").and_then(Value::as_str).unwrap_or_default();
                                    !live.contains(&(ns.clone(), uid.to_owned()))
                                })
                        })
                })
                .map(|(k, _)| k.clone())
                .collect();
            if orphaned.is_empty() {
                return;
            }
            for key in orphaned {
                self.objects.remove(&key);
            }
        }
    }

    /// The kubelet finishes every terminating pod: it is removed, and its dependents with it.
    pub(crate) fn finish_terminations(&mut self) {
        self.objects.retain(|(k, _, _), v| {
            *k != Kind::Pod || v.pointer("/metadata/deletionTimestamp").is_none()
        });
        if self.collection == Collection::Immediate {
            self.collect_garbage();
        }
    }

    /// The kubelet starts every pending pod that is not being deleted.
    pub(crate) fn start_pods(&mut self) {
        let pending: Vec<Key> = self
            .objects
            .iter()
            .filter(|((k, _, _), v)| {
                *k == Kind::Pod
                    && v.pointer("/status/phase").and_then(Value::as_str) == Some("Pending")
                    && v.pointer("/metadata/deletionTimestamp").is_none()
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in pending {
            let serial = self.next_serial();
            let rv = self.next_revision();
            if let Some(pod) = self.objects.get_mut(&key) {
                run_pod(pod, serial);
                metadata_mut(pod).insert("resourceVersion".into(), json!(rv));
            }
        }
    }

    /// The pod's container exits: phase `Failed` (`code` ≠ 0) or `Succeeded`.
    pub(crate) fn exit_pod(&mut self, ns: &str, name: &str, code: i32) -> Result<(), ApiError> {
        let rv = self.next_revision();
        let pod = self
            .objects
            .get_mut(&(Kind::Pod, ns.to_owned(), name.to_owned()))
            .ok_or_else(|| ApiError::not_found(Kind::Pod, name))?;
        pod["status"]["phase"] = json!(if code == 0 { "Succeeded" } else { "Failed" });
        pod["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
        metadata_mut(pod).insert("resourceVersion".into(), json!(rv));
        Ok(())
    }

    /// Every stored object of `kind` in `ns`, by name.
    pub(crate) fn objects(&self, kind: Kind, ns: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((k, n, _), _)| *k == kind && n == ns)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// RFC 3339 at whole seconds, as Kubernetes writes `metav1.Time`.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    match object["metadata"].as_object_mut() {
        Some(m) => m,
        None => unreachable!("metadata was made an object above"),
    }
}

fn mark_terminating(pod: &mut Value, now: &str, grace: i64) {
    let m = metadata_mut(pod);
    m.insert("deletionTimestamp".into(), json!(now));
    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
}

/// What apiserver fills in on a new pod.
fn default_pod(pod: &mut Value) {
    if pod.pointer("/spec/terminationGracePeriodSeconds").is_none() {
        pod["spec"]["terminationGracePeriodSeconds"] = json!(30);
    }
    if pod.pointer("/spec/restartPolicy").is_none() {
        pod["spec"]["restartPolicy"] = json!("Always");
    }
    pod["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
}

/// The kubelet has the pod running and ready, at an address of its own. Loopback
/// addresses: nothing may ever send traffic to a fake pod anywhere else.
fn run_pod(pod: &mut Value, serial: u64) {
    let ip = format!("127.42.{}.{}", (serial / 250) % 250, serial % 250 + 1);
    pod["status"] = json!({
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "qosClass": "BestEffort",
    });
}

/// The checks apiserver's validation makes that a traefiker write could trip.
fn validate_object(kind: Kind, name: &str, object: &Value) -> Result<(), ApiError> {
    let invalid = |field: &str, why: String| ApiError::invalid(kind, name, field, &why);
    let meta = &object["metadata"];
    if let Some(labels) = meta.get("labels").filter(|l| !l.is_null()) {
        let labels = labels
            .as_object()
            .ok_or_else(|| invalid("metadata.labels", "must be a map".into()))?;
        for (k, v) in labels {
            validate::label_key(k)
                .map_err(|e| invalid("metadata.labels", format!("Invalid value: {k:?}: {e}")))?;
            let v = v.as_str().ok_or_else(|| {
                invalid(
                    "metadata.labels",
                    format!("Invalid value: {k}: must be a string"),
                )
            })?;
            validate::label_value(v)
                .map_err(|e| invalid("metadata.labels", format!("Invalid value: {v:?}: {e}")))?;
        }
    }
    if let Some(annotations) = meta.get("annotations").filter(|a| !a.is_null()) {
        let annotations = annotations
            .as_object()
            .ok_or_else(|| invalid("metadata.annotations", "must be a map".into()))?;
        for (k, v) in annotations {
            validate::label_key(k).map_err(|e| {
                invalid("metadata.annotations", format!("Invalid value: {k:?}: {e}"))
            })?;
            if !v.is_string() {
                return Err(invalid(
                    "metadata.annotations",
                    format!("Invalid value: {k}: must be a string"),
                ));
            }
        }
    }
    if let Some(refs) = meta.get("ownerReferences").filter(|r| !r.is_null()) {
        let refs = refs
            .as_array()
            .ok_or_else(|| invalid("metadata.ownerReferences", "must be a list".into()))?;
        for r in refs {
            for field in ["apiVersion", "kind", "name", "uid"] {
                if r.get(field)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(invalid(
                        &format!("metadata.ownerReferences.{field}"),
                        "Required value".into(),
                    ));
                }
            }
        }
    }
    if kind == Kind::Pod {
        let containers = object
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| invalid("spec.containers", "Required value".into()))?;
        for c in containers {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
            validate::dns_label(cname).map_err(|e| {
                invalid(
                    "spec.containers[0].name",
                    format!("Invalid value: {cname:?}: {e}"),
                )
            })?;
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(invalid("spec.containers[0].image", "Required value".into()));
            }
        }
    }
    Ok(())
}

/// Applies a JSON merge patch (RFC 7386): objects merge key by key, `null` removes a key,
/// anything else replaces.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}
