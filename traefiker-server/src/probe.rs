//! `traefiker probe`: the container health check. The image is `FROM scratch` (no shell, no
//! curl), and Swarm holds a task in `starting` until its check passes: a rolling update
//! (`order: start-first`) stops an old replica only once the new one answers `/readyz`, and
//! Traefik's Swarm provider routes only to running tasks.
//!
//! Blocking and dependency-free on purpose: the engine runs it every few seconds in a fresh
//! process, so it must start and finish in milliseconds, with no runtime to build.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// How long a probe waits for the server: under the engine's own health-check timeout.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a probe inside the container reaches a server bound to `listen`: loopback when it
/// binds every address.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `Ok` if `GET path` on `addr` answers 200 within `timeout`; otherwise what it answered.
pub fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{addr}: {e}"))?;
    // One write: a request in pieces may be answered, and the connection closed, after its
    // first piece.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("GET {path}: {e}"))?;
    // The status line is all that matters; 64 bytes hold it.
    let mut head = [0u8; 64];
    let mut filled = 0;
    while filled < head.len() {
        match stream.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            // A connection reset once the status line is in does not undo the answer.
            Err(_) if head[..filled].windows(2).any(|w| w == b"\r\n") => break,
            Err(e) => return Err(format!("GET {path}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head[..filled]);
    let status = line.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("GET {path} on {addr} answered {status:?}, not 200"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server answering `status_line` to the first request; its address.
    fn answering(status_line: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                // The whole request before the answer: unread bytes at close reset the
                // connection.
                let mut request = Vec::new();
                let mut buf = [0u8; 512];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(conn, "{status_line}\r\nContent-Length: 0\r\n\r\n");
            }
        });
        addr
    }

    #[test]
    fn passes_on_200_only() {
        assert_eq!(
            probe(answering("HTTP/1.1 200 OK"), "/readyz", PROBE_TIMEOUT),
            Ok(())
        );
        let err = probe(
            answering("HTTP/1.1 503 Service Unavailable"),
            "/readyz",
            PROBE_TIMEOUT,
        );
        assert!(err.is_err(), "{err:?}");
    }

    #[test]
    fn fails_when_nothing_listens() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        assert!(probe(addr, "/readyz", PROBE_TIMEOUT).is_err());
    }

    #[test]
    fn a_wildcard_listen_is_probed_on_loopback() {
        assert_eq!(
            probe_addr("0.0.0.0:5000".parse().expect("addr")),
            "127.0.0.1:5000".parse().expect("addr")
        );
        assert_eq!(
            probe_addr("[::]:5000".parse().expect("addr")),
            "[::1]:5000".parse().expect("addr")
        );
        assert_eq!(
            probe_addr("10.0.0.7:5000".parse().expect("addr")),
            "10.0.0.7:5000".parse().expect("addr")
        );
    }
}
