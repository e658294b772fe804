//! The settings that decide who gets in and what is trusted: the Traefik provider endpoint's
//! access, static tokens, the failed-login limit, the narrative cap and extra CAs.

use std::fmt;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;

use ipnetwork::IpNetwork;

use super::reader::{list, Reader};
use super::{Backend, Secret};

/// Who may read `/traefik/dynamic`, whose answer holds every session id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderAccess {
    /// `traefik_provider`: the endpoint exists at all.
    pub enabled: bool,
    /// `traefik_provider_ipnetwork`: callers from these networks.
    pub networks: Vec<IpNetwork>,
    /// `traefik_provider_token`: or callers with `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
}

/// `ca_bundle`: extra CA certificates, read and checked once at start-up.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    path: PathBuf,
    pem: Arc<[u8]>,
}

impl CaBundle {
    /// Reads `path`, which must hold at least one PEM certificate.
    pub fn read(path: PathBuf) -> Result<Self, String> {
        let pem =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => Ok(Self {
                path,
                pem: pem.into(),
            }),
            Ok(_) => Err(format!("{} holds no PEM certificate", path.display())),
            Err(e) => Err(format!("{}: not a PEM bundle: {e}", path.display())),
        }
    }

    /// The PEM text, for the backends that build their own clients.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// The certificates (checked by [`CaBundle::read`]).
    pub fn certificates(&self) -> Vec<reqwest::Certificate> {
        reqwest::Certificate::from_pem_bundle(&self.pem).unwrap_or_default()
    }
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CaBundle").field(&self.path).finish()
    }
}

/// The security settings, validated.
#[derive(Clone, Debug)]
pub struct Security {
    /// `/traefik/dynamic` access.
    pub provider: ProviderAccess,
    /// `auth_failures_per_minute`; `None` = no limit.
    pub auth_failures_per_minute: Option<NonZeroU32>,
    /// `max_narratives`; `None` = no cap.
    pub max_narratives: Option<usize>,
    /// `ca_bundle`.
    pub ca_bundle: Option<CaBundle>,
}

impl Security {
    /// Reads the security keys; `static_tokens` and `backend` decide whether static tokens
    /// are allowed and whether the provider is on by default.
    pub(super) fn read(r: &mut Reader<'_>, backend: &Backend, static_tokens: bool) -> Self {
        let local = matches!(backend, Backend::Local { .. });
        // Static tokens replace auth2 entirely; with a real orchestrator that means anyone
        // holding a token string from a config file or a demo is a user (or an admin).
        if static_tokens && !local && !r.boolean("allow_static_tokens") {
            r.problems.push(
                "auth_tokens: static tokens replace auth2 and are accepted only with the local \
                 backend; set allow_static_tokens = true to use them with this backend (never in \
                 production)"
                    .to_owned(),
            );
        }
        let enabled = match r.opt("traefik_provider") {
            Some(_) => r.boolean("traefik_provider"),
            None => local,
        };
        let mut networks = Vec::new();
        for net in list(&r.string("traefik_provider_ipnetwork")) {
            match net.parse() {
                Ok(n) => networks.push(n),
                Err(e) => r
                    .problems
                    .push(format!("traefik_provider_ipnetwork: {net:?}: {e}")),
            }
        }
        let token = r.opt("traefik_provider_token").map(Secret::new);
        if token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            r.problems.push(
                "traefik_provider_token: use at least 16 characters (it guards every session id)"
                    .to_owned(),
            );
        }
        let max_narratives = r.opt("max_narratives").map(|_| {
            let n: usize = r.parse("max_narratives", 0);
            if n == 0 {
                r.problems
                    .push("max_narratives: must be at least 1 (unset it for no cap)".to_owned());
            }
            n
        });
        let ca_bundle =
            r.opt("ca_bundle")
                .and_then(|path| match CaBundle::read(PathBuf::from(path)) {
                    Ok(bundle) => Some(bundle),
                    Err(e) => {
                        r.problems.push(format!("ca_bundle: {e}"));
                        None
                    }
                });
        Self {
            provider: ProviderAccess {
                enabled,
                networks,
                token,
            },
            auth_failures_per_minute: NonZeroU32::new(r.parse("auth_failures_per_minute", 20)),
            max_narratives,
            ca_bundle,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::{Config, Layer};

    fn config(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let layer: Layer = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_layers(&[layer])
    }

    const RANCHER: (&str, &str) = ("rancher_url", "http://rancher:8080/v2-beta");
    const LOCAL: (&str, &str) = ("local_command", "narrative-standin --port {port}");

    #[test]
    fn static_tokens_need_the_local_backend_or_the_explicit_key() {
        let problems = config(&[RANCHER, ("auth_tokens", "t:alice")]).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("auth_tokens:"), "{problems:?}");
        assert!(problems[0].contains("allow_static_tokens"), "{problems:?}");
        assert!(config(&[("auth_tokens", "t:alice")]).is_err(), "no backend");
        assert!(config(&[LOCAL, ("auth_tokens", "t:alice")]).is_ok());
        let allowed = config(&[
            RANCHER,
            ("auth_tokens", "t:alice"),
            ("allow_static_tokens", "true"),
        ]);
        assert!(allowed.is_ok(), "{allowed:?}");
    }

