//! A reaper cycle at 10,000 narratives (run with `cargo xtask bench`): the release `traefiker`
//! binary against the fake Rancher (10,000 user narratives and 2,000 other services in the
//! stack) and a Traefik v2 metrics page on wiremock, both in this process. Prints the calls
//! one cycle makes (metrics reads, listing pages, finds and deletes), its wall time and the
//! binary's own CPU time (from `/proc/<pid>/stat`, so the fakes' share is not counted), and
//! the binary's RSS while tracking 10,000 narratives, then the same for a cycle that removes
//! 100 idle ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use traefiker_rancher::testing::{FakeRancher, STACK_ID, STACK_NAME};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NARRATIVES: usize = 10_000;
const OTHERS: usize = 2_000;
const IDLE: usize = 100;
const PAGE: usize = 1_000;

fn name(i: usize) -> String {
    format!("narrative-user{i}-{:06x}", i)
}

/// A Traefik v2 page: every narrative has an open websocket but the first `IDLE`, plus the
/// request counters a real page carries.
fn metrics_page() -> String {
    let mut page = String::with_capacity(8 << 20);
    page.push_str("# HELP traefik_service_open_connections How many open connections exist on a service, partitioned by method and protocol.\n# TYPE traefik_service_open_connections gauge\n");
    for i in 0..NARRATIVES {
        let open = usize::from(i >= IDLE);
        let _ = writeln!(
            page,
            "traefik_service_open_connections{{method=\"GET\",protocol=\"websocket\",service=\"{}_{STACK_NAME}@rancher\"}} {open}",
            name(i)
        );
    }
    page.push_str("# HELP traefik_service_requests_total How many HTTP requests processed on a service, partitioned by status code, protocol, and method.\n# TYPE traefik_service_requests_total counter\n");
    for i in 0..NARRATIVES {
        let _ = writeln!(
            page,
            "traefik_service_requests_total{{code=\"200\",method=\"GET\",protocol=\"http\",service=\"{}_{STACK_NAME}@rancher\"}} {}",
            name(i),
            100 + i
        );
    }
    page
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// The child's CPU time (user + system).
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let ticks = stat
        .rsplit_once(") ")
        .map(|(_, rest)| {
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        })
        .unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / 100.0)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // SIGTERM first: a graceful stop (and a profiler wrapping it writes its report).
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn count(calls: &[String], needle: &str) -> usize {
    calls.iter().filter(|c| c.contains(needle)).count()
}

/// glibc's allocator settings the `traefiker` image sets (Dockerfile): two arenas, and large
/// blocks (a listing's vectors and maps) mapped on their own so they go back when freed.
const IMAGE_MALLOC: [(&str, &str); 2] = [
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_MMAP_THRESHOLD_", "65536"),
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    scenario(
        "as the image runs it (MALLOC_ARENA_MAX=2, MALLOC_MMAP_THRESHOLD_=65536)",
        &IMAGE_MALLOC,
    )
    .await;
    scenario("with glibc's default allocator settings", &[]).await;
}

