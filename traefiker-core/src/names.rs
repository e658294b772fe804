//! Identifiers and the naming scheme (SPEC §2).
//!
//! Container names are compatibility-critical: a running deployment has containers named by
//! the Python version, and the same user must map to the same name after an upgrade or every
//! running narrative would be orphaned. [`clean_userid`] therefore reproduces the Python
//! algorithm byte for byte for valid KBase ids, and only departs from it for characters that
//! could inject into a Traefik rule or a label key.

use std::fmt;

use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::error::InvalidInput;

/// Longest name Rancher and DNS accept for a service (a DNS label).
const MAX_NAME_LEN: usize = 63;

/// A KBase user id as auth2 reports it.
///
/// Auth2 ids are lowercase letters, digits and `_`, but the id is untrusted text from the
/// network: it is only required to be non-empty, short and free of control characters. Every
/// use that ends up in a name, label or rule goes through [`clean_userid`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Longest id accepted; auth2 itself caps user names at 100 characters.
    pub const MAX_LEN: usize = 100;

    /// Validates `id` as a user id.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidInput> {
        let id = id.into();
        if id.is_empty() || id.chars().count() > Self::MAX_LEN {
            return Err(InvalidInput::new(
                "user id",
                format!("must be 1 to {} characters long", Self::MAX_LEN),
            ));
        }
        if id.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "user id",
                "must not contain control characters",
            ));
        }
        Ok(Self(id))
    }

    /// The id as auth2 sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a narrative belongs to (SPEC §10): the lowercase hex SHA-256 of the exact UTF-8 user
/// id, recorded in the orchestrator for every narrative traefiker makes or assigns.
///
/// Container names are many-to-one (runs of `._-` collapse, ids are cut to 44 characters and
/// the name's hash is 24 bits), so the name alone never proves whose a narrative is; this
/// does. A hash rather than the id itself: labels and descriptions are readable by anyone
/// who can list containers, and the id is personal data.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner(String);

impl Owner {
    /// The owner record of `user`.
    pub fn of(user: &UserId) -> Self {
        Self(hex::encode(Sha256::digest(user.as_str().as_bytes())))
    }

    /// Validates a record read back from a label or a description.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidInput::new(
                "owner",
                "must be 64 lowercase hexadecimal characters (a SHA-256)",
            ))
        }
    }

    /// The record as text (64 hex characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a narrative's container (a Rancher service, a local process, ...).
///
/// At most 63 characters of ASCII letters, digits, `-`, `_` and `.`, so it is safe in a
/// Traefik router name, a label key, a URL path segment and a DNS label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(String);

impl ServiceName {
    /// Validates `name` as a service name.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidInput> {
        let name = name.into();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(InvalidInput::new(
                "service name",
                format!("must be 1 to {MAX_NAME_LEN} characters long: {name:?}"),
            ));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(InvalidInput::new(
                "service name",
                format!("may hold only ASCII letters, digits, '-', '_' and '.': {name:?}"),
            ));
        }
        Ok(Self(name))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The secret that routes a browser to one narrative: 128 random bits as 32 lowercase hex
/// characters, carried in the session cookie and matched by the container's Traefik rule.
///
/// `Debug` and `Display` show only the first 6 characters (the part that is public anyway:
/// it names prespawned containers). The whole value is reachable only through
/// [`SessionId::expose`], so it cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// Draws a new session id from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        // The OS generator failing means the platform cannot produce secrets at all; no
        // session may be issued then, and there is nothing a caller could do instead.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
        Self::from_bytes(bytes)
    }

    /// The session id of 128 bits drawn elsewhere (see [`crate::Entropy`]); only a
    /// cryptographically secure source may feed a deployment.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(hex::encode(bytes))
    }

    /// Validates an id read back from a container label or a cookie.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidInput::new(
                "session id",
                "must be 32 lowercase hexadecimal characters",
            ))
        }
    }

    /// The first 6 characters, which name a prespawned container and its router.
    pub fn short(&self) -> &str {
        &self.0[..6]
    }

    /// The whole secret, for the cookie, the container label and the Traefik rule only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", self.short())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.short())
    }
}

/// The identity of one traefiker replica (SPEC §9): the orchestrator's name for it (Rancher:
/// rancher-metadata `self/container/name`) or the host name. It marks the waiting containers
/// the replica made, so it is a label value: 1 to 63 characters of `[A-Za-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaId(String);

