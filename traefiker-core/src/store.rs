//! The activity store: when each narrative was last seen active, durable across restarts.
//!
//! Keys are Traefik service names, values instants. [`SqliteStore`] keeps the Python version's
//! table (`narr_activity(servicename TEXT PRIMARY KEY, lastseen FLOAT)`, seconds since the
//! epoch) so an existing `/tmp/reaper.db` is read as it is.
//!
//! Writes never wait for the disk: [`ActivityStore::update`] hands them to the store, which
//! commits them on a thread of its own. Another process holding SQLite's write lock (a backup,
//! a second traefiker on the same file, `sqlite3` open on it) therefore holds up that thread,
//! never a request or the reaper. What a write costs if the process dies before the thread
//! committed it is said at [`SqliteStore`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use crate::error::StoreError;

/// Last-seen instants per Traefik service name.
///
/// # Contract
///
/// - `update` returns without waiting for the disk: the store applies the writes in the order
///   given, each call's as one transaction or as part of a larger one, never half of it.
/// - `load` answers with every write handed over before it (pending ones included).
/// - `flush` returns once every write handed over before it is durable, or says why not.
pub trait ActivityStore: Send + Sync + std::fmt::Debug {
    /// Everything recorded.
    fn load(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError>;

    /// Sets the last-seen instant of each service in `seen` (inserting or replacing), then
    /// drops the records of `forget` (unknown ones are ignored), as one change. An error
    /// means the store will not apply it (it is closed); a failure to commit it later is the
    /// store's to report and retry.
    fn update(&self, seen: &[(String, DateTime<Utc>)], forget: &[String])
        -> Result<(), StoreError>;

    /// Waits until every change handed to [`ActivityStore::update`] so far is durable
    /// (graceful shutdown, tests).
    fn flush(&self) -> Result<(), StoreError>;

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

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The embedded SQLite store (`sqlite_reaperdb_path`).
///
/// One thread owns the database connection and commits the changes it is handed, merging
/// those that queued up while it waited into one transaction (the latest instant of a
/// service wins; a forget drops it). A commit that fails (the file is locked by another
/// process for longer than [`BUSY_TIMEOUT`], the disk is full) is logged and retried, with
/// every change since merged in, until it succeeds.
///
/// Durability: WAL with `synchronous=FULL`, so a committed change survives a crash of the
/// process and a power loss alike. What is lost is what was not committed yet: the changes of
/// the last moments before the process died (normally a few milliseconds' worth; longer only
/// while another process holds the write lock). A lost connect record makes a narrative look
/// idle since its previous record after a restart; the orchestrator's connection mark
/// (Rancher) still protects it, and [`Lifecycle::track_existing`](crate::Lifecycle) tracks
/// narratives without a record from the restart.
#[derive(Debug)]
pub struct SqliteStore {
    location: String,
    to_writer: Mutex<Option<mpsc::Sender<Job>>>,
    /// Tells when the writer thread has ended, so dropping the store waits for its last
    /// commit (bounded by [`DROP_WAIT`]).
    ended: Mutex<mpsc::Receiver<()>>,
}

/// How long SQLite waits for another process's write lock before a commit fails (and is
/// retried by the writer).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long dropping the store waits for its last commit; longer, the thread finishes on its
/// own (or dies with the process).
const DROP_WAIT: Duration = Duration::from_secs(1);

/// Retries of a failed commit: the first wait, doubling up to the last.
const RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// What the writer thread is asked.
enum Job {
    Update(Vec<(String, DateTime<Utc>)>, Vec<String>),
    Load(mpsc::Sender<Result<HashMap<String, DateTime<Utc>>, StoreError>>),
    Flush(mpsc::Sender<Result<(), StoreError>>),
    /// Work on another table with the writer's connection ([`crate::ArrivalLog`]).
    With(Box<dyn FnOnce(&mut Connection) + Send>),
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and its table, and starts the thread
    /// that writes to it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let location = path.display().to_string();
        let err = |e: rusqlite::Error| StoreError {
            location: location.clone(),
            detail: format!("{e} (check sqlite_reaperdb_path and its directory's permissions)"),
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS narr_activity (servicename TEXT PRIMARY KEY, lastseen FLOAT);
             CREATE TABLE IF NOT EXISTS pool_arrivals (at FLOAT NOT NULL);
             CREATE INDEX IF NOT EXISTS pool_arrivals_at ON pool_arrivals (at);",
        )
        .map_err(err)?;
        let (to_writer, jobs) = mpsc::channel();
        let (end, ended) = mpsc::channel();
        let writer = Writer {
            conn,
            location: location.clone(),
            pending: Vec::new(),
        };
        std::thread::Builder::new()
            .name("traefiker-store".to_owned())
            .spawn(move || {
                writer.run(&jobs);
                let _ = end.send(());
            })
            .map_err(|e| StoreError {
                location: location.clone(),
                detail: format!("cannot start the store's writer thread: {e}"),
            })?;
        Ok(Self {
            location,
            to_writer: Mutex::new(Some(to_writer)),
            ended: Mutex::new(ended),
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let sender = self
            .to_writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        sender
            .ok_or(())
            .and_then(|s| s.send(job).map_err(|_| ()))
            .map_err(|()| self.closed())
    }

    fn closed(&self) -> StoreError {
        StoreError {
            location: self.location.clone(),
            detail: "the store's writer thread has stopped (see the log for why)".to_owned(),
        }
    }

    /// Runs `work` on the writer's connection, without waiting for it (its own errors are
    /// its to report).
    pub(crate) fn on_writer(
        &self,
        work: impl FnOnce(&mut Connection) + Send + 'static,
    ) -> Result<(), StoreError> {
        self.send(Job::With(Box::new(work)))
    }

    /// Runs `work` on the writer's connection and waits for its answer.
    pub(crate) fn ask_writer<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let location = self.location.clone();
        self.ask(move |reply| {
            Job::With(Box::new(move |conn| {
                let answer = work(conn).map_err(|e| StoreError {
                    location,
                    detail: e.to_string(),
                });
                let _ = reply.send(answer);
            }))
        })
    }

    /// Where the store is, for errors.
    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    /// Asks the writer and waits for its answer.
    fn ask<T>(
        &self,
        job: impl FnOnce(mpsc::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::channel();
        self.send(job(reply))?;
        answer.recv().map_err(|_| self.closed())?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer once it has committed what it holds.
        self.to_writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let _ = self
            .ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recv_timeout(DROP_WAIT);
    }
}

/// The writer thread's state: the connection and the changes not committed yet, in order.
struct Writer {
    conn: Connection,
    location: String,
    pending: Vec<(String, Option<DateTime<Utc>>)>,
}

impl Writer {
    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        let mut wait = RETRY.0;
        loop {
            let job = if self.pending.is_empty() {
                match jobs.recv() {
                    Ok(job) => Some(job),
                    Err(_) => return,
                }
            } else {
                // A commit failed: retry after `wait`, taking in what arrives meanwhile.
                match jobs.recv_timeout(wait) {
                    Ok(job) => Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        // Closed: one last attempt, then whatever is left is lost (logged).
                        if let Err(e) = self.commit() {
                            tracing::error!(error = %e, lost = self.pending.len(), "the activity store closed with changes it could not write");
                        }
                        return;
                    }
                }
            };
            match job {
                Some(Job::Update(seen, forget)) => {
                    self.take(seen, forget);
                    // Whatever queued meanwhile goes into the same transaction.
                    while let Ok(job) = jobs.try_recv() {
                        self.handle_now(job);
                    }
                }
                Some(job) => {
                    self.handle_now(job);
                    continue;
                }
                None => {}
            }
            match self.commit() {
                Ok(()) => wait = RETRY.0,
                Err(e) => {
                    tracing::warn!(error = %e, pending = self.pending.len(), retry_in_ms = wait.as_millis() as u64, "could not write the activity store; retrying");
                    wait = (wait * 2).min(RETRY.1);
                }
            }
        }
    }

    /// A job other than an update, or an update taken into the pending changes.
    fn handle_now(&mut self, job: Job) {
        match job {
            Job::Update(seen, forget) => self.take(seen, forget),
            Job::Flush(reply) => {
                let _ = reply.send(self.commit());
            }
            Job::Load(reply) => {
                let _ = reply.send(self.commit().and_then(|()| self.load()));
            }
            Job::With(work) => work(&mut self.conn),
        }
    }

    fn take(&mut self, seen: Vec<(String, DateTime<Utc>)>, forget: Vec<String>) {
        self.pending
            .extend(seen.into_iter().map(|(name, at)| (name, Some(at))));
        self.pending
            .extend(forget.into_iter().map(|name| (name, None)));
    }

    fn error(&self, e: rusqlite::Error) -> StoreError {
        StoreError {
            location: self.location.clone(),
            detail: e.to_string(),
        }
    }

    /// Commits the pending changes in one transaction; they stay pending if it fails.
    fn commit(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // The last change of each service is the one that counts.
        let mut last: HashMap<&str, Option<&DateTime<Utc>>> = HashMap::new();
        for (name, at) in &self.pending {
            last.insert(name.as_str(), at.as_ref());
        }
        let tx = self.conn.transaction().map_err(|e| StoreError {
            location: self.location.clone(),
            detail: e.to_string(),
        })?;
        let result = (|| {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO narr_activity (servicename, lastseen) VALUES (?1, ?2)
                 ON CONFLICT(servicename) DO UPDATE SET lastseen = excluded.lastseen",
            )?;
            let mut delete =
                tx.prepare_cached("DELETE FROM narr_activity WHERE servicename = ?1")?;
            for (name, at) in &last {
                match at {
                    Some(at) => upsert.execute(params![name, to_epoch(at)])?,
                    None => delete.execute(params![name])?,
                };
            }
            Ok::<(), rusqlite::Error>(())
        })();
        let committed = result.and_then(|()| tx.commit());
        match committed {
            Ok(()) => {
                self.pending.clear();
                Ok(())
            }
            Err(e) => Err(self.error(e)),
        }
    }

