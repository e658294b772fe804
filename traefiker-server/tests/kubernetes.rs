//! The server on the Kubernetes backend, against the fake API server: two replicas built as
//! the binary builds them (identity from POD_NAME, peers from the Deployment's pods) each fill
//! their pool, a user connected through either gets one pod, one claim and one session, and
//! Traefik's provider answer routes the session to the pod's IP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::redirect::Policy;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use traefiker_kube::testing::{FakeCluster, Kind};
use traefiker_kube::{Cluster, KubeConfig, KubeManager};
use traefiker_server::app::{build_with, run, Role};
use traefiker_server::config::{Config, Layer};

const NS: &str = "narratives";
const TOKEN: &str = "provider-token-for-tests";

struct Replica {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn replica(fake: &FakeCluster, pod: &str, dir: &std::path::Path) -> Replica {
    fake.create(
        Kind::Pod,
        json!({
            "metadata": {"name": pod, "labels": {"app.kubernetes.io/name": "traefiker"}},
            "spec": {"containers": [{"name": "traefiker", "image": "traefiker:0.1.0"}]},
        }),
    )
    .unwrap();
    let db = dir.join(format!("{pod}.db"));
    let layer: Layer = [
        ("backend", "kubernetes"),
        ("kube_namespace", NS),
        ("POD_NAME", pod),
        ("image_tag", "5.4.3"),
        ("num_prespawn", "2"),
        ("auth_tokens", "alice-token:alice,bob-token:bob"),
        ("allow_static_tokens", "true"),
        ("ready_check", "backend"),
        ("traefik_provider", "true"),
        ("traefik_provider_token", TOKEN),
        // Traefik reaches the provider from the pod network, never from loopback.
        ("traefik_provider_ipnetwork", "192.0.2.0/24"),
        ("cookie_secure", "false"),
        ("sqlite_reaperdb_path", db.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let config = Config::from_layers(&[layer]).unwrap();
    let mut kc = KubeConfig::new(Cluster::Client(fake.client()));
    kc.namespace = Some(NS.into());
    kc.pod_name = Some(pod.into());
    let manager = KubeManager::connect(kc).await.unwrap();
    let membership = Arc::new(manager.membership());
    let state = build_with(config, Arc::new(manager), membership, Role::Serve)
        .await
        .unwrap();
    assert_eq!(
        state.lifecycle.config().replica.as_str(),
        pod,
        "the pod's name is the replica"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, state, async {
        let _ = stopped.await;
    }));
    Replica {
        base,
        stop: Some(stop),
        server,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn connect(base: &str, token: &str) -> String {
    let answer = client()
        .get(format!("{base}/narrative/ws.1.obj.1"))
        .header("Cookie", format!("kbase_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201, "{:?}", answer.text().await);
    let cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    cookie
        .strip_prefix("narrative_session=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned()
}

async fn waiting(fake: &FakeCluster) -> usize {
    fake.objects(Kind::Pod)
        .iter()
        .filter(|p| {
            p.pointer("/metadata/labels/traefiker.name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.starts_with("narrativepre-"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_give_a_user_one_pod_and_route_it_by_pod_ip() {
    let dir = std::env::temp_dir().join(format!("traefiker-kube-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = FakeCluster::new(NS);
    let mut a = replica(&fake, "traefiker-6c9f-aaaaa", &dir).await;
    let mut b = replica(&fake, "traefiker-6c9f-bbbbb", &dir).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while waiting(&fake).await < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the pool fills");

    let first = connect(&a.base, "alice-token").await;
    let again = connect(&b.base, "alice-token").await;
    assert_eq!(
        first, again,
        "either replica answers alice with her one narrative"
    );
    let users: Vec<Value> = fake
        .objects(Kind::Pod)
        .into_iter()
        .filter(|p| {
            p.pointer("/metadata/labels/traefiker.name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.starts_with("narrative-alice"))
        })
        .collect();
    assert_eq!(users.len(), 1, "one pod for alice");
    assert_eq!(fake.objects(Kind::Lease).len(), 1, "and one claim");
    let ip = users[0]
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();

    let dynamic = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let answer = client()
                .get(format!("{}/traefik/dynamic", b.base))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            if answer.status() == 200 {
                let doc: Value = answer.json().await.unwrap();
                let text = doc.to_string();
                if text.contains(&ip) {
                    return text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the other replica's provider routes alice's pod");
    assert!(dynamic.contains(&format!("http://{ip}:8888")), "{dynamic}");
    assert!(dynamic.contains(&first), "the rule carries alice's session");
    let refused = client()
        .get(format!("{}/traefik/dynamic", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        403,
        "no token, and not an address the setting allows"
    );

    for r in [&mut a, &mut b] {
        if let Some(stop) = r.stop.take() {
            let _ = stop.send(());
        }
    }
    for r in [a, b] {
        tokio::time::timeout(Duration::from_secs(20), r.server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    std::fs::remove_dir_all(&dir).ok();
}
