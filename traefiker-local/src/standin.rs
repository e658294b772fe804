//! A narrative stand-in: the smallest program that behaves like a narrative as far as
//! traefiker and Traefik can tell, so the demo and the end-to-end tests need no Jupyter.
//!
//! Under its base path (`/narrative/` by default, and also at `/`) it serves:
//!
//! - `GET <base>` (and any other GET under it): an HTML page naming the narrative, so a test
//!   can tell which narrative Traefik routed it to;
//! - `<base>ws`: a websocket that echoes every text and binary message;
//! - `GET <base>api/status`: Jupyter Server's status document, byte-compatible with the real
//!   one (`started`, `last_activity`, `connections`, `kernels`; timestamps in ISO 8601 UTC with
//!   microseconds and `Z`). `connections` counts open websockets; `last_activity` moves when a
//!   websocket message arrives, not while a websocket sits open and quiet, as in Jupyter.
//!   `kernels` becomes 1 once a websocket has opened, as a kernel would have started.
//!
//! Built on actix-web 4 and actix-ws, like the server: one worker, no signal handling of its
//! own (the caller's `shutdown` future decides when it stops).

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_ws::Message;
use chrono::{DateTime, Utc};

/// Jupyter Server's timestamp format (see `shared/fixtures/jupyter/`).
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// How the stand-in knows which narrative it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NarrativeName {
    /// Always this name.
    Fixed(String),
    /// The name in this file, read on every page (the local backend rewrites it when a
    /// waiting narrative is given to a user); `fallback` while it cannot be read or is empty.
    File {
        /// The file (`{name_file}` of the local backend's command).
        path: PathBuf,
        /// The name at start.
        fallback: String,
    },
}

impl NarrativeName {
    fn current(&self) -> String {
        match self {
            Self::Fixed(name) => name.clone(),
            Self::File { path, fallback } => std::fs::read_to_string(path)
                .ok()
                .map(|text| text.trim().to_owned())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| fallback.clone()),
        }
    }
}

impl From<String> for NarrativeName {
    fn from(name: String) -> Self {
        Self::Fixed(name)
    }
}

impl From<&str> for NarrativeName {
    fn from(name: &str) -> Self {
        Self::Fixed(name.to_owned())
    }
}

/// What the stand-in knows about itself, shared by every request.
#[derive(Debug)]
struct Narrative {
    name: NarrativeName,
    started: DateTime<Utc>,
    last_activity: Mutex<DateTime<Utc>>,
    connections: AtomicUsize,
    kernel_started: AtomicBool,
}

impl Narrative {
    fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(|p| p.into_inner()) = Utc::now();
    }

    fn status(&self) -> serde_json::Value {
        let last_activity = *self.last_activity.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::json!({
            "connections": self.connections.load(Ordering::SeqCst),
            "kernels": usize::from(self.kernel_started.load(Ordering::SeqCst)),
            "last_activity": last_activity.format(TIME_FORMAT).to_string(),
            "started": self.started.format(TIME_FORMAT).to_string(),
        })
    }
}

/// Counts one open websocket for as long as it lives, however its task ends.
struct OpenSocket(Arc<Narrative>);

impl OpenSocket {
    fn new(narrative: Arc<Narrative>) -> Self {
        narrative.connections.fetch_add(1, Ordering::SeqCst);
        narrative.kernel_started.store(true, Ordering::SeqCst);
        Self(narrative)
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The base path with exactly one leading and one trailing slash: `narrative` and
/// `/narrative` both become `/narrative/`.
pub fn normalize_base(base: &str) -> String {
    let trimmed = base.trim_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        format!("/{trimmed}/")
    }
}

/// Serves the stand-in for narrative `name` (a `String`, or a [`NarrativeName`]) on `listener` under `base` (e.g. `/narrative/`)
/// and at `/`, until `shutdown` completes; then stops accepting, closes connections within a
/// second and returns.
///
/// Fails only if the listener cannot be used.
pub async fn run(
    listener: std::net::TcpListener,
    name: impl Into<NarrativeName>,
    base: String,
    shutdown: impl Future,
) -> std::io::Result<()> {
    let base = normalize_base(&base);
    let narrative = Arc::new(Narrative {
        name: name.into(),
        started: Utc::now(),
        last_activity: Mutex::new(Utc::now()),
        connections: AtomicUsize::new(0),
        kernel_started: AtomicBool::new(false),
    });
    {
        let mut last = narrative
            .last_activity
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *last = narrative.started;
    }
    let data = web::Data::from(narrative);
    let server = HttpServer::new(move || {
        let mut app = App::new().app_data(data.clone());
        // The base scope first, then `/` for the same routes (when base is not `/` itself).
        for prefix in [base.as_str(), "/"] {
            app = app
                .route(&format!("{prefix}api/status"), web::get().to(status))
                .route(&format!("{prefix}ws"), web::get().to(websocket));
            if prefix == "/" {
                break;
            }
        }
        app.default_service(web::to(page))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => result,
        _ = shutdown => {
            // The server future carries out the stop, so it must be polled while the stop is
            // awaited.
            let ((), result) = tokio::join!(handle.stop(true), server);
            result
        }
    }
}

async fn status(narrative: web::Data<Narrative>) -> HttpResponse {
    HttpResponse::Ok().json(narrative.status())
}

async fn page(req: HttpRequest, narrative: web::Data<Narrative>) -> HttpResponse {
    if req.method() != actix_web::http::Method::GET && req.method() != actix_web::http::Method::HEAD
    {
        return HttpResponse::MethodNotAllowed().finish();
    }
    let name = escape_html(&narrative.name.current());
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>narrative {name}</title></head>\n\
             <body><h1>narrative {name}</h1>\n\
             <p>A traefiker narrative stand-in. Its websocket echoes at <code>ws</code>; its \
             Jupyter status is at <code>api/status</code>.</p></body></html>\n"
        ))
}

