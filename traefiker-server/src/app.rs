//! Assembling the service from its configuration, and running it.
//!
//! [`build`] turns a [`Config`] into an [`AppState`] (backend verified, store open, sources
//! and auth ready); [`run`] serves HTTP on a listener until a shutdown future completes, with
//! the background tasks beside it. Tests build an `AppState` from fakes with
//! [`AppState::new`](crate::state::AppState::new) and call `run` on a `127.0.0.1:0` listener.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpServer};
use tokio::sync::watch;
use traefiker_core::{ActivitySource, ContainerManager, Membership, Readiness, Solo, SqliteStore};
use traefiker_docker::{DockerConfig, DockerManager, OwnContainer, SwarmManager};
use traefiker_kube::{Cluster, KubeConfig, KubeManager};
use traefiker_local::{LocalConfig, LocalManager};
use traefiker_metrics::{
    NarrativeStatus, NarrativeStatusConfig, TraefikMetrics, TraefikMetricsConfig,
};
use traefiker_rancher::{Credentials, RancherConfig, RancherManager, RancherMembership};

use crate::auth::{Auth2, Authenticator, StaticTokens};
use crate::background::ImageSource;
use crate::config::{Backend, Config, ReadyCheck, SourceKind};
use crate::replica::{self, Replica, ReplicaError};
use crate::runtime::OnRuntime;
use crate::state::AppState;
use crate::{outbound, render, routes};

