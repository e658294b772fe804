//! The administrators' status page (`GET /narrative_status/` with `Accept: text/html`, for
//! holders of `status_role`): every narrative this replica knows, its pool, the last reaper
//! cycle and the health of the activity sources, refreshed every few seconds; and the
//! confirmation before a narrative is shut down.
//!
//! Everything shown comes from what the lifecycle keeps ([`traefiker_core::Lifecycle::status`],
//! [`traefiker_core::Lifecycle::last_cycle`]): the page never waits on the backend. Shutting
//! down is a form posted to `/narrative_status/shutdown` with a token only a page of this
//! site can know, then a confirmation page, then the shutdown: no cross-site request can do
//! it, and it works with the keyboard and without JavaScript.

use std::time::Duration;

use chrono::{DateTime, Utc};
use maud::{html, Markup};
use traefiker_core::timeline::Bucket;
use traefiker_core::{
    CycleSummary, Naming, NarrativeKind, Schedule, Standing, StatusEntry, Target, UnreadyWarning,
};

use super::{chart, page, policy, Allow, Nonce};

const SCRIPT: &str = include_str!("admin.js");

/// How often the page refreshes itself.
pub const REFRESH: Duration = Duration::from_secs(5);

/// Where the shutdown form posts.
pub const SHUTDOWN_PATH: &str = "/narrative_status/shutdown";

/// What the status page shows.
#[derive(Debug)]
pub struct Overview<'a> {
    /// When the page is made.
    pub now: DateTime<Utc>,
    /// The replica answering.
    pub replica: &'a str,
    /// Every narrative it knows.
    pub entries: &'a [StatusEntry],
    /// How names are made, to show whose a narrative is.
    pub naming: &'a Naming,
    /// The pool: its bounds, target, cost and last day.
    pub pool: PoolView<'a>,
    /// The last reaper cycle, if one ran.
    pub cycle: Option<&'a CycleSummary>,
    /// The configured activity sources' names.
    pub sources: &'a [&'a str],
    /// `reaper_interval_secs`.
    pub reaper_interval: Duration,
    /// The token the shutdown form carries.
    pub form_token: &'a str,
    /// What the last action did, to say at the top.
    pub notice: Option<&'a str>,
}

/// What the status page shows of the pool (SPEC §14).
#[derive(Debug)]
pub struct PoolView<'a> {
    /// What it aims at now, and why.
    pub target: Target,
    /// `num_prespawn`.
    pub floor: usize,
    /// `pool_max`, or `num_prespawn`.
    pub max: usize,
    /// `pool_schedule`.
    pub schedule: &'a Schedule,
    /// The cold start measured from this replica's creates, if yet.
    pub cold_start: Option<Duration>,
    /// Waiting-narrative seconds since the process started.
    pub cost: f64,
    /// The last day, oldest first.
    pub history: &'a [Bucket],
    /// Waiting narratives that never become ready, while they do not.
    pub unready: Option<&'a UnreadyWarning>,
    /// `ready_timeout_secs`.
    pub ready_timeout: Duration,
}

/// The policy of the admin pages: own style and script, refreshes and forms to itself.
pub fn admin_policy(nonce: &Nonce) -> String {
    policy(
        nonce,
        Allow {
            fetch_self: true,
            forms_to_self: true,
        },
    )
}

/// A span of time as people read it: `42 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`.
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86400, (s % 86400) / 3600),
    }
}

/// `n thing` or `n things`.
fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// A time in UTC (the page says so once), the date only when it is not today.
fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    let shown = if t.date_naive() == now.date_naive() {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M").to_string()
    };
    html! { time datetime=(t.to_rfc3339()) { (shown) } }
}

fn since(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    span(now.signed_duration_since(t).to_std().unwrap_or_default())
}

/// The user a narrative name belongs to, as cleaned into it (the hash suffix dropped).
fn user_of<'a>(name: &'a str, naming: &Naming) -> &'a str {
    let template = naming.user_template();
    name.strip_prefix(template.prefix())
        .and_then(|rest| rest.strip_suffix(template.suffix()))
        .and_then(|rest| rest.rsplit_once('-'))
        .map_or(name, |(user, _)| user)
}

fn standing(entry: &StatusEntry) -> &'static str {
    match entry.standing {
        Standing::User => "assigned",
        Standing::Waiting { ready: true } => "waiting, ready",
        Standing::Waiting { ready: false } => "waiting, starting",
        Standing::Leaving => "leaving the pool",
        Standing::Foreign => "another replica's",
        _ => "unknown",
    }
}