async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    narrative: web::Data<Narrative>,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, mut session, mut messages) = actix_ws::handle(&req, body)?;
    let open = OpenSocket::new(narrative.into_inner());
    actix_web::rt::spawn(async move {
        let narrative = Arc::clone(&open.0);
        // A protocol error from the client ends its socket; nothing else is affected.
        while let Some(Ok(message)) = messages.recv().await {
            let sent = match message {
                Message::Text(text) => {
                    narrative.touch();
                    session.text(text).await
                }
                Message::Binary(bytes) => {
                    narrative.touch();
                    session.binary(bytes).await
                }
                Message::Ping(bytes) => session.pong(&bytes).await,
                Message::Close(reason) => {
                    let _ = session.close(reason).await;
                    break;
                }
                Message::Pong(_) | Message::Continuation(_) | Message::Nop => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
        drop(open);
    });
    Ok(response)
}

/// Asks the stand-in on `127.0.0.1:port` for its status (`GET <base>api/status`) and succeeds
/// on a 200 answer within `timeout`: the health check of the stand-in's container image, which
/// has no shell and no curl to run one (`narrative-standin --probe`).
///
/// Blocking and dependency-free on purpose: Docker runs it every few seconds in a fresh
/// process, so it must start and finish in milliseconds.
pub fn probe(port: u16, base: &str, timeout: std::time::Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    let path = format!("{}api/status", normalize_base(base));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{addr}: {e}"))?;
    // One write: a request in pieces may be answered, and the connection closed, after its
    // first piece.
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
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
        Err(format!("GET {path} answered {status:?}, not 200"))
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_get_one_slash_each_side() {
        assert_eq!(normalize_base("/narrative/"), "/narrative/");
        assert_eq!(normalize_base("narrative"), "/narrative/");
        assert_eq!(normalize_base("//a/b//"), "/a/b/");
        assert_eq!(normalize_base(""), "/");
        assert_eq!(normalize_base("/"), "/");
    }

    #[test]
    fn names_are_escaped_in_the_page() {
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn a_name_file_wins_over_the_start_name_once_readable() {
        let path = std::env::temp_dir().join(format!("standin-name-{}", std::process::id()));
        let name = NarrativeName::File {
            path: path.clone(),
            fallback: "narrativepre-abc".into(),
        };
        assert_eq!(name.current(), "narrativepre-abc", "no file yet");
        std::fs::write(&path, "narrative-alice\n").expect("write");
        assert_eq!(name.current(), "narrative-alice");
        std::fs::write(&path, "").expect("write");
        assert_eq!(
            name.current(),
            "narrativepre-abc",
            "an empty file names nothing"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn status_has_jupyters_shape() {
        let started = Utc::now();
        let narrative = Narrative {
            name: "n".into(),
            started,
            last_activity: Mutex::new(started),
            connections: AtomicUsize::new(2),
            kernel_started: AtomicBool::new(true),
        };
        let status = narrative.status();
        let text = started.format(TIME_FORMAT).to_string();
        assert_eq!(
            status,
            serde_json::json!({"connections": 2, "kernels": 1, "last_activity": text, "started": text})
        );
        assert_eq!(text.len(), "2026-11-25T22:14:24.759156Z".len());
    }
}
