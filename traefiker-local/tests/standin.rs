//! The narrative stand-in over real sockets: its page, its websocket echo, its Jupyter
//! status, and as the command the local backend runs.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use traefiker_core::testing::conformance::{Caps, Context};
use traefiker_core::ContainerManager;
use traefiker_local::{standin, LocalConfig, LocalManager};

const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took more than {LIMIT:?}"))
}

/// A running stand-in; dropping the sender stops it.
struct Standin {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn start(name: &str) -> Standin {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(standin::run(
        listener,
        name.to_owned(),
        "/narrative/".to_owned(),
        stopped,
    ));
    Standin { addr, stop, task }
}

impl Standin {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        bounded("the stand-in to stop", self.task)
            .await
            .expect("the task ends")
            .expect("run returns Ok");
    }
}

/// A plain HTTP/1.1 GET: (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    bounded("GET", async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        let response = String::from_utf8(response).expect("utf-8");
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status code");
        (status, body.to_owned())
    })
    .await
}

async fn status(addr: SocketAddr) -> serde_json::Map<String, serde_json::Value> {
    let (code, body) = get(addr, "/narrative/api/status").await;
    assert_eq!(code, 200);
    match serde_json::from_str(&body).expect("JSON") {
        serde_json::Value::Object(map) => map,
        other => panic!("status is an object, got {other}"),
    }
}

fn is_jupyter_time(value: &serde_json::Value) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() == 27
            && s.ends_with('Z')
            && chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.6fZ").is_ok()
    })
}

#[tokio::test]
async fn the_page_names_its_narrative_under_the_base_and_at_the_root() {
    let standin = start("narrative-alice");
    for path in ["/narrative/", "/", "/narrative/tree/anything"] {
        let (code, body) = get(standin.addr, path).await;
        assert_eq!(code, 200, "GET {path}");
        assert!(
            body.contains("<title>narrative narrative-alice</title>"),
            "GET {path}: {body}"
        );
        assert!(body.contains("<h1>narrative narrative-alice</h1>"));
    }
    standin.shutdown().await;
}

#[tokio::test]
async fn status_is_shaped_like_jupyter_servers() {
    let standin = start("narrative-bob");
    let fixture: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/jupyter/status-fresh.json"
        ))
        .unwrap_or_else(|_| {
            r#"{"connections": 0, "kernels": 0, "last_activity": "2026-11-25T22:14:24.759156Z", "started": "2026-11-25T22:14:24.759156Z"}"#.to_owned()
        }),
    )
    .expect("fixture JSON");
    let fresh = status(standin.addr).await;
    let keys =
        |m: &serde_json::Map<String, serde_json::Value>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&fresh), keys(&fixture), "the same fields as Jupyter's");
    assert_eq!(fresh["connections"], 0);
    assert_eq!(fresh["kernels"], 0);
    assert!(is_jupyter_time(&fresh["started"]), "{}", fresh["started"]);
    assert!(is_jupyter_time(&fresh["last_activity"]));
    assert_eq!(fresh["last_activity"], fresh["started"], "no activity yet");
    let (code, _) = get(standin.addr, "/api/status").await;
    assert_eq!(code, 200, "also at the root");
    standin.shutdown().await;
}

#[tokio::test]
async fn the_probe_passes_on_a_live_standin_and_fails_without_one() {
    let standin = start("narrative-dora");
    let port = standin.addr.port();
    let probe = |port| {
        tokio::task::spawn_blocking(move || {
            standin::probe(port, "/narrative/", Duration::from_secs(2))
        })
    };
    bounded("a probe", probe(port))
        .await
        .expect("join")
        .expect("a live stand-in passes");
    standin.shutdown().await;
    let err = bounded("a probe", probe(port))
        .await
        .expect("join")
        .expect_err("nothing listens any more");
    assert!(err.contains("cannot connect"), "{err}");
}

