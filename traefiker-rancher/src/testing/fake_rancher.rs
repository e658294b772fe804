//! A fake Rancher 1.x `v2-beta` API and rancher-metadata on one wiremock server, with real
//! semantics where traefiker depends on them: names unique per stack (422 `NotUnique`),
//! paginated top-level collections (`limit`/`marker`, `pagination.next`), removal that passes
//! through `removing`, 404 error bodies, basic auth (401), and queued faults and latency.
//!
//! It is no stricter than Rancher: renames and removals are unconditional (a PUT renames
//! whatever it names, whoever read it last), and a create or rename takes effect when the
//! request arrives, before any injected latency delays its answer, as Rancher commits before
//! it answers. So latency on creates and renames widens the window in which the change is
//! visible to everyone but its caller.
//!
//! rancher-metadata (version `2016-07-29`) answers `self/stack/environment_name`,
//! `self/stack/name`, `self/container/name` and `self/service/containers`, as text or, when
//! `Accept` asks for it, JSON (always labelled `text/plain`, as the real one does).
//!
//! Bodies follow the shapes of `tests/fixtures/` (trimmed), with links pointing at the fake.
//! World: project `Default` (`1a5`) and `Sandbox` (`1a9`); in `1a5` the stacks `narratives`
//! (`1st5`, where narratives live) and `tools` (`1st6`); services `traefik` (`1s21`) in
//! `narratives` and a started-once `mongo-init` (`1s40`) in `tools`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use traefiker_core::rules::SESSION_LABEL;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::config::{Credentials, RancherConfig, RetryPolicy};

/// The environment (project) id narratives live in.
pub const ENV_ID: &str = "1a5";
/// The stack id narratives live in.
pub const STACK_ID: &str = "1st5";
/// That stack's name.
pub const STACK_NAME: &str = "narratives";

const USER: &str = "FAKEACCESSKEY";
const PASSWORD: &str = "fake-secret-key";

/// How rancher-metadata lists the containers of a service with a JSON `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerForm {
    /// Names only, as metadata version `2015-07-25` answers.
    Names,
    /// Container objects with a `name`, as `2015-12-19` and later (so `2016-07-29`) answer.
    Objects,
}

/// The container name rancher-metadata gives by default: replica 1 of service `traefiker` in
/// stack `traefiker`.
pub const DEFAULT_REPLICA: &str = "traefiker-traefiker-1";

/// A failure the fake answers the next API request with (metadata requests are not affected).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// An error status with Rancher's error body.
    Status(u16),
    /// A 200 whose body is not JSON.
    Malformed,
    /// The normal answer, after this long.
    Delay(Duration),
}

/// One service as the fake stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeService {
    /// Rancher id, e.g. `1s37`.
    pub id: String,
    /// Service name.
    pub name: String,
    /// Stack id.
    pub stack_id: String,
    /// `active`, `removing`, `removed`, ...
    pub state: String,
    /// `healthy`, `started-once`, ...
    pub health_state: String,
    /// The description.
    pub description: Option<String>,
    /// Milliseconds since the epoch.
    pub created_ts: i64,
    /// The launch config as Rancher shows it.
    pub launch_config: Value,
}

#[derive(Debug)]
struct State {
    base: String,
    credentials: Option<(String, String)>,
    page_size: Option<usize>,
    next_id: u64,
    clock_ms: i64,
    services: BTreeMap<u64, FakeService>,
    faults: VecDeque<Fault>,
    latency: Duration,
    create_latency: Duration,
    put_latency: Duration,
    identity: Option<String>,
    peers: Option<Vec<String>>,
    peer_form: PeerForm,
    calls: Vec<String>,
}

/// A Rancher on a local port. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeRancher {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct Responder(Arc<Mutex<State>>);

