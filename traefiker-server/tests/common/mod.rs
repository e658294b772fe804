//! The test harness shared by the HTTP tests: the real app on 127.0.0.1:0, auth2 on wiremock
//! answering the fixtures, the in-memory backend, a scripted activity source, and the log
//! lines the app writes (to find an error page's reference in them).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use reqwest::redirect::Policy;
use tokio::sync::oneshot;
use traefiker_core::testing::{InMemoryManager, ManualClock, ScriptedActivity};
use traefiker_core::ReplicaId;
use traefiker_core::{ActivityStore, ArrivalLog, MemoryStore, NarrativeKind};
use traefiker_server::app::run;
use traefiker_server::auth::{Auth2, Authenticator};
use traefiker_server::background::ImageSource;
use traefiker_server::config::{Config, Layer};
use traefiker_server::outbound;
use traefiker_server::replica::Replica;
use traefiker_server::state::AppState;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const IMAGE: &str = "kbase/narrative:5.4.3";

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static LOGGING: Once = Once::new();

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary so far (tests run in parallel: search for something
/// unique, such as a reference id).
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// Sends this test binary's log lines (JSON, `info` and up) to [`logs`]; once per binary.
pub fn capture_logs() {
    LOGGING.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter("info")
            .with_writer(|| LogWriter)
            .try_init();
    });
}

/// The reference id an error page quotes.
pub fn reference_in(body: &str) -> String {
    let at = body
        .find("quote reference ")
        .expect("a reference in the page")
        + 16;
    let id: String = body[at..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(id.len(), 8, "{body}");
    id
}

pub struct Harness {
    pub base: String,
    pub client: reqwest::Client,
    pub manager: Arc<InMemoryManager>,
    pub traefik: Arc<ScriptedActivity>,
    pub clock: Arc<ManualClock>,
    pub auth2: MockServer,
    /// The app's state (a clone of what `run` serves).
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Harness {
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        Self::start_with(settings, InMemoryManager::new).await
    }

    /// [`Harness::start`] over the in-memory backend `backend` makes from the naming.
    pub async fn start_with(
        settings: &[(&str, &str)],
        backend: impl FnOnce(traefiker_core::Naming) -> InMemoryManager,
    ) -> Self {
        Self::start_full(settings, backend, Arc::new(MemoryStore::new())).await
    }

    /// [`Harness::start_with`] keeping last-seen instants (and arrivals) in `store`.
    pub async fn start_full<S: ActivityStore + ArrivalLog + 'static>(
        settings: &[(&str, &str)],
        backend: impl FnOnce(traefiker_core::Naming) -> InMemoryManager,
        store: Arc<S>,
    ) -> Self {
        capture_logs();
        let auth2 = MockServer::start().await;
        for (token, file, status) in [
            ("alice-token", "me-ok.json", 200),
            ("admin-token", "me-admin.json", 200),
        ] {
            let body = std::fs::read_to_string(format!(
                "{}/tests/fixtures/{file}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            Mock::given(method("GET"))
                .and(path("/api/V2/me"))
                .and(header("Authorization", token))
                .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
                .mount(&auth2)
                .await;
        }
        let invalid = std::fs::read_to_string(format!(
            "{}/tests/fixtures/error-invalid-token.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        Mock::given(method("GET"))
            .and(path("/api/V2/me"))
            .respond_with(ResponseTemplate::new(401).set_body_raw(invalid, "application/json"))
            .mount(&auth2)
            .await;

        let auth_url = format!("{}/api/V2/me", auth2.uri());
        let mut layer: Layer = [
            ("auth2", auth_url.as_str()),
            ("num_prespawn", "2"),
            ("image_tag", "5.4.3"),
            ("cookie_secure", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in settings {
            layer.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_layers(&[layer]).unwrap();
        let pool = config.num_prespawn;
        let manager = Arc::new(backend(config.naming.clone()));
        let traefik = Arc::new(ScriptedActivity::new("traefik"));
        let clock = Arc::new(ManualClock::default());
        // Static tokens where configured, as the binary does; else auth2 with short timeouts.
        let auth: Arc<dyn Authenticator> = match &config.static_tokens {
            Some(_) => traefiker_server::app::authenticator(&config).unwrap(),
            None => Arc::new(Auth2::new(
                config.auth2.clone(),
                outbound::client(Duration::from_secs(2), Duration::from_secs(2), None).unwrap(),
            )),
        };
        let readiness = traefiker_server::app::readiness(&config).unwrap();
        let state = AppState::new(
            config,
            manager.clone(),
            vec![traefik.clone()],
            readiness,
            store,
            auth,
            clock.clone(),
            ImageSource::Fixed(IMAGE.into()),
            Some(IMAGE.into()),
            Replica::solo(ReplicaId::new("test").unwrap()),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let kept_state = state.clone();
        let server = tokio::spawn(run(listener, state, async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let h = Self {
            base,
            client,
            manager,
            traefik,
            clock,
            auth2,
            state: kept_state,
            stop: Some(stop),
            server: Some(server),
        };
        h.wait_for_pool(pool).await;
        h
    }

    pub async fn wait_for_pool(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let waiting = self
                    .manager
                    .containers()
                    .iter()
                    .filter(|c| c.kind == NarrativeKind::Prespawned)
                    .count();
                if waiting >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("pool filled in time");
    }

    /// Waits until `/readyz` answers 200 (the background loop has checked the backend).
    pub async fn wait_ready(&self) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if self.get("/readyz").send().await.unwrap().status() == 200 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("ready in time");
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.base))
    }

    /// `/traefik/dynamic` as a caller on the loopback (inside the default provider network).
    pub async fn dynamic(&self) -> serde_json::Value {
        self.get("/traefik/dynamic")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET path` as the holder of `token`.
    pub async fn open(&self, path: &str, token: &str) -> reqwest::Response {
        self.with_token(self.get(path), token).send().await.unwrap()
    }

    pub fn with_token(&self, rb: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        rb.header("Cookie", format!("kbase_session={token}"))
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("graceful shutdown in time")
                .unwrap()
                .unwrap();
        }
    }
}
