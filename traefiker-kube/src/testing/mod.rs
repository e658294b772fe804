//! A stateful fake of the Kubernetes API server (feature `testing`), for this crate's tests,
//! the server's and the simulation's: no API server can be installed where traefiker is
//! built, and what traefiker relies on is the server's concurrency rules, so the fake
//! enforces exactly those, from the real API's wire shapes:
//!
//! - one revision counter for every object (etcd's), so `metadata.resourceVersion` orders
//!   writes; a `PATCH`/`PUT` carrying a stale one is 409 `Conflict` and changes nothing;
//! - unique names per kind and namespace (409 `AlreadyExists`, a terminating pod's name
//!   included), `generateName`, name and label syntax (422 `Invalid`), creating into a
//!   namespace that does not exist (404);
//! - `DELETE` preconditions on `uid` and `resourceVersion` (409 `Conflict`), graceful pod
//!   deletion (see [`Termination`]), garbage collection by `ownerReferences` (see
//!   [`Collection`]) and the `Orphan` policy;
//! - label selectors, and paged lists whose later pages come from the first page's snapshot
//!   and revision (an unknown `continue` token is 410 `Expired`);
//! - RBAC: requests and `SelfSubjectAccessReview`s answered from one set of denials
//!   ([`FakeCluster::deny`]), with apiserver's 403 wording;
//! - a kubelet that starts pods (Running, Ready, a loopback pod IP) and lets them exit.
//!
//! Every failure is apiserver's `Status` object with its `code`, `reason` and `details`.
//! The fake is an in-process `tower::Service` handed to `kube::Client::new` ([`FakeCluster::
//! client`]): no sockets, so it also runs under tokio's paused time. Only `pods` and
//! `coordination.k8s.io` `leases` are served, and only JSON merge patches are applied.

mod selector;
mod status;
mod store;
mod validate;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use traefiker_core::{Clock, SystemClock};

use selector::Selector;
use status::ApiError;
use store::State;
pub use store::{Collection, Kind, Startup, Termination};

/// One request the fake answered: what a test asserts call counts and order on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The RBAC verb (`get`, `list`, `create`, `patch`, `update`, `delete`).
    pub verb: String,
    /// The resource (`pods`, `leases`, `selfsubjectaccessreviews`, `version`).
    pub resource: String,
    /// The object's name, for requests about one.
    pub name: Option<String>,
    /// The answer's HTTP status.
    pub status: u16,
}

/// The fake API server; clones share one state.
#[derive(Clone, Debug)]
pub struct FakeCluster {
    state: Arc<Mutex<State>>,
    calls: Arc<Mutex<Vec<Call>>>,
    latency: Arc<Mutex<Duration>>,
    namespace: String,
}

impl FakeCluster {
    /// A cluster with one namespace, `namespace`, the default of its clients.
    pub fn new(namespace: &str) -> Self {
        Self::with_clock(namespace, Arc::new(SystemClock))
    }

