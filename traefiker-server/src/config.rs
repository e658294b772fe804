//! Configuration (SPEC §8): every key by an environment variable of exactly its name (as the
//! Python deployment sets them), a TOML file, and flags; precedence flags > environment >
//! file > defaults.
//!
//! All sources are first read as raw strings per key, then every key is parsed and validated
//! once, so an operator gets one line per problem, each naming the key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnetwork::IpNetwork;
use traefiker_core::{Naming, Routing, RuleSyntax};
use traefiker_metrics::TraefikVersion;

/// One configuration key: its name (also its environment variable), default and meaning.
#[derive(Debug)]
pub struct Key {
    /// The key, e.g. `rancher_url`.
    pub name: &'static str,
    /// Its default as text; `None` when unset by default.
    pub default: Option<&'static str>,
    /// What it means, one line.
    pub doc: &'static str,
    /// Whether its value is a secret (masked when printed).
    pub secret: bool,
}

const fn key(name: &'static str, default: Option<&'static str>, doc: &'static str) -> Key {
    Key {
        name,
        default,
        doc,
        secret: false,
    }
}

/// Every key, in the order the documentation lists them.
pub const KEYS: &[Key] = &[
    key("hostname", Some("localhost"), "host names for the Traefik rule (comma-separated list)"),
    key("auth2", Some("https://ci.kbase.us/services/auth/api/V2/me"), "KBase auth2 token validation URL"),
    key("auth_tokens", None, "static tokens instead of auth2, `token:user[:role+role]` comma-separated or `@/path/file` (one per line); for demos and sites without auth2"),
    key("image_name", Some("kbase/narrative"), "narrative image, without tag"),
    key("image_tag", None, "fixed image tag; unset = the version from narrative_version_url"),
    key("narrative_version_url", Some("https://ci.kbase.us/narrative_version"), "JSON document whose `version` is the image tag"),
    key("session_cookie", Some("narrative_session"), "routing cookie name"),
    key("kbase_cookie", Some("kbase_session"), "auth token cookie name"),
    key("container_name", Some("narrative-{}"), "user container name template"),
    key("container_name_prespawn", Some("narrativepre-{}"), "prespawned container name template"),
    key("traefik_metrics", Some("http://traefik:8080/metrics"), "Traefik Prometheus endpoint"),
    key("rancher_url", None, "Rancher API, e.g. http://rancher:8080/v2-beta; set = Rancher backend"),
    key("rancher_user", None, "Rancher API access key"),
    Key { name: "rancher_password", default: None, doc: "Rancher API secret key (never logged)", secret: true },
    key("local_command", None, "run each narrative as a local process: the program and arguments (whitespace-separated, or a JSON/TOML array); `{port}`, `{name}` and `{name_file}` are filled in; used when rancher_url is unset"),
    key("backend", None, "`rancher`, `docker` or `local`; unset: rancher_url set = rancher, else local_command set = local, else docker (as the Python version chooses)"),
    key("docker_url", Some("unix://var/run/docker.sock"), "Docker engine of the docker backend: unix://<socket path>, or tcp://host:port of a socket proxy (docs/docker.md)"),
    key("dock_net", Some("narrative-traefiker_default"), "Docker network the docker backend starts narratives on, and Traefik reaches them on"),
    key("traefik_self_url", None, "where Traefik reaches traefiker, for the catch-all route of /traefik/dynamic; unset = http://127.0.0.1:<listen port>"),
    key("rancher_meta", Some("http://rancher-metadata/"), "rancher-metadata service"),
    key("rancher_env_url", None, "Rancher environment URL; learned from rancher-metadata if unset"),
    key("rancher_stack_id", None, "Rancher stack id; learned if unset"),
    key("rancher_stack_name", None, "Rancher stack name; learned if unset"),
    key("reaper_timeout_secs", Some("600"), "idle seconds before a narrative is reaped"),
    key("reaper_ipnetwork", Some("127.0.0.1/32"), "network (IPv4 or IPv6 CIDR) allowed to call /reaper/"),
    key("num_prespawn", Some("5"), "waiting containers to keep; 0 disables the pool"),
    key("status_role", Some("KBASE_ADMIN"), "auth2 custom role that sees every narrative in /narrative_status/"),
    key("sqlite_reaperdb_path", Some("/tmp/reaper.db"), "activity store (SQLite)"),
    key("log_level", Some("DEBUG"), "DEBUG, INFO, WARNING, ERROR, CRITICAL or 10/20/30/40/50"),
    key("COMMIT_SHA", Some("not available"), "reported by /narrative_status/"),
    key("listen", Some("0.0.0.0:5000"), "address the HTTP server binds"),
    key("reaper_interval_secs", Some("0"), "internal reaper period; 0 = only via /reaper/"),
    key("trusted_proxies", Some(""), "networks whose X-Forwarded-For is believed (comma-separated CIDRs)"),
    key("cookie_secure", Some("true"), "`Secure` flag on the session cookie"),
    key("traefik_rule_syntax", Some("v2"), "`v2` or `v3` rule syntax in labels and routes"),
    key("traefik_entrypoints", Some("web"), "entrypoints of narrative routers (comma-separated list)"),
    key("traefik_version", Some("auto"), "`v2`, `v3` or `auto` for reading metrics"),
    key("activity_sources", Some("traefik"), "comma-separated `traefik`, `narrative_status`"),
    key("narrative_status_path", Some("/narrative/api/status"), "path of a narrative's Jupyter status, for the narrative_status source"),
    key("auth_cache_secs", Some("60"), "how long a validated token is trusted"),
    key("connect_timeout_secs", Some("5"), "connect timeout of every outbound call"),
    key("auth2_timeout_secs", Some("20"), "whole-request timeout of auth2 calls"),
    key("rancher_timeout_secs", Some("20"), "whole-request timeout of Rancher calls"),
    key("version_timeout_secs", Some("20"), "whole-request timeout of narrative_version_url"),
    key("metrics_timeout_secs", Some("10"), "whole-request timeout of the Traefik metrics page"),
    key("status_timeout_secs", Some("10"), "whole-request timeout of each narrative's /api/status"),
];

