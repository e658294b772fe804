//! Orchestrator calls on the main runtime, whichever thread asks.
//!
//! actix-web runs each HTTP worker on a runtime of its own, and an HTTP client opens its
//! connections as tasks of the runtime that first needs them. A backend call made by a
//! request handler therefore leaves pooled connections that live on a worker's runtime, and
//! when the HTTP server stops (its workers' runtimes with it) those connections die while the
//! pool still hands them out: the calls of graceful shutdown, after the server stopped (this
//! replica removing its waiting narratives), then failed with "error sending request". Every
//! call spawned on the main runtime, which outlives the HTTP server, keeps all connections
//! there.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::runtime::Handle;
use traefiker_core::{
    Assignment, BackendInfo, ContainerManager, ManagerError, Membership, Narrative, Origin, Owner,
    ReplicaId, ServiceName, SpawnSpec,
};

/// Runs every call of the backend or membership it wraps on one runtime.
#[derive(Debug)]
pub struct OnRuntime<T: ?Sized> {
    inner: Arc<T>,
    handle: Handle,
}

impl<T: ?Sized> OnRuntime<T> {
    /// Wraps `inner`, whose calls will run on the runtime of `handle`.
    pub fn new(inner: Arc<T>, handle: Handle) -> Self {
        Self { inner, handle }
    }

    /// Runs `call` as a task of the runtime. A caller that stops waiting does not cancel it:
    /// each call has its own deadline, and a write that happened is better answered.
    async fn run<R: Send + 'static>(
        &self,
        what: &str,
        call: impl Future<Output = Result<R, ManagerError>> + Send + 'static,
    ) -> Result<R, ManagerError> {
        self.handle.spawn(call).await.unwrap_or_else(|e| {
            Err(ManagerError::Unavailable {
                backend: "traefiker".into(),
                detail: format!("{what} did not finish: {e}"),
            })
        })
    }
}

#[async_trait]
impl ContainerManager for OnRuntime<dyn ContainerManager> {
    async fn verify(&self) -> Result<BackendInfo, ManagerError> {
        let inner = self.inner.clone();
        self.run("verify", async move { inner.verify().await })
            .await
    }

    async fn find(&self, name: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
        let (inner, name) = (self.inner.clone(), name.clone());
        self.run("find", async move { inner.find(&name).await })
            .await
    }

    async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
        let inner = self.inner.clone();
        self.run("list", async move { inner.list().await }).await
    }

    async fn create(&self, spec: &SpawnSpec) -> Result<Narrative, ManagerError> {
        let (inner, spec) = (self.inner.clone(), spec.clone());
        self.run("create", async move { inner.create(&spec).await })
            .await
    }

    async fn assign(
        &self,
        narrative: &Narrative,
        assignment: &Assignment,
    ) -> Result<Narrative, ManagerError> {
        let (inner, narrative, assignment) =
            (self.inner.clone(), narrative.clone(), assignment.clone());
        self.run("assign", async move {
            inner.assign(&narrative, &assignment).await
        })
        .await
    }

    async fn mark_connected(
        &self,
        narrative: &Narrative,
        origin: &Origin,
    ) -> Result<Narrative, ManagerError> {
        let (inner, narrative, origin) = (self.inner.clone(), narrative.clone(), origin.clone());
        self.run("mark_connected", async move {
            inner.mark_connected(&narrative, &origin).await
        })
        .await
    }

    async fn stamp_owner(
        &self,
        narrative: &Narrative,
        owner: &Owner,
    ) -> Result<Narrative, ManagerError> {
        let (inner, narrative, owner) = (self.inner.clone(), narrative.clone(), owner.clone());
        self.run("stamp_owner", async move {
            inner.stamp_owner(&narrative, &owner).await
        })
        .await
    }

    fn conditional(&self) -> bool {
        self.inner.conditional()
    }

    async fn remove(&self, narrative: &Narrative) -> Result<(), ManagerError> {
        let (inner, narrative) = (self.inner.clone(), narrative.clone());
        self.run("remove", async move { inner.remove(&narrative).await })
            .await
    }

    async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
        let inner = self.inner.clone();
        self.run("zombies", async move { inner.zombies().await })
            .await
    }

    fn traefik_service(&self, narrative_name: &ServiceName) -> String {
        self.inner.traefik_service(narrative_name)
    }
}

