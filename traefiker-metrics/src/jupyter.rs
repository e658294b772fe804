//! [`NarrativeStatus`]: the second [`ActivitySource`], asking each narrative's own Jupyter
//! server.
//!
//! Traefik v3 cannot see a websocket that stays open: its request counter only moves when
//! the websocket closes. Jupyter can: `GET <base_url>api/status` answers `connections`, the
//! open kernel websockets (a notebook open in a browser tab), and `last_activity`, which moves
//! on kernel traffic. With `activity_sources = traefik,narrative_status` a narrative is active
//! if either source says so ([`traefiker_core::activity::join_activity`]).
//!
//! The same question tells whether a waiting narrative is ready to be handed out: it is
//! [`Readiness`] too (the server's `ready_check = status`), so the pool gives a new user only
//! a narrative whose Jupyter answers.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Client;
use serde::Deserialize;
use traefiker_core::{
    Activity, ActivityError, ActivitySnapshot, ActivitySource, ActivityTarget, Narrative, Readiness,
};

use crate::error::{redact, MetricsError};
use crate::http;

/// How to ask narratives for their status.
#[derive(Clone, PartialEq, Eq)]
pub struct NarrativeStatusConfig {
    /// Path after the narrative's address; narratives run Jupyter under `/narrative/`.
    pub path: String,
    /// Jupyter's token, sent as `Authorization: token <t>`; KBase narratives run without one.
    pub token: Option<String>,
    /// Time to connect to one narrative.
    pub connect_timeout: Duration,
    /// Time for one narrative's whole answer.
    pub timeout: Duration,
    /// Narratives asked at once.
    pub concurrency: usize,
    /// Time for one whole snapshot; narratives not answered by then are unknown, so a
    /// thousand hung narratives cannot hold the reaper for a thousand timeouts.
    pub deadline: Duration,
    /// Largest answer accepted from one narrative.
    pub max_body_bytes: usize,
    /// Extra CA certificates (PEM) trusted besides the system's and the bundled roots.
    pub ca_bundle_pem: Option<Vec<u8>>,
}

impl NarrativeStatusConfig {
    /// Default path: Jupyter's status under the narratives' base URL.
    pub const DEFAULT_PATH: &'static str = "/narrative/api/status";
}

impl Default for NarrativeStatusConfig {
    fn default() -> Self {
        Self {
            path: Self::DEFAULT_PATH.to_owned(),
            token: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            concurrency: 16,
            deadline: Duration::from_secs(60),
            max_body_bytes: 64 * 1024,
            ca_bundle_pem: None,
        }
    }
}

// By hand so the token never reaches a log line.
impl fmt::Debug for NarrativeStatusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NarrativeStatusConfig")
            .field("path", &self.path)
            .field("token", &self.token.as_ref().map(|_| "****"))
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .field("deadline", &self.deadline)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("ca_bundle_pem", &self.ca_bundle_pem.as_ref().map(Vec::len))
            .finish()
    }
}

/// What one Jupyter server says of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JupyterStatus {
    /// Open kernel websockets.
    pub connections: u64,
    /// Last kernel traffic, if the server said.
    pub last_activity: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct StatusBody {
    connections: u64,
    #[serde(default)]
    last_activity: Option<String>,
}

