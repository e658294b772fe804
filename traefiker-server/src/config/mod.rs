//! Configuration (SPEC §8): every key by an environment variable of exactly its name (as the
//! Python deployment sets them), a TOML file, and flags; precedence flags > environment >
//! file > defaults.
//!
//! All sources are first read as raw strings per key, then every key is parsed and validated
//! once, so an operator gets one line per problem, each naming the key.

mod keys;
mod layers;
mod reader;
mod security;
mod tokens;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnetwork::IpNetwork;
use traefiker_core::{Naming, ReplicaId, Routing, RuleSyntax, Schedule};
use traefiker_metrics::TraefikVersion;

pub use keys::{is_secret, reference_table, Key, KEYS};
pub use layers::{defaults, from_env, from_flags, from_toml, Layer};
pub use security::{CaBundle, ProviderAccess, Security};
pub use tokens::{parse_tokens, StaticToken};
pub use values::{
    parse_command, Backend, LogLevel, NarrativeEnv, ReadyCheck, Secret, SourceKind, Timeouts,
};

use reader::{list, Reader};
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
    /// `num_prespawn`: the pool's floor.
    pub num_prespawn: usize,
    /// `pool_max`: the most waiting narratives demand may ask for; `None` = a fixed pool.
    pub pool_max: Option<usize>,
    /// `pool_schedule`: floors for known windows, for the whole site.
    pub pool_schedule: Schedule,
    /// `status_role`
    pub status_role: String,
    /// `sqlite_reaperdb_path`
    pub sqlite_reaperdb_path: PathBuf,
    /// `log_level`
    pub log_level: LogLevel,
    /// `COMMIT_SHA`
    pub commit_sha: String,
    /// `NARRENV_*`, prefix stripped.
    pub narrative_env: NarrativeEnv,
    /// `listen`
    pub listen: SocketAddr,
    /// `reaper_interval_secs`; zero = only on request.
    pub reaper_interval: Duration,
    /// `reaper_call_timeout_secs`: how long `/reaper/` waits for its cycle.
    pub reaper_call_timeout: Duration,
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
    /// `ready_check`
    pub ready_check: ReadyCheck,
    /// `ready_timeout_secs`
    pub ready_timeout: Duration,
    /// `reload_wait_secs`
    pub reload_wait: Duration,
    /// `auth_cache_secs`
    pub auth_cache: Duration,
    /// `traefik_self_url`, or derived from `listen`.
    pub traefik_self_url: String,
    /// Outbound timeouts.
    pub timeouts: Timeouts,
    /// Who gets in and what is trusted.
    pub security: Security,
    /// `replica_id`; unset = from the orchestrator or the host name.
    pub replica_id: Option<ReplicaId>,
    /// `reconcile_interval_secs`; zero = never.
    pub reconcile_interval: Duration,
    /// `shutdown_grace_secs`: the whole graceful shutdown's budget (SPEC §11).
    pub shutdown_grace: Duration,
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