async fn scenario(label: &str, malloc: &[(&str, &str)]) {
    let fake = FakeRancher::start().await;
    fake.set_page_size(Some(PAGE));
    for i in 0..NARRATIVES {
        fake.add_service(
            &name(i),
            "docker:kbase/narrative:5.4.3",
            Some(&format!("{:032x}", i + 1)),
            "healthy",
        );
    }
    // The fake's stack already holds traefik: others fill it to NARRATIVES + OTHERS.
    for i in 0..OTHERS - 1 {
        fake.add_service(
            &format!("other-{i}"),
            "docker:kbase/other:1",
            None,
            "healthy",
        );
    }
    let in_stack = fake
        .services()
        .iter()
        .filter(|s| s.stack_id == STACK_ID)
        .count();
    let metrics = MockServer::start().await;
    let page = metrics_page();
    println!(
        "reaper at {NARRATIVES} narratives, {label}: {in_stack} services in the stack, metrics page {:.1} MB",
        page.len() as f64 / 1e6
    );
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(page, "text/plain; version=0.0.4"))
        .mount(&metrics)
        .await;

    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("traefiker");
    assert!(
        binary.exists(),
        "{} missing: build it first (cargo build --release -p traefiker-server)",
        binary.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("traefiker-bench-reaper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = fake.config();
    let env: Vec<(&str, String)> = vec![
        ("rancher_url", fake.url()),
        ("rancher_user", "FAKEACCESSKEY".into()),
        ("rancher_password", "fake-secret-key".into()),
        ("rancher_env_url", fake.env_url()),
        ("rancher_stack_id", STACK_ID.into()),
        ("rancher_stack_name", STACK_NAME.into()),
        ("rancher_meta", config.meta_url.clone()),
        ("replica_id", "traefiker-traefiker-1".into()),
        ("traefik_metrics", format!("{}/metrics", metrics.uri())),
        ("traefik_version", "v2".into()),
        ("activity_sources", "traefik".into()),
        ("image_tag", "5.4.3".into()),
        ("num_prespawn", "0".into()),
        ("reaper_timeout_secs", "4".into()),
        ("reaper_interval_secs", "0".into()),
        ("reconcile_interval_secs", "0".into()),
        (
            "sqlite_reaperdb_path",
            dir.join("reaper.db").display().to_string(),
        ),
        ("listen", format!("127.0.0.1:{port}")),
        ("log_level", "ERROR".into()),
    ];
    let mut command = match std::env::var("BENCH_WRAP") {
        Ok(wrap) => {
            let mut words = wrap.split_whitespace();
            let mut c = Command::new(words.next().unwrap_or("env"));
            c.args(words).arg(&binary);
            c
        }
        Err(_) => Command::new(&binary),
    };
    command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .envs(malloc.iter().copied())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = Killed(command.spawn().unwrap());
    let pid = child.0.id();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(120), "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  started and tracking {NARRATIVES} narratives in {:.2} s; RSS {} KiB",
        started.elapsed().as_secs_f64(),
        proc_field(pid, "status", "VmRSS:")
    );
    // The start-up pool fill lists too: let it finish, so a cycle is measured alone.
    tokio::time::sleep(Duration::from_secs(3)).await;

    for (cycle, wait) in [
        ("first cycle (everyone tracked, nobody idle yet)", 0u64),
        ("second cycle (100 idle)", 3),
    ] {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        fake.reset_calls();
        let metric_reads = metrics.received_requests().await.unwrap_or_default().len();
        let cpu_before = cpu(pid);
        let t = Instant::now();
        let answer = client
            .get(format!("{base}/reaper/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let took = t.elapsed();
        let own = cpu(pid) - cpu_before;
        let calls = fake.calls();
        let reads = metrics.received_requests().await.unwrap_or_default().len() - metric_reads;
        println!("  {cycle}: {answer}");
        println!(
            "    {reads} metrics read, {} listing pages (ceil({in_stack}/{PAGE}) = {}), {} zombie queries, {} finds, {} deletes, {} calls in all",
            count(&calls, "GET /v2-beta/projects/1a5/services?"),
            in_stack.div_ceil(PAGE),
            count(&calls, "healthState=started-once"),
            count(&calls, "service?name="),
            count(&calls, "DELETE "),
            calls.len()
        );
        println!(
            "    wall {:.3} s (fakes in this process included), traefiker's own CPU {:.3} s; RSS {} KiB (heap and stacks {} KiB, the binary's pages {} KiB), peak {} KiB",
            took.as_secs_f64(),
            own.as_secs_f64(),
            proc_field(pid, "status", "VmRSS:"),
            proc_field(pid, "status", "RssAnon:"),
            proc_field(pid, "status", "RssFile:"),
            proc_field(pid, "status", "VmHWM:")
        );
    }
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
