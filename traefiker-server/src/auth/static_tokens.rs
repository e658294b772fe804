//! Static tokens (`auth_tokens`) for demos and the local backend, compared in constant time.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, Authenticator, Identity};
use crate::config::StaticToken;

/// Static tokens (`auth_tokens`).
///
/// Each token is kept as its SHA-256 digest and a presented token is compared with every one
/// in constant time: neither the position of the first differing byte nor the tokens'
/// lengths show in the time an answer takes.
#[derive(Clone)]
pub struct StaticTokens {
    entries: Vec<([u8; 32], Identity)>,
}

impl StaticTokens {
    /// Accepts exactly `tokens`.
    pub fn new(tokens: Vec<StaticToken>) -> Self {
        let entries = tokens
            .into_iter()
            .map(|t| {
                let digest: [u8; 32] = Sha256::digest(t.token.expose().as_bytes()).into();
                let identity = Identity {
                    user: t.user,
                    custom_roles: t.roles,
                };
                (digest, identity)
            })
            .collect();
        Self { entries }
    }
}

// By hand: the digests stay out of logs too.
impl std::fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticTokens")
            .field("tokens", &self.entries.len())
            .finish()
    }
}

#[async_trait]
impl Authenticator for StaticTokens {
    async fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        // No early exit: every entry is compared whatever matched.
        for (digest, identity) in &self.entries {
            if bool::from(digest.ct_eq(&presented)) {
                found = Some(identity);
            }
        }
        found.cloned().ok_or_else(|| AuthError::Rejected {
            url: "auth_tokens".into(),
            message: "10020 Invalid token".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::parse_tokens;

    #[tokio::test]
    async fn only_the_exact_token_is_accepted() {
        let tokens =
            StaticTokens::new(parse_tokens("secret-a:alice,secret-b:kbadmin:KBASE_ADMIN").unwrap());
        assert_eq!(tokens.validate("secret-a").await.unwrap().user, "alice");
        let admin = tokens.validate("secret-b").await.unwrap();
        assert_eq!(admin.custom_roles, ["KBASE_ADMIN"]);
        for wrong in ["secret-", "secret-a ", "secret-ab", "SECRET-A", ""] {
            assert!(matches!(
                tokens.validate(wrong).await,
                Err(AuthError::Rejected { .. })
            ));
        }
        assert!(!format!("{tokens:?}").contains("secret"));
    }
}