fn row(entry: &StatusEntry, o: &Overview<'_>) -> Markup {
    let n = &entry.narrative;
    let user = n.kind == NarrativeKind::User;
    let started = n.created.or(n.origin.as_ref().map(|origin| origin.at));
    html! {
        tr data-narrative=(n.name.as_str()) {
            th scope="row" { span.mono { (n.name.as_str()) } }
            td data-label="User" { @if user { (user_of(n.name.as_str(), o.naming)) } @else { span.muted { "—" } } }
            td.standing data-label="Standing" { (standing(entry)) }
            td data-label="State" { (n.state.to_string()) }
            td data-label="Image" { span.mono { (n.image) } }
            td data-label="Started" { @if let Some(t) = started { (when(t, o.now)) } @else { span.muted { "unknown" } } }
            td data-label="Last seen" { @if let Some(t) = entry.last_seen { (when(t, o.now)) } @else { span.muted { "—" } } }
            td.idle data-label="Idle for" {
                @if let Some(t) = entry.last_seen { (since(t, o.now)) }
                @else if user { span.muted { "not tracked yet" } }
                @else { span.muted { "never reaped" } }
            }
            td {
                @if user {
                    form method="post" action=(SHUTDOWN_PATH) {
                        input type="hidden" name="csrf" value=(o.form_token);
                        input type="hidden" name="narrative" value=(n.name.as_str());
                        button.danger type="submit" aria-label=(format!("Shut down {}", n.name.as_str())) {
                            "Shut down…"
                        }
                    }
                }
            }
        }
    }
}

