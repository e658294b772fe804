//! Several replicas (SPEC §9): which replica this process is, how it learns the others, and
//! the two things a replica does for them besides serving: listing the backend again every
//! `reconcile_interval_secs` (so it answers returning users that another replica connected,
//! and learns the live replicas), and removing its own waiting narratives when it stops
//! gracefully (nobody else may assign them, so left behind they would only wait until another
//! replica's reaper saw this one gone).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use traefiker_core::{Lifecycle, ManagerError, Membership, ReplicaId, Solo};

/// Who this replica is and where it learns who else runs.
#[derive(Clone, Debug)]
pub struct Replica {
    /// This replica's id: the label of the waiting narratives it makes.
    pub id: ReplicaId,
    /// The orchestrator's view of the live replicas.
    pub membership: Arc<dyn Membership>,
}

/// The longest replica id (a Docker or Rancher container name).
const MAX_ID_LEN: usize = 63;

/// Why this replica cannot tell who it is; each names the setting to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The orchestrator should know but did not answer.
    #[error("replica_id: unset, and the orchestrator did not say who this replica is ({0}); set replica_id, or check rancher_meta")]
    Unanswered(String),
    /// Off an orchestrator, the host name is the default, and it is not usable.
    #[error("replica_id: unset, and the host name cannot serve as one ({0}); set replica_id")]
    HostName(String),
}

impl Replica {
    /// One replica alone, with no orchestrator to learn peers from (tests, the local backend).
    pub fn solo(id: ReplicaId) -> Self {
        Self {
            id,
            membership: Arc::new(Solo),
        }
    }

    /// The replica as configured: `configured` (`replica_id`) if set, else the orchestrator's
    /// answer (asked within `deadline`), else the host name.
    ///
    /// An orchestrator that has no answer (Rancher: rancher-metadata answers 404, traefiker
    /// is not in a Rancher stack) leads to the host name, with a warning: the same metadata
    /// then has no peers either, so no replica removes waiting narratives on the strength of a
    /// name it does not know. One that does not answer at all (down, timing out) is fatal
    /// instead: guessing the host name there would label this replica's pool with a name the
    /// peers list lacks once metadata is back, and the other replicas would remove it.
    pub async fn resolve(
        configured: Option<ReplicaId>,
        membership: Arc<dyn Membership>,
        deadline: Duration,
    ) -> Result<Self, ReplicaError> {
        Self::resolve_with(configured, membership, deadline, host_name).await
    }

    /// The same orchestrator's view, for a one-off command run as process `pid`: an id no
    /// replica has (this replica's id with `.oneoff.<pid>`, shortened to fit), so the
    /// command never takes a live replica's waiting narratives for its own.
    pub fn one_off(self, pid: u32) -> Self {
        let suffix = format!(".oneoff.{pid}");
        let keep = self
            .id
            .as_str()
            .len()
            .min(MAX_ID_LEN.saturating_sub(suffix.len()));
        let base: String = self.id.as_str().chars().take(keep).collect();
        let id = ReplicaId::new(format!("{base}{suffix}"))
            .or_else(|_| ReplicaId::new(format!("oneoff{suffix}")))
            .unwrap_or(self.id);
        Self { id, ..self }
    }

    async fn resolve_with(
        configured: Option<ReplicaId>,
        membership: Arc<dyn Membership>,
        deadline: Duration,
        host: impl FnOnce() -> Result<String, String>,
    ) -> Result<Self, ReplicaError> {
        let id = match configured {
            Some(id) => id,
            None => match tokio::time::timeout(deadline, membership.identity()).await {
                Ok(Ok(Some(id))) => id,
                Ok(Ok(None)) => from_host(host)?,
                Ok(Err(e @ ManagerError::Unavailable { .. })) => {
                    return Err(ReplicaError::Unanswered(e.to_string()))
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the orchestrator has no name for this replica: using the host name (set replica_id to choose)");
                    from_host(host)?
                }
                Err(_) => {
                    return Err(ReplicaError::Unanswered(format!(
                        "no answer within {} s",
                        deadline.as_secs_f64()
                    )))
                }
            },
        };
        Ok(Self { id, membership })
    }
}

fn from_host(host: impl FnOnce() -> Result<String, String>) -> Result<ReplicaId, ReplicaError> {
    let name = host().map_err(ReplicaError::HostName)?;
    ReplicaId::new(name.trim())
        .map_err(|e| ReplicaError::HostName(format!("{:?}: {}", name.trim(), e.reason)))
}

/// The operating system's host name (not the `hostname` setting, which lists Traefik hosts).
fn host_name() -> Result<String, String> {
    nix::unistd::gethostname()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|raw| format!("{raw:?} is not UTF-8"))
}

