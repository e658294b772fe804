//! What every request handler and background task shares: the configuration, the lifecycle,
//! token validation, metrics and the reaper. Routes depend on this module, not on the app
//! builder in [`crate::app`].

use std::sync::Arc;
use std::time::Duration;

use traefiker_core::{
    ActivitySource, ActivityStore, ArrivalLog, Clock, ContainerManager, Lifecycle, LifecycleConfig,
    Readiness,
};

use crate::auth::{Authenticator, Gate, GateSettings};
use crate::background::{ImageSource, Reaper};
use crate::config::Config;
use crate::kept::Kept;
use crate::replica::Replica;
use crate::telemetry::{Counted, Metrics, Timed, Watched};

/// Everything a request handler or background task needs.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The configuration.
    pub config: Arc<Config>,
    /// The lifecycle service.
    pub lifecycle: Lifecycle,
    /// Token validation, remembered and limited per client address.
    pub auth: Arc<Gate>,
    /// traefiker's own metrics.
    pub metrics: Arc<Metrics>,
    /// Runs reaper cycles.
    pub reaper: Reaper,
    /// The last listing and backend check, kept by a background loop.
    pub kept: Kept,
    /// The runtime the state was made on, which outlives the HTTP server: work a request
    /// starts that must go on without it (a connect's flight, a `/reaper/` cycle) runs here,
    /// not on an actix worker's runtime, which dies when the server stops.
    pub runtime: tokio::runtime::Handle,
}

impl AppState {
    /// Assembles the state from parts (tests pass fakes), on the runtime that will outlive the
    /// HTTP server. Without `readiness`, a waiting narrative is handed out as soon as the
    /// backend reports it running. `store` keeps the last-seen instants and the arrivals of
    /// new users.
    #[allow(clippy::too_many_arguments)]
    pub fn new<S: ActivityStore + ArrivalLog + 'static>(
        config: Config,
        manager: Arc<dyn ContainerManager>,
        sources: Vec<Arc<dyn ActivitySource>>,
        readiness: Option<Arc<dyn Readiness>>,
        store: Arc<S>,
        auth: Arc<dyn Authenticator>,
        clock: Arc<dyn Clock>,
        image: ImageSource,
        initial_image: Option<String>,
        replica: Replica,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        metrics.replica(replica.id.as_str());
        metrics.configured(
            clock.now(),
            config.reaper_interval,
            config.security.max_narratives,
        );
        let timed: Arc<dyn ContainerManager> = Arc::new(Timed::new(manager, metrics.clone()));
        let sources: Vec<Arc<dyn ActivitySource>> = sources
            .into_iter()
            .map(|source| {
                Arc::new(Watched::new(source, metrics.clone())) as Arc<dyn ActivitySource>
            })
            .collect();
        let auth: Arc<dyn Authenticator> = Arc::new(Counted::new(auth, metrics.clone()));
        let lifecycle = Lifecycle::builder(
            timed,
            LifecycleConfig {
                naming: config.naming.clone(),
                routing: config.routing.clone(),
                pool_size: config.num_prespawn,
                pool_max: config.pool_max,
                pool_schedule: config.pool_schedule.clone(),
                idle_timeout: config.reaper_timeout,
                narrative_env: config.narrative_env.vars().clone(),
                max_narratives: config.security.max_narratives,
                // A little beyond the backend's own deadline, so its error (which names the
                // URL) normally wins; this one only catches a backend that hangs anyway.
                call_timeout: config.timeouts.rancher + Duration::from_secs(1),
                list_timeout: config.timeouts.rancher_list + Duration::from_secs(1),
                // The sources bound themselves (the metrics page, and the narratives' status
                // snapshot as a whole); this only catches one that hangs anyway.
                activity_timeout: config.timeouts.metrics.max(Duration::from_secs(60))
                    + Duration::from_secs(5),
                replica: replica.id,
                ready_timeout: config.ready_timeout,
                ..LifecycleConfig::default()
            },
        )
        .sources(sources)
        .store(store.clone())
        .arrivals(store)
        .clock(clock)
        .membership(replica.membership)
        .image(initial_image);
        let lifecycle = match readiness {
            Some(readiness) => lifecycle.readiness(readiness),
            None => lifecycle,
        }
        .build();
        let auth = Arc::new(Gate::new(
            auth,
            GateSettings {
                valid_for: config.auth_cache,
                failures_per_minute: config.security.auth_failures_per_minute,
            },
            metrics.auth.clone(),
        ));
        let config = Arc::new(config);
        let kept = Kept::new(lifecycle.clone(), config.clone());
        let reaper = Reaper::new(
            lifecycle.clone(),
            Arc::new(image),
            metrics.clone(),
            kept.clone(),
        );
        Self {
            config,
            lifecycle,
            auth,
            metrics,
            reaper,
            kept,
            runtime: tokio::runtime::Handle::current(),
        }
    }
}
