//! Static tokens (`auth_tokens`): `token:user[:role+role]` entries instead of auth2.

use std::fmt;

use super::Secret;

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
            token: Secret::new(token),
            user: user.to_owned(),
            roles,
        });
    }
    if tokens.is_empty() {
        return Err("no tokens given".to_owned());
    }
    Ok(tokens)
}
