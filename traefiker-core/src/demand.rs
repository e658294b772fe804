//! How many waiting narratives the pool should hold now (SPEC §14): between `num_prespawn` (the
//! floor) and `pool_max`, from the arrivals of new users and the cold-start time measured from
//! this replica's own creates, with the floors of `pool_schedule` and of the weeks learned
//! from past arrivals.
//!
//! The pool is a stock drawn down by new users and refilled only as fast as a narrative
//! starts: to serve everyone warm it must hold, whenever a replacement is started, the
//! arrivals expected until that replacement is ready — the arrival rate times the cold-start
//! time — plus a margin. [`Demand::target`] computes that from three views of the arrivals:
//!
//! - **Now.** The highest of three rates: the arrivals within the last cold start, the three
//!   most recent arrivals (a burst that has just begun: its third user raises the pool), and
//!   the last quarter of an hour (steady traffic). Times the cold-start time, times
//!   [`MARGIN`]; capped at `pool_max`; held for [`hold`] after it falls, so a pause within a
//!   burst does not trim and recreate.
//! - **The week.** For each of the last [`WEEKS`] weeks, the most arrivals within one cold
//!   start in the same span of the week ahead of now ([`LOOKAHEAD`] plus a cold start);
//!   the second highest of those counts, times [`MARGIN`], capped at `pool_max`. Second
//!   highest: a time must have been busy in at least two past weeks before the pool rises
//!   for it, so a one-off event does not cost a pool every week after.
//! - **The schedule.** The floor of the `pool_schedule` window holding now or
//!   [`lead`] from now (so the floor is ready when the window opens), shared out among the
//!   live replicas; an operator's floor, kept even above `pool_max`.
//!
//! Weeks are compared at the same UTC instant seven days apart: after a daylight-saving
//! change, a time learned in local hours is an hour off until two weeks at the new hour.
//!
//! Pure: arrivals and measurements in, a [`Target`] out; the caller gives the instants (from
//! the lifecycle's `Clock`).

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::schedule::Schedule;

/// The margin over the arrivals expected while a replacement starts: Poisson arrivals at the
/// expected count `n` exceed `1.5 n` seldom for the counts that matter (`n` ≥ 4).
pub const MARGIN: f64 = 1.5;

/// Weeks of arrivals kept and learned from.
pub const WEEKS: u32 = 4;

/// How far ahead in past weeks the pool looks for busy times, besides a cold start.
pub const LOOKAHEAD: Duration = Duration::from_secs(5 * 60);

/// The cold-start time assumed before the first measurement.
pub const ASSUMED_COLD_START: Duration = Duration::from_secs(30);

/// The span of the steady rate.
const STEADY: Duration = Duration::from_secs(15 * 60);

/// The shortest span the three most recent arrivals are taken to cover: three at one
/// instant (a clock that does not move, a batch) are not an infinite rate.
const SHORTEST_SPAN: Duration = Duration::from_secs(1);

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a raised target is held after the arrivals that raised it fall off: two cold
/// starts, at least two minutes.
pub fn hold(cold_start: Duration) -> Duration {
    (cold_start * 2).max(Duration::from_secs(120))
}

/// How far ahead a schedule's floor is started, so it is ready when its window opens: two
/// cold starts (the creates go out in batches) and a minute.
pub fn lead(cold_start: Duration) -> Duration {
    cold_start * 2 + Duration::from_secs(60)
}

/// What bounds the pool: `num_prespawn`, `pool_max`, `pool_schedule`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemandSettings {
    /// `num_prespawn`: never fewer waiting narratives.
    pub floor: usize,
    /// `pool_max`: never more from arrivals (at least `floor`; equal: a fixed pool).
    pub max: usize,
    /// `pool_schedule`: floors for known windows, for the whole site.
    pub schedule: Schedule,
}

impl DemandSettings {
    /// A pool of exactly `size`, as the Python version kept.
    pub fn fixed(size: usize) -> Self {
        Self {
            floor: size,
            max: size,
            schedule: Schedule::default(),
        }
    }

    /// Whether the pool may be other than the floor.
    pub fn adaptive(&self) -> bool {
        self.max > self.floor || !self.schedule.is_empty()
    }
}

/// Why the target is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `num_prespawn`.
    Floor,
    /// The arrivals of the last minutes.
    Arrivals,
    /// Busy times of past weeks.
    Learned,
    /// A `pool_schedule` window.
    Schedule,
}

