//! Who is asking: KBase auth2 token validation (SPEC §3 step 2) or static tokens for demos and
//! the local backend ([`Authenticator`]), behind a [`Gate`] that remembers answers, keyed by
//! a hash of the token, and limits failed validations per client address.

mod auth2;
mod gate;
mod static_tokens;

use std::time::Duration;

use async_trait::async_trait;

pub use auth2::Auth2;
pub use gate::{Gate, GateCounters, GateSettings};
pub use static_tokens::StaticTokens;

/// A validated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The auth2 user name.
    pub user: String,
    /// auth2 custom roles.
    pub custom_roles: Vec<String>,
}

/// Why a token was not accepted. The texts are for the log (they name auth2's URL); what a
/// user sees is written by [`crate::render::reply`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// auth2 said the token is not valid (a 4xx answer).
    #[error("Session cookie failed validation at {url}: {message}")]
    Rejected {
        /// The auth2 URL.
        url: String,
        /// auth2's `error.message`.
        message: String,
    },
    /// auth2 did not answer, failed on its side, or answered something unreadable: nothing is
    /// known about the token.
    #[error("Error querying {url}: {detail}")]
    Unreachable {
        /// The auth2 URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// This client address had too many tokens rejected lately; auth2 was not asked.
    #[error("too many failed token validations from this address; retry after {retry_after:?}")]
    Throttled {
        /// When the address may try again.
        retry_after: Duration,
    },
}

/// Validates a token.
#[async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The identity behind `token`.
    async fn validate(&self, token: &str) -> Result<Identity, AuthError>;
}
