//! Work that runs beside the requests: the reaper (on request or on an interval), with the
//! narrative version check, and the pool filler.
//!
//! A failed cycle is logged and the loop goes on; only start-up errors end the service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::Instrument;
use traefiker_core::{Error, Lifecycle, ReapMode, ReapReport};

use crate::kept::Kept;
use crate::telemetry::Metrics;

/// Where the current narrative version comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// `image_tag` is set: always this image.
    Fixed(String),
    /// `narrative_version_url`: `{"version": ...}` names the tag.
    Versioned {
        /// `image_name`
        image_name: String,
        /// `narrative_version_url`
        url: String,
        /// A client with the version timeouts.
        http: reqwest::Client,
    },
}

#[derive(Deserialize)]
struct VersionDoc {
    version: String,
}

impl ImageSource {
    /// The image new narratives should start from now.
    pub async fn current(&self) -> Result<String, String> {
        match self {
            Self::Fixed(image) => Ok(image.clone()),
            Self::Versioned {
                image_name,
                url,
                http,
            } => {
                let response = http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| format!("narrative_version_url {url}: {e}"))?;
                let status = response.status();
                if !status.is_success() {
                    return Err(format!("narrative_version_url {url} answered {status}"));
                }
                // A static file: whatever its content type, the body is JSON.
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| format!("narrative_version_url {url}: {e}"))?;
                let doc: VersionDoc = serde_json::from_slice(&body).map_err(|e| {
                    format!("narrative_version_url {url}: not a {{\"version\": ...}} document: {e}")
                })?;
                let tag = doc.version.trim();
                if tag.is_empty()
                    || !tag
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
                {
                    return Err(format!(
                        "narrative_version_url {url}: {tag:?} is not an image tag"
                    ));
                }
                Ok(format!("{image_name}:{tag}"))
            }
        }
    }
}

/// Runs reaper cycles: checks the version, then reaps, and records metrics.
#[derive(Debug, Clone)]
pub struct Reaper {
    lifecycle: Lifecycle,
    image: Arc<ImageSource>,
    metrics: Arc<Metrics>,
    /// Refreshed after every cycle, so a reaped narrative's route is gone when it ends.
    kept: Kept,
}

impl Reaper {
    /// A reaper over `lifecycle`.
    pub fn new(
        lifecycle: Lifecycle,
        image: Arc<ImageSource>,
        metrics: Arc<Metrics>,
        kept: Kept,
    ) -> Self {
        Self {
            lifecycle,
            image,
            metrics,
            kept,
        }
    }

    /// Refreshes the narrative image; a failure keeps the one in use.
    pub async fn refresh_image(&self) {
        match self.image.current().await {
            Ok(image) => {
                self.lifecycle.set_image(image);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not check the narrative version; keeping the current image")
            }
        }
    }

    /// One cycle.
    pub async fn run(&self, mode: ReapMode) -> Result<ReapReport, Error> {
        let span = tracing::info_span!("reap_cycle", dry_run = mode == ReapMode::DryRun);
        self.run_inner(mode).instrument(span).await
    }

    async fn run_inner(&self, mode: ReapMode) -> Result<ReapReport, Error> {
        let started = Instant::now();
        if mode == ReapMode::Apply {
            self.refresh_image().await;
        }
        let result = self.lifecycle.reap_cycle(mode).await;
        if mode == ReapMode::Apply {
            self.kept.removed().await;
        }
        match &result {
            Ok(report) => {
                self.metrics.reaped(report, started.elapsed().as_secs_f64());
                self.metrics.pool(self.lifecycle.pool_waiting());
                tracing::info!(
                    removed = report.removed(),
                    idle = report.idle.len(),
                    unanswered = report.idle_quiet.len(),
                    zombies = report.zombies.len(),
                    pool_created = report.pool.created,
                    skipped = report.skipped.len(),
                    duplicates = ?report.duplicates.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
                    activity_error = report.activity_error(),
                    failures = ?report.failures,
                    "reaper cycle done"
                );
            }
            Err(e) => {
                self.metrics.reap_failed();
                tracing::error!(error = %e, "reaper cycle failed");
            }
        }
        result
    }

    /// Runs a cycle every `period` until `shutdown` completes.
    pub async fn run_every(
        &self,
        period: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticker.tick() => {
                    let _ = self.run(ReapMode::Apply).await;
                }
            }
        }
    }
}
