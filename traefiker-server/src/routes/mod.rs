//! The HTTP contract (SPEC §3): one module per endpoint, sharing [`crate::state::AppState`],
//! and [`reply`], how answers to people are written.

pub mod connect;
pub mod dynamic;
pub mod health;
pub mod reaper;
pub mod reply;
pub mod shutdown;
pub mod status;

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use ipnetwork::IpNetwork;

use crate::auth::{AuthError, Identity};
use crate::state::AppState;
use reply::Reference;

/// The caller's address: the peer, or — only when the peer is a trusted proxy — the nearest
/// untrusted address of `X-Forwarded-For`.
pub fn caller_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNetwork]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(*ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(chain) = forwarded_for else {
        return peer;
    };
    let mut caller = peer;
    for hop in chain.rsplit(',') {
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

/// The request's client address as [`caller_ip`] decides it, IPv4-mapped IPv6 as IPv4;
/// `None` only when the connection has no peer address.
pub(crate) fn client_address(req: &HttpRequest, trusted: &[IpNetwork]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req
        .headers()
        .get("X-Forwarded-For")
        .and_then(|v| v.to_str().ok());
    Some(match caller_ip(peer, forwarded, trusted) {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    })
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
    // A connection without a peer address (not TCP) shares one limit with its kind.
    let client =
        client_address(req, &state.config.trusted_proxies).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    Some(state.auth.check(token, client).await)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNetwork> = vec!["10.0.0.0/8"
            .parse()
            .unwrap_or_else(|_| IpNetwork::from(ip("10.0.0.0")))];
        assert_eq!(
            caller_ip(ip("192.0.2.1"), Some("127.0.0.1"), &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(
            caller_ip(ip("10.1.1.1"), Some("127.0.0.1"), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            caller_ip(
                ip("10.1.1.1"),
                Some("127.0.0.1, 198.51.100.7, 10.2.2.2"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(caller_ip(ip("10.1.1.1"), None, &trusted), ip("10.1.1.1"));
        assert_eq!(
            caller_ip(ip("10.1.1.1"), Some("garbage"), &trusted),
            ip("10.1.1.1")
        );
    }
}