impl FakeRancher {
    /// Starts the fake with its small world and basic auth required.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            base: server.uri(),
            credentials: Some((USER.into(), PASSWORD.into())),
            page_size: None,
            next_id: 100,
            clock_ms: 1_633_365_972_000,
            services: BTreeMap::new(),
            faults: VecDeque::new(),
            latency: Duration::ZERO,
            create_latency: Duration::ZERO,
            put_latency: Duration::ZERO,
            identity: Some(DEFAULT_REPLICA.into()),
            peers: Some(vec![DEFAULT_REPLICA.into()]),
            peer_form: PeerForm::Objects,
            calls: Vec::new(),
        }));
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder(state.clone()))
            .mount(&server)
            .await;
        let fake = Self { server, state };
        fake.insert(
            21,
            "traefik",
            STACK_ID,
            "docker:traefik:v2.4",
            None,
            "healthy",
        );
        fake.insert(
            40,
            "mongo-init",
            "1st6",
            "docker:mongo:3.6",
            None,
            "started-once",
        );
        fake
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `rancher_url`: `http://127.0.0.1:<port>/v2-beta`.
    pub fn url(&self) -> String {
        format!("{}/v2-beta", self.server.uri())
    }

    /// `rancher_meta`: `http://127.0.0.1:<port>/metadata/`.
    pub fn meta_url(&self) -> String {
        format!("{}/metadata/", self.server.uri())
    }

    /// `rancher_env_url` of the narratives' environment.
    pub fn env_url(&self) -> String {
        format!("{}/projects/{ENV_ID}", self.url())
    }

    /// The key pair the fake accepts.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(USER, PASSWORD)
    }

    /// A configuration for a manager over this fake, fully configured (no discovery needed),
    /// with short deadlines and quick retries.
    pub fn config(&self) -> RancherConfig {
        let mut config = RancherConfig::new(self.url())
            .with_credentials(self.credentials())
            .with_stack(self.env_url(), STACK_ID, STACK_NAME);
        config.meta_url = self.meta_url();
        config.timeouts.request = Duration::from_secs(5);
        config.timeouts.list = Duration::from_secs(10);
        config.retry = RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        };
        config
    }

    /// Top-level collections answer at most `n` items per page even when asked for more
    /// (`None`: honour `limit` up to Rancher's 3000).
    pub fn set_page_size(&self, n: Option<usize>) {
        self.state().page_size = n;
    }

    /// Every API answer is delayed by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Every create (`POST` of a service) is answered `latency` later, on top of
    /// [`FakeRancher::set_latency`]; the service exists from the moment the request arrives.
    pub fn set_create_latency(&self, latency: Duration) {
        self.state().create_latency = latency;
    }

    /// Every `PUT` of a service (renames and description updates) is answered `latency` later,
    /// on top of [`FakeRancher::set_latency`]; the change is visible from the moment the
    /// request arrives.
    pub fn set_put_latency(&self, latency: Duration) {
        self.state().put_latency = latency;
    }

    /// What rancher-metadata answers for `self/container/name` (`None`: 404, as outside
    /// Rancher). Default [`DEFAULT_REPLICA`]. One fake serves every process of a test alike, so
    /// tests with several replicas give each its `replica_id` instead.
    pub fn set_identity(&self, name: Option<&str>) {
        self.state().identity = name.map(str::to_owned);
    }

    /// The containers rancher-metadata lists for `self/service/containers` (`None`: 404).
    /// Default: [`DEFAULT_REPLICA`] alone.
    pub fn set_peers(&self, names: Option<&[&str]>) {
        self.state().peers = names.map(|n| n.iter().map(|s| (*s).to_owned()).collect());
    }

    /// Whether that list comes as names or as container objects (default objects).
    pub fn set_peer_form(&self, form: PeerForm) {
        self.state().peer_form = form;
    }

    /// The next API request gets `fault` (queued: several calls queue several).
    pub fn inject(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Every request so far, as `METHOD /path?query`.
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// Forgets the calls so far.
    pub fn reset_calls(&self) {
        self.state().calls.clear();
    }

    /// Every service, removed ones included.
    pub fn services(&self) -> Vec<FakeService> {
        self.state().services.values().cloned().collect()
    }

    /// Services in `removing` finish: they become `removed` (readable by id, not listed).
    pub fn finish_removals(&self) {
        for s in self.state().services.values_mut() {
            if s.state == "removing" {
                s.state = "removed".into();
            }
        }
    }

    /// Adds a narrative-shaped service and returns its id. `session` goes into the
    /// `session_id` label when given.
    pub fn add_service(
        &self,
        name: &str,
        image_uuid: &str,
        session: Option<&str>,
        health_state: &str,
    ) -> String {
        let id = {
            let mut st = self.state();
            st.next_id += 1;
            st.next_id
        };
        self.insert(id, name, STACK_ID, image_uuid, session, health_state)
    }

    /// Adds a service with a chosen numeric id and creation time (for duplicate-name tests).
    pub fn add_service_at(&self, id: u64, name: &str, session: &str, created_ts: i64) -> String {
        let id = self.insert(
            id,
            name,
            STACK_ID,
            "docker:kbase/narrative:5.4.3",
            Some(session),
            "healthy",
        );
        if let Some(s) = self.state().services.values_mut().find(|s| s.id == id) {
            s.created_ts = created_ts;
        }
        id
    }

    fn insert(
        &self,
        id: u64,
        name: &str,
        stack: &str,
        image_uuid: &str,
        session: Option<&str>,
        health_state: &str,
    ) -> String {
        let mut labels = json!({"io.rancher.container.pull_image": "always"});
        if let Some(s) = session {
            labels[SESSION_LABEL] = json!(s);
        }
        let mut st = self.state();
        st.clock_ms += 1000;
        let service = FakeService {
            id: format!("1s{id}"),
            name: name.into(),
            stack_id: stack.into(),
            state: "active".into(),
            health_state: health_state.into(),
            description: None,
            created_ts: st.clock_ms,
            launch_config: json!({"imageUuid": image_uuid, "kind": "container", "labels": labels,
                "ports": ["8888/tcp"], "version": "0"}),
        };
        let out = service.id.clone();
        st.services.insert(id, service);
        out
    }
}

