//! Whether a waiting container answers yet: the pool hands out only those that do, so a new
//! user never lands on a narrative that is still starting (issue 14).

use async_trait::async_trait;

use crate::narrative::Narrative;

/// Checks that a narrative answers (e.g. Jupyter's `/api/status`).
///
/// # Contract
///
/// Answers within its own bounded time; an error on any failure, saying what was asked and
/// what came back (an address and an error, never a secret: the lifecycle shows it to the
/// operator when waiting narratives never become ready). Called only for narratives the
/// backend reports running. Without a check configured, running is enough.
#[async_trait]
pub trait Readiness: Send + Sync + std::fmt::Debug {
    /// `Ok` if `narrative` answers now; otherwise what the check saw.
    async fn check(&self, narrative: &Narrative) -> Result<(), String>;

    /// The likely cause when waiting narratives never pass this check, and what to do about
    /// it, in an operator's words.
    fn likely_cause(&self) -> &str;
}
