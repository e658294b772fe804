//! The table of every configuration key: its name (also its environment variable), default,
//! meaning and whether it is secret. The documentation's reference is generated from it.

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
    key("backend", None, "`rancher`, `docker`, `swarm`, `kubernetes` or `local`; unset: rancher_url set = rancher, else local_command set = local, else docker (as the Python version chooses)"),
    key("docker_url", Some("unix://var/run/docker.sock"), "Docker engine of the docker and swarm backends (for swarm, a manager's): unix://<socket path>, or tcp://host:port of a socket proxy (docs/docker.md)"),
    key("dock_net", Some("narrative-traefiker_default"), "Docker network the docker backend starts narratives on, and Traefik reaches them on (swarm: an attachable overlay network, docs/swarm.md)"),
    key("kube_namespace", None, "namespace the kubernetes backend runs narratives (and their claims) in; unset = traefiker's own pod's namespace, or the kubeconfig context's (docs/kubernetes.md)"),
    key("POD_NAME", None, "kubernetes: this pod's name, set from the downward API (`fieldRef: metadata.name`); the replica's id among the pods of traefiker's Deployment"),
    key("traefik_self_url", None, "where Traefik reaches traefiker, for the catch-all route of /traefik/dynamic; unset = http://127.0.0.1:<listen port>"),
    key("rancher_meta", Some("http://rancher-metadata/"), "rancher-metadata service"),
    key("rancher_env_url", None, "Rancher environment URL; learned from rancher-metadata if unset"),
    key("rancher_stack_id", None, "Rancher stack id; learned if unset"),
    key("rancher_stack_name", None, "Rancher stack name; learned if unset"),
    key("reaper_timeout_secs", Some("600"), "idle seconds before a narrative is reaped"),
    key("reaper_ipnetwork", Some("127.0.0.1/32"), "network (IPv4 or IPv6 CIDR) allowed to call /reaper/"),
    key("num_prespawn", Some("5"), "waiting containers to keep (per replica); 0 disables the pool; with pool_max or pool_schedule, the pool's floor"),
    key("pool_max", None, "the most waiting containers a pool that follows demand keeps (per replica): above num_prespawn it grows with the arrival rate of new users times the cold-start time traefiker measures, and with the busy times of past weeks, and falls back to num_prespawn when it is quiet; unset = num_prespawn (a fixed pool); not below num_prespawn"),
    key("pool_schedule", None, "floors of the pool for known windows, `;`-separated, each `<days> <HH:MM>-<HH:MM> <IANA time zone> = <floor>` with days `daily` or `mon`..`sun`, lists and ranges (`mon-fri`, `mon,wed`), e.g. `mon-fri 08:30-10:00 America/Chicago = 30`; a floor for the whole site, each live replica keeping its share, started two cold starts and a minute before the window; kept even above pool_max"),
    key("status_role", Some("KBASE_ADMIN"), "auth2 custom role that sees every narrative in /narrative_status/"),
    key("sqlite_reaperdb_path", Some("/tmp/reaper.db"), "activity store (SQLite)"),
    key("log_level", Some("DEBUG"), "DEBUG, INFO, WARNING, ERROR, CRITICAL or 10/20/30/40/50"),
    key("COMMIT_SHA", Some("not available"), "reported by /narrative_status/"),
    key("listen", Some("0.0.0.0:5000"), "address the HTTP server binds"),
    key("reaper_interval_secs", Some("0"), "internal reaper period; 0 = only via /reaper/"),
    key("reaper_call_timeout_secs", Some("120"), "/reaper/ answers within this; a longer cycle goes on in the background and the answer is 500 Reaper error"),
    key("trusted_proxies", Some(""), "networks whose X-Forwarded-For is believed (comma-separated CIDRs): Traefik's address; the client is then the rightmost untrusted address over every X-Forwarded-For line, for /reaper/, /traefik/dynamic and the failed-login limit"),
    key("cookie_secure", Some("true"), "`Secure` flag on the session cookie"),
    key("traefik_rule_syntax", Some("v2"), "`v2` or `v3` rule syntax in labels and routes"),
    key("traefik_entrypoints", Some("web"), "entrypoints of narrative routers (comma-separated list)"),
    key("traefik_version", Some("auto"), "`v2`, `v3` or `auto` for reading metrics"),
    key("activity_sources", Some("traefik"), "comma-separated `traefik`, `narrative_status`"),
    key("narrative_status_path", Some("/narrative/api/status"), "path of a narrative's Jupyter status, for the narrative_status source"),
    key("ready_check", Some("status"), "what makes a waiting narrative ready to hand out: `status` (its Jupyter answers narrative_status_path; where the backend gives no address, as `backend`) or `backend` (the backend reports it running, and healthy where it has a health check); use `backend` where traefiker cannot reach the narratives"),
    key("ready_timeout_secs", Some("300"), "a waiting narrative not ready within this is removed and replaced"),
    key("reload_wait_secs", Some("120"), "how long the page answered with the session cookie waits for the narrative to answer through Traefik before it offers to try again"),
    key("auth_cache_secs", Some("60"), "how long a validated token is trusted"),
    key("connect_timeout_secs", Some("5"), "connect timeout of every outbound call"),
    key("auth2_timeout_secs", Some("20"), "whole-request timeout of auth2 calls"),
    key("rancher_timeout_secs", Some("20"), "deadline of each backend operation (Rancher, Docker, Swarm; also each Kubernetes API call), every request and retry in it; the lifecycle stops waiting 1 s after it"),
    key("rancher_list_timeout_secs", Some("60"), "deadline of a whole Rancher listing, every page and retry (also a whole Kubernetes listing)"),
    key("version_timeout_secs", Some("20"), "whole-request timeout of narrative_version_url"),
    key("metrics_timeout_secs", Some("10"), "whole-request timeout of the Traefik metrics page"),
    key("status_timeout_secs", Some("10"), "whole-request timeout of each narrative's /api/status"),
    key("replica_id", None, "this replica's id, labelling the waiting containers it makes (letters, digits, `.`, `_`, `-`); unset = the orchestrator's answer (Rancher: rancher-metadata `self/container/name`), else the host name"),
    key("reconcile_interval_secs", Some("10"), "how often the backend is listed again and the live replicas learned again, besides the reaper; 0 = never"),
    key("shutdown_grace_secs", Some("8"), "the whole graceful shutdown's budget: on SIGTERM or SIGINT, requests in flight are answered and this replica's waiting narratives removed within it, and the process exits at most 2 s after it whatever the backend, the metrics or auth2 do; a second signal exits at once"),
    key("traefik_provider", None, "serve /traefik/dynamic (Traefik's HTTP provider); unset = on for the local backend only"),
    key("traefik_provider_ipnetwork", Some("127.0.0.1/32,::1/128"), "networks allowed to read /traefik/dynamic (peer, or X-Forwarded-For from trusted_proxies, as for /reaper/)"),
    Key { name: "traefik_provider_token", default: None, doc: "or a caller with `Authorization: Bearer <token>` may read /traefik/dynamic (never logged)", secret: true },
    key("allow_static_tokens", Some("false"), "accept auth_tokens with a backend other than local (never in production)"),
    key("max_narratives", None, "cap on user narratives; a new user past it gets 503 and nothing is created; unset = no cap"),
    key("auth_failures_per_minute", Some("20"), "token validations auth2 rejects allowed per client address per minute, then 429 with Retry-After; 0 = no limit; clients behind a proxy not in trusted_proxies are not limited (only their rejected tokens are remembered)"),
    key("ca_bundle", None, "PEM file of extra CA certificates trusted for auth2, Rancher, metrics and the version URL (besides the system's and the bundled roots)"),
];

/// Whether the value of `name` is a secret: a secret key, or a `NARRENV_*` variable whose name
/// says it holds one (TOKEN, SECRET, PASSWORD or KEY, in any case).
pub fn is_secret(name: &str) -> bool {
    if let Some(variable) = name.strip_prefix("NARRENV_") {
        let upper = variable.to_ascii_uppercase();
        return ["TOKEN", "SECRET", "PASSWORD", "KEY"]
            .iter()
            .any(|word| upper.contains(word));
    }
    KEYS.iter().any(|key| key.name == name && key.secret)
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
