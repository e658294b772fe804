//! The HTML pages people see: the page that waits for a narrative after the session cookie
//! ([`reload`]), the demo's login page ([`login`]) and the administrators' status page
//! ([`admin`]).
//!
//! Rendered on the server with maud, which escapes every value it is given, so no user
//! input, path or backend answer can become markup. No front-end build and no external
//! assets: each page carries its style sheet and its script inline, and its
//! Content-Security-Policy allows exactly those, by a nonce drawn for that one answer
//! ([`Nonce`], [`policy`]). Every page works without JavaScript; the scripts only improve it.

pub mod admin;
pub mod chart;
pub mod login;
pub mod reload;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::render::reply;

/// The style sheet every page carries: readable on a phone, visible keyboard focus.
const STYLE: &str = include_str!("style.css");

/// A value that lets one answer's own style and script run, and nothing else: 128 random
/// bits, fresh for every answer, so a page cannot be made to run a script it did not carry.
#[derive(Debug)]
pub struct Nonce(String);

impl Nonce {
    /// A fresh nonce.
    pub fn new() -> Self {
        let mut bytes = [0u8; 16];
        // A failing generator would give a guessable nonce: then no script runs at all, and
        // the pages still work as they do without JavaScript.
        if getrandom::fill(&mut bytes).is_err() {
            return Self(String::new());
        }
        Self(hex::encode(bytes))
    }

    fn source(&self) -> String {
        if self.0.is_empty() {
            "'none'".to_owned()
        } else {
            format!("'nonce-{}'", self.0)
        }
    }
}

impl Default for Nonce {
    fn default() -> Self {
        Self::new()
    }
}

/// What a page may do besides running its own style and script.
#[derive(Clone, Copy, Debug, Default)]
pub struct Allow {
    /// Fetch from its own origin (the reload page's poll, the admin page's refresh).
    pub fetch_self: bool,
    /// Post forms to its own origin (login, shutting a narrative down).
    pub forms_to_self: bool,
}

/// The Content-Security-Policy of a page answered with `nonce`: it loads nothing from
/// anywhere, runs only its own style and script, and cannot be framed.
pub fn policy(nonce: &Nonce, allow: Allow) -> String {
    let own = nonce.source();
    let connect = if allow.fetch_self { "'self'" } else { "'none'" };
    let forms = if allow.forms_to_self {
        "'self'"
    } else {
        "'none'"
    };
    format!(
        "default-src 'none'; script-src {own}; style-src {own}; connect-src {connect}; \
         img-src 'none'; base-uri 'none'; form-action {forms}; frame-ancestors 'none'"
    )
}

/// A whole page: `head` goes after the title (e.g. a refresh for browsers without
/// JavaScript), `script` runs at the end of the body.
pub fn page(title: &str, nonce: &Nonce, head: Markup, body: Markup, script: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                (head)
                style nonce=(nonce.0) { (PreEscaped(STYLE)) }
            }
            body {
                (body)
                @if !script.is_empty() {
                    script nonce=(nonce.0) { (PreEscaped(script)) }
                }
            }
        }
    }
}

/// Answers `markup` with `status`: never cached, never referred, under `policy`.
pub fn respond(status: StatusCode, policy: String, markup: Markup) -> HttpResponse {
    reply::uncached(status)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CONTENT_SECURITY_POLICY, policy))
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_has_its_own_nonce_and_the_policy_names_only_it() {
        let (a, b) = (Nonce::new(), Nonce::new());
        assert_eq!(a.0.len(), 32);
        assert_ne!(a.0, b.0);
        let csp = policy(&a, Allow::default());
        assert!(csp.starts_with("default-src 'none'; "), "{csp}");
        assert!(
            csp.contains(&format!("script-src 'nonce-{}';", a.0)),
            "{csp}"
        );
        assert!(csp.contains("connect-src 'none'"), "{csp}");
        assert!(csp.contains("form-action 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        let open = policy(
            &a,
            Allow {
                fetch_self: true,
                forms_to_self: true,
            },
        );
        assert!(open.contains("connect-src 'self'") && open.contains("form-action 'self'"));
    }

    #[test]
    fn a_page_runs_its_script_only_under_its_nonce() {
        let nonce = Nonce::new();
        let html = page("T", &nonce, html! {}, html! { p { "<b>" } }, "go();").into_string();
        assert!(html.contains(&format!("<script nonce=\"{}\">go();</script>", nonce.0)));
        assert!(html.contains("<p>&lt;b&gt;</p>"), "{html}");
        assert!(html.contains("width=device-width"));
    }
}
