//! A narrative container as the core sees it, whatever runs it, and what it takes to make one.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::names::{NarrativeKind, Owner, ReplicaId, ServiceName, SessionId};

/// One narrative container, as a backend reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Narrative {
    /// The backend's own id (a Rancher service id, a local process key): opaque to the core,
    /// handed back to the backend to assign or remove this container.
    pub id: String,
    /// The container's name.
    pub name: ServiceName,
    /// The session its Traefik rule routes to it.
    pub session: SessionId,
    /// The image it runs, `<image_name>:<tag>`, without any backend prefix.
    pub image: String,
    /// Waiting in the pool or a user's.
    pub kind: NarrativeKind,
    /// What the backend says it is doing.
    pub state: NarrativeState,
    /// Who it was made, assigned or last connected for, from the container's description
    /// ([`crate::ContainerManager::mark_connected`] refreshes it).
    pub origin: Option<Origin>,
    /// The replica that made it, from its [`crate::rules::REPLICA_LABEL`]; only that replica
    /// assigns a waiting container (SPEC §9), unless writes are conditional (SPEC §12), and
    /// only that one keeps it counted in its pool. `None` for containers made by the Python
    /// version.
    pub replica: Option<ReplicaId>,
    /// Whose it is, as recorded in the orchestrator (SPEC §10). `None` for a waiting
    /// narrative, and for a user's narrative made by the Python version until the first user
    /// whose name matches adopts it ([`crate::ContainerManager::stamp_owner`]).
    pub owner: Option<Owner>,
    /// The backend's revision of this narrative's record as read (Swarm's service version,
    /// Kubernetes' `resourceVersion`): a conditional backend
    /// ([`crate::ContainerManager::conditional`]) changes or removes it only at this revision.
    /// `None` where writes are not conditional.
    pub version: Option<String>,
    /// Where the narrative answers HTTP, e.g. `http://10.42.3.7:8888`, when the backend knows.
    pub address: Option<String>,
    /// Public endpoints the backend reports for it (status pages show them).
    pub public_endpoints: Vec<String>,
    /// When the backend created it.
    pub created: Option<DateTime<Utc>>,
}

/// A narrative's state, normalised across backends.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NarrativeState {
    /// Being created or started.
    Starting,
    /// Up (Rancher `active`, a running process).
    Running,
    /// Being changed (Rancher `updating-active` during a rename).
    Updating,
    /// Stopped, or a process that exited.
    Stopped,
    /// Being removed.
    Removing,
    /// Anything else, as the backend named it.
    Other(String),
}

impl fmt::Display for NarrativeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Updating => "updating",
            Self::Stopped => "stopped",
            Self::Removing => "removing",
            Self::Other(s) => s,
        })
    }
}

/// The container description `client-ip:<ip> timestamp:<iso>` written when a narrative is
/// created for or assigned to a user (SPEC §3), and refreshed when a user is connected to it
/// so every replica's reaper sees the connection (SPEC §9); status pages read `last_ip` and
/// `created` from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The client address the user came from, if the request said.
    pub client_ip: Option<String>,
    /// When the narrative was created or assigned.
    pub at: DateTime<Utc>,
}

impl Origin {
    const TIME_FORMAT: &'static str = "%Y-%m-%dT%H:%M:%S%.6fZ";

    /// Renders the description the way the Python version did (`None` for an unknown IP).
    pub fn to_description(&self) -> String {
        format!(
            "client-ip:{} timestamp:{}",
            self.client_ip.as_deref().unwrap_or("None"),
            self.at.format(Self::TIME_FORMAT)
        )
    }

    /// Reads a description back; anything not in that shape is not an origin.
    pub fn parse(description: &str) -> Option<Self> {
        let rest = description.strip_prefix("client-ip:")?;
        let (ip, time) = rest.split_once(" timestamp:")?;
        let at = NaiveDateTime::parse_from_str(time.trim(), Self::TIME_FORMAT)
            .or_else(|_| NaiveDateTime::parse_from_str(time.trim(), "%Y-%m-%dT%H:%M:%S%.fZ"))
            .ok()?
            .and_utc();
        let client_ip = (!ip.is_empty() && ip != "None").then(|| ip.to_owned());
        Some(Self { client_ip, at })
    }
}

