//! traefiker's container backend for Rancher 1.x ("Cattle"): the core's
//! [`ContainerManager`](traefiker_core::ContainerManager) over Rancher's `v2-beta` REST API.
//!
//! Each narrative is one Rancher service of scale 1 in one stack, started from
//! `docker:<image_name>:<tag>` with the core's Traefik labels plus Rancher's
//! `io.rancher.container.pull_image=always` and `io.rancher.container.start_once=true`.
//!
//! # How the pieces fit
//!
//! - [`RancherConfig`] says where Rancher is, the API key ([`Credentials`], never shown in
//!   `Debug` or logs), the stack, the image, the naming, the deadlines ([`Timeouts`]) and the
//!   [`RetryPolicy`].
//! - [`RancherManager`] is built from it, either with everything configured
//!   ([`RancherManager::new`], no network call) or learning the environment URL, stack id and
//!   stack name from rancher-metadata and the API ([`RancherManager::discover`], SPEC §7).
//!   Construction fails with [`SetupError`], which names the setting to fix.
//! - [`RancherMembership`] is the core's [`Membership`](traefiker_core::Membership) from
//!   rancher-metadata: this replica's container name and the containers of its own service
//!   (SPEC §9); any failure means peers unknown.
//! - Inside, a client module does HTTP (basic auth, pagination, one deadline per operation,
//!   retries of GETs only, with backoff and jitter, inside it), a wire module holds Rancher's
//!   JSON (private: nothing outside this crate sees it), and the error module maps Rancher's
//!   answers onto the core's
//!   [`ManagerError`](traefiker_core::ManagerError) in one function: 404 `NotFound`, 422
//!   `NotUnique` `NameTaken`, timeouts, connection failures, 5xx and 409 `Unavailable`,
//!   everything else `Rejected`.
//! - With the `testing` feature, `testing::FakeRancher` is a stateful Rancher and
//!   rancher-metadata on wiremock for integration tests, no stricter than the real one.
//!
//! # Deadlines
//!
//! Every operation answers within its deadline whatever Rancher does (SPEC §6a):
//! [`Timeouts::request`] (20 s) covers all requests and retries of one `find`, `assign` (read
//! and rename), `create`, `mark_connected`, `remove` or `verify`; [`Timeouts::list`] (60 s)
//! covers a whole `list` or `zombies`, every page. A request gets only what is left of its
//! operation's deadline, and a read is retried only if the retry can start before it. Past
//! the deadline the answer is `Unavailable`, naming the URL that did not answer. Writes are
//! never retried blindly: a create whose answer is lost is `Unavailable` and the caller looks
//! the name up; a created service that is not a usable narrative is removed before the error.
//!
//! Narratives report `address` `http://<service>.<stack>:8888`: Rancher 1.x's internal DNS
//! resolves `<service>.<stack>` on the managed network traefiker shares with them.
//!
//! # Constructing it
//!
//! From a complete configuration:
//!
//! ```
//! use traefiker_rancher::{Credentials, RancherConfig, RancherManager};
//!
//! let config = RancherConfig::new("http://rancher:8080/v2-beta")
//!     .with_credentials(Credentials::new("ACCESS_KEY", "SECRET_KEY"))
//!     .with_stack("http://rancher:8080/v2-beta/projects/1a5", "1st5", "narratives");
//! let manager = RancherManager::new(config)?;
//! assert_eq!(manager.stack_name(), "narratives");
//! # Ok::<(), traefiker_rancher::SetupError>(())
//! ```
//!
//! Inside a Rancher stack, letting it discover where it runs:
//!
//! ```no_run
//! use std::sync::Arc;
//! use traefiker_core::ContainerManager;
//! use traefiker_rancher::{Credentials, RancherConfig, RancherManager};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = RancherConfig::new("http://rancher:8080/v2-beta")
//!     .with_credentials(Credentials::new("ACCESS_KEY", "SECRET_KEY"));
//! config.image_name = "kbase/narrative".into();
//! let manager: Arc<dyn ContainerManager> = Arc::new(RancherManager::discover(config).await?);
//! println!("{}", manager.verify().await?.location);
//! # Ok(()) }
//! ```

mod client;
mod config;
mod discovery;
mod error;
mod manager;
mod membership;
#[cfg(feature = "testing")]
pub mod testing;
mod wire;

pub use config::{Credentials, RancherConfig, RetryPolicy, Timeouts};
pub use error::SetupError;
pub use manager::RancherManager;
pub use membership::RancherMembership;
