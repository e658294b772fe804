//! The invariants (issue 10, SPEC §5, §6, §9), checked against the log and the backend after
//! every step and at the end of a run.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use traefiker_core::testing::InMemoryManager;
use traefiker_core::{NarrativeKind, NarrativeState, ReplicaId};

use crate::world::{Grant, Log, Reaped};

/// What a run's checks found besides violations.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Cross-replica removals that raced a connect's mark: the reaper's last look preceded
    /// the mark (Rancher's delete is not conditional, so this window cannot be closed). On a
    /// conditional backend the removal carries the version the look read, so such a reap is
    /// a violation there, never counted.
    pub raced: usize,
}

/// Checks what must hold at every instant; `Err` names the first violation. `conditional`:
/// the backend's writes are compare-and-swap, so no reap may race a connect.
pub fn always(
    log: &Log,
    backend: &InMemoryManager,
    idle_timeout: chrono::Duration,
    conditional: bool,
    tally: &mut Tally,
) -> Result<(), String> {
    let containers = backend.containers();
    let mut names = BTreeSet::new();
    for n in &containers {
        if !names.insert(n.name.clone()) {
            return Err(format!("two containers named {}", n.name));
        }
    }
    let mut holders: BTreeMap<&str, &str> = BTreeMap::new();
    for g in &log.grants {
        if let Some(other) = holders.insert(g.session.expose(), &g.user) {
            if other != g.user {
                return Err(format!(
                    "one session ({}) given to two users: {other} and {}",
                    g.session, g.user
                ));
            }
        }
    }
    tally.raced = 0;
    for r in &log.reaped {
        check_reap(log, r, idle_timeout, conditional, tally)?;
    }
    Ok(())
}

fn check_reap(
    log: &Log,
    r: &Reaped,
    idle_timeout: chrono::Duration,
    conditional: bool,
    tally: &mut Tally,
) -> Result<(), String> {
    for g in log.grants.iter().filter(|g| g.session == r.session) {
        if g.at <= r.at && r.at < g.at + idle_timeout {
            let cross = g.replica != r.replica && raced(log, g, r);
            if cross && !conditional {
                tally.raced += 1;
                continue;
            }
            return Err(format!(
                "{} reaped at {} by replica {} although {} got it at {} from replica {} (idle timeout {} s){}",
                r.name,
                r.at,
                r.replica,
                g.user,
                g.at,
                g.replica,
                idle_timeout.num_seconds(),
                if cross {
                    ": a cross-replica reap raced the connect's mark on a conditional backend"
                } else {
                    ""
                }
            ));
        }
    }
    let read = log
        .reads
        .iter()
        .rev()
        .find(|read| read.replica == r.replica && read.at <= r.at)
        .ok_or_else(|| {
            format!(
                "{} reaped by replica {} without an activity read",
                r.name, r.replica
            )
        })?;
    if read.failed {
        return Err(format!(
            "{} reaped by replica {} although its last activity read failed",
            r.name, r.replica
        ));
    }
    if read.active.contains(r.name.as_str()) {
        return Err(format!(
            "{} reaped by replica {} although its last activity read saw it active",
            r.name, r.replica
        ));
    }
    Ok(())
}

/// Whether the reaper's last look at the narrative may have read it before the mark that
/// covers this connect took effect (the connect's own, or one another replica sent just
/// before): the look was sent before that mark was answered. Both take effect somewhere
/// inside their round trips; a reaper that did not look again at all is never excused. The
/// look is the replica's last find sent before the removal was: a find sent later (a
/// shutdown's, say) cannot have informed it.
fn raced(log: &Log, g: &Grant, r: &Reaped) -> bool {
    let looked = log
        .finds
        .get(&(r.replica, r.name.clone()))
        .and_then(|times| times.iter().rev().find(|t| **t <= r.asked).copied());
    let marked: Option<DateTime<Utc>> = log.marks.get(g.session.expose()).and_then(|marks| {
        marks
            .iter()
            .rev()
            .find(|(sent, _)| *sent <= g.at)
            .map(|(_, answered)| *answered)
    });
    matches!((looked, marked), (Some(l), Some(m)) if l < m)
}
/// Checks the state the pool must settle in once the workload has stopped: exactly its
/// target of waiting containers per live replica (`num_prespawn`, or what demand set between
/// it and `pool_max`), none of dead replicas, none unlabelled.
pub fn settled(backend: &InMemoryManager, live: &[(ReplicaId, usize)]) -> Result<(), String> {
    let containers = backend.containers();
    for (id, target) in live {
        let waiting = containers
            .iter()
            .filter(|n| {
                n.kind == NarrativeKind::Prespawned
                    && n.replica.as_ref() == Some(id)
                    && n.state == NarrativeState::Running
            })
            .count();
        if waiting != *target {
            return Err(format!(
                "replica {id} has {waiting} waiting containers once settled, not its target {target}"
            ));
        }
    }
    if let Some(stray) = containers.iter().find(|n| {
        n.kind == NarrativeKind::Prespawned
            && n.replica
                .as_ref()
                .is_none_or(|r| !live.iter().any(|(id, _)| id == r))
    }) {
        return Err(format!(
            "{} (replica {:?}) is left waiting with no live replica to own it",
            stray.name, stray.replica
        ));
    }
    Ok(())
}
