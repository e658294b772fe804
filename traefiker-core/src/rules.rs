//! Traefik routing: the rule that sends a session cookie to its container, and the labels
//! that carry it (SPEC §2).
//!
//! Every string here ends up in Traefik's configuration, so the inputs are restricted at
//! construction (host names) or come from [`crate::names`] (router names, session ids), which
//! only produce characters that cannot break out of a quoted rule argument or a label key.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::InvalidInput;
use crate::names::SessionId;

/// Label naming a container's session; read back to answer a returning user.
pub const SESSION_LABEL: &str = "session_id";

/// Label naming the replica that made a waiting container (SPEC §9); only that replica
/// assigns it.
pub const REPLICA_LABEL: &str = "traefiker.replica";

/// Label recording who a narrative belongs to ([`crate::Owner`], SPEC §10), where a backend
/// keeps the owner in labels (Docker at creation; Swarm and Kubernetes, whose labels can be
/// changed under a version check).
pub const OWNER_LABEL: &str = "traefiker.owner";

/// Path every narrative request starts with.
pub const NARRATIVE_PATH_PREFIX: &str = "/narrative/";

/// Which Traefik rule language the labels and routes are written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuleSyntax {
    /// Traefik v2: double-quoted strings, `HeadersRegexp` (what deployments run today).
    #[default]
    V2,
    /// Traefik v3: backtick strings, `HeaderRegexp`.
    V3,
}

impl FromStr for RuleSyntax {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v2" => Ok(Self::V2),
            "v3" => Ok(Self::V3),
            _ => Err(InvalidInput::new(
                "traefik_rule_syntax",
                format!("must be v2 or v3, not {s:?}"),
            )),
        }
    }
}

impl fmt::Display for RuleSyntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V2 => "v2",
            Self::V3 => "v3",
        })
    }
}

/// How narratives are routed: host names, entrypoints and rule syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routing {
    hosts: Vec<String>,
    entrypoints: Vec<String>,
    syntax: RuleSyntax,
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            hosts: vec!["localhost".to_owned()],
            entrypoints: vec!["web".to_owned()],
            syntax: RuleSyntax::V2,
        }
    }
}

