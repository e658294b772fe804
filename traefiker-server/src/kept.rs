//! What a background loop keeps so that `/traefik/dynamic` and `/readyz` answer without a
//! backend call: the Traefik configuration rendered from the last listing, and how the last
//! backend check went.
//!
//! One loop ([`Kept::run`]) asks the backend once per interval however many callers poll:
//! with the provider on it lists every narrative (the listing also refreshes what the
//! lifecycle knows of users and the pool) every [`PROVIDER_INTERVAL`]; with it off it only
//! verifies the backend every [`CHECK_INTERVAL`]. A change this process makes (a connect,
//! a shutdown) asks for an early refresh ([`Kept::refresh_soon`]), never sooner than
//! [`MIN_GAP`] after the last; the reaper waits for one ([`Kept::refresh`]) so that a
//! reaped narrative's route is gone when `/reaper/` answers.
//!
//! This is the one place to re-point when the lifecycle keeps an index of its own.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use tokio::sync::{Mutex, Notify};
use traefiker_core::{Lifecycle, Narrative};

use crate::config::Config;
use crate::routes::dynamic::dynamic_config;
use crate::routes::reply::Reference;

/// How often the provider's listing is refreshed.
pub const PROVIDER_INTERVAL: Duration = Duration::from_secs(2);
/// How often the backend is verified when the provider is off.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// The shortest time between two listings, whatever asks for them.
pub const MIN_GAP: Duration = Duration::from_millis(500);

/// The outcome of one backend check.
#[derive(Clone, Debug)]
pub enum Check {
    /// Never checked yet.
    Pending,
    /// Answered.
    Ok,
    /// Failed; the detail is in the log under this reference.
    Failed(Reference),
}

/// What the loop keeps.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The Traefik configuration of the last good listing (provider on).
    pub dynamic: Option<Bytes>,
    /// The last check.
    pub check: Check,
    /// When the backend last answered.
    pub last_ok: Option<Instant>,
}

/// The kept state, shared by the loop and the handlers (cheap to clone).
#[derive(Clone, Debug)]
pub struct Kept {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    lifecycle: Lifecycle,
    config: Arc<Config>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Serialises refreshes, so an older listing never overwrites a newer one.
    refreshing: Mutex<()>,
    wake: Notify,
}

impl Kept {
    /// State for `lifecycle` under `config`; nothing is checked until [`Kept::refresh`].
    pub fn new(lifecycle: Lifecycle, config: Arc<Config>) -> Self {
        Self {
            inner: Arc::new(Inner {
                lifecycle,
                config,
                snapshot: RwLock::new(Arc::new(Snapshot {
                    dynamic: None,
                    check: Check::Pending,
                    last_ok: None,
                })),
                refreshing: Mutex::new(()),
                wake: Notify::new(),
            }),
        }
    }

    /// The last snapshot (no backend call).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a writer panicked between two whole snapshots.
        self.inner
            .snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the backend answered lately: the last check succeeded, and not longer ago
    /// than a few intervals plus one slow request.
    pub fn ready(&self) -> Result<(), Option<Reference>> {
        let snapshot = self.snapshot();
        let interval = self.interval();
        let stale_after = interval * 3 + self.inner.config.timeouts.rancher;
        match (&snapshot.check, snapshot.last_ok) {
            (Check::Ok, Some(at)) if at.elapsed() <= stale_after => Ok(()),
            (Check::Failed(reference), _) => Err(Some(reference.clone())),
            _ => Err(None),
        }
    }

    fn interval(&self) -> Duration {
        if self.inner.config.security.provider.enabled {
            PROVIDER_INTERVAL
        } else {
            CHECK_INTERVAL
        }
    }

    /// Asks the loop for a refresh soon, without waiting for it.
    pub fn refresh_soon(&self) {
        self.inner.wake.notify_one();
    }

    /// Refreshes now (after any refresh in progress) and keeps the result.
    pub async fn refresh(&self) {
        let _serial = self.inner.refreshing.lock().await;
        let provider = self.inner.config.security.provider.enabled;
        let outcome = if provider {
            match self.inner.lifecycle.narratives().await {
                Ok(narratives) => self.render(narratives).await.map(Some),
                Err(e) => Err(e.to_string()),
            }
        } else {
            match self.inner.lifecycle.manager().verify().await {
                Ok(_) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        };
        let previous = self.snapshot();
        let next = match outcome {
            Ok(dynamic) => Snapshot {
                dynamic: dynamic.or_else(|| previous.dynamic.clone()),
                check: Check::Ok,
                last_ok: Some(Instant::now()),
            },
            Err(detail) => {
                let reference = Reference::new();
                tracing::error!(%reference, error = %detail, "backend check failed");
                // Traefik keeps routing with the last good configuration meanwhile.
                Snapshot {
                    dynamic: previous.dynamic.clone(),
                    check: Check::Failed(reference),
                    last_ok: previous.last_ok,
                }
            }
        };
        *self
            .inner
            .snapshot
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }

    /// Renders on a blocking thread: at 10,000 narratives it takes milliseconds that must not
    /// hold up a worker serving requests.
    async fn render(&self, narratives: Vec<Narrative>) -> Result<Bytes, String> {
        let config = self.inner.config.clone();
        let manager = self.inner.lifecycle.manager().clone();
        tokio::task::spawn_blocking(move || {
            dynamic_config(
                &config.routing,
                manager.as_ref(),
                &config.traefik_self_url,
                &narratives,
                config.static_tokens.is_some(),
            )
            .map(Bytes::from)
            .map_err(|e| format!("rendering the Traefik configuration: {e}"))
        })
        .await
        .map_err(|e| format!("rendering the Traefik configuration: {e}"))?
    }

    /// Refreshes every interval, or sooner when asked, until `shutdown` completes.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            self.refresh().await;
            let since = Instant::now();
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.interval()) => {}
                _ = self.inner.wake.notified() => {
                    let gap = MIN_GAP.saturating_sub(since.elapsed());
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(gap) => {}
                    }
                }
            }
        }
    }
}