impl ReplicaId {
    /// Validates a replica id from configuration, the orchestrator or a label.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidInput> {
        let id = id.into();
        if id.is_empty() || id.len() > MAX_NAME_LEN {
            return Err(InvalidInput::new(
                "replica id",
                format!("must be 1 to {MAX_NAME_LEN} characters"),
            ));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(InvalidInput::new(
                "replica id",
                "may contain only letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A container name template with exactly one `{}`, e.g. `narrative-{}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameTemplate {
    template: String,
}

impl NameTemplate {
    /// Longest template: any user id then still yields a name of at most 63 characters.
    pub const MAX_LEN: usize = 56;

    /// Validates a template: one `{}`, and name-safe characters around it.
    pub fn new(template: impl Into<String>) -> Result<Self, InvalidInput> {
        let template = template.into();
        if template.matches("{}").count() != 1 {
            return Err(InvalidInput::new(
                "name template",
                format!("must contain exactly one {{}}: {template:?}"),
            ));
        }
        if template.chars().count() > Self::MAX_LEN {
            return Err(InvalidInput::new(
                "name template",
                format!(
                    "must be at most {} characters, to leave room for the user id: {template:?}",
                    Self::MAX_LEN
                ),
            ));
        }
        let rest = template.replace("{}", "x");
        ServiceName::new(rest).map_err(|e| InvalidInput::new("name template", e.reason))?;
        Ok(Self { template })
    }

    /// The template text, `{}` included.
    pub fn as_str(&self) -> &str {
        &self.template
    }

    /// The fixed text before `{}`: every name made from the template starts with it.
    pub fn prefix(&self) -> &str {
        self.template.split("{}").next().unwrap_or_default()
    }

    /// The fixed text after `{}`.
    pub fn suffix(&self) -> &str {
        self.template.split("{}").nth(1).unwrap_or_default()
    }

    /// Whether `name` could have been made from this template.
    pub fn matches(&self, name: &str) -> bool {
        name.len() > self.prefix().len() + self.suffix().len()
            && name.starts_with(self.prefix())
            && name.ends_with(self.suffix())
    }

    fn fill(&self, value: &str) -> Result<ServiceName, InvalidInput> {
        ServiceName::new(self.template.replacen("{}", value, 1))
    }
}

/// Whether a container is waiting in the pool or belongs to a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NarrativeKind {
    /// Assigned to a user: named from the user template.
    User,
    /// Waiting in the prespawn pool: named from the prespawn template.
    Prespawned,
}

/// The two name templates, and everything derived from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    user: NameTemplate,
    prespawn: NameTemplate,
}

impl Default for Naming {
    fn default() -> Self {
        #[allow(clippy::expect_used)]
        Self::new("narrative-{}", "narrativepre-{}").expect("the default templates are valid")
    }
}

impl Naming {
    /// Builds the naming scheme from the `container_name` and `container_name_prespawn`
    /// templates. They must not be able to produce each other's names.
    pub fn new(user: &str, prespawn: &str) -> Result<Self, InvalidInput> {
        let user = NameTemplate::new(user)?;
        let prespawn = NameTemplate::new(prespawn)?;
        if user.prefix() == prespawn.prefix() && user.suffix() == prespawn.suffix() {
            return Err(InvalidInput::new(
                "container_name_prespawn",
                "must differ from container_name",
            ));
        }
        Ok(Self { user, prespawn })
    }

    /// The user container template (`container_name`).
    pub fn user_template(&self) -> &NameTemplate {
        &self.user
    }

    /// The prespawned container template (`container_name_prespawn`).
    pub fn prespawn_template(&self) -> &NameTemplate {
        &self.prespawn
    }

    /// The cleaned id of `user` under this scheme (see [`clean_userid`]).
    pub fn cleaned(&self, user: &UserId) -> String {
        clean_userid(user.as_str(), self.user.as_str())
    }

    /// The name of `user`'s container.
    pub fn user_container(&self, user: &UserId) -> ServiceName {
        // clean_userid emits only [a-z0-9-] and keeps the result within 63 characters for
        // any template that passed validation.
        #[allow(clippy::expect_used)]
        self.user
            .fill(&self.cleaned(user))
            .expect("a cleaned user id always fills a valid template")
    }

    /// The name of a prespawned container holding `session`.
    pub fn prespawn_container(&self, session: &SessionId) -> ServiceName {
        #[allow(clippy::expect_used)]
        self.prespawn
            .fill(session.short())
            .expect("6 hex characters always fill a valid template")
    }

