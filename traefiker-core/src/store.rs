//! The activity store: when each narrative was last seen active, durable across restarts.
//!
//! Keys are Traefik service names, values instants. [`SqliteStore`] keeps the Python version's
//! table (`narr_activity(servicename TEXT PRIMARY KEY, lastseen FLOAT)`, seconds since the
//! epoch) so an existing `/tmp/reaper.db` is read as it is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use crate::error::StoreError;

/// Last-seen instants per Traefik service name.
///
/// Calls are short and synchronous (a local file at most); every write is one transaction, so
/// a crash loses nothing already recorded and never leaves half a batch.
pub trait ActivityStore: Send + Sync + std::fmt::Debug {
    /// Everything recorded.
    fn load(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError>;

    /// In one transaction: sets the last-seen instant of each service in `seen` (inserting or
    /// replacing), then drops the records of `forget` (unknown ones are ignored).
    fn update(&self, seen: &[(String, DateTime<Utc>)], forget: &[String])
        -> Result<(), StoreError>;

    /// Sets the last-seen instant of each service.
    fn record(&self, seen: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        self.update(seen, &[])
    }

    /// Drops the records of `services`.
    fn forget(&self, services: &[String]) -> Result<(), StoreError> {
        self.update(&[], services)
    }
}

/// A store that lives as long as the process: for tests and embedders with no disk.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<String, DateTime<Utc>>>,
    /// New users' arrivals ([`crate::ArrivalLog`]).
    pub(crate) arrivals: Mutex<Vec<DateTime<Utc>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, DateTime<Utc>>> {
        // A panic while holding this lock cannot leave the map half-written (each call is one
        // map operation), so a poisoned lock is still consistent.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ActivityStore for MemoryStore {
    fn load(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        Ok(self.records().clone())
    }

    fn update(
        &self,
        seen: &[(String, DateTime<Utc>)],
        forget: &[String],
    ) -> Result<(), StoreError> {
        let mut records = self.records();
        records.extend(seen.iter().cloned());
        for s in forget {
            records.remove(s);
        }
        Ok(())
    }
}

/// The embedded SQLite store (`sqlite_reaperdb_path`).
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and its table.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let err = |e: rusqlite::Error| StoreError {
            location: path.display().to_string(),
            detail: format!("{e} (check sqlite_reaperdb_path and its directory's permissions)"),
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS narr_activity (servicename TEXT PRIMARY KEY, lastseen FLOAT);
             CREATE TABLE IF NOT EXISTS pool_arrivals (at FLOAT NOT NULL);
             CREATE INDEX IF NOT EXISTS pool_arrivals_at ON pool_arrivals (at);",
        )
        .map_err(err)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn error(&self, e: rusqlite::Error) -> StoreError {
        StoreError {
            location: self.path.display().to_string(),
            detail: e.to_string(),
        }
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // SQLite rolls back an unfinished transaction, so a connection whose user panicked
        // is still consistent.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn to_epoch(t: &DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

pub(crate) fn from_epoch(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() {
        return None;
    }
    DateTime::from_timestamp_micros((secs * 1e6).round() as i64)
}

impl ActivityStore for SqliteStore {
    fn load(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT servicename, lastseen FROM narr_activity")
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Option<f64>>(1)?))
            })
            .map_err(|e| self.error(e))?;
        let mut out = HashMap::new();
        for row in rows {
            let (name, secs) = row.map_err(|e| self.error(e))?;
            // A row without a usable time (hand-edited, NULL) is treated as never seen: the
            // reaper then tracks that narrative from now rather than reaping it at once.
            if let Some(t) = secs.and_then(from_epoch) {
                out.insert(name, t);
            }
        }
        Ok(out)
    }

    fn update(
        &self,
        seen: &[(String, DateTime<Utc>)],
        forget: &[String],
    ) -> Result<(), StoreError> {
        if seen.is_empty() && forget.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.error(e))?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO narr_activity (servicename, lastseen) VALUES (?1, ?2)
                     ON CONFLICT(servicename) DO UPDATE SET lastseen = excluded.lastseen",
                )
                .map_err(|e| self.error(e))?;
            for (name, at) in seen {
                upsert
                    .execute(params![name, to_epoch(at)])
                    .map_err(|e| self.error(e))?;
            }
            let mut delete = tx
                .prepare_cached("DELETE FROM narr_activity WHERE servicename = ?1")
                .map_err(|e| self.error(e))?;
            for name in forget {
                delete.execute(params![name]).map_err(|e| self.error(e))?;
            }
        }
        tx.commit().map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn exercise(store: &dyn ActivityStore) {
        let t1 = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let t2 = t1 + chrono::Duration::milliseconds(1500);
        store
            .record(&[("a_s".into(), t1), ("b_s".into(), t1)])
            .unwrap();
        store.record(&[("a_s".into(), t2)]).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded["a_s"], t2);
        assert_eq!(loaded["b_s"], t1);
        store.forget(&["b_s".into(), "zzz".into()]).unwrap();
        assert_eq!(store.load().unwrap().keys().collect::<Vec<_>>(), ["a_s"]);
    }

    #[test]
    fn memory_store_records_and_forgets() {
        exercise(&MemoryStore::new());
    }

    #[test]
    fn sqlite_store_records_forgets_and_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("traefiker-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("reaper.db");
        let _ = std::fs::remove_file(&path);
        exercise(&SqliteStore::open(&path).unwrap());
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.load().unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sqlite_store_reads_the_python_table_as_it_is() {
        let dir = std::env::temp_dir().join(format!("traefiker-py-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("reaper.db");
        let _ = std::fs::remove_file(&path);
        {
            // What the Python version wrote: time.time() floats.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE narr_activity (servicename TEXT PRIMARY KEY, lastseen FLOAT);
                 INSERT INTO narr_activity VALUES ('narrative-alice-522b27_narratives', 1633362119.504);
                 INSERT INTO narr_activity VALUES ('broken', NULL);",
            )
            .unwrap();
        }
        let loaded = SqliteStore::open(&path).unwrap().load().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(
            loaded["narrative-alice-522b27_narratives"].timestamp_millis(),
            1_633_362_119_504
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