    #[test]
    fn the_provider_is_on_for_the_local_backend_or_when_asked() {
        let rancher = config(&[RANCHER]).unwrap().security.provider;
        assert!(!rancher.enabled);
        assert_eq!(rancher.networks.len(), 2, "127.0.0.1/32 and ::1/128");
        assert!(rancher.token.is_none());
        assert!(config(&[LOCAL]).unwrap().security.provider.enabled);
        assert!(
            !config(&[LOCAL, ("traefik_provider", "false")])
                .unwrap()
                .security
                .provider
                .enabled
        );
        let on = config(&[
            RANCHER,
            ("traefik_provider", "true"),
            ("traefik_provider_ipnetwork", "10.42.0.0/16"),
            ("traefik_provider_token", "0123456789abcdef0123"),
        ])
        .unwrap()
        .security
        .provider;
        assert!(on.enabled);
        assert_eq!(on.networks, ["10.42.0.0/16".parse().unwrap()]);
        assert_eq!(on.token.unwrap().expose(), "0123456789abcdef0123");
        let problems = config(&[
            ("traefik_provider_ipnetwork", "everyone"),
            ("traefik_provider_token", "short"),
        ])
        .unwrap_err();
        assert!(problems[0].starts_with("traefik_provider_ipnetwork"));
        assert!(problems[1].starts_with("traefik_provider_token"));
    }

    #[test]
    fn limits_and_the_ca_bundle_are_checked() {
        let c = config(&[]).unwrap().security;
        assert_eq!(c.max_narratives, None);
        assert_eq!(c.auth_failures_per_minute.map(|n| n.get()), Some(20));
        let c = config(&[("max_narratives", "500"), ("auth_failures_per_minute", "0")])
            .unwrap()
            .security;
        assert_eq!(c.max_narratives, Some(500));
        assert_eq!(c.auth_failures_per_minute, None, "0 = no limit");
        let problems = config(&[
            ("max_narratives", "0"),
            ("ca_bundle", "/nonexistent/ca.pem"),
        ])
        .unwrap_err();
        assert!(problems.iter().any(|p| p.starts_with("max_narratives")));
        assert!(problems.iter().any(|p| p.starts_with("ca_bundle")));
        let not_pem = std::env::temp_dir().join(format!("traefiker-ca-{}.pem", std::process::id()));
        std::fs::write(&not_pem, "not a certificate\n").unwrap();
        let problems = config(&[("ca_bundle", not_pem.to_str().unwrap())]).unwrap_err();
        std::fs::remove_file(&not_pem).unwrap();
        assert!(problems[0].starts_with("ca_bundle"), "{problems:?}");
    }
}
