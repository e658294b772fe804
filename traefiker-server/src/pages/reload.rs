//! The page answered with the session cookie (SPEC §3 step 4): it says the narrative is
//! starting and moves on only once the narrative answers through Traefik.
//!
//! Until Traefik has loaded the narrative's route, a request with the new cookie still reaches
//! traefiker; while the container starts, Traefik answers 502. Going on at once (the Python
//! version's meta refresh) lands the user on a second 201, a 404 or a 502. So the page's script
//! polls the narrative's Jupyter status through Traefik, on the same origin, with the poll
//! header ([`reply::POLL_HEADER`]): traefiker answers that at once, marked with
//! [`reply::MARKER`], and does nothing else; an answer without the marker and with a 2xx
//! status (or the narrative's own 401/403) came from the narrative, and the page goes on to
//! the loader. It gives up with a
//! retry link after `reload_wait_secs`. Without JavaScript, the Python version's meta refresh
//! (inside `<noscript>`) goes on at once, as before.

use std::time::Duration;

use maud::{html, Markup, PreEscaped};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{page, policy, Allow, Nonce};
use crate::render::reply;

/// Python's `quote_plus` with `/` kept: everything but `A-Za-z0-9_.-~/` is escaped.
const PATH_IN_QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

const SCRIPT: &str = include_str!("reload.js");

/// Where narratives answer through Traefik, under the prefix its routes match.
const NARRATIVE_PREFIX: &str = "/narrative/";

/// What the page needs to know.
#[derive(Debug)]
pub struct Waiting<'a> {
    /// The request path after `/narrative/`, percent-decoded, without the query.
    pub path: &'a str,
    /// The user's narrative (its container name).
    pub narrative: &'a str,
    /// `narrative_status_path`: polled through Traefik.
    pub status_path: &'a str,
    /// How long to wait before offering to try again.
    pub wait: Duration,
}

/// The policy of the reload page: its own style and script, polls of its own origin only,
/// no forms, no framing.
pub fn reload_policy(nonce: &Nonce) -> String {
    policy(
        nonce,
        Allow {
            fetch_self: true,
            forms_to_self: false,
        },
    )
}

/// The path the page polls: the narrative's status as Traefik routes it. A status path
/// outside `/narrative/` would never reach the narrative through Traefik, so Jupyter's usual
/// one stands in for it.
fn poll_path(status_path: &str) -> &str {
    if status_path.starts_with(NARRATIVE_PREFIX) {
        status_path
    } else {
        "/narrative/api/status"
    }
}

/// The reload page.
pub fn reload_page(w: &Waiting<'_>, nonce: &Nonce) -> Markup {
    let encoded = utf8_percent_encode(w.path, PATH_IN_QUERY).to_string();
    let next = format!("/load-narrative.html?n={encoded}&check=true");
    let retry = format!("{NARRATIVE_PREFIX}{encoded}");
    let secs = w.wait.as_secs().max(1);
    // Byte for byte the Python version's refresh (the path escaped twice over), for clients
    // that read it.
    let refresh = format!(
        "<noscript><META HTTP-EQUIV=\"refresh\" CONTENT=\"0;URL='/load-narrative.html?n={}&check=true'\"></noscript>",
        html_escape(&encoded)
    );
    let body = html! {
        main #wait data-next=(next) data-poll=(poll_path(w.status_path)) data-wait-secs=(secs)
            data-marker=(reply::MARKER) data-poll-header=(reply::POLL_HEADER) {
            h1 { "Starting your narrative…" }
            p {
                "Your narrative " strong.mono { (w.narrative) } " is starting."
                @if !w.path.is_empty() {
                    " Then " code { (w.path) } " opens."
                }
            }
            p #state role="status" aria-live="polite" {
                "This page moves on by itself as soon as the narrative answers."
            }
            progress #progress aria-label="Starting" {}
            div #gave-up hidden role="alert" {
                p.bad { "Your narrative did not answer within " (secs) " seconds." }
                p { a.button href=(retry) { "Try again" } }
            }
            noscript {
                p { "If nothing happens, " a href=(next) { "open your narrative" } "." }
            }
        }
    };
    page(
        "Starting your narrative…",
        nonce,
        PreEscaped(refresh),
        body,
        SCRIPT,
    )
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(path: &str, status_path: &str) -> String {
        reload_page(
            &Waiting {
                path,
                narrative: "narrative-alice-522b27",
                status_path,
                wait: Duration::from_secs(90),
            },
            &Nonce::new(),
        )
        .into_string()
    }

    #[test]
    fn the_page_escapes_the_path_everywhere() {
        let page = render(
            "ws.1/<script>alert('x')</script>\"&",
            "/narrative/api/status",
        );
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(
            page.contains("n=ws.1/%3Cscript%3Ealert%28%27x%27%29%3C/script%3E%22%26&check=true'")
        );
        assert!(
            page.contains("<code>ws.1/&lt;script&gt;alert('x')&lt;/script&gt;&quot;&amp;</code>")
        );
        assert!(render("ws.1.obj.2", "/narrative/api/status")
            .contains("URL='/load-narrative.html?n=ws.1.obj.2&check=true'"));
    }

    #[test]
    fn the_page_says_what_happens_and_how_long_it_waits() {
        let page = render("ws.1.obj.2", "/narrative/api/status");
        assert!(page.contains("Starting your narrative…"));
        assert!(page.contains("narrative-alice-522b27"));
        assert!(page.contains("data-wait-secs=\"90\""));
        assert!(page.contains("within 90 seconds"));
        assert!(
            page.contains("href=\"/narrative/ws.1.obj.2\""),
            "the retry link"
        );
        assert!(page.contains("data-poll=\"/narrative/api/status\""));
    }

    #[test]
    fn a_status_path_traefik_would_not_route_is_not_polled() {
        assert_eq!(poll_path("/narrative/api/status"), "/narrative/api/status");
        assert_eq!(poll_path("/api/status"), "/narrative/api/status");
    }
}