/// Why the service cannot start; each names the setting to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The Rancher backend could not be set up.
    #[error("Rancher backend: {0}")]
    Rancher(#[from] traefiker_rancher::SetupError),
    /// The Docker backend could not be set up.
    #[error("Docker backend: {0}")]
    Docker(#[from] traefiker_docker::DockerError),
    /// The Kubernetes backend could not be set up.
    #[error("Kubernetes backend: {0}")]
    Kubernetes(#[from] traefiker_kube::KubeError),
    /// The backend does not answer.
    #[error("container backend check failed: {0}")]
    Backend(traefiker_core::ManagerError),
    /// The store cannot be opened.
    #[error("{0}")]
    Store(#[from] traefiker_core::StoreError),
    /// An activity source cannot be set up.
    #[error("activity source: {0}")]
    Activity(#[from] traefiker_metrics::MetricsError),
    /// An HTTP client cannot be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The listener could not be bound or served.
    #[error("{0}")]
    Bind(String),
    /// Tracking existing narratives failed.
    #[error("listing existing narratives failed: {0}")]
    Lifecycle(#[from] traefiker_core::Error),
    /// This replica cannot tell who it is.
    #[error("{0}")]
    Replica(#[from] ReplicaError),
}

/// A verified backend, where it learns the live replicas, and the local one's handle when it
/// is local (its children are stopped at shutdown).
#[derive(Debug, Clone)]
pub struct BuiltBackend {
    /// The backend.
    pub manager: Arc<dyn ContainerManager>,
    /// The orchestrator's view of traefiker's replicas.
    pub membership: Arc<dyn Membership>,
    /// The local backend, when that is the one.
    pub local: Option<Arc<LocalManager>>,
}

/// The configured backend, verified, its calls run on the runtime this is called on (which
/// must outlive the HTTP server: see [`crate::runtime`]).
pub async fn backend(config: &Config) -> Result<BuiltBackend, StartupError> {
    let mut local = None;
    let mut membership: Arc<dyn Membership> = Arc::new(Solo);
    let manager: Arc<dyn ContainerManager> = match &config.backend {
        Backend::Rancher {
            url,
            user,
            password,
            meta,
            env_url,
            stack_id,
            stack_name,
        } => {
            let mut rc = RancherConfig::new(url.clone());
            if let (Some(user), Some(password)) = (user, password) {
                rc = rc.with_credentials(Credentials::new(user.clone(), password.expose()));
            }
            rc.meta_url = meta.clone();
            rc.env_url = env_url.clone();
            rc.stack_id = stack_id.clone();
            rc.stack_name = stack_name.clone();
            rc.image_name = config.image_name.clone();
            rc.naming = config.naming.clone();
            rc.timeouts.connect = config.timeouts.connect;
            rc.timeouts.request = config.timeouts.rancher;
            rc.timeouts.list = config.timeouts.rancher_list;
            rc.ca_bundle_pem = ca_pem(config);
            membership = Arc::new(RancherMembership::new(&rc)?);
            Arc::new(RancherManager::discover(rc).await?)
        }
        Backend::Local { command } => {
            let mut lc = LocalConfig::new(command.clone());
            lc.naming = config.naming.clone();
            lc.ready_timeout = Some(Duration::from_secs(20));
            let manager = Arc::new(
                LocalManager::new(lc)
                    .map_err(|e| StartupError::Bind(format!("local backend: {e}")))?,
            );
            local = Some(manager.clone());
            manager
        }
        Backend::Kubernetes {
            namespace,
            pod_name,
        } => {
            let mut kc = KubeConfig::new(Cluster::Infer);
            kc.namespace = namespace.clone();
            kc.pod_name = pod_name.clone();
            kc.image_name = config.image_name.clone();
            kc.naming = config.naming.clone();
            kc.timeouts.connect = config.timeouts.connect;
            kc.timeouts.request = config.timeouts.rancher;
            kc.timeouts.list = config.timeouts.rancher_list;
            let manager = KubeManager::connect(kc).await?;
            membership = Arc::new(manager.membership());
            Arc::new(manager)
        }
        Backend::Swarm { .. } => {
            let manager = SwarmManager::connect(docker_config(config)).await?;
            // The replicas are the running tasks of traefiker's own Swarm service.
            membership = Arc::new(manager.membership(OwnContainer::Detect));
            Arc::new(manager)
        }
        Backend::Docker { .. } => {
            let manager = DockerManager::connect(docker_config(config)).await?;
            // The replicas are the running containers of traefiker's own Compose service.
            membership = Arc::new(manager.membership(OwnContainer::Detect));
            Arc::new(manager)
        }
    };
    let info = manager.verify().await.map_err(StartupError::Backend)?;
    tracing::info!(backend = %info.backend, location = %info.location, "container backend verified");
    let here = tokio::runtime::Handle::current();
    let manager: Arc<dyn ContainerManager> = Arc::new(OnRuntime::new(manager, here.clone()));
    let membership: Arc<dyn Membership> = Arc::new(OnRuntime::new(membership, here));
    Ok(BuiltBackend {
        manager,
        membership,
        local,
    })
}

/// The Docker and Swarm backends' settings: the engine and network, and the configured deadline of
/// each backend operation (`rancher_timeout_secs`), every engine call in it, so that the
/// backend gives up before the lifecycle stops waiting for it.
pub fn docker_config(config: &Config) -> DockerConfig {
    let (url, network) = match &config.backend {
        Backend::Docker { url, network } | Backend::Swarm { url, network } => {
            (url.clone(), network.clone())
        }
        _ => (
            traefiker_docker::DEFAULT_DOCKER_URL.to_owned(),
            traefiker_docker::DEFAULT_NETWORK.to_owned(),
        ),
    };
    let mut dc = DockerConfig::new(url, network);
    dc.image_name = config.image_name.clone();
    dc.naming = config.naming.clone();
    dc.timeouts.request = config.timeouts.rancher;
    dc
}

/// `ca_bundle`'s PEM for the backends that build their own clients.
fn ca_pem(config: &Config) -> Option<Vec<u8>> {
    config.security.ca_bundle.as_ref().map(|b| b.pem().to_vec())
}

/// The configured activity sources.
pub fn sources(config: &Config) -> Result<Vec<Arc<dyn ActivitySource>>, StartupError> {
    let mut out: Vec<Arc<dyn ActivitySource>> = Vec::new();
    for kind in &config.activity_sources {
        match kind {
            SourceKind::Traefik => {
                let mut tc = TraefikMetricsConfig::new(config.traefik_metrics.clone());
                tc.version = config.traefik_version;
                tc.connect_timeout = config.timeouts.connect;
                tc.timeout = config.timeouts.metrics;
                tc.ca_bundle_pem = ca_pem(config);
                out.push(Arc::new(TraefikMetrics::new(tc)?));
            }
            SourceKind::NarrativeStatus => out.push(Arc::new(narrative_status(config)?)),
        }
    }
    Ok(out)
}

/// Asks narratives their Jupyter status as `narrative_status_path` and the timeouts say.
fn narrative_status(config: &Config) -> Result<NarrativeStatus, StartupError> {
    Ok(NarrativeStatus::new(NarrativeStatusConfig {
        path: config.narrative_status_path.clone(),
        connect_timeout: config.timeouts.connect,
        timeout: config.timeouts.status,
        ca_bundle_pem: ca_pem(config),
        ..NarrativeStatusConfig::default()
    })?)
}

/// What tells the pool a waiting narrative is ready (`ready_check`); `None` = the backend's
/// state alone.
pub fn readiness(config: &Config) -> Result<Option<Arc<dyn Readiness>>, StartupError> {
    Ok(match config.ready_check {
        ReadyCheck::Status => Some(Arc::new(narrative_status(config)?)),
        ReadyCheck::Backend => None,
    })
}

/// The configured token validation.
pub fn authenticator(config: &Config) -> Result<Arc<dyn Authenticator>, StartupError> {
    Ok(match &config.static_tokens {
        Some(tokens) => {
            tracing::warn!(
                tokens = tokens.len(),
                "STATIC TOKENS IN USE (auth_tokens): auth2 is not consulted; never do this in production"
            );
            Arc::new(StaticTokens::new(tokens.clone()))
        }
        None => Arc::new(Auth2::new(
            config.auth2.clone(),
            outbound::client(
                config.timeouts.connect,
                config.timeouts.auth2,
                config.security.ca_bundle.as_ref(),
            )?,
        )),
    })
}

/// Where the image comes from.
pub fn image_source(config: &Config) -> Result<ImageSource, StartupError> {
    Ok(match config.fixed_image() {
        Some(image) => ImageSource::Fixed(image),
        // Local processes run no image: the tag only keeps the pool's bookkeeping.
        None if matches!(config.backend, Backend::Local { .. }) => {
            ImageSource::Fixed(format!("{}:local", config.image_name))
        }
        None => ImageSource::Versioned {
            image_name: config.image_name.clone(),
            url: config.narrative_version_url.clone(),
            http: outbound::client(
                config.timeouts.connect,
                config.timeouts.version,
                config.security.ca_bundle.as_ref(),
            )?,
        },
    })
}

/// What the process is for: serving (a replica, with a pool of its own), or a one-off
/// command beside the replicas (`traefiker reap`, `traefiker status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `traefiker serve`: a replica.
    Serve,
    /// A one-off command. It is no replica: it keeps no pool, goes by an id no replica has
    /// (so it never takes a live replica's waiting narratives for its own), and removes
    /// another replica's only where the orchestrator proves that replica gone; where the
    /// peers cannot be proven (no membership), it keeps them and says so.
    OneOff,
}

/// Builds the service from its configuration (SPEC §7): verifies the backend, opens the
/// store, learns the current image and which replica this is, and starts tracking existing
/// narratives.
pub async fn build(config: Config, role: Role) -> Result<(AppState, BuiltBackend), StartupError> {
    if config.trusted_proxies.is_empty()
        && config.security.auth_failures_per_minute.is_some()
        && !matches!(config.backend, Backend::Local { .. })
    {
        tracing::warn!(
            "trusted_proxies is empty: behind Traefik every request has Traefik's address, so \
             failed logins cannot be limited per client (only rejected tokens are remembered); \
             set trusted_proxies to Traefik's network"
        );
    }
    let backend = backend(&config).await?;
    let state = build_with(
        config,
        backend.manager.clone(),
        backend.membership.clone(),
        role,
    )
    .await?;
    Ok((state, backend))
}

/// [`build`] with a given backend and membership.
pub async fn build_with(
    mut config: Config,
    manager: Arc<dyn ContainerManager>,
    membership: Arc<dyn Membership>,
    role: Role,
) -> Result<AppState, StartupError> {
    let mut replica = Replica::resolve(
        config.replica_id.clone(),
        membership,
        config.timeouts.rancher + Duration::from_secs(1),
    )
    .await?;
    if role == Role::OneOff {
        replica = replica.one_off(std::process::id());
        // No pool at all: neither demand nor a schedule's floor may start one.
        config.num_prespawn = 0;
        config.pool_max = None;
        config.pool_schedule = traefiker_core::Schedule::default();
    }
    tracing::info!(replica = %replica.id, "this replica");
    let store = Arc::new(SqliteStore::open(&config.sqlite_reaperdb_path)?);
    let sources = sources(&config)?;
    let readiness = readiness(&config)?;
    let auth = authenticator(&config)?;
    let image = image_source(&config)?;
    let initial = match image.current().await {
        Ok(image) => Some(image),
        Err(e) => {
            tracing::error!(error = %e, "no narrative image yet: new users get 503 until the version URL answers");
            None
        }
    };
    let state = AppState::new(
        config,
        manager,
        sources,
        readiness,
        store,
        auth,
        Arc::new(traefiker_core::SystemClock),
        image,
        initial,
        replica,
    );
    let tracked = state.lifecycle.track_existing().await?;
    tracing::info!(tracked, peers = ?state.lifecycle.peers(), "tracking existing narratives");
    Ok(state)
}

/// Serves HTTP on `listener` until `shutdown` completes, then, within `shutdown_grace_secs`
/// whatever the dependencies do: stops accepting, stops the background tasks, and lets
/// requests in flight finish while it removes this replica's waiting narratives.
pub async fn run(
    listener: std::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let mut tasks = Vec::new();
    {
        let lifecycle = state.lifecycle.clone();
        let rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            lifecycle.run_pool_filler(stopped(rx)).await;
        }));
    }
    if state.lifecycle.image().is_none() {
        let reaper = state.reaper.clone();
        let lifecycle = state.lifecycle.clone();
        let rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let wait = async {
                while lifecycle.image().is_none() {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    reaper.refresh_image().await;
                }
            };
            tokio::select! { _ = wait => {}, _ = stopped(rx) => {} }
        }));
    }
    {
        let kept = state.kept.clone();
        let rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move { kept.run(stopped(rx)).await }));
    }
    tasks.extend(replica::reconciler(
        &state.lifecycle,
        state.config.reconcile_interval,
        stopped(stop_rx.clone()),
    ));
    if !state.config.reaper_interval.is_zero() {
        let reaper = state.reaper.clone();
        let period = state.config.reaper_interval;
        let rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            reaper.run_every(period, stopped(rx)).await;
        }));
    }
    state.lifecycle.request_pool_fill();

    let provider = state.config.security.provider.enabled;
    let front = state.config.front_door();
    let grace = state.config.shutdown_grace;
    let lifecycle = state.lifecycle.clone();
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(DefaultHeaders::new().add((render::reply::MARKER, "1")))
            .app_data(data.clone())
            .configure(|cfg| configure(cfg, provider, front))
    })
    .disable_signals()
    .shutdown_timeout(grace.as_secs())
    .listen(listener)?
    .run();
    let handle = server.handle();
    let mut server_task = tokio::spawn(server);
    shutdown.await;
    // One budget for everything from here (SPEC §11): what misses it is left as a crash
    // would leave it, for the next start or another replica to converge.
    let deadline = tokio::time::Instant::now() + grace;
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "shutting down: finishing requests in flight and removing this replica's waiting narratives"
    );
    let _ = stop_tx.send(true);
    // The loops stop at once (a cycle or a fill in flight is dropped: it holds the pool's
    // lock that retiring needs).
    stop_all(
        tasks,
        deadline.min(tokio::time::Instant::now() + LOOPS_STOP),
    )
    .await;
    let drain = async {
        if tokio::time::timeout_at(deadline, handle.stop(true))
            .await
            .is_err()
        {
            tracing::warn!("requests still in flight at the end of shutdown_grace_secs: dropped");
        }
    };
    // Beside the drain: the pool filler has stopped, and a connect in flight that finds the
    // pool retiring starts a narrative of its own.
    tokio::join!(drain, replica::retire(&lifecycle, deadline));
    // The activity store writes on a thread of its own: what it still holds is committed now,
    // within the budget (a moment more if the budget is spent).
    let store = lifecycle.store().clone();
    let until = deadline.max(tokio::time::Instant::now() + STORE_FLUSH);
    match tokio::time::timeout_at(until, tokio::task::spawn_blocking(move || store.flush())).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => {
            tracing::error!(error = %e, "could not write the activity store at shutdown")
        }
        _ => {
            tracing::warn!("the activity store was still writing at the end of shutdown_grace_secs")
        }
    }
    match tokio::time::timeout(SERVER_STOP, &mut server_task).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(std::io::Error::other(e)),
        Err(_) => {
            server_task.abort();
            tracing::warn!("the HTTP server did not stop in time: abandoned");
            Ok(())
        }
    }
}

