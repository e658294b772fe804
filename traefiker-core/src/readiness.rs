//! Whether a waiting container answers yet: the pool hands out only those that do, so a new
//! user never lands on a narrative that is still starting (issue 14).

use async_trait::async_trait;

use crate::narrative::Narrative;

/// Checks that a narrative answers (e.g. Jupyter's `/api/status`).
///
/// # Contract
///
/// Answers within its own bounded time; `false` on any failure. Called only for narratives
/// the backend reports running. Without a check configured, running is enough.
#[async_trait]
pub trait Readiness: Send + Sync + std::fmt::Debug {
    /// Whether `narrative` answers now.
    async fn is_ready(&self, narrative: &Narrative) -> bool;
}