    /// [`Self::new`] whose timestamps come from `clock` (the simulation's).
    pub fn with_clock(namespace: &str, clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::new(namespace, clock))),
            calls: Arc::new(Mutex::new(Vec::new())),
            latency: Arc::new(Mutex::new(Duration::ZERO)),
            namespace: namespace.to_owned(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A `kube::Client` whose every request this fake answers, defaulting to its namespace.
    /// Call it inside a tokio runtime (kube buffers requests on a task of its own).
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), self.namespace.clone())
    }

    /// Adds a namespace.
    pub fn add_namespace(&self, namespace: &str) {
        self.state().namespaces.insert(namespace.to_owned());
    }

    /// RBAC refuses `verb` on `resource` (e.g. `pods`) in `namespace` (`"*"`: in all).
    pub fn deny(&self, namespace: &str, verb: &str, resource: &str) {
        self.state()
            .denied
            .insert((namespace.to_owned(), verb.to_owned(), resource.to_owned()));
    }

    /// Sets what the kubelet does with new pods.
    pub fn set_startup(&self, startup: Startup) {
        self.state().startup = startup;
    }

    /// Sets what the kubelet does with deleted pods.
    pub fn set_termination(&self, termination: Termination) {
        self.state().termination = termination;
    }

    /// Sets when the garbage collector runs.
    pub fn set_collection(&self, collection: Collection) {
        self.state().collection = collection;
    }

    /// Every answer waits this long first (on tokio's clock, so paused time skips it).
    pub fn set_latency(&self, latency: Duration) {
        *self.latency.lock().unwrap_or_else(|p| p.into_inner()) = latency;
    }

    /// The kubelet starts every pending pod.
    pub fn start_pods(&self) {
        self.state().start_pods();
    }

    /// The kubelet finishes every terminating pod.
    pub fn finish_terminations(&self) {
        self.state().finish_terminations();
    }

    /// The garbage collector runs once.
    pub fn collect_garbage(&self) {
        self.state().collect_garbage();
    }

    /// The pod `name`'s container exits with `code` (0: `Succeeded`, else `Failed`).
    pub fn exit_pod(&self, name: &str, code: i32) {
        if let Err(e) = self.state().exit_pod(&self.namespace, name, code) {
            panic!("exit_pod: {}", e.message);
        }
    }

    /// Creates `object` (JSON, as a client would send it) in the default namespace, as a
    /// `POST` would, RBAC aside: the pods of traefiker's own Deployment, say.
    pub fn create(&self, kind: Kind, object: Value) -> Result<Value, String> {
        self.state()
            .create(kind, &self.namespace, object, false)
            .map_err(|e| e.message)
    }

    /// Every stored object of `kind` in the default namespace, as JSON.
    pub fn objects(&self, kind: Kind) -> Vec<Value> {
        self.state().objects(kind, &self.namespace)
    }

    /// Every request answered so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets the requests answered so far.
    pub fn clear_calls(&self) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Answers one request (method, path with query, content type, body).
    fn answer(
        &self,
        method: &Method,
        path_and_query: &str,
        content_type: &str,
        body: &[u8],
    ) -> (StatusCode, Value) {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let route = Route::parse(path);
        let verb = route.verb(method, param("watch") == Some("true"));
        let (result, resource, name) = match &route {
            Route::Version => (
                Ok(
                    json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-traefiker-fake", "platform": "linux/amd64"}),
                ),
                "version".to_owned(),
                None,
            ),
            Route::AccessReview => (
                self.access_review(body),
                "selfsubjectaccessreviews".to_owned(),
                None,
            ),
            Route::Object {
                kind,
                namespace,
                name,
            } => (
                self.object(
                    &verb,
                    *kind,
                    namespace,
                    name.as_deref(),
                    content_type,
                    body,
                    &param,
                ),
                kind.plural().to_owned(),
                name.clone(),
            ),
            Route::Unknown => (Err(ApiError::no_route(path)), path.to_owned(), None),
        };
        let (status, value) = match result {
            Ok(v) => (StatusCode::OK, v),
            Err(e) => (
                StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                e.to_status(),
            ),
        };
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Call {
                verb,
                resource,
                name,
                status: status.as_u16(),
            });
        (status, value)
    }

    #[allow(clippy::too_many_arguments)]
    fn object<'p>(
        &self,
        verb: &str,
        kind: Kind,
        namespace: &str,
        name: Option<&str>,
        content_type: &str,
        body: &[u8],
        param: &impl Fn(&str) -> Option<&'p str>,
    ) -> Result<Value, ApiError> {
        let mut state = self.state();
        state.authorize(verb, kind, namespace, name)?;
        let json = || -> Result<Value, ApiError> {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))
        };
        match (verb, name) {
            ("list", None) => {
                let selector = Selector::parse(param("labelSelector").unwrap_or_default())
                    .map_err(|e| {
                        ApiError::bad_request(format!("unable to parse requirement: {e}"))
                    })?;
                let limit = match param("limit") {
                    Some(l) => Some(l.parse::<usize>().map_err(|_| {
                        ApiError::bad_request(format!("limit: invalid value {l:?}"))
                    })?),
                    None => None,
                };
                let cont = param("continue").filter(|c| !c.is_empty());
                state.list(kind, namespace, &selector, limit, cont)
            }
            ("create", None) => {
                let dry_run = param("dryRun") == Some("All");
                state.create(kind, namespace, json()?, dry_run)
            }
            ("get", Some(n)) => state.get(kind, namespace, n),
            ("patch", Some(n)) => {
                if !content_type.starts_with("application/merge-patch+json") {
                    return Err(ApiError::unsupported_media_type(content_type));
                }
                state.patch(kind, namespace, n, &json()?)
            }
            ("update", Some(n)) => state.replace(kind, namespace, n, json()?),
            ("delete", Some(n)) => {
                let options = if body.is_empty() { json!({}) } else { json()? };
                state.delete(kind, namespace, n, &options)
            }
            _ => Err(ApiError::method_not_allowed(verb, kind.plural())),
        }
    }

    /// `SelfSubjectAccessReview`: whether this client's user may do what the review asks,
    /// from the same denials every request meets.
    fn access_review(&self, body: &[u8]) -> Result<Value, ApiError> {
        let mut review: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
        let attrs = review
            .pointer("/spec/resourceAttributes")
            .cloned()
            .ok_or_else(|| ApiError::bad_request("spec.resourceAttributes is required"))?;
        let field = |k: &str| attrs.get(k).and_then(Value::as_str).unwrap_or_default();
        let kind = match (field("group"), field("resource")) {
            ("", "pods") => Some(Kind::Pod),
            ("coordination.k8s.io", "leases") => Some(Kind::Lease),
            _ => None,
        };
        let state = self.state();
        // RBAC grants nothing the fake does not serve.
        let allowed = kind.is_some_and(|k| state.allowed(field("verb"), k, field("namespace")));
        review["status"] = if allowed {
            json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding \"traefiker\""})
        } else {
            json!({"allowed": false})
        };
        review["kind"] = json!("SelfSubjectAccessReview");
        review["apiVersion"] = json!("authorization.k8s.io/v1");
        Ok(review)
    }
}