/// Which sources tell the reaper who is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// Traefik's Prometheus metrics.
    Traefik,
    /// Each narrative's Jupyter `/api/status`.
    NarrativeStatus,
}

/// A value that must not be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `log_level` as the Python version accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// DEBUG, 10
    Debug,
    /// INFO, 20
    Info,
    /// WARNING, 30
    Warning,
    /// ERROR, 40
    Error,
    /// CRITICAL, 50
    Critical,
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "DEBUG" | "10" => Ok(Self::Debug),
            "INFO" | "20" => Ok(Self::Info),
            "WARNING" | "WARN" | "30" => Ok(Self::Warning),
            "ERROR" | "40" => Ok(Self::Error),
            "CRITICAL" | "50" => Ok(Self::Critical),
            _ => Err(format!(
                "{s:?} is not DEBUG, INFO, WARNING, ERROR, CRITICAL or 10..50"
            )),
        }
    }
}

impl LogLevel {
    /// The tracing filter directive for this level.
    pub fn directive(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warning => "warn",
            Self::Error | Self::Critical => "error",
        }
    }
}

/// Where containers run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Rancher 1.x, with what is known of the environment (the rest is discovered).
    Rancher {
        /// `rancher_url`
        url: String,
        /// `rancher_user`
        user: Option<String>,
        /// `rancher_password`
        password: Option<Secret>,
        /// `rancher_meta`
        meta: String,
        /// `rancher_env_url`
        env_url: Option<String>,
        /// `rancher_stack_id`
        stack_id: Option<String>,
        /// `rancher_stack_name`
        stack_name: Option<String>,
    },
    /// Local child processes running `command`.
    Local {
        /// `local_command`
        command: Vec<String>,
    },
    /// Containers on a Docker engine.
    Docker {
        /// `docker_url`
        url: String,
        /// `dock_net`
        network: String,
    },
}

