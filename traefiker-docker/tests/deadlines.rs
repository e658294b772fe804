//! Every operation fails within the configured deadline when the engine hangs: a unix socket
//! that answers the version negotiation and then accepts requests and never answers them. No
//! Docker engine is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use traefiker_core::{
    ContainerManager, ManagerError, Narrative, NarrativeKind, NarrativeState, ServiceName,
    SessionId, SpawnSpec,
};
use traefiker_docker::{DockerConfig, DockerManager};

const VERSION: &str = r#"{"Version":"27.0.0","ApiVersion":"1.47","MinAPIVersion":"1.24"}"#;

/// A socket at a path of its own that answers the first `GET …/version` (the client's
/// version negotiation) and holds every other request.
async fn hung_engine() -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "traefiker-hung-engine-{}-{}.sock",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let listener = UnixListener::bind(&path).unwrap();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let answered = answered.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&seen);
                let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                if target.ends_with("/version")
                    && !answered.swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{VERSION}",
                        VERSION.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                }
                // Anything else, or the next request on this connection: no answer, ever.
                std::future::pending::<()>().await;
            });
        }
    });
    path
}

fn narrative(name: &str) -> Narrative {
    Narrative {
        id: "0123456789ab".into(),
        name: ServiceName::new(name).unwrap(),
        session: SessionId::parse("0123456789abcdef0123456789abcdef").unwrap(),
        image: "kbase/narrative:5.4.3".into(),
        kind: NarrativeKind::User,
        state: NarrativeState::Running,
        origin: None,
        replica: None,
        owner: None,
        version: None,
        address: None,
        public_endpoints: Vec::new(),
        created: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_fails_within_the_deadline_when_the_engine_hangs() {
    let socket = hung_engine().await;
    let mut config = DockerConfig::new(format!("unix://{}", socket.display()), "hung_net");
    // The configured deadline of one operation, shorter than a narrative's stop grace.
    config.timeouts.request = Duration::from_secs(1);
    config.timeouts.stop_grace = Duration::from_secs(10);
    let manager = DockerManager::connect(config).await.unwrap();
    let limit = Duration::from_millis(1500);
    let spec = SpawnSpec {
        name: ServiceName::new("narrative-alice-522b27").unwrap(),
        session: SessionId::parse("0123456789abcdef0123456789abcdef").unwrap(),
        image: "kbase/narrative:5.4.3".into(),
        kind: NarrativeKind::User,
        labels: Default::default(),
        env: Default::default(),
        origin: None,
        owner: None,
    };
    let alice = narrative("narrative-alice-522b27");
    let mut slow = Vec::new();
    macro_rules! within {
        ($what:expr, $call:expr) => {{
            let started = Instant::now();
            let result = $call.await;
            let took = started.elapsed();
            assert!(
                matches!(result, Err(ManagerError::Unavailable { .. })),
                "{}: {result:?}",
                $what
            );
            if took > limit {
                slow.push(format!("{} took {took:?}", $what));
            }
        }};
    }
    within!("verify", manager.verify());
    within!("find", manager.find(&alice.name));
    within!("list", manager.list());
    within!("zombies", manager.zombies());
    within!("create", manager.create(&spec));
    within!("remove", manager.remove(&alice));
    assert!(slow.is_empty(), "past the 1 s deadline: {slow:?}");
    let _ = std::fs::remove_file(&socket);
}