/// `backend`, or the one the other settings imply, as the Python version chose: Rancher when
/// `rancher_url` is set, else local processes when `local_command` is set, else Docker.
fn backend(r: &mut Reader<'_>) -> Backend {
    let chosen = r.opt("backend").map(|b| b.to_ascii_lowercase());
    let kind = match chosen.as_deref() {
        Some(kind @ ("rancher" | "docker" | "swarm" | "local" | "kubernetes")) => kind,
        Some(other) => {
            r.problems.push(format!(
                "backend: {other:?} is not rancher, docker, swarm, kubernetes or local"
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
                password: r.opt("rancher_password").map(Secret::new),
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
        "kubernetes" => Backend::Kubernetes {
            namespace: r.opt("kube_namespace"),
            pod_name: r.opt("POD_NAME"),
        },
        "swarm" => Backend::Swarm {
            url: r.string("docker_url"),
            network: r.string("dock_net"),
        },
        _ => Backend::Docker {
            url: r.string("docker_url"),
            network: r.string("dock_net"),
        },
    }
}

/// `pool_max` and `pool_schedule` (SPEC §14), over the floor `num_prespawn`.
fn pool_bounds(r: &mut Reader<'_>, floor: usize) -> (Option<usize>, Schedule) {
    let max = r.opt("pool_max").map(|_| r.parse("pool_max", floor));
    if let Some(max) = max.filter(|m| *m < floor) {
        r.problems.push(format!(
            "pool_max: {max} is below num_prespawn ({floor}); set it to at least num_prespawn, or unset it for a pool of num_prespawn"
        ));
    }
    let schedule = Schedule::parse(&r.string("pool_schedule")).unwrap_or_else(|e| {
        r.problems.push(format!("pool_schedule: {}", e.reason));
        Schedule::default()
    });
    (max, schedule)
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

        let security = Security::read(&mut r, &backend, static_tokens.is_some());

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
            rancher_list: r.secs("rancher_list_timeout_secs"),
            version: r.secs("version_timeout_secs"),
            metrics: r.secs("metrics_timeout_secs"),
            status: r.secs("status_timeout_secs"),
        };
        let ready_timeout = r.secs("ready_timeout_secs");
        let reload_wait = r.secs("reload_wait_secs");
        for (key, t) in [
            ("connect_timeout_secs", timeouts.connect),
            ("auth2_timeout_secs", timeouts.auth2),
            ("rancher_timeout_secs", timeouts.rancher),
            ("rancher_list_timeout_secs", timeouts.rancher_list),
            ("version_timeout_secs", timeouts.version),
            ("metrics_timeout_secs", timeouts.metrics),
            ("status_timeout_secs", timeouts.status),
            ("ready_timeout_secs", ready_timeout),
            ("reload_wait_secs", reload_wait),
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

        let num_prespawn = r.parse("num_prespawn", 0);
        let (pool_max, pool_schedule) = pool_bounds(&mut r, num_prespawn);

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
            num_prespawn,
            pool_max,
            pool_schedule,
            status_role: r.string("status_role"),
            sqlite_reaperdb_path: PathBuf::from(r.string("sqlite_reaperdb_path")),
            log_level: r.parse("log_level", LogLevel::Debug),
            commit_sha: r.string("COMMIT_SHA"),
            narrative_env: NarrativeEnv::new(traefiker_core::narrative::narrative_env(
                raw.iter().map(|(k, v)| (k.as_str(), v.clone())),
            )),
            listen: r.parse("listen", SocketAddr::from(([0, 0, 0, 0], 5000))),
            reaper_interval: r.secs("reaper_interval_secs"),
            reaper_call_timeout: r.secs("reaper_call_timeout_secs"),
            trusted_proxies: trusted,
            cookie_secure: r.boolean("cookie_secure"),
            traefik_version: r.parse("traefik_version", TraefikVersion::Auto),
            activity_sources: sources,
            narrative_status_path: status_path,
            ready_check: r.parse("ready_check", ReadyCheck::Status),
            ready_timeout,
            reload_wait,
            auth_cache: r.secs("auth_cache_secs"),
            traefik_self_url: String::new(),
            timeouts,
            security,
            replica_id: r.opt("replica_id").and_then(|id| {
                ReplicaId::new(id.as_str())
                    .map_err(|e| {
                        r.problems
                            .push(format!("replica_id: {} (got {id:?})", e.reason))
                    })
                    .ok()
            }),
            reconcile_interval: r.secs("reconcile_interval_secs"),
            shutdown_grace: r.secs("shutdown_grace_secs"),
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
            let secret = is_secret(k) || (k == "auth_tokens" && !v.starts_with('@'));
            let shown = if secret && !v.is_empty() {
                "***".to_owned()
            } else {
                v.clone()
            };
            out.push_str(&format!("{k} = {shown}\n"));
        }
        out
    }

    /// Whether the demo's front door (the login page, the loader) is served: only with the
    /// local backend and its static tokens (SPEC §10). With any other backend those paths
    /// are nobody's, even where `allow_static_tokens` lets static tokens in: a real site's
    /// front end is KBase's, and a login page that hands out a configured user's token
    /// without a secret must never face it.
    pub fn front_door(&self) -> bool {
        self.static_tokens.is_some() && matches!(self.backend, Backend::Local { .. })
    }

    /// The image to start narratives from, if fixed by `image_tag`.
    pub fn fixed_image(&self) -> Option<String> {
        self.image_tag
            .as_ref()
            .map(|tag| format!("{}:{tag}", self.image_name))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    fn layer(pairs: &[(&str, &str)]) -> Layer {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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
        assert_eq!(
            backend(&[
                ("backend", "kubernetes"),
                ("kube_namespace", "narratives"),
                ("POD_NAME", "traefiker-5d8f-x2x4q")
            ]),
            Ok(Backend::Kubernetes {
                namespace: Some("narratives".into()),
                pod_name: Some("traefiker-5d8f-x2x4q".into()),
            })
        );
        assert_eq!(
            backend(&[("backend", "swarm"), ("dock_net", "narratives")]),
            Ok(Backend::Swarm {
                url: "unix://var/run/docker.sock".into(),
                network: "narratives".into(),
            }),
            "swarm reads the Docker backend's keys"
        );
        for (pairs, key) in [
            (vec![("backend", "openshift")], "backend"),
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
        assert_eq!(
            c.narrative_env.vars().get("FOO").map(String::as_str),
            Some("bar")
        );
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
    fn the_pool_that_follows_demand_is_bounded_and_its_schedule_parsed_at_start() {
        let c = Config::from_layers(&[layer(&[])]).unwrap();
        assert_eq!((c.num_prespawn, c.pool_max), (5, None), "a fixed pool");
        assert!(c.pool_schedule.is_empty());
        let c = Config::from_layers(&[layer(&[
            ("num_prespawn", "2"),
            ("pool_max", "20"),
            (
                "pool_schedule",
                "mon-fri 08:30-10:00 America/Chicago = 30; sat,sun 10:00-11:00 UTC = 3",
            ),
        ])])
        .unwrap();
        assert_eq!(c.pool_max, Some(20));
        assert_eq!(
            c.pool_schedule.to_string(),
            "mon-fri 08:30-10:00 America/Chicago = 30; sat,sun 10:00-11:00 UTC = 3"
        );
        for (pairs, key, says) in [
            (
                vec![("num_prespawn", "5"), ("pool_max", "3")],
                "pool_max",
                "below num_prespawn",
            ),
            (vec![("pool_max", "lots")], "pool_max", "lots"),
            (
                vec![("pool_schedule", "mon-fri 08:30-10:00 America/Chicago")],
                "pool_schedule",
                "= <floor>",
            ),
            (
                vec![("pool_schedule", "mon 08:30-10:00 America/Chikago = 30")],
                "pool_schedule",
                "\"America/Chikago\" is not a known time zone",
            ),
        ] {
            let problems = Config::from_layers(&[layer(&pairs)]).unwrap_err();
            assert!(
                problems.len() == 1 && problems[0].starts_with(key) && problems[0].contains(says),
                "{pairs:?}: {problems:?}"
            );
        }
    }

    #[test]
    fn a_schedule_may_be_a_toml_array_of_windows() {
        let dir = std::env::temp_dir().join(format!("traefiker-schedule-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("traefiker.toml");
        std::fs::write(
            &path,
            "pool_max = 10\npool_schedule = [\"mon,wed 09:00-10:00 UTC = 8\", \"fri 09:00-10:00 UTC = 4\"]\n",
        )
        .unwrap();
        let c = Config::from_layers(&[from_toml(&path).unwrap()]).unwrap();
        assert_eq!(
            c.pool_schedule.to_string(),
            "mon,wed 09:00-10:00 UTC = 8; fri 09:00-10:00 UTC = 4"
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
            ("allow_static_tokens", "true"),
            ("traefik_provider_token", "provider-token-0123456789"),
            ("NARRENV_KBASE_AUTH_TOKEN", "narrtok-1"),
            ("NARRENV_api_key", "narrkey-2"),
            ("NARRENV_DB_PASSWORD", "narrpw-3"),
            ("NARRENV_SIGNING_SECRET", "narrsec-4"),
            ("NARRENV_KBASE_ENDPOINT", "https://kbase.us/services"),
        ])])
        .unwrap();
        let shown = format!("{} {:?}", c.masked(), c);
        for secret in [
            "SUPERSECRET",
            "tok123",
            "provider-token-0123456789",
            "narrtok-1",
            "narrkey-2",
            "narrpw-3",
            "narrsec-4",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("rancher_password = ***"));
        assert!(shown.contains("NARRENV_KBASE_AUTH_TOKEN = ***"));
        assert!(
            shown.contains("NARRENV_KBASE_ENDPOINT = https://kbase.us/services"),
            "a value whose name says nothing secret is shown: {shown}"
        );
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
    fn docs_configuration_md_is_up_to_date() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            doc.contains(&reference_table()),
            "docs/configuration.md is stale: paste the output of `traefiker config --reference` into it"
        );
    }
}
