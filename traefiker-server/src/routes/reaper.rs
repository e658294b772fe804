//! `GET /reaper/`: one reaper cycle, for callers inside `reaper_ipnetwork` (SPEC §3).

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use ipnetwork::IpNetwork;
use traefiker_core::ReapMode;

use crate::app::AppState;

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

fn text(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

/// The handler.
pub async fn reaper(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return text(
            StatusCode::FORBIDDEN,
            "Reaper error: access denied from IP unknown".into(),
        );
    };
    let forwarded = req
        .headers()
        .get("X-Forwarded-For")
        .and_then(|v| v.to_str().ok());
    let ip = caller_ip(peer, forwarded, &state.config.trusted_proxies);
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    if !state.config.reaper_network.contains(ip) {
        return text(
            StatusCode::FORBIDDEN,
            format!("Reaper error: access denied from IP {ip}"),
        );
    }
    match state.reaper.run(ReapMode::Apply).await {
        Ok(report) => match report.activity_error() {
            Some(reason) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Reaper error: activity unavailable: {reason}"),
            ),
            None => text(
                StatusCode::OK,
                format!("Reaper success: {} deleted", report.removed()),
            ),
        },
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Reaper error: {e}"),
        ),
    }
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
