//! The last day of the pool in ten-minute buckets, for the admin page's charts (SPEC §14):
//! how large the pool was on average, what it aimed at, how many new users came and how many
//! of them waited for a cold start. Kept in memory since the process started. Pure: the caller
//! gives the instants.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The width of one bucket.
pub const BUCKET: Duration = Duration::from_secs(10 * 60);

/// Buckets kept: one day.
pub const BUCKETS: usize = 144;

/// One bucket of the timeline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Its start.
    pub start: DateTime<Utc>,
    /// New users (from the pool or a cold start).
    pub new_users: u32,
    /// New users who waited for a create.
    pub cold_starts: u32,
    /// Waiting-narrative seconds within it.
    pub waiting_seconds: f64,
    /// The highest target the pool had in it, if one was set in it.
    pub target: Option<usize>,
}

impl Bucket {
    fn empty(start: DateTime<Utc>) -> Self {
        Self {
            start,
            new_users: 0,
            cold_starts: 0,
            waiting_seconds: 0.0,
            target: None,
        }
    }

    /// The pool's average size over the bucket.
    pub fn pool(&self) -> f64 {
        self.waiting_seconds / BUCKET.as_secs_f64()
    }
}

/// The last [`BUCKETS`] buckets, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    buckets: VecDeque<Bucket>,
}

fn bucket_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let width = BUCKET.as_secs() as i64;
    let secs = at.timestamp().div_euclid(width) * width;
    DateTime::from_timestamp(secs, 0).unwrap_or(at)
}

fn width() -> chrono::Duration {
    chrono::Duration::from_std(BUCKET).unwrap_or(chrono::Duration::MAX)
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bucket of `at`, made (with the empty ones before it) if needed; `None` if it is
    /// older than the day kept.
    fn slot(&mut self, at: DateTime<Utc>) -> Option<&mut Bucket> {
        let start = bucket_start(at);
        match self.buckets.back() {
            None => self.buckets.push_back(Bucket::empty(start)),
            Some(last) if last.start < start => {
                let mut next = last.start + width();
                // A quiet night leaves at most a day of empty buckets to make.
                if start - next > width() * BUCKETS as i32 {
                    self.buckets.clear();
                    next = start;
                }
                while next <= start {
                    self.buckets.push_back(Bucket::empty(next));
                    next += width();
                }
            }
            Some(_) => {}
        }
        while self.buckets.len() > BUCKETS {
            self.buckets.pop_front();
        }
        let first = self.buckets.front()?.start;
        if start < first {
            return None;
        }
        let index = ((start - first).num_seconds() / BUCKET.as_secs() as i64) as usize;
        self.buckets.get_mut(index)
    }

    /// A new user arrived at `at`; `cold` if they waited for a create.
    pub fn arrival(&mut self, at: DateTime<Utc>, cold: bool) {
        if let Some(b) = self.slot(at) {
            b.new_users += 1;
            b.cold_starts += u32::from(cold);
        }
    }

    /// `count` narratives waited from `from` to `to`.
    pub fn waiting(&mut self, from: DateTime<Utc>, to: DateTime<Utc>, count: usize) {
        if count == 0 {
            return;
        }
        let mut t = from.max(to - width() * BUCKETS as i32);
        while t < to {
            let end = (bucket_start(t) + width()).min(to);
            let seconds = (end - t).to_std().unwrap_or_default().as_secs_f64();
            if let Some(b) = self.slot(t) {
                b.waiting_seconds += count as f64 * seconds;
            }
            t = end;
        }
    }

    /// The pool aimed at `size` at `at`.
    pub fn target(&mut self, at: DateTime<Utc>, size: usize) {
        if let Some(b) = self.slot(at) {
            b.target = Some(b.target.map_or(size, |t| t.max(size)));
        }
    }

    /// The day up to `now`: [`BUCKETS`] buckets, oldest first, the last one `now`'s (still
    /// filling); empty where nothing was recorded.
    pub fn last_day(&self, now: DateTime<Utc>) -> Vec<Bucket> {
        let last = bucket_start(now);
        (0..BUCKETS)
            .rev()
            .map(|back| {
                let start = last - width() * back as i32;
                self.buckets
                    .iter()
                    .find(|b| b.start == start)
                    .copied()
                    .unwrap_or_else(|| Bucket::empty(start))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, m, s).unwrap()
    }

    #[test]
    fn arrivals_and_waiting_seconds_land_in_their_buckets() {
        let mut t = Timeline::new();
        t.arrival(at(9, 0, 5), false);
        t.arrival(at(9, 9, 59), true);
        t.arrival(at(9, 10, 0), false);
        // Two waiting from 09:05 to 09:15: five minutes in each bucket.
        t.waiting(at(9, 5, 0), at(9, 15, 0), 2);
        t.target(at(9, 1, 0), 9);
        t.target(at(9, 2, 0), 4);
        let day = t.last_day(at(9, 12, 0));
        assert_eq!(day.len(), BUCKETS);
        let (nine, ten) = (day[BUCKETS - 2], day[BUCKETS - 1]);
        assert_eq!(nine.start, at(9, 0, 0));
        assert_eq!((nine.new_users, nine.cold_starts), (2, 1));
        assert_eq!((ten.new_users, ten.cold_starts), (1, 0));
        assert_eq!(nine.waiting_seconds, 600.0);
        assert_eq!(nine.pool(), 1.0);
        assert_eq!(ten.waiting_seconds, 600.0);
        assert_eq!(nine.target, Some(9), "the highest");
        assert_eq!(ten.target, None);
        assert_eq!(
            day[0].start,
            at(9, 10, 0) - chrono::Duration::hours(24) + width()
        );
    }

    #[test]
    fn only_a_day_is_kept() {
        let mut t = Timeline::new();
        t.arrival(at(9, 0, 0), false);
        let next_day = at(9, 0, 0) + chrono::Duration::hours(24);
        t.arrival(next_day, false);
        let day = t.last_day(next_day);
        assert_eq!(day.iter().map(|b| b.new_users).sum::<u32>(), 1);
        assert!(t.buckets.len() <= BUCKETS);
        // Waiting over three days counts only the last.
        let mut t = Timeline::new();
        t.waiting(at(0, 0, 0), at(0, 0, 0) + chrono::Duration::hours(72), 1);
        let end = at(0, 0, 0) + chrono::Duration::hours(72);
        let day = t.last_day(end - chrono::Duration::seconds(1));
        let total: f64 = day.iter().map(|b| b.waiting_seconds).sum();
        assert_eq!(total, 86_400.0);
        // Something older than the day kept is dropped.
        t.arrival(at(0, 0, 0), true);
        assert_eq!(
            t.last_day(end).iter().map(|b| b.cold_starts).sum::<u32>(),
            0
        );
    }
}