/// Linux capabilities every narrative container drops (SPEC §4), whatever runs it: one list,
/// so the Rancher and Docker backends cannot drift apart.
pub const CAP_DROP: [&str; 13] = [
    "MKNOD",
    "NET_RAW",
    "SYS_CHROOT",
    "SETUID",
    "SETGID",
    "CHOWN",
    "SYS_ADMIN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "SETPCAP",
    "AUDIT_WRITE",
    "SETFCAP",
];

/// Everything a backend needs to start one narrative.
///
/// `Debug` is written by hand: the labels hold the session id and its Traefik rule, and the
/// environment may hold secrets, so it shows their keys only.
#[derive(Clone, PartialEq, Eq)]
pub struct SpawnSpec {
    /// The container's name.
    pub name: ServiceName,
    /// Its session (also inside `labels`).
    pub session: SessionId,
    /// `<image_name>:<tag>`.
    pub image: String,
    /// A user's container or a waiting one.
    pub kind: NarrativeKind,
    /// Orchestrator-neutral labels (Traefik router and session, [`crate::Routing::labels`]);
    /// they contain the session id, so never log them.
    pub labels: BTreeMap<String, String>,
    /// Environment of the narrative (`NARRENV_*` with the prefix stripped).
    pub env: BTreeMap<String, String>,
    /// For a user's container, who it is for.
    pub origin: Option<Origin>,
    /// For a user's container, whose it is (recorded with it, SPEC §10).
    pub owner: Option<Owner>,
}

impl fmt::Debug for SpawnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnSpec")
            .field("name", &self.name)
            .field("session", &self.session)
            .field("image", &self.image)
            .field("kind", &self.kind)
            .field("labels", &self.labels.keys().collect::<Vec<_>>())
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("origin", &self.origin)
            .field("owner", &self.owner)
            .finish()
    }
}

/// The new name, owner and description of a prespawned narrative being given to a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The user's container name.
    pub name: ServiceName,
    /// Whose it becomes.
    pub owner: Owner,
    /// Who it is for.
    pub origin: Origin,
}

/// Every `NARRENV_<NAME>` variable of `vars`, as `<NAME>` (SPEC §4).
pub fn narrative_env<I, K, V>(vars: I) -> BTreeMap<String, String>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Into<String>,
{
    vars.into_iter()
        .filter_map(|(k, v)| {
            let name = k.as_ref().strip_prefix("NARRENV_")?;
            (!name.is_empty()).then(|| (name.to_owned(), v.into()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn origin_round_trips_the_python_description() {
        let at = Utc.with_ymd_and_hms(2021, 10, 4, 15, 20, 1).unwrap()
            + chrono::Duration::microseconds(123_456);
        let origin = Origin {
            client_ip: Some("192.0.2.7".into()),
            at,
        };
        let text = origin.to_description();
        assert_eq!(
            text,
            "client-ip:192.0.2.7 timestamp:2021-10-04T15:20:01.123456Z"
        );
        assert_eq!(Origin::parse(&text), Some(origin));
        let none = Origin::parse("client-ip:None timestamp:2021-10-04T15:20:01.000000Z").unwrap();
        assert_eq!(none.client_ip, None);
        assert_eq!(Origin::parse("something else"), None);
    }

    #[test]
    fn a_spawn_spec_never_prints_its_session_rule_or_environment() {
        let session = SessionId::generate();
        let spec = SpawnSpec {
            name: ServiceName::new("narrative-alice-522b27").unwrap(),
            session: session.clone(),
            image: "kbase/narrative:5.4.3".into(),
            kind: NarrativeKind::User,
            labels: crate::Routing::default().labels("alice-522b27", &session),
            env: BTreeMap::from([("KBASE_TOKEN".into(), "env-secret-value".into())]),
            origin: None,
            owner: None,
        };
        let shown = format!("{spec:?} {spec:#?}");
        assert!(!shown.contains(session.expose()), "{shown}");
        assert!(!shown.contains("HeadersRegexp"), "{shown}");
        assert!(!shown.contains("env-secret-value"), "{shown}");
        assert!(
            shown.contains("traefik.http.routers.alice-522b27.rule"),
            "keys stay: {shown}"
        );
    }

    #[test]
    fn narrenv_variables_lose_their_prefix() {
        let env = narrative_env([
            ("NARRENV_FOO", "1"),
            ("PATH", "/bin"),
            ("NARRENV_", "x"),
            ("NARRENV_bar_baz", "2"),
        ]);
        assert_eq!(
            env,
            BTreeMap::from([("FOO".into(), "1".into()), ("bar_baz".into(), "2".into())])
        );
    }
}
