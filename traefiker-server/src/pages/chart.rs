//! The admin page's charts of the pool's last day (SPEC §14), drawn on the server as inline
//! SVG: nothing is loaded (the page's policy allows no image), the page's own style sheet
//! colours them by class, and they scale to the width they are given, a phone's included.
//! Each says what it shows in words too, for screen readers and for anyone who wants the
//! numbers.

use chrono::{DateTime, Timelike, Utc};
use maud::{html, Markup};
use traefiker_core::timeline::Bucket;

/// Drawing units: the chart is drawn in a box this wide and scaled to the page.
const WIDTH: f64 = 360.0;
const HEIGHT: f64 = 150.0;
/// Room for the axis labels.
const LEFT: f64 = 28.0;
const BOTTOM: f64 = 18.0;
const TOP: f64 = 8.0;

fn x_of(i: usize, n: usize) -> f64 {
    LEFT + (WIDTH - LEFT) * i as f64 / n.max(1) as f64
}

fn y_of(v: f64, max: f64) -> f64 {
    let plot = HEIGHT - BOTTOM - TOP;
    TOP + plot - plot * (v / max).clamp(0.0, 1.0)
}

/// A round number at least `v` for the top of the axis.
fn ceiling(v: f64) -> f64 {
    let v = v.max(1.0);
    let step = 10f64.powf(v.log10().floor());
    let m = (v / step).ceil();
    let m = if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * step
}

/// The frame: the top of the axis, the baseline, and the time of day every six hours.
fn frame(buckets: &[Bucket], max: f64) -> Markup {
    let n = buckets.len();
    let base = HEIGHT - BOTTOM;
    html! {
        line.axis x1=(LEFT) y1=(base) x2=(WIDTH) y2=(base) {}
        line.grid x1=(LEFT) y1=(TOP) x2=(WIDTH) y2=(TOP) {}
        text.label x=(LEFT - 4.0) y=(TOP + 4.0) text-anchor="end" { (max) }
        text.label x=(LEFT - 4.0) y=(base) text-anchor="end" { "0" }
        @for (i, b) in buckets.iter().enumerate() {
            @if b.start.minute() == 0 && b.start.hour() % 6 == 0 {
                line.grid x1=(x_of(i, n)) y1=(TOP) x2=(x_of(i, n)) y2=(base) {}
                text.label x=(x_of(i, n)) y=(HEIGHT - 4.0) text-anchor="middle" {
                    (b.start.format("%H:%M"))
                }
            }
        }
    }
}

fn points(values: impl Iterator<Item = f64>, n: usize, max: f64) -> String {
    values
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                x_of(i, n) + (WIDTH - LEFT) / n.max(1) as f64 / 2.0,
                y_of(v, max)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn new_users(n: u32) -> String {
    if n == 1 {
        "1 new user".to_owned()
    } else {
        format!("{n} new users")
    }
}

/// Pool size against new users: new users per ten minutes as bars, the pool's average size
/// and its target as lines.
pub fn pool_against_users(buckets: &[Bucket], now: DateTime<Utc>) -> Markup {
    let n = buckets.len();
    let mut target = None;
    let targets: Vec<f64> = buckets
        .iter()
        .map(|b| {
            target = b.target.or(target);
            target.unwrap_or(0) as f64
        })
        .collect();
    let max = ceiling(
        buckets
            .iter()
            .map(|b| f64::from(b.new_users).max(b.pool()))
            .chain(targets.iter().copied())
            .fold(0.0, f64::max),
    );
    let users: u32 = buckets.iter().map(|b| b.new_users).sum();
    let average = buckets.iter().map(Bucket::pool).sum::<f64>() / n.max(1) as f64;
    let most = buckets.iter().map(Bucket::pool).fold(0.0, f64::max);
    let summary = format!(
        "In the 24 hours to {} UTC: {}; the pool held {average:.1} waiting narratives on \
         average, {most:.1} at most over ten minutes.",
        now.format("%H:%M"),
        new_users(users)
    );
    let bar = (WIDTH - LEFT) / n.max(1) as f64;
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(summary) {
                (frame(buckets, max))
                @for (i, b) in buckets.iter().enumerate() {
                    @if b.new_users > 0 {
                        rect.users x=(format!("{:.1}", x_of(i, n))) y=(format!("{:.1}", y_of(f64::from(b.new_users), max)))
                            width=(format!("{:.2}", bar.max(1.0) * 0.8)) height=(format!("{:.1}", HEIGHT - BOTTOM - y_of(f64::from(b.new_users), max))) {}
                    }
                }
                polyline.target points=(points(targets.iter().copied(), n, max)) {}
                polyline.pool points=(points(buckets.iter().map(Bucket::pool), n, max)) {}
            }
            figcaption {
                span.key.users-key { "▮ new users per 10 min" } " "
                span.key.pool-key { "— waiting narratives (average)" } " "
                span.key.target-key { "┄ target" }
                br;
                span.muted { (summary) }
            }
        }
    }
}