fn cycle(o: &Overview<'_>) -> Markup {
    let Some(summary) = o.cycle else {
        return html! {
            p {
                "No reaper cycle has run yet. "
                @if o.reaper_interval.is_zero() {
                    "Cycles run only when /reaper/ is called (reaper_interval_secs is 0)."
                } @else {
                    "One runs every " (span(o.reaper_interval)) "."
                }
            }
        };
    };
    let r = &summary.report;
    let names = |list: &[traefiker_core::ServiceName]| -> String {
        if list.is_empty() {
            "none".to_owned()
        } else {
            list.iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    html! {
        dl.facts {
             dt { "When" } dd { (when(summary.at, o.now)) " UTC (" (since(summary.at, o.now)) " ago)" }
            dt { "Removed as idle" } dd { (names(&r.idle)) }
            dt { "Removed as stopped" } dd { (names(&r.zombies)) }
            dt { "Other replicas' pools removed" } dd { (names(&r.abandoned)) }
            dt { "Pool" } dd {
                (r.pool.created) " started, "
                (r.pool.outdated_removed + r.pool.excess_removed) " removed, "
                (r.pool.waiting) " waiting"
            }
            dt { "Left alone" } dd { (r.skipped.len()) }
            @if !r.failures.is_empty() {
                dt { "Failures" } dd.bad { (r.failures.join("; ")) }
            }
        }
        h3 { "Activity sources" }
        ul {
            @for source in o.sources {
                @let failed = r.activity_failures.iter().find(|f| f.source_name.starts_with(source));
                li {
                    code { (source) } ": "
                    @if let Some(f) = failed {
                        span.bad { "failed" } " — " (f.reason) " (nothing was reaped for idleness)"
                    } @else {
                        "answered"
                    }
                }
            }
        }
    }
}

fn pool(o: &Overview<'_>, ready: usize, starting: usize) -> Markup {
    let p = &o.pool;
    html! {
        @if let Some(w) = p.unready {
            div.warning role="alert" {
                p {
                    strong { "Waiting narratives do not become ready." }
                    " " (count(w.count, "waiting narrative")) " did not answer within "
                    (span(p.ready_timeout)) " (ready_timeout_secs) since " (when(w.since, o.now))
                    " UTC, and were replaced; new users get cold starts meanwhile."
                }
                p {
                    "The latest, " span.mono { (w.narrative.as_str()) }
                    @if let Some(address) = &w.address { " at " span.mono { (address) } }
                    ", answered: " span.mono { (w.answer) }
                }
                p { "Likely cause: " (w.likely_cause) "." }
            }
        }
        p #pool {
            (ready) " ready and " (starting) " starting; this replica aims at " strong { (p.target.size) }
            ", set by " (p.target.reason.as_str()) "."
        }
        dl.facts {
            dt { "Bounds" }
            dd {
                @if p.max > p.floor {
                    (p.floor) " to " (p.max) " (num_prespawn to pool_max), following new users"
                } @else {
                    (p.floor) " (num_prespawn; set pool_max above it for a pool that follows new users)"
                }
            }
            dt { "Schedule" }
            dd { @if p.schedule.is_empty() { span.muted { "none (pool_schedule)" } } @else { span.mono { (p.schedule.to_string()) } } }
            dt { "Cold start" }
            dd {
                @if let Some(c) = p.cold_start { (format!("{:.1} s", c.as_secs_f64())) " (measured from this replica's creates)" }
                @else { span.muted { "not measured yet" } }
            }
            dt { "Cost" }
            dd { (span(Duration::from_secs_f64(p.cost.max(0.0)))) " of waiting narratives since this process started" }
        }
        h3 { "Pool size against new users" }
        (chart::pool_against_users(p.history, o.now))
        h3 { "Cold starts" }
        (chart::cold_starts(p.history, o.now))
    }
}

/// The status page.
pub fn status_page(o: &Overview<'_>, nonce: &Nonce) -> Markup {
    let users = o
        .entries
        .iter()
        .filter(|e| e.standing == Standing::User)
        .count();
    let (mut ready, mut starting) = (0, 0);
    for e in o.entries {
        match e.standing {
            Standing::Waiting { ready: true } => ready += 1,
            Standing::Waiting { ready: false } => starting += 1,
            _ => {}
        }
    }
    let head = html! {
        noscript { meta http-equiv="refresh" content=(REFRESH.as_secs() * 2); }
    };
    let body = html! {
        main {
            h1 { "Narratives" }
            p #refresh-state.muted role="status" {
                "Replica " code { (o.replica) } " · updated " (when(o.now, o.now)) " UTC"
                " · refreshes every " (REFRESH.as_secs()) " s · " a href="/narrative_status/" { "refresh now" }
            }
            div #live data-refresh-secs=(REFRESH.as_secs()) {
                @if let Some(notice) = o.notice {
                    p.notice role="status" { (notice) }
                }
                h2 { "Every narrative" }
                p { (count(users, "user narrative")) ", " (count(o.entries.len() - users, "other")) "." }
                div.table {
                    table {
                        caption.muted { "Times are UTC; idle time is since the narrative was last seen active." }
                        thead {
                            tr {
                                th scope="col" { "Narrative" }
                                th scope="col" { "User" }
                                th scope="col" { "Standing" }
                                th scope="col" { "State" }
                                th scope="col" { "Image" }
                                th scope="col" { "Started" }
                                th scope="col" { "Last seen" }
                                th scope="col" { "Idle for" }
                                th scope="col" { span.muted { "Action" } }
                            }
                        }
                        tbody {
                            @for entry in o.entries { (row(entry, o)) }
                        }
                    }
                }
                h2 { "Pool" }
                (pool(o, ready, starting))
                h2 { "Last reaper cycle" }
                (cycle(o))
            }
        }
    };
    page("Narratives: traefiker", nonce, head, body, SCRIPT)
}

/// The question before a shutdown.
pub fn confirm_page(name: &str, form_token: &str, nonce: &Nonce) -> Markup {
    let body = html! {
        main {
            h1 { "Shut down " span.mono { (name) } "?" }
            p { "The narrative stops now; anything not saved in it is lost. Its user's next visit starts a new one." }
            form method="post" action=(SHUTDOWN_PATH) {
                input type="hidden" name="csrf" value=(form_token);
                input type="hidden" name="narrative" value=(name);
                input type="hidden" name="confirm" value="yes";
                p { button.danger type="submit" { "Shut it down" } }
            }
            p { a.button.secondary href="/narrative_status/" { "Cancel" } }
        }
    };
    page(
        "Shut down a narrative? traefiker",
        nonce,
        html! {},
        body,
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(Duration::from_secs(42)), "42 s");
        assert_eq!(span(Duration::from_secs(185)), "3 min 5 s");
        assert_eq!(span(Duration::from_secs(7800)), "2 h 10 min");
        assert_eq!(span(Duration::from_secs(3 * 86400 + 4 * 3600)), "3 d 4 h");
    }

    #[test]
    fn the_user_is_read_back_from_the_cleaned_name() {
        let naming = Naming::default();
        assert_eq!(user_of("narrative-alice-522b27", &naming), "alice");
        assert_eq!(user_of("narrative-john-doe-1a2b3c", &naming), "john-doe");
        assert_eq!(user_of("other", &naming), "other");
    }
}