    /// Which template produced `name`, if either. The prespawn template is tried first so a
    /// user template that is a prefix of it (`narr-{}` and `narr-pre-{}`) cannot claim a
    /// waiting container.
    pub fn kind_of(&self, name: &str) -> Option<NarrativeKind> {
        if self.prespawn.matches(name) {
            Some(NarrativeKind::Prespawned)
        } else if self.user.matches(name) {
            Some(NarrativeKind::User)
        } else {
            None
        }
    }

    /// The name `user` gets when [`Naming::user_container`] is held by another user's
    /// narrative (SPEC §10): the cleaned id cut shorter, then `-` and the first 32 hex
    /// characters of the SHA-256 of the id (fewer only where a very long template leaves no
    /// room). [`clean_userid`] always ends its `{}` part with `-` and exactly 6 hex
    /// characters, so no id's ordinary name is ever a fallback name, and two ids share a
    /// fallback name only if their SHA-256 share 128 bits.
    pub fn fallback_container(&self, user: &UserId) -> ServiceName {
        #[allow(clippy::expect_used)]
        self.user
            .fill(&fallback_userid(user.as_str(), self.user.as_str()))
            .expect("a fallback id always fills a valid template")
    }

    /// The router name a container's labels use: the part of its name the template's `{}`
    /// stands for (the cleaned user id for a user's container, as the Python version named
    /// routers; the 6-character session prefix for a waiting one).
    pub fn router_for(&self, name: &ServiceName) -> String {
        let template = match self.kind_of(name.as_str()) {
            Some(NarrativeKind::Prespawned) => &self.prespawn,
            _ => &self.user,
        };
        let s = name.as_str();
        s.strip_prefix(template.prefix())
            .and_then(|rest| rest.strip_suffix(template.suffix()))
            .unwrap_or(s)
            .to_owned()
    }
}

/// The Python version's `clean_userid`, made injection-proof (SPEC §2).
///
/// `h` is the first 6 hex characters of SHA-1 of the UTF-8 id; runs of `.`, `_` and `-`
/// become one `-`; a trailing `-` becomes `-0`; then (the one change) every character still
/// outside `[a-z0-9-]` becomes `-`; the result is cut to `62 - len(template) - 6` characters
/// and `-h` appended. `template` is the user container template, `{}` included.
pub fn clean_userid(user: &str, template: &str) -> String {
    let digest = Sha1::digest(user.as_bytes());
    let hash = &hex::encode(digest)[..6];
    let safe = safe_body(user);
    let max = 62usize
        .saturating_sub(template.chars().count())
        .saturating_sub(hash.len());
    let cut = &safe[..safe.len().min(max)];
    format!("{cut}-{hash}")
}

/// The `{}` part of [`Naming::fallback_container`].
fn fallback_userid(user: &str, template: &str) -> String {
    // What the template's fixed text leaves of a 63-character name; a valid template
    // (at most 56 characters) leaves at least 9, so the hash is never 6 characters long.
    let room = (MAX_NAME_LEN + 2).saturating_sub(template.chars().count());
    let hash_len = room.min(32);
    let hash = &hex::encode(Sha256::digest(user.as_bytes()))[..hash_len];
    let budget = room.saturating_sub(hash_len + 1);
    if budget == 0 {
        return hash.to_owned();
    }
    let safe = safe_body(user);
    let cut = &safe[..safe.len().min(budget)];
    format!("{cut}-{hash}")
}

/// The Python version's cleaning of an id, before the cut and the hash: runs of `._-` become
/// one `-`, a trailing `-` becomes `-0`, then every character outside `[a-z0-9-]` is `-`.
fn safe_body(user: &str) -> String {
    let mut collapsed = String::with_capacity(user.len() + 1);
    let mut in_run = false;
    for c in user.chars() {
        if matches!(c, '.' | '_' | '-') {
            if !in_run {
                collapsed.push('-');
            }
            in_run = true;
        } else {
            collapsed.push(c);
            in_run = false;
        }
    }
    if collapsed.ends_with('-') {
        collapsed.push('0');
    }
    collapsed
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            _ => '-',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alice_matches_the_python_version() {
        assert_eq!(clean_userid("alice", "narrative-{}"), "alice-522b27");
        let naming = Naming::default();
        let alice = UserId::new("alice").unwrap();
        assert_eq!(
            naming.user_container(&alice).as_str(),
            "narrative-alice-522b27"
        );
    }

    #[test]
    fn characters_outside_the_safe_set_are_replaced_after_the_trailing_rule() {
        assert_eq!(
            clean_userid("ab!", "narrative-{}"),
            format!("ab--{}", &hex::encode(Sha1::digest(b"ab!"))[..6])
        );
    }

    #[test]
    fn session_ids_are_random_hex_and_debug_hides_them() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 32);
        assert!(SessionId::parse(a.expose()).is_ok());
        let shown = format!("{a:?} {a}");
        assert!(!shown.contains(a.expose()), "{shown}");
        assert!(shown.contains(a.short()));
    }

    #[test]
    fn session_ids_reject_anything_but_lowercase_hex() {
        for bad in [
            "",
            "ABCDEF0123456789abcdef0123456789",
            "0123",
            "g".repeat(32).as_str(),
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prespawned_names_come_from_the_session_prefix() {
        let s = SessionId::parse("1f2e3d00000000000000000000000000").unwrap();
        let naming = Naming::default();
        assert_eq!(
            naming.prespawn_container(&s).as_str(),
            "narrativepre-1f2e3d"
        );
        assert_eq!(
            naming.kind_of("narrativepre-1f2e3d"),
            Some(NarrativeKind::Prespawned)
        );
        assert_eq!(
            naming.kind_of("narrative-alice-522b27"),
            Some(NarrativeKind::User)
        );
        assert_eq!(naming.kind_of("narrative-"), None);
        assert_eq!(naming.kind_of("traefiker"), None);
    }

    #[test]
    fn a_user_template_that_prefixes_the_prespawn_one_does_not_claim_waiting_containers() {
        let naming = Naming::new("narr-{}", "narr-pre-{}").unwrap();
        assert_eq!(
            naming.kind_of("narr-pre-abcdef"),
            Some(NarrativeKind::Prespawned)
        );
        assert_eq!(naming.kind_of("narr-bob-123456"), Some(NarrativeKind::User));
    }

    #[test]
    fn templates_need_exactly_one_placeholder_and_safe_characters() {
        assert!(NameTemplate::new("narrative").is_err());
        assert!(NameTemplate::new("{}-{}").is_err());
        assert!(NameTemplate::new("narr ative-{}").is_err());
        assert!(Naming::new("a-{}", "a-{}").is_err());
    }

    #[test]
    fn owners_are_the_sha256_of_the_exact_id() {
        let alice = UserId::new("alice").unwrap();
        let owner = Owner::of(&alice);
        assert_eq!(
            owner.as_str(),
            "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"
        );
        assert_eq!(Owner::parse(owner.as_str()), Ok(owner.clone()));
        assert_ne!(Owner::of(&UserId::new("alice_").unwrap()), owner);
        assert!(Owner::parse("2BD806").is_err());
    }

    #[test]
    fn ids_that_share_a_name_get_fallback_names_of_their_own() {
        let naming = Naming::default();
        // Runs of `._-` collapse: the Python version gives both ids one name.
        let a = UserId::new("a_b").unwrap();
        let b = UserId::new("a.-b").unwrap();
        let (na, nb) = (naming.user_container(&a), naming.user_container(&b));
        assert_eq!(na.as_str()[..13], nb.as_str()[..13]);
        let (fa, fb) = (naming.fallback_container(&a), naming.fallback_container(&b));
        assert_ne!(fa, fb);
        assert_eq!(naming.kind_of(fa.as_str()), Some(NarrativeKind::User));
        assert!(fa.as_str().starts_with("narrative-a-b-"), "{fa}");
        let last = fa.as_str().rsplit('-').next().unwrap();
        assert_eq!(last.len(), 32, "{fa}");
        assert_eq!(naming.router_for(&fa), &fa.as_str()["narrative-".len()..]);
        assert_eq!(naming.router_for(&na), naming.cleaned(&a));
    }

    #[test]
    fn no_ordinary_name_is_a_fallback_name_and_long_templates_still_fit() {
        for template in ["narrative-{}", "n{}", &format!("{}-{{}}", "x".repeat(53))] {
            let naming = Naming::new(template, "pre-{}").unwrap();
            for id in ["alice", &"z".repeat(100), "a.b", "x-"] {
                let user = UserId::new(id).unwrap();
                let fallback = naming.fallback_container(&user);
                let ordinary = naming.user_container(&user);
                // An ordinary name's last segment is exactly 6 hex characters.
                assert_eq!(ordinary.as_str().rsplit('-').next().unwrap().len(), 6);
                assert_ne!(fallback.as_str().rsplit('-').next().unwrap().len(), 6);
                assert!(fallback.as_str().len() <= MAX_NAME_LEN, "{fallback}");
            }
        }
    }

    #[test]
    fn user_ids_reject_empty_long_and_control_characters() {
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a".repeat(101)).is_err());
        assert!(UserId::new("a\nb").is_err());
        assert!(UserId::new("Ünïcode").is_ok());
    }
}
