//! The auth2 `/api/V2/me` client (SPEC §3 step 2).

use async_trait::async_trait;
use serde::Deserialize;

use super::{AuthError, Authenticator, Identity};

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
    /// A client of `url` over `http` (built by [`crate::outbound::client`], with its timeouts
    /// and trusted roots).
    pub fn new(url: String, http: reqwest::Client) -> Self {
        Self { url, http }
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
            // Only a 4xx is a verdict on the token (401 invalid, 400 none); a 5xx is auth2's
            // own trouble, and must not be remembered or counted as a guess.
            if status.is_client_error() {
                Err(AuthError::Rejected {
                    url: self.url.clone(),
                    message,
                })
            } else {
                Err(self.unreachable(format!("answered {status}: {message}")))
            }
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
