//! [`TraefikMetrics`]: the [`ActivitySource`] that reads Traefik's Prometheus page.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::ACCEPT;
use reqwest::Client;
use traefiker_core::{ActivityError, ActivitySnapshot, ActivitySource, ActivityTarget};

use crate::error::{redact, MetricsError};
use crate::http;
use crate::page::{read_page, CounterTracker, PageActivity, TraefikVersion};

/// How to read Traefik's metrics page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraefikMetricsConfig {
    /// The page, e.g. `http://traefik:8080/metrics`.
    pub url: String,
    /// Which Traefik serves it (`traefik_version`); `Auto` decides from each page.
    pub version: TraefikVersion,
    /// Time to establish the connection.
    pub connect_timeout: Duration,
    /// Time for the whole request, body included.
    pub timeout: Duration,
    /// Largest body accepted, after decompression.
    pub max_body_bytes: usize,
    /// Extra CA certificates (PEM) trusted besides the system's and the bundled roots.
    pub ca_bundle_pem: Option<Vec<u8>>,
}

impl TraefikMetricsConfig {
    /// Default connect timeout (SPEC §6a).
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default whole-request timeout for the metrics page (SPEC §6a).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default body cap: five times the 50 MB a Traefik with 10,000 services serves.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

    /// Reads `url` with the default timeouts and cap, detecting the version.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            version: TraefikVersion::Auto,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            timeout: Self::DEFAULT_TIMEOUT,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            ca_bundle_pem: None,
        }
    }
}

/// Activity from Traefik's Prometheus page: open websockets on v2, moved request counters on
/// v3 (see the crate docs for what v3 cannot see).
///
/// It keeps the previous page's counters between calls; a failed read leaves them as they
/// were, so the next good read still sees what moved meanwhile.
#[derive(Debug)]
pub struct TraefikMetrics {
    config: TraefikMetricsConfig,
    /// `traefik <url>` with the password redacted: the name errors carry.
    label: String,
    client: Client,
    tracker: Mutex<CounterTracker>,
}

impl TraefikMetrics {
    /// A source reading `config.url`; fails only if the HTTP client cannot be built.
    pub fn new(config: TraefikMetricsConfig) -> Result<Self, MetricsError> {
        let client = http::client(
            config.connect_timeout,
            config.timeout,
            config.ca_bundle_pem.as_deref(),
        )?;
        Ok(Self {
            label: format!("traefik {}", redact(&config.url)),
            config,
            client,
            tracker: Mutex::new(CounterTracker::new()),
        })
    }

    /// Fetches and reads the page once, without touching the counters kept between
    /// snapshots (for the operators' `activity` command).
    pub async fn fetch(&self) -> Result<PageActivity, MetricsError> {
        fetch_page(&self.client, &self.config).await
    }

    /// Snapshot from an already read page, updating the counters (what
    /// [`ActivitySource::snapshot`] does after fetching).
    pub fn observe(&self, page: &PageActivity) -> ActivitySnapshot {
        // A poisoned lock only means an earlier observe panicked mid-way; the counters are
        // still a usable baseline.
        let mut tracker = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
        tracker.observe(page)
    }
}

/// Fetches and reads Traefik's page as `config` says.
pub async fn fetch_page(
    client: &Client,
    config: &TraefikMetricsConfig,
) -> Result<PageActivity, MetricsError> {
    let url = redact(&config.url);
    // Plain text format: OpenMetrics would also parse, but Traefik's default is this one.
    let request = client
        .get(&config.url)
        .header(ACCEPT, "text/plain; version=0.0.4");
    let body = http::get_body(request, &url, config.max_body_bytes, config.timeout).await?;
    let text = simdutf8::compat::from_utf8(&body).map_err(|e| MetricsError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    read_page(text, config.version)
}

#[async_trait]
impl ActivitySource for TraefikMetrics {
    fn name(&self) -> &str {
        "traefik"
    }

    async fn snapshot(
        &self,
        _targets: &[ActivityTarget],
    ) -> Result<ActivitySnapshot, ActivityError> {
        // One page covers every service, so targets do not change what is fetched; the
        // snapshot names every service the page shows and the core picks the targets.
        let page = self
            .fetch()
            .await
            .map_err(|e| e.into_activity_error(self.label.clone()))?;
        tracing::debug!(
            source = %self.label,
            version = %page.version,
            services = page.requests.len(),
            samples = page.samples,
            "read traefik metrics"
        );
        Ok(self.observe(&page))
    }
}