/// Lists the backend and learns the peers every `period` until `shutdown` completes; `None`
/// when `period` is zero (only the reaper and the pool filler list then).
pub fn reconciler(
    lifecycle: &Lifecycle,
    period: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Option<JoinHandle<()>> {
    if period.is_zero() {
        return None;
    }
    let lifecycle = lifecycle.clone();
    Some(tokio::spawn(async move {
        lifecycle.run_reconciler(period, shutdown).await;
    }))
}

/// Removes this replica's waiting narratives at graceful shutdown, once the pool filler has
/// stopped, by `deadline` (what is left of the shutdown's budget): a replica must stop in
/// time, and what it leaves behind is removed by another replica's reaper once the
/// orchestrator no longer lists this one, or by this replica's next start.
pub async fn retire(lifecycle: &Lifecycle, deadline: tokio::time::Instant) {
    if tokio::time::timeout_at(deadline, lifecycle.retire())
        .await
        .is_err()
    {
        tracing::warn!(
            "could not remove every waiting narrative within shutdown_grace_secs: another replica's reaper, or this replica's next start, removes the rest"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use async_trait::async_trait;

    use super::*;
    use crate::config::{Config, Layer};

    /// A membership whose identity answer is scripted.
    #[derive(Debug)]
    struct Says(Result<Option<&'static str>, ManagerError>);

    #[async_trait]
    impl Membership for Says {
        async fn identity(&self) -> Result<Option<ReplicaId>, ManagerError> {
            self.0
                .clone()
                .map(|id| id.map(|id| ReplicaId::new(id).unwrap()))
        }

        async fn peers(&self) -> Result<Vec<ReplicaId>, ManagerError> {
            Ok(Vec::new())
        }
    }

    async fn resolve(
        configured: Option<&str>,
        says: Result<Option<&'static str>, ManagerError>,
        host: Result<&'static str, &'static str>,
    ) -> Result<String, ReplicaError> {
        Replica::resolve_with(
            configured.map(|c| ReplicaId::new(c).unwrap()),
            Arc::new(Says(says)),
            Duration::from_secs(1),
            || host.map(str::to_owned).map_err(str::to_owned),
        )
        .await
        .map(|r| r.id.as_str().to_owned())
    }

    fn unavailable() -> ManagerError {
        ManagerError::Unavailable {
            backend: "rancher".into(),
            detail: "rancher-metadata: connection refused".into(),
        }
    }

    #[tokio::test]
    async fn the_setting_wins_then_the_orchestrator_then_the_host_name() {
        let metadata = Ok(Some("traefiker-traefiker-2"));
        assert_eq!(
            resolve(Some("r1"), metadata.clone(), Ok("host"))
                .await
                .unwrap(),
            "r1"
        );
        assert_eq!(
            resolve(None, metadata, Ok("host")).await.unwrap(),
            "traefiker-traefiker-2"
        );
        assert_eq!(resolve(None, Ok(None), Ok("host")).await.unwrap(), "host");
        let not_in_rancher = ManagerError::Rejected {
            backend: "rancher".into(),
            detail: "rancher-metadata answered 404".into(),
        };
        assert_eq!(
            resolve(None, Err(not_in_rancher), Ok("c0ffee\n"))
                .await
                .unwrap(),
            "c0ffee"
        );
        // A set replica_id means the orchestrator is not even asked.
        assert_eq!(
            resolve(Some("r1"), Err(unavailable()), Err("no host name"))
                .await
                .unwrap(),
            "r1"
        );
    }

    #[tokio::test]
    async fn an_orchestrator_that_does_not_answer_stops_start_up_naming_the_key() {
        let e = resolve(None, Err(unavailable()), Ok("host"))
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("replica_id: "), "{e}");
        assert!(e.to_string().contains("connection refused"), "{e}");
    }

    #[tokio::test]
    async fn a_host_name_that_is_no_replica_id_names_the_key() {
        let e = resolve(None, Ok(None), Ok("bad host!")).await.unwrap_err();
        assert!(e.to_string().starts_with("replica_id: "), "{e}");
        assert!(e.to_string().contains("bad host!"), "{e}");
    }

    #[test]
    fn the_os_host_name_is_read() {
        assert!(!host_name().unwrap().trim().is_empty());
    }

    fn config(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let layer: Layer = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_layers(&[layer])
    }

    #[test]
    fn the_settings_are_read_and_checked() {
        let c = config(&[]).unwrap();
        assert_eq!(c.replica_id, None);
        assert_eq!(c.reconcile_interval, Duration::from_secs(10));
        let c = config(&[
            ("replica_id", "traefiker-2"),
            ("reconcile_interval_secs", "0"),
        ])
        .unwrap();
        assert_eq!(c.replica_id.unwrap().as_str(), "traefiker-2");
        assert!(c.reconcile_interval.is_zero());
        let problems =
            config(&[("replica_id", "r 1"), ("reconcile_interval_secs", "soon")]).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("reconcile_interval_secs: ")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("replica_id: ") && p.contains("\"r 1\"")),
            "{problems:?}"
        );
    }
}
