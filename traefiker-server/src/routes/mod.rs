//! The HTTP contract (SPEC §3): one module per endpoint, sharing [`crate::state::AppState`];
//! how answers to people are written is [`crate::render::reply`]'s.

pub mod admin;
pub mod connect;
pub mod dynamic;
pub mod front;
pub mod health;
pub mod reaper;
pub mod shutdown;
pub mod status;

use std::net::IpAddr;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use ipnetwork::IpNetwork;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::{AuthError, Identity};
use crate::render::reply::{self, Reference};
use crate::state::AppState;

/// Who sent a request, as far as traefiker can tell (SPEC §10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client's address: the peer, or — only when the peer is a trusted proxy — the
    /// rightmost untrusted address of the `X-Forwarded-For` chain.
    pub address: IpAddr,
    /// The peer is a proxy traefiker cannot see through: it is not trusted, yet it says it
    /// forwards for someone (`X-Forwarded-For`). `address` is then the proxy's, shared by
    /// every client behind it, so it must never be limited as one client.
    pub opaque_proxy: bool,
}

/// The caller's address: the peer, or — only when the peer is a trusted proxy — the rightmost
/// address of the `X-Forwarded-For` chain that is not trusted. `chain` is every header line in
/// the order received: each proxy appends, whether to the last line or as a line of its own,
/// so only the right end was written by proxies traefiker trusts.
pub fn caller_ip(peer: IpAddr, chain: &[&str], trusted: &[IpNetwork]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(*ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut caller = peer;
    for hop in chain.iter().rev().flat_map(|line| line.rsplit(',')) {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                caller = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    caller
}

/// Who sent `req`, as [`caller_ip`] decides it, IPv4-mapped IPv6 as IPv4; `None` only when
/// the connection has no peer address.
pub fn client(req: &HttpRequest, trusted: &[IpNetwork]) -> Option<Client> {
    let peer = req.peer_addr()?.ip();
    let chain: Vec<&str> = req
        .headers()
        .get_all("X-Forwarded-For")
        .filter_map(|v| v.to_str().ok())
        .collect();
    let address = match caller_ip(peer, &chain, trusted) {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let opaque_proxy = !chain.is_empty() && !trusted.iter().any(|n| n.contains(peer));
    Some(Client {
        address,
        opaque_proxy,
    })
}

/// The request's client address (see [`client`]): what `/reaper/`, the provider endpoint and
/// the limit of failed logins go by.
pub(crate) fn client_address(req: &HttpRequest, trusted: &[IpNetwork]) -> Option<IpAddr> {
    client(req, trusted).map(|c| c.address)
}

/// Who the limit of failed logins counts a request against: its client, or nobody when the
/// client is behind a proxy traefiker cannot see through (see [`Client::opaque_proxy`]). A
/// connection without a peer address (not TCP) shares one count with its kind.
pub(crate) fn limited_as(req: &HttpRequest, trusted: &[IpNetwork]) -> Option<IpAddr> {
    match client(req, trusted) {
        Some(Client {
            opaque_proxy: true, ..
        }) => None,
        Some(c) => Some(c.address),
        None => Some(IpAddr::from([0, 0, 0, 0])),
    }
}

/// Validates the request's auth cookie: `None` when there is no cookie.
pub(crate) async fn identify(
    state: &AppState,
    req: &HttpRequest,
) -> Option<Result<Identity, AuthError>> {
    let cookie = req.cookie(&state.config.kbase_cookie)?;
    let token = cookie.value();
    if token.is_empty() {
        return None;
    }
    let limited_as = limited_as(req, &state.config.trusted_proxies);
    Some(state.auth.check(token, limited_as).await)
}

/// The answer to a refused token: what the user can do about it; auth2's URL and answer go to
/// the log under the page's reference.
pub(crate) fn refused(error: &AuthError) -> HttpResponse {
    let reference = Reference::new();
    match error {
        AuthError::Throttled { retry_after } => {
            tracing::info!(%reference, error = %error, "token validation throttled");
            reply::throttled(&reference, *retry_after)
        }
        AuthError::Rejected { .. } => {
            tracing::info!(%reference, error = %error, "token rejected");
            reply::error(
                StatusCode::FORBIDDEN,
                &reference,
                "Session cookie failed validation: your KBase login is not valid (it may have expired). Log in to KBase again.",
            )
        }
        _ => {
            tracing::warn!(%reference, error = %error, "token could not be validated");
            reply::error(
                StatusCode::FORBIDDEN,
                &reference,
                "Your KBase login could not be checked right now. Please try again in a minute.",
            )
        }
    }
}

/// The client address the Python version wrote into descriptions: `X-Real-Ip`, else
/// `X-Forwarded-For`, as the request says.
pub(crate) fn client_ip_header(req: &HttpRequest) -> Option<String> {
    ["X-Real-Ip", "X-Forwarded-For"].iter().find_map(|h| {
        req.headers()
            .get(*h)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s.len() <= 256 && !s.contains(char::is_whitespace))
    })
}

/// Whether a form post comes from a page of this site. Browsers say where a request comes
/// from (`Sec-Fetch-Site`, and `Origin` on every POST); a post from another site's page is
/// refused whatever cookies it carries. A client that says neither (curl) is no browser
/// tricked into posting.
pub(crate) fn from_this_site(req: &HttpRequest) -> bool {
    let value = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(site) = value("Sec-Fetch-Site") {
        return site.eq_ignore_ascii_case("same-origin");
    }
    match value(header::ORIGIN.as_str()) {
        None => true,
        Some(origin) => {
            let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            value(header::HOST.as_str()).is_some_and(|host| host.eq_ignore_ascii_case(authority))
        }
    }
}

/// The token a form of the admin page carries: derived from the caller's auth cookie, which a
/// page of another site cannot read, so it cannot forge a form that passes [`form_token_ok`].
/// It is a one-way digest: the page shows nothing the token could be recovered from.
pub(crate) fn form_token(auth_token: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"traefiker admin form\0");
    digest.update(auth_token.as_bytes());
    hex::encode(&digest.finalize()[..16])
}

/// Whether `presented` is the form token of `auth_token` (compared in constant time).
pub(crate) fn form_token_ok(auth_token: &str, presented: &str) -> bool {
    bool::from(
        form_token(auth_token)
            .as_bytes()
            .ct_eq(presented.as_bytes()),
    )
}

/// Whether the caller asks for a page rather than JSON: `text/html` comes before any JSON
/// type in its `Accept` (browsers send `text/html,…`; scripts and the Python clients send
/// `*/*`, JSON or nothing).
pub(crate) fn wants_html(req: &HttpRequest) -> bool {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    accept
        .split(',')
        .map(|part| part.split(';').next().unwrap_or("").trim())
        .find(|t| t.eq_ignore_ascii_case("text/html") || t.to_ascii_lowercase().contains("json"))
        .is_some_and(|t| t.eq_ignore_ascii_case("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn request(headers: &[(&str, &str)]) -> HttpRequest {
        let mut req = actix_web::test::TestRequest::post();
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        req.to_http_request()
    }

    #[test]
    fn only_a_page_of_this_site_may_post() {
        assert!(from_this_site(&request(&[(
            "Sec-Fetch-Site",
            "same-origin"
        )])));
        assert!(!from_this_site(&request(&[(
            "Sec-Fetch-Site",
            "cross-site"
        )])));
        assert!(!from_this_site(&request(&[(
            "Sec-Fetch-Site",
            "same-site"
        )])));
        assert!(from_this_site(&request(&[
            ("Origin", "http://localhost:8000"),
            ("Host", "localhost:8000")
        ])));
        assert!(!from_this_site(&request(&[
            ("Origin", "https://evil.example"),
            ("Host", "localhost:8000")
        ])));
        assert!(!from_this_site(&request(&[("Origin", "null")])));
        assert!(from_this_site(&request(&[])), "curl says nothing");
    }

    #[test]
    fn a_form_token_belongs_to_one_login() {
        let token = form_token("admin-token");
        assert_eq!(token.len(), 32);
        assert!(!token.contains("admin"));
        assert!(form_token_ok("admin-token", &token));
        assert!(!form_token_ok("alice-token", &token));
        assert!(!form_token_ok("admin-token", ""));
    }

    #[test]
    fn browsers_get_pages_and_everyone_else_json() {
        let accept = |a: &str| wants_html(&request(&[("Accept", a)]));
        assert!(accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!accept("application/json"));
        assert!(!accept("*/*"));
        assert!(!accept("application/json, text/html"));
        assert!(!wants_html(&request(&[])));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNetwork> = vec!["10.0.0.0/8"
            .parse()
            .unwrap_or_else(|_| IpNetwork::from(ip("10.0.0.0")))];
        assert_eq!(
            caller_ip(ip("192.0.2.1"), &["127.0.0.1"], &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(
            caller_ip(ip("10.1.1.1"), &["127.0.0.1"], &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            caller_ip(
                ip("10.1.1.1"),
                &["127.0.0.1, 198.51.100.7, 10.2.2.2"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(caller_ip(ip("10.1.1.1"), &[], &trusted), ip("10.1.1.1"));
        assert_eq!(
            caller_ip(ip("10.1.1.1"), &["garbage"], &trusted),
            ip("10.1.1.1")
        );
        // A forged first line does not decide: the proxy's own line, appended after it, does.
        assert_eq!(
            caller_ip(ip("10.1.1.1"), &["198.51.100.66", "203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            caller_ip(
                ip("10.1.1.1"),
                &["198.51.100.66, 203.0.113.5", "10.3.3.3"],
                &trusted
            ),
            ip("203.0.113.5")
        );
    }
}
