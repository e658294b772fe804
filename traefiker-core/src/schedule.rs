//! `pool_schedule`: floors of the pool for known windows of the week, each in its own time zone
//! (SPEC §14), e.g. `mon-fri 08:30-10:00 America/Chicago = 30`.
//!
//! # Syntax
//!
//! Windows are separated by `;` (a comma already separates days within a window):
//!
//! ```text
//! schedule = window *( ";" window )
//! window   = days " " HH:MM "-" HH:MM " " zone "=" count
//! days     = "daily" | day-or-range *( "," day-or-range )      ; mon tue wed thu fri sat sun
//! zone     = an IANA time zone name (America/Chicago, Europe/Berlin, UTC)
//! ```
//!
//! A window holds on each of its days from its start to its end in local time of its zone
//! (so across daylight-saving changes it stays at the same wall-clock hours); an end at or
//! before the start runs past midnight into the next day; `24:00` is the end of the day.
//! Where windows overlap, the largest floor holds. Pure: the caller gives the instant.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use crate::error::InvalidInput;

/// The key this is read from, for error messages.
const KEY: &str = "pool_schedule";

/// Floors of the pool for windows of the week.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    windows: Vec<Window>,
}

/// One window: days, hours in a time zone, and the floor that holds then.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Window {
    /// Bit `n` set: the window starts on the day `n` days after Monday.
    days: u8,
    /// Minutes after local midnight.
    start: u32,
    /// Minutes after local midnight, up to 1440.
    end: u32,
    zone: Tz,
    floor: usize,
}

impl Schedule {
    /// Parses `text` (empty: no windows).
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let mut windows = Vec::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            windows.push(
                Window::parse(part)
                    .map_err(|why| InvalidInput::new(KEY, format!("{why} in window {part:?}")))?,
            );
        }
        Ok(Self { windows })
    }

    /// Whether there is no window.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The largest floor of the windows holding at `at`, if any holds.
    pub fn floor_at(&self, at: DateTime<Utc>) -> Option<usize> {
        self.windows
            .iter()
            .filter(|w| w.holds(at))
            .map(|w| w.floor)
            .max()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, w) in self.windows.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "{} {:02}:{:02}-{:02}:{:02} {} = {}",
                days_text(w.days),
                w.start / 60,
                w.start % 60,
                w.end / 60,
                w.end % 60,
                w.zone.name(),
                w.floor
            )?;
        }
        Ok(())
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The days as people write them: `daily`, runs of three or more as ranges (`mon-fri`).
fn days_text(set: u8) -> String {
    if set == 0x7f {
        return "daily".to_owned();
    }
    let mut parts = Vec::new();
    let mut d = 0;
    while d < 7 {
        if set & (1 << d) == 0 {
            d += 1;
            continue;
        }
        let mut end = d;
        while end + 1 < 7 && set & (1 << (end + 1)) != 0 {
            end += 1;
        }
        match end - d {
            0 => parts.push(DAYS[d].to_owned()),
            1 => parts.extend([DAYS[d].to_owned(), DAYS[end].to_owned()]),
            _ => parts.push(format!("{}-{}", DAYS[d], DAYS[end])),
        }
        d = end + 1;
    }
    parts.join(",")
}

fn day(text: &str) -> Result<u8, String> {
    DAYS.iter()
        .position(|d| text.eq_ignore_ascii_case(d))
        .map(|n| n as u8)
        .ok_or_else(|| format!("{text:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"))
}

fn days(text: &str) -> Result<u8, String> {
    if text.eq_ignore_ascii_case("daily") {
        return Ok(0x7f);
    }
    let mut set = 0u8;
    for item in text.split(',') {
        match item.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (day(from)?, day(to)?);
                // `fri-mon` wraps over the weekend.
                let mut d = from;
                loop {
                    set |= 1 << d;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => set |= 1 << day(item)?,
        }
    }
    Ok(set)
}

fn minutes(text: &str) -> Result<u32, String> {
    if text == "24:00" {
        return Ok(24 * 60);
    }
    NaiveTime::parse_from_str(text, "%H:%M")
        .map(|t| t.hour() * 60 + t.minute())
        .map_err(|_| format!("{text:?} is not a time HH:MM"))
}

impl Window {
    fn parse(text: &str) -> Result<Self, String> {
        let (head, floor) = text
            .split_once('=')
            .ok_or("no `= <floor>` (e.g. `mon-fri 08:30-10:00 America/Chicago = 30`)")?;
        let floor: usize = floor
            .trim()
            .parse()
            .map_err(|_| format!("{:?} is not a number of narratives", floor.trim()))?;
        let words: Vec<&str> = head.split_whitespace().collect();
        let [days_text, hours, zone] = words[..] else {
            return Err(
                "expected `<days> <HH:MM>-<HH:MM> <time zone> = <floor>` (e.g. `mon-fri 08:30-10:00 America/Chicago = 30`)"
                    .to_owned(),
            );
        };
        let (start, end) = hours
            .split_once('-')
            .ok_or_else(|| format!("{hours:?} is not a span HH:MM-HH:MM"))?;
        let (start, end) = (minutes(start)?, minutes(end)?);
        if start >= 24 * 60 {
            return Err("a window cannot start at 24:00".to_owned());
        }
        let zone: Tz = zone.parse().map_err(|_| {
            format!(
                "{zone:?} is not a known time zone (an IANA name such as America/Chicago or UTC)"
            )
        })?;
        Ok(Self {
            days: days(days_text)?,
            start,
            end,
            zone,
            floor,
        })
    }