/// Timeouts of outbound calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connect timeout of every call.
    pub connect: Duration,
    /// auth2 requests.
    pub auth2: Duration,
    /// Rancher requests.
    pub rancher: Duration,
    /// The version URL.
    pub version: Duration,
    /// The Traefik metrics page.
    pub metrics: Duration,
    /// Each narrative's `/api/status`.
    pub status: Duration,
}

/// A static token: who it authenticates, with which custom roles.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticToken {
    /// The token (a secret).
    pub token: Secret,
    /// The user it stands for.
    pub user: String,
    /// Its custom roles.
    pub roles: Vec<String>,
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticToken")
            .field("user", &self.user)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Host names, entrypoints and rule syntax of the Traefik rules.
    pub routing: Routing,
    /// Container name templates.
    pub naming: Naming,
    /// `auth2`
    pub auth2: String,
    /// `auth_tokens`, when set: used instead of auth2.
    pub static_tokens: Option<Vec<StaticToken>>,
    /// `image_name`
    pub image_name: String,
    /// `image_tag`
    pub image_tag: Option<String>,
    /// `narrative_version_url`
    pub narrative_version_url: String,
    /// `session_cookie`
    pub session_cookie: String,
    /// `kbase_cookie`
    pub kbase_cookie: String,
    /// `traefik_metrics`
    pub traefik_metrics: String,
    /// The backend.
    pub backend: Backend,
    /// `reaper_timeout_secs`
    pub reaper_timeout: Duration,
    /// `reaper_ipnetwork`
    pub reaper_network: IpNetwork,
    /// `num_prespawn`
    pub num_prespawn: usize,
    /// `status_role`
    pub status_role: String,
    /// `sqlite_reaperdb_path`
    pub sqlite_reaperdb_path: PathBuf,
    /// `log_level`
    pub log_level: LogLevel,
    /// `COMMIT_SHA`
    pub commit_sha: String,
    /// `NARRENV_*`, prefix stripped.
    pub narrative_env: BTreeMap<String, String>,
    /// `listen`
    pub listen: SocketAddr,
    /// `reaper_interval_secs`; zero = only on request.
    pub reaper_interval: Duration,
    /// `trusted_proxies`
    pub trusted_proxies: Vec<IpNetwork>,
    /// `cookie_secure`
    pub cookie_secure: bool,
    /// `traefik_version`
    pub traefik_version: TraefikVersion,
    /// `activity_sources`
    pub activity_sources: Vec<SourceKind>,
    /// `narrative_status_path`
    pub narrative_status_path: String,
    /// `auth_cache_secs`
    pub auth_cache: Duration,
    /// `traefik_self_url`, or derived from `listen`.
    pub traefik_self_url: String,
    /// Outbound timeouts.
    pub timeouts: Timeouts,
    raw: RawSettings,
}

/// The merged raw values, kept for `traefiker config`; `Debug` masks secrets like
/// [`Config::masked`].
#[derive(Clone)]
struct RawSettings(BTreeMap<String, String>);

impl fmt::Debug for RawSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawSettings(..)")
    }
}

/// Raw values by key, as each source gives them.
pub type Layer = BTreeMap<String, String>;

/// The defaults layer.
pub fn defaults() -> Layer {
    KEYS.iter()
        .filter_map(|k| k.default.map(|d| (k.name.to_owned(), d.to_owned())))
        .collect()
}

/// The environment layer: keys of exactly their name, plus every `NARRENV_*`.
pub fn from_env<I: IntoIterator<Item = (String, String)>>(vars: I) -> Layer {
    vars.into_iter()
        .filter(|(k, _)| k.starts_with("NARRENV_") || KEYS.iter().any(|key| key.name == k))
        .collect()
}