#[async_trait]
impl Membership for OnRuntime<dyn Membership> {
    async fn identity(&self) -> Result<Option<ReplicaId>, ManagerError> {
        let inner = self.inner.clone();
        self.run("identity", async move { inner.identity().await })
            .await
    }

    async fn peers(&self) -> Result<Vec<ReplicaId>, ManagerError> {
        let inner = self.inner.clone();
        self.run("peers", async move { inner.peers().await }).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use tokio::sync::{mpsc, oneshot};

    use super::*;

    type Conn = mpsc::UnboundedSender<oneshot::Sender<()>>;

    /// A backend that, like an HTTP client's pool, opens a connection as a task of the runtime
    /// of its first call and sends every later call through it.
    #[derive(Debug, Default)]
    struct Pooled {
        conn: Mutex<Option<Conn>>,
    }

    impl Pooled {
        async fn call(&self) -> Result<Vec<Narrative>, ManagerError> {
            let conn = self
                .conn
                .lock()
                .unwrap()
                .get_or_insert_with(|| {
                    let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
                    tokio::spawn(async move {
                        while let Some(reply) = rx.recv().await {
                            let _ = reply.send(());
                        }
                    });
                    tx
                })
                .clone();
            let (reply, answer) = oneshot::channel();
            let dead = || ManagerError::Unavailable {
                backend: "pooled".into(),
                detail: "error sending request".into(),
            };
            conn.send(reply).map_err(|_| dead())?;
            answer.await.map_err(|_| dead())?;
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl ContainerManager for Pooled {
        async fn verify(&self) -> Result<BackendInfo, ManagerError> {
            Err(ManagerError::Unsupported {
                backend: "pooled".into(),
                operation: "verify",
            })
        }
        async fn find(&self, _: &ServiceName) -> Result<Option<Narrative>, ManagerError> {
            self.call().await.map(|_| None)
        }
        async fn list(&self) -> Result<Vec<Narrative>, ManagerError> {
            self.call().await
        }
        async fn create(&self, _: &SpawnSpec) -> Result<Narrative, ManagerError> {
            Err(ManagerError::Unsupported {
                backend: "pooled".into(),
                operation: "create",
            })
        }
        async fn assign(&self, _: &Narrative, _: &Assignment) -> Result<Narrative, ManagerError> {
            Err(ManagerError::Unsupported {
                backend: "pooled".into(),
                operation: "assign",
            })
        }
        async fn mark_connected(
            &self,
            _: &Narrative,
            _: &Origin,
        ) -> Result<Narrative, ManagerError> {
            self.call().await?;
            Err(ManagerError::Unsupported {
                backend: "pooled".into(),
                operation: "mark_connected",
            })
        }
        async fn stamp_owner(&self, _: &Narrative, _: &Owner) -> Result<Narrative, ManagerError> {
            Err(ManagerError::Unsupported {
                backend: "pooled".into(),
                operation: "stamp_owner",
            })
        }
        fn conditional(&self) -> bool {
            false
        }
        async fn remove(&self, _: &Narrative) -> Result<(), ManagerError> {
            self.call().await.map(|_| ())
        }
        async fn zombies(&self) -> Result<Vec<Narrative>, ManagerError> {
            self.call().await
        }
        fn traefik_service(&self, narrative_name: &ServiceName) -> String {
            narrative_name.as_str().to_owned()
        }
    }

    /// The first call comes from a runtime like an actix worker's, which then stops; the next
    /// comes from the main runtime, as graceful shutdown's calls do.
    fn after_the_callers_runtime_stopped(manager: Arc<dyn ContainerManager>) -> bool {
        let main = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let worker = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        worker.block_on(manager.list()).unwrap();
        drop(worker);
        main.block_on(manager.list()).is_ok()
    }

    #[test]
    fn connections_opened_for_a_worker_outlive_it() {
        // Without the wrapper, the connection died with the worker's runtime.
        assert!(!after_the_callers_runtime_stopped(Arc::new(
            Pooled::default()
        )));
        let home = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let pooled: Arc<dyn ContainerManager> = Arc::new(Pooled::default());
        let wrapped = Arc::new(OnRuntime::new(pooled, home.handle().clone()));
        assert!(after_the_callers_runtime_stopped(wrapped));
    }
}