/// Cold starts: new users per ten minutes, those served from the pool and those who waited
/// for a create, stacked.
pub fn cold_starts(buckets: &[Bucket], now: DateTime<Utc>) -> Markup {
    let n = buckets.len();
    let max = ceiling(
        buckets
            .iter()
            .map(|b| f64::from(b.new_users))
            .fold(0.0, f64::max),
    );
    let users: u32 = buckets.iter().map(|b| b.new_users).sum();
    let cold: u32 = buckets.iter().map(|b| b.cold_starts).sum();
    let summary = format!(
        "In the 24 hours to {} UTC: {} of {} served from the pool, {cold} waited for a cold \
         start.",
        now.format("%H:%M"),
        users - cold.min(users),
        new_users(users)
    );
    let bar = (WIDTH - LEFT) / n.max(1) as f64;
    let base = HEIGHT - BOTTOM;
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(summary) {
                (frame(buckets, max))
                @for (i, b) in buckets.iter().enumerate() {
                    @if b.new_users > 0 {
                        @let top = y_of(f64::from(b.new_users), max);
                        @let split = y_of(f64::from(b.cold_starts), max);
                        rect.hits x=(format!("{:.1}", x_of(i, n))) y=(format!("{top:.1}"))
                            width=(format!("{:.2}", bar.max(1.0) * 0.8)) height=(format!("{:.1}", split - top)) {}
                        @if b.cold_starts > 0 {
                            rect.cold x=(format!("{:.1}", x_of(i, n))) y=(format!("{split:.1}"))
                                width=(format!("{:.2}", bar.max(1.0) * 0.8)) height=(format!("{:.1}", base - split)) {}
                        }
                    }
                }
            }
            figcaption {
                span.key.hits-key { "▮ served from the pool" } " "
                span.key.cold-key { "▮ cold starts" }
                br;
                span.muted { (summary) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use traefiker_core::timeline::Timeline;

    fn day() -> (Vec<Bucket>, DateTime<Utc>) {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
        let mut t = Timeline::new();
        let nine = now - chrono::Duration::hours(1);
        for i in 0..40 {
            t.arrival(nine + chrono::Duration::milliseconds(500 * i), i % 8 == 2);
        }
        t.waiting(now - chrono::Duration::hours(23), now, 2);
        t.target(nine, 9);
        (t.last_day(now), now)
    }

    #[test]
    fn the_axis_tops_are_round_numbers() {
        for (v, top) in [
            (0.0, 2.0),
            (3.0, 5.0),
            (7.0, 10.0),
            (12.0, 20.0),
            (40.0, 50.0),
            (51.0, 100.0),
        ] {
            assert_eq!(ceiling(v), top, "{v}");
        }
    }

    #[test]
    fn the_charts_say_what_they_show_and_load_nothing() {
        let (buckets, now) = day();
        let pool = pool_against_users(&buckets, now).into_string();
        assert!(pool.contains("40 new users"), "{pool}");
        assert!(pool.contains("<polyline class=\"pool\""), "{pool}");
        assert!(pool.contains("<rect class=\"users\""), "{pool}");
        let cold = cold_starts(&buckets, now).into_string();
        assert!(
            cold.contains("35 of 40 new users served from the pool, 5 waited"),
            "{cold}"
        );
        assert!(cold.contains("<rect class=\"cold\""), "{cold}");
        for svg in [&pool, &cold] {
            assert!(!svg.contains("href") && !svg.contains("style="), "{svg}");
            assert!(svg.contains("viewBox=\"0 0 360 150\""));
        }
    }
}