/// The file layer: a TOML table of keys (strings, numbers, booleans, or arrays for lists).
pub fn from_toml(path: &Path) -> Result<Layer, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("config file {}: {e}", path.display())])?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| vec![format!("config file {}: {e}", path.display())])?;
    let mut layer = Layer::new();
    let mut problems = Vec::new();
    for (k, v) in table {
        if !KEYS.iter().any(|key| key.name == k) && !k.starts_with("NARRENV_") {
            problems.push(format!("config file {}: unknown key {k:?}", path.display()));
            continue;
        }
        let text = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) if k == "local_command" => serde_json::Value::from(
                items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>(),
            )
            .to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => {
                problems.push(format!(
                    "{k}: unsupported value {other} in {}",
                    path.display()
                ));
                continue;
            }
        };
        layer.insert(k, text);
    }
    if problems.is_empty() {
        Ok(layer)
    } else {
        Err(problems)
    }
}

/// Parses `KEY=VALUE` flags into a layer.
pub fn from_flags(sets: &[String]) -> Result<Layer, Vec<String>> {
    let mut layer = Layer::new();
    let mut problems = Vec::new();
    for set in sets {
        match set.split_once('=') {
            Some((k, v)) if KEYS.iter().any(|key| key.name == k) || k.starts_with("NARRENV_") => {
                layer.insert(k.to_owned(), v.to_owned());
            }
            _ => problems.push(format!(
                "--set {set:?}: expected KEY=VALUE with a known key"
            )),
        }
    }
    if problems.is_empty() {
        Ok(layer)
    } else {
        Err(problems)
    }
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

struct Reader<'a> {
    raw: &'a BTreeMap<String, String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn opt(&self, key: &str) -> Option<String> {
        self.raw
            .get(key)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    fn string(&self, key: &str) -> String {
        self.opt(key).unwrap_or_default()
    }

    fn parse<T: FromStr>(&mut self, key: &str, fallback: T) -> T
    where
        T::Err: fmt::Display,
    {
        let text = self.string(key);
        match text.parse() {
            Ok(v) => v,
            Err(e) => {
                self.problems.push(format!("{key}: {e} (got {text:?})"));
                fallback
            }
        }
    }

    fn secs(&mut self, key: &str) -> Duration {
        Duration::from_secs(self.parse::<u64>(key, 0))
    }

    fn url(&mut self, key: &str) -> String {
        let text = self.string(key);
        if !(text.starts_with("http://") || text.starts_with("https://")) || text.len() < 8 {
            self.problems
                .push(format!("{key}: {text:?} is not an http:// or https:// URL"));
        }
        text
    }

    fn opt_url(&mut self, key: &str) -> Option<String> {
        self.opt(key)?;
        Some(self.url(key))
    }

    fn boolean(&mut self, key: &str) -> bool {
        match self.string(key).to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            other => {
                self.problems
                    .push(format!("{key}: {other:?} is not true or false"));
                true
            }
        }
    }
}