/// Reads Jupyter Server's `/api/status` JSON.
pub fn parse_status(body: &[u8]) -> Result<JupyterStatus, String> {
    let parsed: StatusBody = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let last_activity = match parsed.last_activity {
        Some(text) => Some(
            DateTime::parse_from_rfc3339(&text)
                .map_err(|e| format!("last_activity {text:?}: {e}"))?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    Ok(JupyterStatus {
        connections: parsed.connections,
        last_activity,
    })
}

/// Activity from each narrative's Jupyter `/api/status`: active while it has an open kernel
/// websocket or when its `last_activity` moved since the previous snapshot; unknown for a
/// narrative that has no address or does not answer. The source as a whole never fails.
#[derive(Debug)]
pub struct NarrativeStatus {
    config: NarrativeStatusConfig,
    client: Client,
    /// `last_activity` per service at the previous snapshot.
    last_seen: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl NarrativeStatus {
    /// A source asking narratives as `config` says; fails only if the HTTP client cannot be
    /// built.
    pub fn new(config: NarrativeStatusConfig) -> Result<Self, MetricsError> {
        let client = http::client(
            config.connect_timeout,
            config.timeout,
            config.ca_bundle_pem.as_deref(),
        )?;
        Ok(Self {
            config,
            client,
            last_seen: Mutex::new(HashMap::new()),
        })
    }

    /// Asks the narrative at `address` (e.g. `http://10.42.0.10:8888`) once.
    pub async fn status_of(&self, address: &str) -> Result<JupyterStatus, MetricsError> {
        let url = format!("{}{}", address.trim_end_matches('/'), self.config.path);
        let shown = redact(&url);
        let mut request = self.client.get(&url);
        if let Some(token) = &self.config.token {
            let mut value = HeaderValue::from_str(&format!("token {token}")).map_err(|_| {
                MetricsError::NotJupyterStatus {
                    url: shown.clone(),
                    reason: "the configured token is not a valid header value".to_owned(),
                }
            })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let body = http::get_body(
            request,
            &shown,
            self.config.max_body_bytes,
            self.config.timeout,
        )
        .await?;
        parse_status(&body).map_err(|reason| MetricsError::NotJupyterStatus { url: shown, reason })
    }
}

#[async_trait]
impl ActivitySource for NarrativeStatus {
    fn name(&self) -> &str {
        "narrative_status"
    }

    async fn snapshot(
        &self,
        targets: &[ActivityTarget],
    ) -> Result<ActivitySnapshot, ActivityError> {
        // Owned inputs (index, address): a stream of futures borrowing the targets trips
        // rustc's higher-ranked `Send` check inside `async_trait`.
        let asks: Vec<(usize, String)> = targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some((i, t.address.clone()?)))
            .collect();
        let answers: Vec<(usize, Result<JupyterStatus, MetricsError>)> =
            futures::stream::iter(asks)
                .map(|(i, address)| async move { (i, self.status_of(&address).await) })
                .buffer_unordered(self.config.concurrency.max(1))
                .take_until(tokio::time::sleep(self.config.deadline))
                .collect()
                .await;
        let mut answered: HashMap<usize, Result<JupyterStatus, MetricsError>> =
            answers.into_iter().collect();

        let mut last_seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut snapshot = ActivitySnapshot::new();
        let mut failed = 0usize;
        let mut first_failure = None;
        let mut kept = HashMap::with_capacity(targets.len());
        for (i, target) in targets.iter().enumerate() {
            let service = target.service.as_str();
            let activity = match answered.remove(&i) {
                Some(Ok(status)) => {
                    let moved = match (status.last_activity, last_seen.get(service)) {
                        (Some(now), Some(before)) => now > *before,
                        _ => false,
                    };
                    if let Some(now) = status.last_activity {
                        kept.insert(target.service.clone(), now);
                    }
                    if status.connections >= 1 || moved {
                        Activity::Active
                    } else {
                        Activity::Idle
                    }
                }
                Some(Err(e)) => {
                    failed += 1;
                    first_failure.get_or_insert_with(|| e.to_string());
                    keep_previous(&last_seen, &mut kept, service);
                    Activity::Unknown
                }
                None => {
                    if target.address.is_some() {
                        failed += 1;
                        first_failure.get_or_insert_with(|| {
                            format!(
                                "{service} did not answer within the {:?} deadline",
                                self.config.deadline
                            )
                        });
                    }
                    keep_previous(&last_seen, &mut kept, service);
                    Activity::Unknown
                }
            };
            snapshot.set(target.service.clone(), activity);
        }
        // Only current targets are kept: state stays proportional to live narratives.
        *last_seen = kept;
        if failed > 0 {
            tracing::warn!(
                failed,
                asked = targets.len(),
                first = first_failure.as_deref().unwrap_or(""),
                "narratives whose status could not be read are unknown this cycle"
            );
        }
        Ok(snapshot)
    }
}

/// A waiting narrative is ready once its Jupyter answers its status, within the source's
/// timeouts. One the backend gives no address for cannot be asked: the backend's own state
/// (running, and healthy where it has a health check) is all there is to go on. A failure is
/// not logged here: it is asked every second or so while a narrative starts, and the
/// lifecycle says once when narratives never become ready.
#[async_trait]
impl Readiness for NarrativeStatus {
    async fn check(&self, narrative: &Narrative) -> Result<(), String> {
        let Some(address) = &narrative.address else {
            return Ok(());
        };
        self.status_of(address)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn likely_cause(&self) -> &str {
        "traefiker asks each waiting narrative's Jupyter for its status at the address the \
         backend reports (ready_check = status): if traefiker cannot reach the narratives' \
         addresses (another network, a firewall), set ready_check = backend; if it can, the \
         narrative image does not start Jupyter within ready_timeout_secs"
    }
}

fn keep_previous(
    last_seen: &HashMap<String, DateTime<Utc>>,
    kept: &mut HashMap<String, DateTime<Utc>>,
    service: &str,
) {
    if let Some(before) = last_seen.get(service) {
        kept.insert(service.to_owned(), *before);
    }
}