    fn load(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let mut stmt = self
            .conn
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
        self.ask(Job::Load)
    }

    fn update(
        &self,
        seen: &[(String, DateTime<Utc>)],
        forget: &[String],
    ) -> Result<(), StoreError> {
        if seen.is_empty() && forget.is_empty() {
            return Ok(());
        }
        self.send(Job::Update(seen.to_vec(), forget.to_vec()))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.ask(Job::Flush)
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
    fn a_write_lock_held_elsewhere_holds_up_no_writer_and_loses_nothing() {
        let dir = std::env::temp_dir().join(format!("traefiker-locked-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("reaper.db");
        let _ = std::fs::remove_file(&path);
        let store = SqliteStore::open(&path).unwrap();
        // Another process (a backup, sqlite3 at a prompt) takes the write lock and keeps it.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let (done, returned) = std::sync::mpsc::channel();
        let writer = std::thread::spawn({
            let store = std::sync::Arc::new(store);
            let handed = store.clone();
            move || {
                let _ = done.send(handed.record(&[("a_s".into(), at)]));
                store
            }
        });
        // Returns while the lock is still held (SQLite would wait BUSY_TIMEOUT for it).
        let answer = returned.recv_timeout(BUSY_TIMEOUT / 2);
        other.execute_batch("COMMIT").unwrap();
        assert!(matches!(answer, Ok(Ok(()))), "{answer:?}");
        let store = writer.join().unwrap();
        store.flush().unwrap();
        assert_eq!(store.load().unwrap()["a_s"], at);
        drop(store);
        assert_eq!(SqliteStore::open(&path).unwrap().load().unwrap()["a_s"], at);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn changes_apply_in_order_and_dropping_the_store_commits_them() {
        let dir = std::env::temp_dir().join(format!("traefiker-order-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("reaper.db");
        let _ = std::fs::remove_file(&path);
        let t1 = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let t2 = t1 + chrono::Duration::seconds(1);
        {
            let store = SqliteStore::open(&path).unwrap();
            store
                .record(&[("a_s".into(), t1), ("b_s".into(), t1)])
                .unwrap();
            store.forget(&["a_s".into()]).unwrap();
            store.record(&[("a_s".into(), t2)]).unwrap();
            store
                .update(&[("b_s".into(), t2)], &["b_s".into()])
                .unwrap();
        }
        let loaded = SqliteStore::open(&path).unwrap().load().unwrap();
        assert_eq!(loaded.len(), 1, "{loaded:?}");
        assert_eq!(loaded["a_s"], t2);
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