/// `backend`, or the one the other settings imply, as the Python version chose: Rancher when
/// `rancher_url` is set, else local processes when `local_command` is set, else Docker.
fn backend(r: &mut Reader<'_>) -> Backend {
    let chosen = r.opt("backend").map(|b| b.to_ascii_lowercase());
    let kind = match chosen.as_deref() {
        Some(kind @ ("rancher" | "docker" | "local")) => kind,
        Some(other) => {
            r.problems.push(format!(
                "backend: {other:?} is not rancher, docker or local"
            ));
            "docker"
        }
        None if r.opt("rancher_url").is_some() => "rancher",
        None if r.opt("local_command").is_some() => "local",
        None => "docker",
    };
    match kind {
        "rancher" => {
            let url = match r.opt_url("rancher_url") {
                Some(url) => url,
                None => {
                    r.problems
                        .push("rancher_url: the rancher backend needs it".to_owned());
                    String::new()
                }
            };
            Backend::Rancher {
                url,
                user: r.opt("rancher_user"),
                password: r.opt("rancher_password").map(Secret),
                meta: r.url("rancher_meta"),
                env_url: r.opt_url("rancher_env_url"),
                stack_id: r.opt("rancher_stack_id"),
                stack_name: r.opt("rancher_stack_name"),
            }
        }
        "local" => {
            let command = match r.opt("local_command").map(|t| parse_command(&t)) {
                Some(Ok(command)) => command,
                Some(Err(e)) => {
                    r.problems.push(format!("local_command: {e}"));
                    Vec::new()
                }
                None => {
                    r.problems
                        .push("local_command: the local backend needs it".to_owned());
                    Vec::new()
                }
            };
            Backend::Local { command }
        }
        _ => Backend::Docker {
            url: r.string("docker_url"),
            network: r.string("dock_net"),
        },
    }
}

