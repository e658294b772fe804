//! Who is asking: KBase auth2 token validation (SPEC §3 step 2), with a short cache, or
//! static tokens for demos and sites without auth2.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::StaticToken;

/// A validated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The auth2 user name.
    pub user: String,
    /// auth2 custom roles.
    pub custom_roles: Vec<String>,
}

/// Why a token was not accepted; the texts are the Python version's (SPEC §3).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// auth2 answered, and not with 200.
    #[error("Session cookie failed validation at {url}: {message}")]
    Rejected {
        /// The auth2 URL.
        url: String,
        /// auth2's `error.message`.
        message: String,
    },
    /// auth2 did not answer, or answered something unreadable.
    #[error("Error querying {url}: {detail}")]
    Unreachable {
        /// The auth2 URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
}

/// Validates a token.
#[async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The identity behind `token`.
    async fn validate(&self, token: &str) -> Result<Identity, AuthError>;
}

#[derive(Deserialize)]
struct MeAnswer {
    user: String,
    #[serde(default)]
    customroles: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

/// The auth2 `/api/V2/me` client.
#[derive(Debug, Clone)]
pub struct Auth2 {
    url: String,
    http: reqwest::Client,
}

impl Auth2 {
    /// A client of `url` with the given timeouts.
    pub fn new(url: String, connect: Duration, request: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .timeout(request)
            .build()?;
        Ok(Self { url, http })
    }

    fn unreachable(&self, detail: impl std::fmt::Display) -> AuthError {
        AuthError::Unreachable {
            url: self.url.clone(),
            detail: detail.to_string(),
        }
    }
}

#[async_trait]
impl Authenticator for Auth2 {
    async fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        let response = self
            .http
            .get(&self.url)
            .header("Authorization", token)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| self.unreachable(without_url(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.unreachable(without_url(&e)))?;
        if status.is_success() {
            let me: MeAnswer = serde_json::from_slice(&body)
                .map_err(|e| self.unreachable(format!("unreadable answer ({status}): {e}")))?;
            Ok(Identity {
                user: me.user,
                custom_roles: me.customroles,
            })
        } else {
            let message = serde_json::from_slice::<ErrorAnswer>(&body)
                .ok()
                .and_then(|e| e.error.message)
                .ok_or_else(|| self.unreachable(format!("unreadable error answer ({status})")))?;
            Err(AuthError::Rejected {
                url: self.url.clone(),
                message,
            })
        }
    }
}

/// reqwest's errors name the URL; ours already does, once.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut detail = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    detail
}

/// Static tokens (`auth_tokens`).
#[derive(Debug, Clone)]
pub struct StaticTokens {
    tokens: Vec<StaticToken>,
}

impl StaticTokens {
    /// Accepts exactly `tokens`.
    pub fn new(tokens: Vec<StaticToken>) -> Self {
        Self { tokens }
    }
}

#[async_trait]
impl Authenticator for StaticTokens {
    async fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        self.tokens
            .iter()
            .find(|t| t.token.expose() == token)
            .map(|t| Identity {
                user: t.user.clone(),
                custom_roles: t.roles.clone(),
            })
            .ok_or_else(|| AuthError::Rejected {
                url: "auth_tokens".into(),
                message: "10020 Invalid token".into(),
            })
    }
}

/// Remembers successful validations for a while, keyed by a hash of the token (never the
/// token), so reload storms do not hammer auth2. Failures are not remembered: a user who just
/// logged in must not wait for a cached rejection to expire.
#[derive(Debug, Clone)]
pub struct Cached {
    inner: Arc<dyn Authenticator>,
    cache: Cache<[u8; 32], Identity>,
    hits: prometheus_client::metrics::counter::Counter,
}

impl Cached {
    /// Caches `inner`'s answers for `ttl` (zero disables the cache).
    pub fn new(
        inner: Arc<dyn Authenticator>,
        ttl: Duration,
        hits: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let cache = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(ttl.max(Duration::from_millis(1)))
            .build();
        Self { inner, cache, hits }
    }
}

#[async_trait]
impl Authenticator for Cached {
    async fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(identity) = self.cache.get(&key).await {
            self.hits.inc();
            return Ok(identity);
        }
        let identity = self.inner.validate(token).await?;
        self.cache.insert(key, identity.clone()).await;
        Ok(identity)
    }
}