    fn starts_on(&self, day: Weekday) -> bool {
        self.days & (1 << day.num_days_from_monday()) != 0
    }

    fn holds(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.zone);
        let minute = local.hour() * 60 + local.minute();
        let today = local.weekday();
        if self.start < self.end {
            return self.starts_on(today) && (self.start..self.end).contains(&minute);
        }
        // Past midnight: from the start to the end of the day it starts on, then on until the
        // end on the next day.
        (self.starts_on(today) && minute >= self.start)
            || (self.starts_on(today.pred()) && minute < self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn a_window_holds_on_its_days_at_its_local_hours() {
        let s = Schedule::parse("mon-fri 08:30-10:00 America/Chicago = 30").unwrap();
        // Monday 2026-03-02, Chicago is UTC-6 (standard time).
        assert_eq!(s.floor_at(utc(2026, 3, 2, 14, 30)), Some(30));
        assert_eq!(s.floor_at(utc(2026, 3, 2, 14, 29)), None);
        assert_eq!(s.floor_at(utc(2026, 3, 2, 15, 59)), Some(30));
        assert_eq!(
            s.floor_at(utc(2026, 3, 2, 16, 0)),
            None,
            "the end is not in it"
        );
        // Saturday: not a weekday.
        assert_eq!(s.floor_at(utc(2026, 3, 7, 15, 0)), None);
        // After the change to daylight time (8 March 2026) Chicago is UTC-5: same wall clock.
        assert_eq!(s.floor_at(utc(2026, 3, 9, 13, 30)), Some(30));
        assert_eq!(s.floor_at(utc(2026, 3, 9, 14, 30)), Some(30));
        assert_eq!(s.floor_at(utc(2026, 3, 9, 15, 0)), None);
    }

    #[test]
    fn windows_combine_and_run_past_midnight() {
        let s = Schedule::parse(
            "sat,sun 22:00-02:00 UTC = 4; daily 00:00-24:00 Europe/Berlin = 1;  mon,wed-fri 09:00-09:30 UTC=8",
        )
        .unwrap();
        assert_eq!(
            s.floor_at(utc(2026, 3, 7, 23, 0)),
            Some(4),
            "Saturday night"
        );
        assert_eq!(
            s.floor_at(utc(2026, 3, 9, 1, 0)),
            Some(4),
            "Sunday's window, Monday 01:00"
        );
        assert_eq!(
            s.floor_at(utc(2026, 3, 7, 1, 0)),
            Some(1),
            "Friday's none: only daily"
        );
        assert_eq!(s.floor_at(utc(2026, 3, 9, 9, 0)), Some(8), "Monday");
        assert_eq!(
            s.floor_at(utc(2026, 3, 10, 9, 0)),
            Some(1),
            "Tuesday is not in mon,wed-fri"
        );
        assert_eq!(s.floor_at(utc(2026, 3, 12, 9, 10)), Some(8), "Thursday");
        assert_eq!(
            s.to_string(),
            "sat,sun 22:00-02:00 UTC = 4; daily 00:00-24:00 Europe/Berlin = 1; mon,wed-fri 09:00-09:30 UTC = 8"
        );
        assert_eq!(
            Schedule::parse(&s.to_string()).unwrap(),
            s,
            "shown as it reads"
        );
        assert!(Schedule::parse(" ; ").unwrap().is_empty());
    }

    #[test]
    fn a_range_of_days_may_wrap_over_the_weekend() {
        let s = Schedule::parse("fri-mon 12:00-13:00 UTC = 2").unwrap();
        for (d, holds) in [
            (6, true),
            (7, true),
            (8, true),
            (9, true),
            (10, false),
            (12, false),
        ] {
            assert_eq!(
                s.floor_at(utc(2026, 3, d, 12, 0)).is_some(),
                holds,
                "2026-03-{d}"
            );
        }
    }

    #[test]
    fn what_does_not_parse_is_refused_naming_the_key_and_the_window() {
        for (text, says) in [
            ("mon-fri 08:30-10:00 America/Chicago", "no `= <floor>`"),
            (
                "mon-fri 08:30-10:00 Mars/Olympus = 3",
                "not a known time zone",
            ),
            ("mon-fri 08:30-10:00 = 3", "expected `<days>"),
            ("mon-fry 08:30-10:00 UTC = 3", "\"fry\" is not a day"),
            ("mon 8h-10h UTC = 3", "\"8h\" is not a time"),
            ("mon 08:30-25:00 UTC = 3", "\"25:00\" is not a time"),
            ("mon 08:30-10:00 UTC = many", "\"many\" is not a number"),
            ("mon 24:00-10:00 UTC = 1", "cannot start at 24:00"),
            ("mon 08:00-09:00 UTC = 2; tue 09:00 UTC = 1", "not a span"),
        ] {
            let e = Schedule::parse(text).unwrap_err();
            assert_eq!(e.what, "pool_schedule", "{text}");
            assert!(e.reason.contains(says), "{text}: {}", e.reason);
        }
    }
}