/// How long the background loops get to stop on their own before they are dropped.
const LOOPS_STOP: Duration = Duration::from_millis(200);

/// How long the activity store gets to commit at shutdown when the budget is spent already.
const STORE_FLUSH: Duration = Duration::from_millis(500);

/// How long the HTTP server may take to stop once its workers were told to (at the latest at
/// the end of the budget, when actix's own `shutdown_timeout` forces them).
const SERVER_STOP: Duration = Duration::from_secs(1);

/// Waits until `until` for `tasks` to end, then drops those that have not.
async fn stop_all(tasks: Vec<tokio::task::JoinHandle<()>>, until: tokio::time::Instant) {
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    if tokio::time::timeout_at(until, futures::future::join_all(tasks))
        .await
        .is_err()
    {
        for abort in aborts {
            abort.abort();
        }
    }
}

/// Registers every endpoint; `/traefik/dynamic` only with `provider` on, the demo's front
/// door (login page, loader) only with `front` ([`Config::front_door`]).
pub fn configure(cfg: &mut web::ServiceConfig, provider: bool, front: bool) {
    cfg.route(
        "/narrative/{path:.*}",
        web::get().to(routes::connect::narrative),
    )
    .route(
        "/narrative_shutdown/",
        web::delete().to(|state, req| routes::shutdown::shutdown(state, req, None)),
    )
    .route(
        "/narrative_shutdown/{user:.*}",
        web::delete().to(|state, req, user| routes::shutdown::shutdown(state, req, Some(user))),
    )
    .route("/narrative_status/", web::get().to(routes::status::status))
    .route(
        crate::pages::admin::SHUTDOWN_PATH,
        web::post().to(routes::admin::shutdown),
    )
    .route("/reaper/", web::get().to(routes::reaper::reaper))
    .configure(routes::health::configure);
    if provider {
        cfg.route("/traefik/dynamic", web::get().to(routes::dynamic::dynamic));
    }
    if front {
        routes::front::configure(cfg);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::Layer;

    #[test]
    fn the_docker_backend_gets_the_configured_deadline() {
        let layer: Layer = [("backend", "docker"), ("rancher_timeout_secs", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::from_layers(&[layer]).unwrap();
        let dc = docker_config(&config);
        assert_eq!(dc.timeouts.request, Duration::from_secs(3));
        assert!(
            dc.timeouts.request < config.timeouts.rancher + Duration::from_secs(1),
            "the backend gives up before the lifecycle's call deadline"
        );
    }
}