impl Config {
    /// Merges `layers` (lowest precedence first) over the defaults and validates every key.
    /// The error lists one line per problem, each naming its key.
    pub fn from_layers(layers: &[Layer]) -> Result<Self, Vec<String>> {
        let mut raw = defaults();
        for layer in layers {
            raw.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut r = Reader {
            raw: &raw,
            problems: Vec::new(),
        };

        let syntax = r.parse("traefik_rule_syntax", RuleSyntax::V2);
        let routing = Routing::new(
            list(&r.string("hostname")),
            list(&r.string("traefik_entrypoints")),
            syntax,
        )
        .unwrap_or_else(|e| {
            r.problems.push(format!("{}: {}", e.what, e.reason));
            Routing::default()
        });
        let naming = Naming::new(
            &r.string("container_name"),
            &r.string("container_name_prespawn"),
        )
        .unwrap_or_else(|e| {
            r.problems.push(format!("container_name: {}", e.reason));
            Naming::default()
        });

        let static_tokens = match r.opt("auth_tokens") {
            None => None,
            Some(spec) => match parse_tokens(&spec) {
                Ok(tokens) => Some(tokens),
                Err(e) => {
                    r.problems.push(format!("auth_tokens: {e}"));
                    None
                }
            },
        };

        let backend = backend(&mut r);

        let mut sources = Vec::new();
        for s in list(&r.string("activity_sources")) {
            match s.as_str() {
                "traefik" => sources.push(SourceKind::Traefik),
                "narrative_status" => sources.push(SourceKind::NarrativeStatus),
                other => r.problems.push(format!(
                    "activity_sources: {other:?} is not traefik or narrative_status"
                )),
            }
        }
        if sources.is_empty() {
            r.problems
                .push("activity_sources: name at least one source".to_owned());
        }

        let mut trusted = Vec::new();
        for net in list(&r.string("trusted_proxies")) {
            match net.parse() {
                Ok(n) => trusted.push(n),
                Err(e) => r.problems.push(format!("trusted_proxies: {net:?}: {e}")),
            }
        }

        let status_path = r.string("narrative_status_path");
        if !status_path.starts_with('/') {
            r.problems
                .push("narrative_status_path: must start with '/'".to_owned());
        }
        let connect = r.secs("connect_timeout_secs");
        let timeouts = Timeouts {
            connect,
            auth2: r.secs("auth2_timeout_secs"),
            rancher: r.secs("rancher_timeout_secs"),
            version: r.secs("version_timeout_secs"),
            metrics: r.secs("metrics_timeout_secs"),
            status: r.secs("status_timeout_secs"),
        };
        for (key, t) in [
            ("connect_timeout_secs", timeouts.connect),
            ("auth2_timeout_secs", timeouts.auth2),
            ("rancher_timeout_secs", timeouts.rancher),
            ("version_timeout_secs", timeouts.version),
            ("metrics_timeout_secs", timeouts.metrics),
            ("status_timeout_secs", timeouts.status),
        ] {
            if t.is_zero() {
                r.problems.push(format!("{key}: must be at least 1"));
            }
        }
        for key in ["session_cookie", "kbase_cookie"] {
            let name = r.string(key);
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !ok {
                r.problems
                    .push(format!("{key}: {name:?} is not a cookie name"));
            }
        }

        let config = Config {
            routing,
            naming,
            auth2: r.url("auth2"),
            static_tokens,
            image_name: r.string("image_name"),
            image_tag: r.opt("image_tag"),
            narrative_version_url: r.url("narrative_version_url"),
            session_cookie: r.string("session_cookie"),
            kbase_cookie: r.string("kbase_cookie"),
            traefik_metrics: r.url("traefik_metrics"),
            backend,
            reaper_timeout: r.secs("reaper_timeout_secs"),
            reaper_network: r.parse(
                "reaper_ipnetwork",
                IpNetwork::from(std::net::IpAddr::from([127, 0, 0, 1])),
            ),
            num_prespawn: r.parse("num_prespawn", 0),
            status_role: r.string("status_role"),
            sqlite_reaperdb_path: PathBuf::from(r.string("sqlite_reaperdb_path")),
            log_level: r.parse("log_level", LogLevel::Debug),
            commit_sha: r.string("COMMIT_SHA"),
            narrative_env: traefiker_core::narrative::narrative_env(
                raw.iter().map(|(k, v)| (k.as_str(), v.clone())),
            ),
            listen: r.parse("listen", SocketAddr::from(([0, 0, 0, 0], 5000))),
            reaper_interval: r.secs("reaper_interval_secs"),
            trusted_proxies: trusted,
            cookie_secure: r.boolean("cookie_secure"),
            traefik_version: r.parse("traefik_version", TraefikVersion::Auto),
            activity_sources: sources,
            narrative_status_path: status_path,
            auth_cache: r.secs("auth_cache_secs"),
            traefik_self_url: String::new(),
            timeouts,
            raw: RawSettings(raw.clone()),
        };
        let mut config = config;
        config.traefik_self_url = match r.opt_url("traefik_self_url") {
            Some(url) => url,
            None => {
                let port = config.listen.port();
                let host = match config.listen.ip() {
                    ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                    ip => ip.to_string(),
                };
                format!("http://{host}:{port}")
            }
        };
        if config.image_name.is_empty() {
            r.problems.push("image_name: must not be empty".to_owned());
        }
        if r.problems.is_empty() {
            Ok(config)
        } else {
            Err(r.problems)
        }
    }

    /// The effective configuration as `key = value` lines, secrets masked.
    pub fn masked(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.raw.0 {
            let secret = KEYS.iter().any(|key| key.name == k && key.secret)
                || (k == "auth_tokens" && !v.starts_with('@'));
            let shown = if secret && !v.is_empty() {
                "***".to_owned()
            } else {
                v.clone()
            };
            out.push_str(&format!("{k} = {shown}\n"));
        }
        out
    }

    /// The image to start narratives from, if fixed by `image_tag`.
    pub fn fixed_image(&self) -> Option<String> {
        self.image_tag
            .as_ref()
            .map(|tag| format!("{}:{tag}", self.image_name))
    }
}

/// Parses `local_command`: a JSON array of strings, or whitespace-separated words.
pub fn parse_command(text: &str) -> Result<Vec<String>, String> {
    let words: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(|e| format!("not a JSON array of strings: {e}"))?
    } else {
        text.split_whitespace().map(str::to_owned).collect()
    };
    if words.is_empty() {
        return Err("names no program".to_owned());
    }
    Ok(words)
}

