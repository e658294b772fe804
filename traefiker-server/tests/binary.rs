//! Black box: the built `traefiker` binary started with only environment variables, set the
//! way the Python deployment sets them, against a fake Rancher (discovered through its fake
//! rancher-metadata), auth2 and the version URL on wiremock. Its log output of the whole
//! scenario must carry no secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use traefiker_rancher::testing::FakeRancher;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RANCHER_USER: &str = "FAKEACCESSKEY";
const RANCHER_PASSWORD: &str = "fake-secret-key";
const TOKEN: &str = "alice-secret-token-123";

async fn http_get(client: &reqwest::Client, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut rb = client.get(url);
    if let Some(t) = token {
        rb = rb.header("Cookie", format!("kbase_session={t}"));
    }
    rb.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_from_the_python_environment_and_logs_no_secret() {
    let rancher = FakeRancher::start().await;
    let services = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/V2/me"))
        .and(header("Authorization", TOKEN))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(include_str!("fixtures/me-ok.json"), "application/json"),
        )
        .mount(&services)
        .await;
    Mock::given(method("GET"))
        .and(path("/narrative_version"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "{\"version\":\"5.4.3\",\"git_hash\":\"27fda32ec\"}\n",
            "application/octet-stream",
        ))
        .mount(&services)
        .await;

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("traefiker-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("reaper.db");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_traefiker"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOSTNAME", "traefiker-container-abc")
        .env("hostname", "narrative.example.org")
        .env("rancher_url", rancher.url())
        .env("rancher_user", RANCHER_USER)
        .env("rancher_password", RANCHER_PASSWORD)
        .env("rancher_meta", rancher.meta_url())
        .env("auth2", format!("{}/api/V2/me", services.uri()))
        .env(
            "narrative_version_url",
            format!("{}/narrative_version", services.uri()),
        )
        .env("reaper_ipnetwork", "127.0.0.1/32")
        .env("num_prespawn", "1")
        .env("sqlite_reaperdb_path", &db)
        .env("log_level", "10")
        .env("COMMIT_SHA", "deadbee")
        .env("NARRENV_FOO", "bar")
        .env("traefik_metrics", format!("{}/metrics", services.uri()))
        .env("listen", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = tokio::spawn(async move {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out).await;
        out
    });
    let errors = tokio::spawn(async move {
        let mut out = String::new();
        let _ = stderr.read_to_string(&mut out).await;
        out
    });

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let up = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if up.is_err() {
        let _ = child.start_kill();
        panic!(
            "traefiker did not come up; stderr: {}",
            errors.await.unwrap()
        );
    }

    let r = http_get(
        &client,
        &format!("{base}/narrative/ws.1.obj.2"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status(), 201);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let session = cookie
        .strip_prefix("narrative_session=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    assert_eq!(session.len(), 32);
    assert!(rancher
        .services()
        .iter()
        .any(|s| format!("{s:?}").contains("narrative-alice-522b27")));

    let r = http_get(&client, &format!("{base}/narrative_status/"), None).await;
    let status: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status["git_hash"], "deadbee");

    let r = http_get(&client, &format!("{base}/reaper/"), None).await;
    assert_eq!(
        r.status(),
        500,
        "the fake metrics URL answers 404: activity unavailable"
    );
    assert!(r
        .text()
        .await
        .unwrap()
        .starts_with("Reaper error: activity unavailable:"));

    let pid = child.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("graceful shutdown in time")
        .unwrap();
    assert!(status.success(), "exit status {status}");

    let out = logs.await.unwrap();
    let err = errors.await.unwrap();
    assert!(out.lines().count() > 3, "logs: {out}\nstderr: {err}");
    for line in out.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(event.get("message").is_some(), "no message: {line}");
    }
    for secret in [RANCHER_PASSWORD, RANCHER_USER, TOKEN, session.as_str()] {
        assert!(
            !out.contains(secret),
            "{secret} leaked into the logs:\n{out}"
        );
        assert!(!err.contains(secret), "{secret} leaked into stderr:\n{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn static_tokens_with_a_real_backend_refuse_to_start_and_name_the_key() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_traefiker"))
        .env_clear()
        .env("rancher_url", "http://127.0.0.1:9/v2-beta")
        .env("auth_tokens", "demo-token:kbadmin:KBASE_ADMIN")
        .arg("serve")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth_tokens:"), "{stderr}");
    assert!(stderr.contains("allow_static_tokens"), "{stderr}");
    assert!(!stderr.contains("demo-token"), "{stderr}");
}

/// `backend = kubernetes` outside a pod and without a kubeconfig: the process exits at once
/// with a message saying both and what to do, not a panic or a retry loop.
#[tokio::test]
async fn kubernetes_without_a_service_account_or_kubeconfig_says_what_to_do() {
    let home = std::env::temp_dir().join(format!("traefiker-kube-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_traefiker"))
        .env_clear()
        .env("HOME", &home)
        .env("backend", "kubernetes")
        .env("image_tag", "5.4.3")
        .env("listen", "127.0.0.1:0")
        .env("sqlite_reaperdb_path", home.join("reaper.db"))
        .arg("serve")
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("it gives up at once")
        .unwrap();
    std::fs::remove_dir_all(&home).ok();
    assert!(!output.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("no Kubernetes API configuration"), "{text}");
    assert!(
        text.contains("KUBECONFIG") && text.contains("service account"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

/// `traefiker activity --file` with nothing configured: the report of a saved page, or
/// "activity unknown" and exit status 1 for a page the reaper would refuse.
#[test]
fn activity_reads_a_saved_page_and_refuses_what_is_not_one() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../traefiker-metrics/tests/fixtures/traefik");
    let activity = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_traefiker"))
            .env_clear()
            .args(["activity", "--file"])
            .arg(file)
            .output()
            .unwrap()
    };
    let read = activity(&fixtures.join("v2-synthesized.prom"));
    assert!(read.status.success());
    let out = String::from_utf8(read.stdout).unwrap();
    assert!(
        out.starts_with("Traefik v2 (detected), 48 samples\n"),
        "{out}"
    );
    assert!(out.contains(
        "narrative-alice-522b27_narratives                        websockets=2 requests=796 ACTIVE\n"
    ));
    assert_eq!(out.lines().count(), 9, "{out}");

    let dir = std::env::temp_dir().join(format!("traefiker-activity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = std::fs::read_to_string(fixtures.join("v2-synthesized.prom")).unwrap();
    for (name, body) in [
        (
            "html.prom",
            "<html><body>502 Bad Gateway</body></html>\n".to_owned(),
        ),
        ("cut.prom", page[..page.len() / 2].to_owned()),
        ("empty.prom", String::new()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        let refused = activity(&path);
        assert_eq!(refused.status.code(), Some(1), "{name}");
        assert!(refused.stdout.is_empty(), "{name}");
        let err = String::from_utf8(refused.stderr).unwrap();
        assert!(err.starts_with("activity unknown: "), "{name}: {err}");
    }
    let missing = activity(&dir.join("missing.prom"));
    assert_eq!(missing.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}
