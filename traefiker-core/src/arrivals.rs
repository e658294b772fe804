//! When new users arrived, kept across restarts: the weeks the pool learns from (SPEC §14).
//!
//! [`SqliteStore`] keeps them in a table of its own beside the Python version's
//! (`pool_arrivals(at FLOAT)`, seconds since the epoch), which the Python version never reads;
//! [`MemoryStore`] in memory.

use chrono::{DateTime, Utc};
use rusqlite::params;

use crate::error::StoreError;
use crate::store::{from_epoch, to_epoch, MemoryStore, SqliteStore};

/// New users' arrivals.
///
/// Called from the pool filler, never on a request: a few rows now and then.
pub trait ArrivalLog: Send + Sync + std::fmt::Debug {
    /// Every arrival at or after `since`, oldest first.
    fn arrivals_since(&self, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>, StoreError>;

    /// In one transaction: records `arrivals` and drops every arrival before `before`.
    fn record_arrivals(
        &self,
        arrivals: &[DateTime<Utc>],
        before: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

impl ArrivalLog for MemoryStore {
    fn arrivals_since(&self, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let kept = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<DateTime<Utc>> = kept.iter().copied().filter(|t| *t >= since).collect();
        out.sort_unstable();
        Ok(out)
    }

    fn record_arrivals(
        &self,
        arrivals: &[DateTime<Utc>],
        before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // One push and one retain: a poisoned lock's list is whole.
        let mut kept = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        kept.extend_from_slice(arrivals);
        kept.retain(|t| *t >= before);
        Ok(())
    }
}

impl ArrivalLog for SqliteStore {
    fn arrivals_since(&self, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let since = to_epoch(&since);
        self.ask_writer(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT at FROM pool_arrivals WHERE at >= ?1 ORDER BY at")?;
            let rows = stmt.query_map(params![since], |row| row.get::<_, f64>(0))?;
            let mut out = Vec::new();
            for row in rows {
                // A value that is no instant (hand-edited) is no arrival.
                if let Some(at) = from_epoch(row?) {
                    out.push(at);
                }
            }
            Ok(out)
        })
    }

    /// Handed to the store's writer thread like every write (never waiting for the disk); a
    /// failure is logged there, and costs only what the week learns from those arrivals.
    fn record_arrivals(
        &self,
        arrivals: &[DateTime<Utc>],
        before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let arrivals: Vec<f64> = arrivals.iter().map(to_epoch).collect();
        let before = to_epoch(&before);
        let location = self.location().to_owned();
        self.on_writer(move |conn| {
            let written = (|| {
                let tx = conn.transaction()?;
                {
                    let mut insert = tx.prepare_cached("INSERT INTO pool_arrivals (at) VALUES (?1)")?;
                    for at in &arrivals {
                        insert.execute(params![at])?;
                    }
                    tx.execute("DELETE FROM pool_arrivals WHERE at < ?1", params![before])?;
                }
                tx.commit()
            })();
            if let Err(e) = written {
                tracing::warn!(store = %location, error = %e, lost = arrivals.len(), "could not record new users' arrivals");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ActivityStore;
    use chrono::TimeZone;

    fn exercise(log: &dyn ArrivalLog) {
        let t = |s: i64| {
            Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap() + chrono::Duration::seconds(s)
        };
        log.record_arrivals(&[t(2), t(0), t(1)], t(-100)).unwrap();
        assert_eq!(log.arrivals_since(t(1)).unwrap(), [t(1), t(2)]);
        log.record_arrivals(&[t(3)], t(2)).unwrap();
        assert_eq!(
            log.arrivals_since(t(-100)).unwrap(),
            [t(2), t(3)],
            "older ones dropped"
        );
    }

    #[test]
    fn memory_keeps_arrivals() {
        exercise(&MemoryStore::new());
    }

    #[test]
    fn sqlite_keeps_arrivals_beside_the_python_table_and_across_reopening() {
        let dir = std::env::temp_dir().join(format!("traefiker-arrivals-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("reaper.db");
        let _ = std::fs::remove_file(&path);
        let store = SqliteStore::open(&path).unwrap();
        exercise(&store);
        store
            .record(&[("narrative-alice-522b27_narratives".into(), Utc::now())])
            .unwrap();
        store.flush().unwrap();
        drop(store);
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(
            reopened.arrivals_since(DateTime::UNIX_EPOCH).unwrap().len(),
            2
        );
        assert_eq!(
            reopened.load().unwrap().len(),
            1,
            "the activity table is untouched"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