/// Parses `auth_tokens`: `token:user[:role+role]` entries, comma-separated, or `@file` with one
/// entry per line (`#` comments allowed).
pub fn parse_tokens(spec: &str) -> Result<Vec<StaticToken>, String> {
    let text = match spec.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read token file {path}: {e}"))?,
        None => spec.replace(',', "\n"),
    };
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let token = parts.next().unwrap_or_default().trim();
        let user = parts.next().unwrap_or_default().trim();
        if token.is_empty() || user.is_empty() {
            return Err(format!("entry {} is not token:user[:roles]", i + 1));
        }
        let roles = parts
            .next()
            .map(|r| {
                r.split('+')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        tokens.push(StaticToken {
            token: Secret(token.to_owned()),
            user: user.to_owned(),
            roles,
        });
    }
    if tokens.is_empty() {
        return Err("no tokens given".to_owned());
    }
    Ok(tokens)
}

/// The configuration reference (docs/configuration.md's table), generated from [`KEYS`].
pub fn reference_table() -> String {
    let mut out = String::from("| key | default | meaning |\n|---|---|---|\n");
    for k in KEYS {
        let default = match k.default {
            Some("") | None => "(unset)".to_owned(),
            Some(d) => format!("`{d}`"),
        };
        out.push_str(&format!("| `{}` | {default} | {} |\n", k.name, k.doc));
    }
    out.push_str("| `NARRENV_<NAME>` | — | passed to every narrative as `<NAME>` |\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn layer(pairs: &[(&str, &str)]) -> Layer {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_layers(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:5000");
        assert_eq!(c.num_prespawn, 5);
        assert_eq!(c.reaper_timeout, Duration::from_secs(600));
        assert_eq!(
            c.backend,
            Backend::Docker {
                url: "unix://var/run/docker.sock".into(),
                network: "narrative-traefiker_default".into(),
            },
            "neither rancher_url nor local_command: docker, as the Python version"
        );
        assert_eq!(c.session_cookie, "narrative_session");
        assert!(c.cookie_secure);
    }

    #[test]
    fn flags_beat_environment_beat_file() {
        let file = layer(&[("num_prespawn", "1"), ("hostname", "file.example")]);
        let env = layer(&[("num_prespawn", "2")]);
        let flags = layer(&[("num_prespawn", "3")]);
        let c = Config::from_layers(&[file.clone(), env.clone(), flags]).unwrap();
        assert_eq!(c.num_prespawn, 3);
        assert_eq!(c.routing.hosts(), ["file.example"]);
        assert_eq!(Config::from_layers(&[file, env]).unwrap().num_prespawn, 2);
    }

    #[test]
    fn the_environment_uses_exact_lowercase_names() {
        let env = from_env([
            ("HOSTNAME".to_owned(), "docker-set".to_owned()),
            ("hostname".to_owned(), "a.example,b.example".to_owned()),
            ("NARRENV_FOO".to_owned(), "bar".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ]);
        let c = Config::from_layers(&[env]).unwrap();
        assert_eq!(c.routing.hosts(), ["a.example", "b.example"]);
        assert_eq!(c.narrative_env.get("FOO").map(String::as_str), Some("bar"));
    }

    #[test]
    fn every_problem_is_one_line_naming_its_key() {
        let bad = layer(&[
            ("reaper_ipnetwork", "not-a-cidr"),
            ("num_prespawn", "-1"),
            ("container_name", "narrative"),
            ("rancher_url", "rancher:8080"),
            ("log_level", "LOUD"),
            ("activity_sources", "traefik,carrier_pigeon"),
        ]);
        let problems = Config::from_layers(&[bad]).unwrap_err();
        for key in [
            "reaper_ipnetwork",
            "num_prespawn",
            "container_name",
            "rancher_url",
            "log_level",
            "activity_sources",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(key)),
                "{key} missing from {problems:?}"
            );
        }
        assert_eq!(problems.len(), 6, "{problems:?}");
    }

    #[test]
    fn log_level_accepts_names_and_numbers() {
        for (text, level) in [
            ("DEBUG", LogLevel::Debug),
            ("20", LogLevel::Info),
            ("warning", LogLevel::Warning),
            ("50", LogLevel::Critical),
        ] {
            assert_eq!(text.parse::<LogLevel>().unwrap(), level);
        }
    }

    #[test]
    fn secrets_are_masked() {
        let c = Config::from_layers(&[layer(&[
            ("rancher_url", "http://rancher:8080/v2-beta"),
            ("rancher_user", "ACCESSKEY"),
            ("rancher_password", "SUPERSECRET"),
            ("auth_tokens", "tok123:alice"),
        ])])
        .unwrap();
        let shown = format!("{} {:?}", c.masked(), c);
        assert!(!shown.contains("SUPERSECRET"), "{shown}");
        assert!(!shown.contains("tok123"), "{shown}");
        assert!(shown.contains("rancher_password = ***"));
    }

    #[test]
    fn static_tokens_parse_with_roles() {
        let tokens = parse_tokens("t1:alice, t2:kbadmin:KBASE_ADMIN+KBASE_STAFF").unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[1].user, "kbadmin");
        assert_eq!(tokens[1].roles, ["KBASE_ADMIN", "KBASE_STAFF"]);
        assert!(parse_tokens("justatoken").is_err());
    }

    #[test]
    fn toml_files_and_flags_are_read() {
        let dir = std::env::temp_dir().join(format!("traefiker-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("traefiker.toml");
        std::fs::write(
            &path,
            "hostname = [\"a.example\", \"b.example\"]\nnum_prespawn = 2\ncookie_secure = false\n",
        )
        .unwrap();
        let file = from_toml(&path).unwrap();
        let flags = from_flags(&["num_prespawn=4".to_owned()]).unwrap();
        let c = Config::from_layers(&[file, flags]).unwrap();
        assert_eq!(c.routing.hosts(), ["a.example", "b.example"]);
        assert_eq!(c.num_prespawn, 4);
        assert!(!c.cookie_secure);
        std::fs::write(&path, "bogus_key = 1\n").unwrap();
        assert!(from_toml(&path).unwrap_err()[0].contains("bogus_key"));
        assert!(from_flags(&["nonsense".to_owned()]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_backend_is_chosen_or_implied() {
        let backend =
            |pairs: &[(&str, &str)]| Config::from_layers(&[layer(pairs)]).map(|c| c.backend);
        let rancher = ("rancher_url", "http://rancher:8080/v2-beta");
        let local = ("local_command", "narrative-standin --port {port}");
        assert!(matches!(
            backend(&[rancher, local]),
            Ok(Backend::Rancher { .. })
        ));
        assert!(matches!(backend(&[local]), Ok(Backend::Local { .. })));
        assert_eq!(
            backend(&[
                ("dock_net", "stack_net"),
                ("docker_url", "tcp://proxy:2375")
            ]),
            Ok(Backend::Docker {
                url: "tcp://proxy:2375".into(),
                network: "stack_net".into()
            })
        );
        assert!(
            matches!(
                backend(&[rancher, ("backend", "docker")]),
                Ok(Backend::Docker { .. })
            ),
            "backend wins over what rancher_url implies"
        );
        assert!(matches!(
            backend(&[("backend", "Local"), local]),
            Ok(Backend::Local { .. })
        ));
        for (pairs, key) in [
            (vec![("backend", "kubernetes")], "backend"),
            (vec![("backend", "rancher")], "rancher_url"),
            (vec![("backend", "local")], "local_command"),
        ] {
            let problems = backend(&pairs).unwrap_err();
            assert!(
                problems.len() == 1 && problems[0].starts_with(key),
                "{pairs:?}: {problems:?}"
            );
        }
    }

    #[test]
    fn docs_configuration_md_is_up_to_date() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            doc.contains(&reference_table()),
            "docs/configuration.md is stale: paste the output of `traefiker config --reference` into it"
        );
    }
}
