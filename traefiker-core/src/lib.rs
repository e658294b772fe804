//! The domain of traefiker: everything it decides, with no HTTP framework and no orchestrator
//! in sight.
//!
//! traefiker gives each KBase user a Jupyter "narrative" container of their own behind
//! Traefik. This crate holds the decisions: how containers are named ([`names`]), how Traefik
//! routes a session cookie to one ([`rules`]), how a user is connected, how the prespawn pool
//! is kept, and when an idle narrative is reaped ([`Lifecycle`], [`reaper`]).
//!
//! The I/O sits behind three contracts that other crates implement:
//!
//! - [`ContainerManager`] runs containers (`traefiker-rancher` for Rancher 1.x; the in-memory
//!   [`testing::InMemoryManager`] for tests).
//! - [`ActivitySource`] tells who is active (`traefiker-metrics` reads Traefik's Prometheus
//!   metrics and narratives' own Jupyter status).
//! - [`ActivityStore`] remembers when each narrative was last active ([`SqliteStore`],
//!   [`MemoryStore`]).
//!
//! Time comes from a [`Clock`]. Backends prove they honour their contract by running the
//! conformance suite in [`testing::conformance`] (feature `testing`).
//!
//! # Embedding
//!
//! ```
//! use std::sync::Arc;
//! use traefiker_core::{Lifecycle, LifecycleConfig, MemoryStore, SystemClock, UserId, Visit};
//! use traefiker_core::testing::InMemoryManager;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let config = LifecycleConfig { pool_size: 2, ..LifecycleConfig::default() };
//! let manager = Arc::new(InMemoryManager::new(config.naming.clone()));
//! let lifecycle = Lifecycle::new(
//!     manager,
//!     vec![],
//!     Arc::new(MemoryStore::new()),
//!     Arc::new(SystemClock),
//!     config,
//!     Some("kbase/narrative:5.4.3".to_owned()),
//! );
//! lifecycle.fill_pool().await?;
//! let alice = UserId::new("alice")?;
//! let connection = lifecycle.connect(&alice, Visit::default()).await?;
//! assert_eq!(connection.name.as_str(), "narrative-alice-522b27");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

pub mod activity;
pub mod arrivals;
pub mod clock;
pub mod demand;
pub mod entropy;
pub mod error;
pub mod flight;
pub mod index;
pub mod lifecycle;
pub mod manager;
pub mod membership;
pub mod names;
pub mod narrative;
pub mod pool;
pub mod readiness;
pub mod reaper;
pub mod rules;
pub mod schedule;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timeline;

pub use activity::{Activity, ActivitySnapshot, ActivitySource, ActivityTarget, Joined};
pub use arrivals::ArrivalLog;
pub use clock::{Clock, SystemClock};
pub use demand::{Demand, DemandSettings, Reason, Target};
pub use entropy::{Entropy, OsEntropy};
pub use error::{ActivityError, Error, InvalidInput, ManagerError, StoreError};
pub use lifecycle::{
    ConnectOutcome, Connection, CycleSummary, Lifecycle, LifecycleBuilder, LifecycleConfig,
    Standing, StatusEntry, UnreadyWarning, Visit,
};
pub use manager::{BackendInfo, ContainerManager};
pub use membership::{Membership, Solo};
pub use names::{Naming, NarrativeKind, Owner, ReplicaId, ServiceName, SessionId, UserId};
pub use narrative::{Assignment, Narrative, NarrativeState, Origin, SpawnSpec};
pub use readiness::Readiness;
pub use reaper::{PoolReport, ReapMode, ReapReport, SkipReason};
pub use rules::{Routing, RuleSyntax, OWNER_LABEL, REPLICA_LABEL, SESSION_LABEL};
pub use schedule::Schedule;
pub use store::{ActivityStore, MemoryStore, SqliteStore};