fn error_body(status: u16, code: &str, field: Option<&str>) -> ResponseTemplate {
    let message = if code == "NotUnique" {
        Value::Null
    } else {
        json!(code)
    };
    let mut body = json!({"id": "f4a3e2d1-0000-4000-8000-000000000000", "type": "error",
        "links": {}, "actions": {}, "baseType": "error", "status": status, "code": code,
        "message": message, "detail": null});
    if let Some(f) = field {
        body["fieldName"] = json!(f);
    }
    ResponseTemplate::new(status).set_body_json(body)
}

fn status_code(status: u16) -> &'static str {
    match status {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        422 => "InvalidState",
        _ => "Internal Server Error",
    }
}

fn basic(user: &str, password: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

impl State {
    fn api(&self) -> String {
        format!("{}/v2-beta", self.base)
    }

    fn env(&self) -> String {
        format!("{}/projects/{ENV_ID}", self.api())
    }

    fn render(&self, s: &FakeService) -> Value {
        let this = format!("{}/services/{}", self.env(), s.id);
        let created = chrono::DateTime::from_timestamp_millis(s.created_ts)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        json!({
            "id": s.id, "type": "service",
            "links": {"self": this, "instances": format!("{this}/instances"),
                "stack": format!("{this}/stack")},
            "actions": {"remove": format!("{this}/?action=remove"),
                "update": format!("{this}/?action=update")},
            "baseType": "service", "name": s.name, "state": s.state,
            "accountId": ENV_ID, "created": created, "createdTS": s.created_ts,
            "description": s.description, "healthState": s.health_state,
            "kind": "service", "launchConfig": s.launch_config, "publicEndpoints": null,
            "removed": if s.state == "removed" { json!(created) } else { Value::Null },
            "scale": 1, "stackId": s.stack_id, "startOnCreate": true, "system": false,
            "transitioning": if s.state == "active" { "no" } else { "yes" },
            "uuid": format!("00000000-0000-4000-8000-{:012}", s.id.trim_start_matches("1s").parse::<u64>().unwrap_or(0)),
        })
    }

    /// A collection page of `items` for `request`, paginated with `limit`/`marker` like a
    /// top-level Rancher collection.
    fn page<T>(
        &self,
        request: &Request,
        items: &[T],
        render: impl Fn(&T) -> Value,
        resource: &str,
    ) -> ResponseTemplate {
        let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
        let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone());
        let mut limit = get("limit")
            .and_then(|l| l.parse::<i64>().ok())
            .unwrap_or(100);
        if limit <= 0 {
            limit = 3000;
        }
        let mut limit = (limit.min(3000)) as usize;
        if let Some(p) = self.page_size {
            limit = limit.min(p);
        }
        let offset = get("marker")
            .and_then(|m| m.strip_prefix('m').and_then(|n| n.parse::<usize>().ok()))
            .unwrap_or(0);
        // Render only the page: rendering everything per page made long listings quadratic.
        let data: Vec<Value> = items.iter().skip(offset).take(limit).map(render).collect();
        let partial = items.len() > offset + limit;
        let next = partial.then(|| {
            // wiremock's request URL says `localhost`: rebuild it on the fake's real address.
            let mut url = url::Url::parse(&format!("{}{}", self.base, request.url.path()))
                .expect("the fake's own address is a URL");
            let kept: Vec<(String, String)> = query
                .iter()
                .filter(|(k, _)| k != "marker")
                .cloned()
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(kept)
                .append_pair("marker", &format!("m{}", offset + limit));
            url.to_string()
        });
        let self_url = format!("{}{}", self.base, request.url.path());
        ResponseTemplate::new(200).set_body_json(json!({
            "type": "collection", "resourceType": resource,
            "links": {"self": self_url}, "createTypes": {}, "actions": {},
            "data": data,
            "pagination": {"first": null, "previous": null, "next": next, "limit": limit,
                "total": null, "partial": partial},
            "sort": null, "filters": {}, "createDefaults": {}
        }))
    }

    fn services_page(&self, request: &Request) -> ResponseTemplate {
        let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
        let items: Vec<&FakeService> = self
            .services
            .values()
            .filter(|s| s.state != "removed")
            .filter(|s| {
                query.iter().all(|(k, v)| match k.as_str() {
                    "name" => &s.name == v,
                    "stackId" => &s.stack_id == v,
                    "healthState" => &s.health_state == v,
                    _ => true,
                })
            })
            .collect();
        self.page(request, &items, |s| self.render(s), "service")
    }

    fn projects(&self) -> Vec<Value> {
        [("1a5", "Default"), ("1a9", "Sandbox")]
            .iter()
            .map(|(id, name)| {
                let this = format!("{}/projects/{id}", self.api());
                json!({"id": id, "type": "project", "links": {"self": this,
                    "stacks": format!("{this}/stacks"), "services": format!("{this}/services")},
                    "actions": {}, "baseType": "account", "name": name, "state": "active",
                    "kind": "project", "orchestration": "cattle", "removed": null})
            })
            .collect()
    }

    fn stacks(&self) -> Vec<Value> {
        [
            ("1st1", "healthcheck"),
            (STACK_ID, STACK_NAME),
            ("1st6", "tools"),
        ]
        .iter()
        .map(|(id, name)| {
            let this = format!("{}/stacks/{id}", self.env());
            json!({"id": id, "type": "stack", "links": {"self": this,
                    "services": format!("{this}/services")}, "actions": {},
                    "baseType": "stack", "name": name, "state": "active", "accountId": ENV_ID,
                    "kind": "stack", "removed": null})
        })
        .collect()
    }

    fn find_id(&self, id: &str) -> Option<u64> {
        self.services
            .iter()
            .find(|(_, s)| s.id == id)
            .map(|(k, _)| *k)
    }

    fn name_taken(&self, name: &str, stack: &str, except: Option<u64>) -> bool {
        self.services.iter().any(|(k, s)| {
            Some(*k) != except
                && s.stack_id == stack
                && s.state != "removed"
                && s.name.eq_ignore_ascii_case(name)
        })
    }

    fn create(&mut self, body: &Value) -> ResponseTemplate {
        let Some(name) = body.get("name").and_then(Value::as_str) else {
            return error_body(422, "MissingRequired", Some("name"));
        };
        let stack = body
            .get("stackId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if ![STACK_ID, "1st1", "1st6"].contains(&stack) {
            return error_body(422, "InvalidReference", Some("stackId"));
        }
        if self.name_taken(name, stack, None) {
            return error_body(422, "NotUnique", Some("name"));
        }
        self.next_id += 1;
        self.clock_ms += 1000;
        let mut launch_config = body.get("launchConfig").cloned().unwrap_or(json!({}));
        if let Some(lc) = launch_config.as_object_mut() {
            // Hidden from non-admin keys.
            lc.remove("restartPolicy");
            lc.insert("version".into(), json!("0"));
        }
        let service = FakeService {
            id: format!("1s{}", self.next_id),
            name: name.into(),
            stack_id: stack.into(),
            state: "active".into(),
            health_state: "healthy".into(),
            description: body
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            created_ts: self.clock_ms,
            launch_config,
        };
        let mut shown = self.render(&service);
        shown["state"] = json!("registering");
        shown["transitioning"] = json!("yes");
        self.services.insert(self.next_id, service);
        ResponseTemplate::new(201).set_body_json(shown)
    }

    fn one(&mut self, method: &str, id: &str, body: Option<Value>) -> ResponseTemplate {
        let Some(key) = self.find_id(id) else {
            return error_body(404, "Not Found", None);
        };
        match method {
            "GET" => ResponseTemplate::new(200).set_body_json(self.render(&self.services[&key])),
            "PUT" => {
                let body = body.unwrap_or(json!({}));
                let stack = self.services[&key].stack_id.clone();
                if let Some(name) = body.get("name").and_then(Value::as_str) {
                    if self.name_taken(name, &stack, Some(key)) {
                        return error_body(422, "NotUnique", Some("name"));
                    }
                }
                let Some(s) = self.services.get_mut(&key) else {
                    return error_body(404, "Not Found", None);
                };
                if let Some(name) = body.get("name").and_then(Value::as_str) {
                    s.name = name.into();
                }
                if let Some(d) = body.get("description").and_then(Value::as_str) {
                    s.description = Some(d.into());
                }
                let mut shown = self.render(&self.services[&key]);
                shown["state"] = json!("updating-active");
                ResponseTemplate::new(200).set_body_json(shown)
            }
            "DELETE" => {
                let Some(s) = self.services.get_mut(&key) else {
                    return error_body(404, "Not Found", None);
                };
                match s.state.as_str() {
                    // A remove process is already running.
                    "removing" => error_body(409, "Conflict", None),
                    "removed" => {
                        ResponseTemplate::new(200).set_body_json(self.render(&self.services[&key]))
                    }
                    _ => {
                        s.state = "removing".into();
                        ResponseTemplate::new(200).set_body_json(self.render(&self.services[&key]))
                    }
                }
            }
            _ => error_body(405, "MethodNotAllowed", None),
        }
    }

    fn route(&mut self, request: &Request) -> ResponseTemplate {
        let method = request.method.as_str().to_owned();
        let path = request.url.path().trim_end_matches('/').to_owned();
        let Some(rest) = path.strip_prefix("/v2-beta") else {
            return error_body(404, "Not Found", None);
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let env = ENV_ID;
        match (method.as_str(), segments.as_slice()) {
            ("GET", []) => ResponseTemplate::new(200).set_body_json(json!({
                "id": "v2-beta", "type": "apiVersion",
                "links": {"self": self.api(), "projects": format!("{}/projects", self.api()),
                    "services": format!("{}/services", self.api())},
                "actions": {}, "baseType": "apiVersion"})),
            ("GET", ["projects"]) => {
                let items = self.projects();
                self.page(request, &items, Value::clone, "project")
            }
            ("GET", ["projects", id]) => match self.projects().into_iter().find(|p| p["id"] == *id)
            {
                Some(p) => ResponseTemplate::new(200).set_body_json(p),
                None => error_body(404, "Not Found", None),
            },
            ("GET", ["projects", p, "stacks"]) if *p == env => {
                let items = self.stacks();
                self.page(request, &items, Value::clone, "stack")
            }
            ("GET", ["projects", p, "stacks", id]) if *p == env => {
                match self.stacks().into_iter().find(|s| s["id"] == *id) {
                    Some(s) => ResponseTemplate::new(200).set_body_json(s),
                    None => error_body(404, "Not Found", None),
                }
            }
            ("GET", ["projects", p, "services" | "service"]) if *p == env => {
                self.services_page(request)
            }
            ("POST", ["projects", p, "services" | "service"]) if *p == env => {
                match serde_json::from_slice::<Value>(&request.body) {
                    Ok(body) => self.create(&body),
                    Err(_) => error_body(400, "InvalidBodyContent", None),
                }
            }
            (m, ["projects", p, "services" | "service", id]) if *p == env => {
                let body = if request.body.is_empty() {
                    None
                } else {
                    match serde_json::from_slice::<Value>(&request.body) {
                        Ok(b) => Some(b),
                        Err(_) => return error_body(400, "InvalidBodyContent", None),
                    }
                };
                self.one(m, id, body)
            }
            _ => error_body(404, "Not Found", None),
        }
    }
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let query = request
            .url
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        st.calls
            .push(format!("{} {}{query}", request.method, request.url.path()));
        if let Some(key) = request
            .url
            .path()
            .strip_prefix("/metadata/2016-07-29/self/")
        {
            return st.metadata(key, request);
        }
        let delay = st.latency
            + match request.method.as_str() {
                "POST" => st.create_latency,
                "PUT" => st.put_latency,
                _ => Duration::ZERO,
            };
        let fault = st.faults.pop_front();
        let answer = match fault {
            Some(Fault::Status(status)) => error_body(status, status_code(status), None),
            Some(Fault::Malformed) => ResponseTemplate::new(200)
                .set_body_raw("<html>Rancher</html>", "application/json; charset=utf-8"),
            Some(Fault::Delay(d)) => st
                .authorized(request)
                .unwrap_or_else(|| st.route(request))
                .set_delay(d + delay),
            None => st.authorized(request).unwrap_or_else(|| st.route(request)),
        };
        if matches!(fault, Some(Fault::Delay(_))) {
            answer
        } else {
            answer.set_delay(delay)
        }
    }
}