impl Reason {
    /// In words, for status pages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Floor => "num_prespawn, the floor",
            Self::Arrivals => "new users of the last minutes",
            Self::Learned => "busy times of past weeks",
            Self::Schedule => "a pool_schedule window",
        }
    }
}

/// The pool's target: how many waiting narratives, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Waiting narratives to keep.
    pub size: usize,
    /// What set it.
    pub reason: Reason,
}

/// Arrivals of new users and measured cold starts, and the target they make.
#[derive(Clone, Debug)]
pub struct Demand {
    settings: DemandSettings,
    /// New users' arrivals, oldest first, of the last [`WEEKS`] weeks and a bit.
    arrivals: VecDeque<DateTime<Utc>>,
    cold_start: Option<Duration>,
    /// The highest recent target from arrivals, and when it was last reached.
    held: Option<(usize, DateTime<Utc>)>,
}

impl Demand {
    /// No arrivals yet.
    pub fn new(settings: DemandSettings) -> Self {
        Self {
            settings,
            arrivals: VecDeque::new(),
            cold_start: None,
            held: None,
        }
    }

    /// The bounds.
    pub fn settings(&self) -> &DemandSettings {
        &self.settings
    }

    /// A new user arrived at `at`.
    pub fn arrived(&mut self, at: DateTime<Utc>) {
        // Arrivals come in order but for a few microseconds between threads.
        let at_or_after = self.arrivals.partition_point(|t| *t <= at);
        self.arrivals.insert(at_or_after, at);
    }

    /// Arrivals remembered from before (the store), as of `now`.
    pub fn remember(
        &mut self,
        history: impl IntoIterator<Item = DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        for at in history {
            self.arrived(at);
        }
        self.forget_before(now);
    }

    /// Arrivals known, of the last weeks.
    pub fn arrivals(&self) -> usize {
        self.arrivals.len()
    }

    /// A narrative this replica created became ready `took` after its create was sent.
    /// A slower start counts at once (the pool must cover it now); faster ones bring the
    /// estimate down gradually.
    pub fn started(&mut self, took: Duration) {
        self.cold_start = Some(match self.cold_start {
            Some(c) if took < c => c.mul_f64(0.8) + took.mul_f64(0.2),
            _ => took,
        });
    }

    /// The cold-start time as measured (assumed until the first measurement).
    pub fn cold_start(&self) -> Duration {
        self.cold_start.unwrap_or(ASSUMED_COLD_START)
    }

    /// Whether a cold start was measured yet.
    pub fn measured(&self) -> bool {
        self.cold_start.is_some()
    }

    /// The oldest instant kept: [`WEEKS`] weeks back.
    pub fn horizon(now: DateTime<Utc>) -> DateTime<Utc> {
        now - span(WEEK * WEEKS)
    }

    fn forget_before(&mut self, now: DateTime<Utc>) {
        let horizon = Self::horizon(now);
        while self.arrivals.front().is_some_and(|t| *t < horizon) {
            self.arrivals.pop_front();
        }
    }

    /// Arrivals in the `width` up to `now`: after `now - width`, up to `now` included.
    fn within(&self, now: DateTime<Utc>, width: Duration) -> usize {
        let a = self.arrivals.partition_point(|t| *t <= now - span(width));
        let b = self.arrivals.partition_point(|t| *t <= now);
        b.saturating_sub(a)
    }

    /// The most arrivals within any `width` starting in `[from, to)`.
    fn peak(&self, from: DateTime<Utc>, to: DateTime<Utc>, width: chrono::Duration) -> usize {
        let a = self.arrivals.partition_point(|t| *t < from);
        let b = self.arrivals.partition_point(|t| *t < to);
        let mut most = 0;
        let mut end = a;
        for i in a..b {
            while end < self.arrivals.len() && self.arrivals[end] < self.arrivals[i] + width {
                end += 1;
            }
            most = most.max(end - i);
        }
        most
    }

    /// The new users expected while one narrative starts (a cold start from `now`), at the
    /// highest of three rates: the last cold start's, the three most recent arrivals', and
    /// the last quarter hour's.
    pub fn expected(&self, now: DateTime<Utc>) -> f64 {
        let cold = self.cold_start();
        let recent = self.within(now, cold) as f64;
        let steady = self.within(now, STEADY) as f64 * cold.as_secs_f64() / STEADY.as_secs_f64();
        let n = self.arrivals.partition_point(|t| *t <= now);
        let burst = match n {
            3.. => {
                let covered = now
                    .signed_duration_since(self.arrivals[n - 3])
                    .to_std()
                    .unwrap_or_default()
                    .max(SHORTEST_SPAN);
                2.0 * cold.as_secs_f64() / covered.as_secs_f64()
            }
            _ => 0.0,
        };
        recent.max(steady).max(burst)
    }