/// Which resource a path names.
#[derive(Debug)]
enum Route {
    Version,
    AccessReview,
    Object {
        kind: Kind,
        namespace: String,
        name: Option<String>,
    },
    Unknown,
}

impl Route {
    fn parse(path: &str) -> Self {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let object = |kind, ns: &str, name: Option<&&str>| Self::Object {
            kind,
            namespace: ns.to_owned(),
            name: name.map(|n| (*n).to_owned()),
        };
        match parts.as_slice() {
            ["version"] => Self::Version,
            ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"] => {
                Self::AccessReview
            }
            ["api", "v1", "namespaces", ns, "pods", rest @ ..] if rest.len() <= 1 => {
                object(Kind::Pod, ns, rest.first())
            }
            ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", rest @ ..]
                if rest.len() <= 1 =>
            {
                object(Kind::Lease, ns, rest.first())
            }
            _ => Self::Unknown,
        }
    }

    /// The RBAC verb of `method` on this route.
    fn verb(&self, method: &Method, watch: bool) -> String {
        let item = matches!(self, Self::Object { name: Some(_), .. });
        match *method {
            Method::GET if watch => "watch",
            Method::GET if item => "get",
            Method::GET => "list",
            Method::POST => "create",
            Method::PATCH => "patch",
            Method::PUT => "update",
            Method::DELETE if item => "delete",
            Method::DELETE => "deletecollection",
            _ => "unknown",
        }
        .to_owned()
    }
}

type Answer = Response<Full<Bytes>>;

impl tower::Service<Request<kube::client::Body>> for FakeCluster {
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let latency = *this.latency.lock().unwrap_or_else(|p| p.into_inner());
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return Ok(respond(
                        StatusCode::BAD_REQUEST,
                        &ApiError::bad_request(format!("unreadable body: {e}")).to_status(),
                    ))
                }
            };
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            let target = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| parts.uri.path().to_owned());
            let (status, value) = this.answer(&parts.method, &target, &content_type, &body);
            Ok(respond(status, &value))
        })
    }
}

fn respond(status: StatusCode, value: &Value) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The names of `objects` (JSON as [`FakeCluster::objects`] returns them).
pub fn names(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}