impl State {
    /// rancher-metadata's answer for `self/<key>`: JSON when `Accept` asks for it, else text
    /// (a string as is, without a newline; a list as one index per line, `index=name` for
    /// objects with a name). Unknown keys are a 404 with metadata's own body.
    fn metadata(&self, key: &str, request: &Request) -> ResponseTemplate {
        let json = request
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
        let value = match key {
            "stack/environment_name" => Some(json!("Default")),
            "stack/name" => Some(json!(STACK_NAME)),
            "container/name" => self.identity.clone().map(Value::from),
            "service/containers" => self.peers.as_ref().map(|names| {
                names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| match self.peer_form {
                        PeerForm::Names => json!(name),
                        PeerForm::Objects => json!({"create_index": i + 1, "health_state": null,
                            "hostname": name, "ips": [format!("10.42.0.{}", i + 1)],
                            "labels": {"io.rancher.stack.name": "traefiker",
                                "io.rancher.stack_service.name": "traefiker/traefiker"},
                            "name": name, "primary_ip": format!("10.42.0.{}", i + 1),
                            "service_index": (i + 1).to_string(), "service_name": "traefiker",
                            "stack_name": "traefiker", "start_count": 1, "state": "running"}),
                    })
                    .collect::<Value>()
            }),
            _ => None,
        };
        let (status, body) = match (value, json) {
            (None, true) => (
                404,
                "{\"code\":404,\"message\":\"Not found\",\"type\":\"error\"}\n".to_owned(),
            ),
            (None, false) => (404, "Not found\n".to_owned()),
            (Some(v), true) => (200, v.to_string()),
            (Some(Value::String(s)), false) => (200, s),
            (Some(list), false) => (
                200,
                list.as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, item)| match item.get("name").and_then(Value::as_str) {
                        Some(name) => format!("{i}={name}\n"),
                        None => format!("{i}\n"),
                    })
                    .collect(),
            ),
        };
        ResponseTemplate::new(status).set_body_raw(body, "text/plain; charset=utf-8")
    }

    /// `Some(401)` unless the request carries the key pair.
    fn authorized(&self, request: &Request) -> Option<ResponseTemplate> {
        let (user, password) = self.credentials.as_ref()?;
        let sent = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        (sent != Some(basic(user, password).as_str())).then(|| {
            error_body(401, "Unauthorized", None).insert_header(
                "WWW-Authenticate",
                "Basic realm=\"Enter API access key and secret key as username and password\"",
            )
        })
    }
}