    /// The need the last weeks show for the span ahead of `now`.
    fn learned(&self, now: DateTime<Utc>) -> usize {
        let cold = self.cold_start();
        let ahead = span(LOOKAHEAD + cold);
        let mut peaks: Vec<usize> = (1..=WEEKS)
            .map(|k| {
                let from = now - span(WEEK * k);
                self.peak(from, from + ahead, span(cold))
            })
            .collect();
        peaks.sort_unstable_by(|a, b| b.cmp(a));
        let twice = peaks.get(1).copied().unwrap_or(0);
        with_margin(twice as f64)
    }

    /// How many waiting narratives this replica should hold at `now`, with `replicas` live
    /// replicas sharing the schedule's floors (each holds its share; its own arrivals are its
    /// share already).
    pub fn target(&mut self, now: DateTime<Utc>, replicas: usize) -> Target {
        let floor = self.settings.floor;
        if !self.settings.adaptive() {
            return Target {
                size: floor,
                reason: Reason::Floor,
            };
        }
        self.forget_before(now);
        let cold = self.cold_start();
        let max = self.settings.max;
        let from_rate = with_margin(self.expected(now)).min(max);
        let from_weeks = self.learned(now).min(max);
        let mut own = (from_rate.max(from_weeks), now);
        match self.held {
            Some((held, at)) if held > own.0 && span_between(at, now) < hold(cold) => {
                own = (held, at);
            }
            _ => self.held = Some(own),
        }
        let scheduled = [now, now + span(lead(cold))]
            .into_iter()
            .filter_map(|t| self.settings.schedule.floor_at(t))
            .max()
            .map_or(0, |f| f.div_ceil(replicas.max(1)));
        let reason = if scheduled > floor && scheduled >= own.0 {
            Reason::Schedule
        } else if own.0 <= floor {
            Reason::Floor
        } else if own.0 == from_weeks && from_weeks >= from_rate {
            Reason::Learned
        } else {
            Reason::Arrivals
        };
        Target {
            size: floor.max(own.0).max(scheduled),
            reason,
        }
    }
}

fn with_margin(expected: f64) -> usize {
    (expected * MARGIN).ceil() as usize
}

fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn span_between(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    to.signed_duration_since(from).to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn monday_9() -> DateTime<Utc> {
        // Monday 2 March 2026, 09:00 UTC.
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
    }

    fn ms(n: i64) -> chrono::Duration {
        chrono::Duration::milliseconds(n)
    }

    fn adaptive(floor: usize, max: usize) -> Demand {
        let mut d = Demand::new(DemandSettings {
            floor,
            max,
            schedule: Schedule::default(),
        });
        d.started(Duration::from_secs(3));
        d
    }

    /// The workshop: `n` users from `start`, one every half second.
    fn burst(d: &mut Demand, start: DateTime<Utc>, n: i64) {
        for i in 0..n {
            d.arrived(start + ms(500 * i));
        }
    }

    #[test]
    fn a_fixed_pool_is_the_floor_whatever_arrives() {
        let mut d = Demand::new(DemandSettings::fixed(2));
        burst(&mut d, monday_9(), 40);
        let t = d.target(monday_9() + ms(19_500), 1);
        assert_eq!(
            t,
            Target {
                size: 2,
                reason: Reason::Floor
            }
        );
    }

    #[test]
    fn a_burst_raises_the_pool_at_its_third_user_and_it_decays_to_the_floor() {
        let mut d = adaptive(2, 20);
        let t0 = monday_9();
        assert_eq!(d.target(t0, 1).size, 2, "quiet: the floor");
        d.arrived(t0);
        d.arrived(t0 + ms(500));
        assert_eq!(
            d.target(t0 + ms(500), 1).size,
            3,
            "two within a cold start: 2 times 1.5"
        );
        d.arrived(t0 + ms(1000));
        // Two more arrivals over one second: 2/s, times a 3 s start, times 1.5.
        let t = d.target(t0 + ms(1000), 1);
        assert_eq!(t.size, 9);
        assert_eq!(t.reason, Reason::Arrivals);
        for i in 3..40 {
            d.arrived(t0 + ms(500 * i));
        }
        assert_eq!(d.target(t0 + ms(19_500), 1).size, 9, "steady at 2/s");
        // Held through a pause, then back to the floor.
        assert_eq!(d.target(t0 + ms(60_000), 1).size, 9);
        let quiet = t0 + ms(19_500) + span(hold(Duration::from_secs(3))) + ms(1000);
        let t = d.target(quiet, 1);
        assert_eq!((t.size, t.reason), (2, Reason::Floor));
    }

    #[test]
    fn the_pool_follows_the_cold_start_and_stops_at_pool_max() {
        let mut d = adaptive(2, 20);
        d.started(Duration::from_secs(6));
        assert_eq!(
            d.cold_start(),
            Duration::from_secs(6),
            "a slower start counts at once"
        );
        burst(&mut d, monday_9(), 3);
        assert_eq!(
            d.target(monday_9() + ms(1000), 1).size,
            18,
            "2/s for 6 s, times 1.5"
        );
        d.started(Duration::from_secs(1));
        assert_eq!(
            d.cold_start(),
            Duration::from_millis(5000),
            "a faster one brings it down gradually"
        );
        let mut d = adaptive(2, 20);
        d.started(Duration::from_secs(60));
        burst(&mut d, monday_9(), 3);
        assert_eq!(
            d.target(monday_9() + ms(1000), 1).size,
            20,
            "capped at pool_max"
        );
    }

    #[test]
    fn steady_traffic_keeps_what_a_cold_start_consumes() {
        let mut d = adaptive(1, 50);
        d.started(Duration::from_secs(60));
        // One new user every 20 s for a quarter hour: 3 per minute-long start.
        let t0 = monday_9();
        for i in 0..45 {
            d.arrived(t0 + chrono::Duration::seconds(20 * i));
        }
        let now = t0 + chrono::Duration::seconds(20 * 44 + 10);
        let t = d.target(now, 1);
        assert_eq!(
            (t.size, t.reason),
            (5, Reason::Arrivals),
            "3 per minute-long start, times 1.5"
        );
    }

    #[test]
    fn a_time_busy_in_two_past_weeks_raises_the_pool_before_it_comes() {
        let mut d = adaptive(2, 20);
        let week = chrono::Duration::days(7);
        let this_monday = monday_9() + week * 2;
        // Last week only: a one-off.
        burst(&mut d, this_monday - week, 40);
        assert_eq!(
            d.target(this_monday - chrono::Duration::minutes(4), 1).size,
            2
        );
        // And the week before: a habit. Six arrive within one 3 s start: 9 from four minutes
        // before until the burst has passed.
        burst(&mut d, this_monday - week * 2, 40);
        let before = d.target(this_monday - chrono::Duration::minutes(4), 1);
        assert_eq!((before.size, before.reason), (9, Reason::Learned));
        let mut fresh = adaptive(2, 20);
        burst(&mut fresh, this_monday - week, 40);
        burst(&mut fresh, this_monday - week * 2, 40);
        assert_eq!(
            fresh
                .target(this_monday - chrono::Duration::minutes(6), 1)
                .size,
            2,
            "not yet six minutes before"
        );
        assert_eq!(
            fresh.target(this_monday + ms(10_000), 1).size,
            9,
            "during it"
        );
        // Tuesday at 09:00 saw nothing in past weeks (and the arrivals' hold is long over).
        assert_eq!(
            fresh
                .target(this_monday + chrono::Duration::days(1), 1)
                .size,
            2
        );
    }

    #[test]
    fn history_older_than_the_weeks_learned_is_forgotten() {
        let mut d = adaptive(2, 20);
        let now = monday_9();
        d.remember(
            [
                now - chrono::Duration::days(40),
                now - chrono::Duration::days(3),
            ],
            now,
        );
        assert_eq!(d.arrivals(), 1);
    }

    #[test]
    fn a_schedule_floor_is_shared_out_started_ahead_and_kept_above_pool_max() {
        let mut d = Demand::new(DemandSettings {
            floor: 2,
            max: 10,
            schedule: Schedule::parse("mon 09:00-10:00 UTC = 30").unwrap(),
        });
        d.started(Duration::from_secs(30));
        let t = d.target(monday_9(), 1);
        assert_eq!((t.size, t.reason), (30, Reason::Schedule));
        assert_eq!(
            d.target(monday_9(), 4).size,
            8,
            "a quarter each, rounded up"
        );
        // Two cold starts and a minute ahead.
        assert_eq!(
            d.target(monday_9() - chrono::Duration::seconds(119), 1)
                .size,
            30
        );
        assert_eq!(
            d.target(monday_9() - chrono::Duration::seconds(121), 1)
                .size,
            2
        );
        assert_eq!(
            d.target(monday_9() + chrono::Duration::minutes(61), 1).size,
            2
        );
    }
}