impl Routing {
    /// Validates the `hostname` and `traefik_entrypoints` lists.
    pub fn new(
        hosts: Vec<String>,
        entrypoints: Vec<String>,
        syntax: RuleSyntax,
    ) -> Result<Self, InvalidInput> {
        if hosts.is_empty() {
            return Err(InvalidInput::new(
                "hostname",
                "needs at least one host name",
            ));
        }
        for host in &hosts {
            let ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
            if !ok {
                return Err(InvalidInput::new(
                    "hostname",
                    format!("{host:?} is not a host name (letters, digits, '.', '-', ':')"),
                ));
            }
        }
        if entrypoints.is_empty() {
            return Err(InvalidInput::new(
                "traefik_entrypoints",
                "needs at least one entrypoint",
            ));
        }
        for ep in &entrypoints {
            if ep.is_empty()
                || !ep
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(InvalidInput::new(
                    "traefik_entrypoints",
                    format!("{ep:?} is not an entrypoint name (letters, digits, '-', '_')"),
                ));
            }
        }
        Ok(Self {
            hosts,
            entrypoints,
            syntax,
        })
    }

    /// The configured host names.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The configured entrypoints.
    pub fn entrypoints(&self) -> &[String] {
        &self.entrypoints
    }

    /// The configured rule syntax.
    pub fn syntax(&self) -> RuleSyntax {
        self.syntax
    }

    /// The rule that matches requests carrying `session` in a cookie.
    ///
    /// With several hosts the `Host` alternatives are parenthesised: `&&` binds tighter than
    /// `||`, so without them every narrative would match all traffic to the first host.
    pub fn session_rule(&self, session: &SessionId) -> String {
        let sid = session.expose();
        let hosts = self.host_match();
        match self.syntax {
            RuleSyntax::V2 => format!(
                "{hosts} && PathPrefix(\"{NARRATIVE_PATH_PREFIX}\") && HeadersRegexp(\"Cookie\",`{sid}`)"
            ),
            RuleSyntax::V3 => format!(
                "{hosts} && PathPrefix(`{NARRATIVE_PATH_PREFIX}`) && HeaderRegexp(`Cookie`, `{sid}`)"
            ),
        }
    }

    /// The rule of the catch-all route that sends `/narrative/` to traefiker itself.
    pub fn catch_all_rule(&self) -> String {
        let hosts = self.host_match();
        match self.syntax {
            RuleSyntax::V2 => format!("{hosts} && PathPrefix(\"{NARRATIVE_PATH_PREFIX}\")"),
            RuleSyntax::V3 => format!("{hosts} && PathPrefix(`{NARRATIVE_PATH_PREFIX}`)"),
        }
    }

    /// The rule of a route for the `exact` paths and everything under `prefixes` on the
    /// configured hosts (the demo's front door: its login page, loader and status page).
    pub fn paths_rule(&self, exact: &[&str], prefixes: &[&str]) -> String {
        let quote = |p: &str| match self.syntax {
            RuleSyntax::V2 => format!("\"{p}\""),
            RuleSyntax::V3 => format!("`{p}`"),
        };
        let matchers: Vec<String> = exact
            .iter()
            .map(|p| format!("Path({})", quote(p)))
            .chain(prefixes.iter().map(|p| format!("PathPrefix({})", quote(p))))
            .collect();
        format!("{} && ({})", self.host_match(), matchers.join(" || "))
    }

    fn host_match(&self) -> String {
        let alternatives: Vec<String> = self
            .hosts
            .iter()
            .map(|h| match self.syntax {
                RuleSyntax::V2 => format!("Host(\"{h}\")"),
                RuleSyntax::V3 => format!("Host(`{h}`)"),
            })
            .collect();
        if alternatives.len() == 1 {
            alternatives.concat()
        } else {
            format!("({})", alternatives.join(" || "))
        }
    }

    /// The orchestrator-neutral labels of a new container (SPEC §2): Traefik enablement, the
    /// session, and the router `router` with its rule and entrypoints. Backends add their own
    /// (Rancher: image pull and start-once).
    ///
    /// The result contains the session id: never log it.
    pub fn labels(&self, router: &str, session: &SessionId) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("traefik.enable".to_owned(), "True".to_owned()),
            (SESSION_LABEL.to_owned(), session.expose().to_owned()),
            (
                format!("traefik.http.routers.{router}.rule"),
                self.session_rule(session),
            ),
            (
                format!("traefik.http.routers.{router}.entrypoints"),
                self.entrypoints.join(","),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{Naming, UserId};

    const SID: &str = "0123456789abcdef0123456789abcdef";

    fn check_rule(hosts: &[&str], syntax: RuleSyntax, expected: &str) {
        let routing = Routing::new(
            hosts.iter().map(|h| h.to_string()).collect(),
            vec!["web".into()],
            syntax,
        )
        .unwrap();
        let session = SessionId::parse(SID).unwrap();
        assert_eq!(routing.session_rule(&session), expected);
    }

    #[test]
    fn v2_single_host_is_the_python_rule() {
        check_rule(
            &["ci.kbase.us"],
            RuleSyntax::V2,
            "Host(\"ci.kbase.us\") && PathPrefix(\"/narrative/\") && HeadersRegexp(\"Cookie\",`0123456789abcdef0123456789abcdef`)",
        );
    }

    #[test]
    fn v2_many_hosts_are_parenthesised() {
        check_rule(
            &["a.example", "b.example"],
            RuleSyntax::V2,
            "(Host(\"a.example\") || Host(\"b.example\")) && PathPrefix(\"/narrative/\") && HeadersRegexp(\"Cookie\",`0123456789abcdef0123456789abcdef`)",
        );
    }

    #[test]
    fn v3_uses_backticks_and_header_regexp() {
        check_rule(
            &["localhost"],
            RuleSyntax::V3,
            "Host(`localhost`) && PathPrefix(`/narrative/`) && HeaderRegexp(`Cookie`, `0123456789abcdef0123456789abcdef`)",
        );
        check_rule(
            &["a.example", "b.example"],
            RuleSyntax::V3,
            "(Host(`a.example`) || Host(`b.example`)) && PathPrefix(`/narrative/`) && HeaderRegexp(`Cookie`, `0123456789abcdef0123456789abcdef`)",
        );
    }

    #[test]
    fn labels_carry_session_router_rule_and_entrypoints() {
        let routing = Routing::new(
            vec!["localhost".into()],
            vec!["web".into(), "websecure".into()],
            RuleSyntax::V2,
        )
        .unwrap();
        let session = SessionId::parse(SID).unwrap();
        let labels = routing.labels("alice-522b27", &session);
        let expected: BTreeMap<String, String> = [
            ("session_id", SID),
            ("traefik.enable", "True"),
            ("traefik.http.routers.alice-522b27.entrypoints", "web,websecure"),
            (
                "traefik.http.routers.alice-522b27.rule",
                "Host(\"localhost\") && PathPrefix(\"/narrative/\") && HeadersRegexp(\"Cookie\",`0123456789abcdef0123456789abcdef`)",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(labels, expected);
    }

    #[test]
    fn a_hostile_user_id_cannot_inject_into_rule_or_label_key() {
        let naming = Naming::default();
        let routing = Routing::default();
        let session = SessionId::parse(SID).unwrap();
        for hostile in [
            "evil`) || Host(`x",
            "a\") || PathPrefix(\"/",
            "x.rule=Host(`y`)",
            "a b{c}[d]=e",
        ] {
            let user = UserId::new(hostile).unwrap();
            let router = naming.router_for(&naming.user_container(&user));
            assert!(
                router
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{router}"
            );
            let labels = routing.labels(&router, &session);
            let keys: Vec<&str> = labels.keys().map(String::as_str).collect();
            let rule_key = format!("traefik.http.routers.{router}.rule");
            let ep_key = format!("traefik.http.routers.{router}.entrypoints");
            assert_eq!(
                keys,
                [
                    "session_id",
                    "traefik.enable",
                    ep_key.as_str(),
                    rule_key.as_str()
                ]
            );
            let rule = &labels[&format!("traefik.http.routers.{router}.rule")];
            assert_eq!(rule, &routing.session_rule(&session));
        }
    }

    #[test]
    fn hosts_and_entrypoints_are_validated() {
        for bad in ["", "a\"b", "a`b", "a b", "a)||Host(b"] {
            assert!(
                Routing::new(vec![bad.into()], vec!["web".into()], RuleSyntax::V2).is_err(),
                "{bad}"
            );
        }
        assert!(Routing::new(vec!["h".into()], vec![], RuleSyntax::V2).is_err());
        assert!(Routing::new(vec!["h".into()], vec!["a,b".into()], RuleSyntax::V2).is_err());
    }

    #[test]
    fn catch_all_matches_the_narrative_prefix_on_every_host() {
        let routing = Routing::new(
            vec!["a.example".into(), "b.example".into()],
            vec!["web".into()],
            RuleSyntax::V3,
        )
        .unwrap();
        assert_eq!(
            routing.catch_all_rule(),
            "(Host(`a.example`) || Host(`b.example`)) && PathPrefix(`/narrative/`)"
        );
        assert_eq!(
            routing.paths_rule(&["/", "/login"], &["/narrative_status/"]),
            "(Host(`a.example`) || Host(`b.example`)) && (Path(`/`) || Path(`/login`) || PathPrefix(`/narrative_status/`))"
        );
    }
}
