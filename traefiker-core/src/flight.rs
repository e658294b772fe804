//! Per-name coordination of operations on one narrative.
//!
//! - [`SingleFlight`]: concurrent requests for one key share one operation and its answer
//!   (a reload storm makes one container). The operation runs in a task spawned on the
//!   runtime of the call that starts it, so a caller that goes away cannot leave it half
//!   done (the runtime going away can: the server starts connects on its main runtime, which
//!   outlives its HTTP workers'), and a drop guard removes its entry however it ends —
//!   answer, panic or runtime shutdown — so one failure never blocks the key.
//! - [`Lanes`]: an exclusive async lock per key, so a connect, a shutdown and a reaper
//!   removal of one narrative never interleave.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::OwnedMutexGuard;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps below are changed by single insert/remove calls, consistent at every step.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

type Flight<V> = Shared<BoxFuture<'static, Result<V, FlightError>>>;

/// The flights in the air, each with the id that tells it from a later one of its key.
type Flights<K, V> = Arc<Mutex<HashMap<K, (u64, Flight<V>)>>>;

/// An operation that could not give its answer: its task panicked or was cancelled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the operation stopped before answering: {0}")]
pub struct FlightError(pub String);

/// Shares one in-flight operation per key among concurrent callers.
#[derive(Debug)]
pub struct SingleFlight<K, V: Clone> {
    flights: Flights<K, V>,
    next: Mutex<u64>,
}

impl<K, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            flights: Arc::new(Mutex::new(HashMap::new())),
            next: Mutex::new(0),
        }
    }
}

/// Removes its flight from the map when the task ends, however it ends.
struct Landing<K: Eq + Hash, V: Clone> {
    flights: Flights<K, V>,
    key: Option<K>,
    id: u64,
}

impl<K: Eq + Hash, V: Clone> Drop for Landing<K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut flights = lock(&self.flights);
            // Only this flight's own entry: a later one may have taken the key.
            if flights.get(&key).is_some_and(|(id, _)| *id == self.id) {
                flights.remove(&key);
            }
        }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A map with no flights.
    pub fn new() -> Self {
        Self::default()
    }

    /// Joins the flight of `key`, or starts `operation` as it if there is none.
    pub async fn run<F>(&self, key: K, operation: F) -> Result<V, FlightError>
    where
        F: Future<Output = V> + Send + 'static,
    {
        let flight = {
            let mut flights = lock(&self.flights);
            if let Some((_, flight)) = flights.get(&key) {
                flight.clone()
            } else {
                let id = {
                    let mut next = lock(&self.next);
                    *next += 1;
                    *next
                };
                let landing = Landing {
                    flights: self.flights.clone(),
                    key: Some(key.clone()),
                    id,
                };
                let task = tokio::spawn(async move {
                    let _landing = landing;
                    operation.await
                });
                let flight: Flight<V> = task
                    .map(|joined| joined.map_err(|e| FlightError(e.to_string())))
                    .boxed()
                    .shared();
                flights.insert(key, (id, flight.clone()));
                flight
            }
        };
        flight.await
    }

    /// Keys with an operation in flight.
    pub fn in_flight(&self) -> usize {
        lock(&self.flights).len()
    }
}

/// An exclusive async lock per key; entries vanish when nobody holds or waits for them.
#[derive(Debug)]
pub struct Lanes<K> {
    lanes: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for Lanes<K> {
    fn default() -> Self {
        Self {
            lanes: Mutex::new(HashMap::new()),
        }
    }
}

/// Holds the lane of one key.
#[derive(Debug)]
pub struct LaneGuard<'a, K: Eq + Hash + Clone> {
    lanes: &'a Lanes<K>,
    key: K,
    guard: Option<OwnedMutexGuard<()>>,
}

impl<K: Eq + Hash + Clone> Drop for LaneGuard<'_, K> {
    fn drop(&mut self) {
        self.guard.take();
        let mut lanes = lock(&self.lanes.lanes);
        // Nobody else holds a handle (no holder, no waiter): drop the entry.
        if lanes
            .get(&self.key)
            .is_some_and(|lane| Arc::strong_count(lane) == 1)
        {
            lanes.remove(&self.key);
        }
    }
}

impl<K: Eq + Hash + Clone> Lanes<K> {
    /// No lanes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the lane of `key` and holds it until the guard is dropped.
    pub async fn enter(&self, key: &K) -> LaneGuard<'_, K> {
        let lane = lock(&self.lanes)
            .entry(key.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        let guard = lane.lock_owned().await;
        LaneGuard {
            lanes: self,
            key: key.clone(),
            guard: Some(guard),
        }
    }

    /// Keys with a lane in use.
    pub fn in_use(&self) -> usize {
        lock(&self.lanes).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_operation() {
        let flights: Arc<SingleFlight<&'static str, usize>> = Arc::new(SingleFlight::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let calls = (0..10).map(|_| {
            let flights = flights.clone();
            let runs = runs.clone();
            async move {
                flights
                    .run("k", async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        runs.fetch_add(1, Ordering::SeqCst) + 1
                    })
                    .await
            }
        });
        let answers = futures::future::join_all(calls).await;
        assert!(answers.iter().all(|a| *a == Ok(1)));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_panicking_operation_does_not_block_its_key() {
        // Issue 10 point 5: the entry is removed by the guard even when the task panics.
        let flights: SingleFlight<&'static str, usize> = SingleFlight::new();
        let failed = flights
            .run("k", async {
                panic!("boom");
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(flights.in_flight(), 0);
        assert_eq!(flights.run("k", async { 7 }).await, Ok(7));
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_cancel_the_operation() {
        let flights: Arc<SingleFlight<&'static str, usize>> = Arc::new(SingleFlight::new());
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let first = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("k", async move {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        d.fetch_add(1, Ordering::SeqCst);
                        1
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        first.abort();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(done.load(Ordering::SeqCst), 1, "the operation finished");
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn lanes_exclude_per_key_and_clean_up() {
        let lanes: Arc<Lanes<&'static str>> = Arc::new(Lanes::new());
        let inside = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let tasks = (0..5).map(|_| {
            let lanes = lanes.clone();
            let inside = inside.clone();
            let max = max.clone();
            async move {
                let _g = lanes.enter(&"k").await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }
        });
        futures::future::join_all(tasks).await;
        assert_eq!(max.load(Ordering::SeqCst), 1);
        assert_eq!(lanes.in_use(), 0);
        let _a = lanes.enter(&"a").await;
        let _b = lanes.enter(&"b").await;
        assert_eq!(
            lanes.in_use(),
            2,
            "different keys do not wait for each other"
        );
    }
}
