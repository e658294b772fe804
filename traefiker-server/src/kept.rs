//! What a background loop keeps so that `/traefik/dynamic` and `/readyz` answer without a
//! backend call: the Traefik configuration rendered from what the lifecycle knows (its
//! listings — the reconciler's, the pool filler's, the reaper's — and this process's own
//! creates, assignments and removals), and how the backend answered lately.
//!
//! One loop ([`Kept::run`]) renders every [`PROVIDER_INTERVAL`] with no backend call; the
//! backend's health is the lifecycle's last listing (or, with the reconciler off, one
//! `verify` every [`CHECK_INTERVAL`]). A change this process makes (a connect, a shutdown)
//! asks for an early refresh ([`Kept::refresh_soon`]), never sooner than [`MIN_GAP`] after
//! the last; a removal (a shutdown, a reaper cycle) waits for one ([`Kept::removed`]) so that
//! the narrative's route is gone when the answer to it is sent.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use tokio::sync::{Mutex, Notify};
use traefiker_core::{Lifecycle, Narrative};

use crate::config::Config;
use crate::render::dynamic::dynamic_config;
use crate::render::reply::Reference;
use crate::render::status::render_services;

/// How often the provider's listing is refreshed.
pub const PROVIDER_INTERVAL: Duration = Duration::from_secs(2);
/// How often the backend is verified when the provider is off.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// The shortest time between two listings, whatever asks for them.
pub const MIN_GAP: Duration = Duration::from_millis(500);
/// How long the admin's rendered list of narratives is served before it is rendered again.
pub const STATUS_FRESH: Duration = Duration::from_secs(2);

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
    /// The admin's list of narratives as last rendered, and when.
    services: Mutex<Option<(Instant, Bytes)>>,
    /// One rendering of that list at a time.
    rendering: Mutex<()>,
    /// A change this process made since the list was rendered: render it again.
    services_stale: std::sync::atomic::AtomicBool,
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
                services: Mutex::new(None),
                rendering: Mutex::new(()),
                services_stale: std::sync::atomic::AtomicBool::new(false),
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

    /// Says that this process changed what the admin's list shows (a reaper cycle ended).
    pub fn changed(&self) {
        self.inner
            .services_stale
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Says that this process removed narratives (a shutdown, a reaper cycle) and refreshes
    /// before returning, so that the caller's answer comes after their routes are gone from
    /// `/traefik/dynamic` and from the admin's list.
    pub async fn removed(&self) {
        self.changed();
        self.refresh().await;
    }

    /// Asks the loop for a refresh soon, without waiting for it; what the admin's list shows
    /// changed too.
    pub fn refresh_soon(&self) {
        self.inner
            .services_stale
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.inner.wake.notify_one();
    }

    /// Refreshes now (after any refresh in progress) and keeps the result. The routes come
    /// from what the lifecycle keeps (its listings and this process's own changes), with no
    /// backend call; the backend's health from its last listing when the reconciler lists
    /// periodically, else from one `verify` per interval.
    pub async fn refresh(&self) {
        let _serial = self.inner.refreshing.lock().await;
        let lifecycle = &self.inner.lifecycle;
        let check = if self.inner.config.reconcile_interval.is_zero() {
            lifecycle
                .manager()
                .verify()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            self.listing_health()
        };
        let dynamic = if self.inner.config.security.provider.enabled
            && lifecycle.freshness().0.is_some()
        {
            match self.render(lifecycle.routable()).await {
                Ok(bytes) => Some(bytes),
                Err(detail) => {
                    tracing::error!(error = %detail, "could not render the Traefik configuration");
                    None
                }
            }
        } else {
            None
        };
        let previous = self.snapshot();
        let next = match check {
            Ok(()) => Snapshot {
                dynamic: dynamic.or_else(|| previous.dynamic.clone()),
                check: Check::Ok,
                last_ok: Some(Instant::now()),
            },
            Err(detail) => {
                let reference = Reference::new();
                tracing::error!(%reference, error = %detail, "backend check failed");
                // Traefik keeps routing with what is known meanwhile.
                Snapshot {
                    dynamic: dynamic.or_else(|| previous.dynamic.clone()),
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

    /// Whether the lifecycle's last listing succeeded lately.
    fn listing_health(&self) -> Result<(), String> {
        let (last, error) = self.inner.lifecycle.freshness();
        if let Some(error) = error {
            return Err(error);
        }
        let window =
            self.inner.config.reconcile_interval * 3 + self.inner.config.timeouts.rancher_list;
        match last {
            Some(age) if age <= window => Ok(()),
            Some(age) => Err(format!("no listing for {} s", age.as_secs())),
            None => Err("no listing yet".to_owned()),
        }
    }

    /// Every narrative the lifecycle keeps, described for `/narrative_status/` (a JSON array).
    /// Served from the last rendering; one from before a change this process made is
    /// rendered again at once, one older than [`STATUS_FRESH`] in the background (the next
    /// request gets it).
    pub async fn services_json(&self) -> Bytes {
        let cached = self.inner.services.lock().await.clone();
        let stale = self
            .inner
            .services_stale
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        match cached {
            // After a change (a connect, a shutdown, a reaper cycle): rendered now, so an
            // admin never reads a narrative this process has just removed.
            Some(_) if stale => self.render_services().await,
            Some((at, bytes)) => {
                if at.elapsed() >= STATUS_FRESH {
                    let this = self.clone();
                    tokio::spawn(async move { this.render_services().await });
                }
                bytes
            }
            None => self.render_services().await,
        }
    }

    /// Renders the admin's list now and keeps it; concurrent renderings wait for one another.
    async fn render_services(&self) -> Bytes {
        let _serial = self.inner.rendering.lock().await;
        let entries = self.inner.lifecycle.status();
        let config = self.inner.config.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            let prefix = config.naming.user_template().prefix();
            Bytes::from(render_services(&entries, prefix, chrono::Utc::now()))
        })
        .await
        .unwrap_or_else(|_| Bytes::from_static(b"[]"));
        *self.inner.services.lock().await = Some((Instant::now(), rendered.clone()));
        rendered
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
                config.front_door(),
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
            // Until the backend has answered once (the first listing is still on its way at
            // start), look again soon: a new replica is ready, and taken into Traefik's or
            // Kubernetes' rotation, within moments of its first listing, not an interval later.
            let wait = if self.snapshot().last_ok.is_none() {
                MIN_GAP
            } else {
                self.interval()
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait) => {}
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