#[tokio::test]
async fn the_websocket_echoes_and_is_counted_while_open() {
    let standin = start("narrative-carol");
    let url = format!("ws://{}/narrative/ws", standin.addr);
    let (mut socket, _) = bounded("websocket connect", tokio_tungstenite::connect_async(url))
        .await
        .expect("websocket handshake");

    let open = status(standin.addr).await;
    assert_eq!(open["connections"], 1, "an open websocket counts");
    assert_eq!(
        open["last_activity"], open["started"],
        "open and quiet is not activity"
    );

    // Timestamps have microseconds; make sure the clock moves past `started`.
    tokio::time::sleep(Duration::from_millis(5)).await;
    bounded("send", socket.send(Message::text("hello narrative")))
        .await
        .expect("send");
    let echoed = bounded("echo", socket.next())
        .await
        .expect("a message")
        .expect("no error");
    assert_eq!(echoed, Message::text("hello narrative"));
    bounded("send binary", socket.send(Message::binary(vec![1u8, 2, 3])))
        .await
        .expect("send");
    let echoed = bounded("echo", socket.next())
        .await
        .expect("a message")
        .expect("no error");
    assert_eq!(echoed, Message::binary(vec![1u8, 2, 3]));

    let active = status(standin.addr).await;
    assert_eq!(active["connections"], 1);
    assert_eq!(active["kernels"], 1);
    assert!(
        active["last_activity"].as_str() > open["last_activity"].as_str(),
        "a message moves last_activity: {active:?}"
    );

    bounded("close", socket.close(None)).await.expect("close");
    bounded("connections back to 0", async {
        while status(standin.addr).await["connections"] != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let closed = status(standin.addr).await;
    assert_eq!(
        closed["last_activity"], active["last_activity"],
        "closing is not activity"
    );
    assert_eq!(closed["kernels"], 1, "the kernel outlives its websocket");
    standin.shutdown().await;
}

#[tokio::test]
async fn a_dropped_websocket_is_uncounted_too() {
    let standin = start("narrative-dave");
    let url = format!("ws://{}/ws", standin.addr);
    let (socket, _) = bounded("websocket connect", tokio_tungstenite::connect_async(url))
        .await
        .expect("websocket handshake at the root");
    assert_eq!(status(standin.addr).await["connections"], 1);
    drop(socket);
    bounded("connections back to 0", async {
        while status(standin.addr).await["connections"] != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    standin.shutdown().await;
}

#[tokio::test]
async fn the_local_backend_runs_the_standin_binary() {
    let mut config = LocalConfig::new([
        env!("CARGO_BIN_EXE_narrative-standin"),
        "--port",
        "{port}",
        "--name",
        "{name}",
    ]);
    config.ready_timeout = Some(Duration::from_secs(15));
    config.grace = Duration::from_secs(5);
    let manager = LocalManager::new(config).expect("valid config");
    bounded("verify", manager.verify()).await.expect("verify");
    let ctx = Context::new(
        manager.config().image.clone(),
        Caps {
            reports_address: true,
            zombies: true,
            conditional_assign: true,
            marks_connected: true,
            conditional: false,
        },
    );
    let spec = ctx.user_spec();
    let created = bounded("create", manager.create(&spec))
        .await
        .expect("create waits until the stand-in listens");
    let addr: SocketAddr = created
        .address
        .as_deref()
        .and_then(|a| a.strip_prefix("http://"))
        .and_then(|a| a.parse().ok())
        .expect("an http address");
    let (code, body) = get(addr, "/narrative/").await;
    assert_eq!(code, 200);
    assert!(
        body.contains(&format!("<title>narrative {}</title>", spec.name)),
        "{body}"
    );
    let stopped = bounded("shutdown", manager.shutdown_all())
        .await
        .expect("the stand-in stops on SIGTERM");
    assert_eq!(stopped, 1);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens any more"
    );
}

#[tokio::test]
async fn an_assigned_waiting_narrative_names_its_user_through_the_name_file() {
    let mut config = LocalConfig::new([
        env!("CARGO_BIN_EXE_narrative-standin"),
        "--port",
        "{port}",
        "--name",
        "{name}",
        "--name-file",
        "{name_file}",
    ]);
    config.ready_timeout = Some(Duration::from_secs(15));
    config.grace = Duration::from_secs(5);
    let manager = LocalManager::new(config).expect("valid config");
    let ctx = Context::new(
        manager.config().image.clone(),
        Caps {
            reports_address: true,
            zombies: true,
            conditional_assign: true,
            marks_connected: true,
            conditional: false,
        },
    );
    let waiting_spec = ctx.prespawn_spec();
    let waiting = bounded("create", manager.create(&waiting_spec))
        .await
        .expect("create a waiting narrative");
    let addr: SocketAddr = waiting
        .address
        .as_deref()
        .and_then(|a| a.strip_prefix("http://"))
        .and_then(|a| a.parse().ok())
        .expect("an http address");
    let (_, before) = get(addr, "/narrative/").await;
    assert!(before.contains(&format!("<title>narrative {}</title>", waiting_spec.name)));

    let spec = ctx.user_spec();
    let user = spec.name;
    let assignment = traefiker_core::Assignment {
        name: user.clone(),
        owner: spec.owner.expect("a user spec has an owner"),
        origin: traefiker_core::Origin {
            client_ip: None,
            at: chrono::Utc::now(),
        },
    };
    let assigned = bounded("assign", manager.assign(&waiting, &assignment))
        .await
        .expect("assign");
    assert_eq!(assigned.address, waiting.address, "the same process serves");
    let (_, after) = get(addr, "/narrative/").await;
    assert!(
        after.contains(&format!("<title>narrative {user}</title>")),
        "the page names the user's narrative now: {after}"
    );
    bounded("shutdown", manager.shutdown_all())
        .await
        .expect("shutdown");
}
