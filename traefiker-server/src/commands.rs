//! What each command of [`crate::cli`] does.

use std::fmt::Write as _;
use std::fs::File;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use traefiker_core::{NarrativeKind, ReapMode, ReapReport};
use traefiker_metrics::{
    read_page_from, MetricsError, PageActivity, PageVersion, TraefikMetricsConfig,
};

use crate::app::{self, Role, StartupError};
use crate::cli::Command;
use crate::config::{Backend, Config};

/// Runs `command` with `config`.
pub async fn run(command: Command, config: Config) -> Result<ExitCode, StartupError> {
    match command {
        Command::Serve => serve(config).await,
        Command::Reap { dry_run } => {
            let local = matches!(config.backend, Backend::Local { .. });
            let (state, _backend) = app::build(config, Role::OneOff).await?;
            let mode = if dry_run {
                ReapMode::DryRun
            } else {
                ReapMode::Apply
            };
            let report = state.reaper.run(mode).await?;
            print!("{}", render_report(&report));
            if local {
                println!("  the local backend's narratives are the serving process's children: this command sees none of them");
            } else if state.lifecycle.peers().is_none() {
                println!("  peers unknown (no orchestrator says which replicas run): other replicas' waiting narratives were kept");
            }
            Ok(if report.activity_error().is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Status { json } => {
            let (state, _backend) = app::build(config, Role::OneOff).await?;
            let entries = state.lifecycle.status();
            if json {
                let prefix = state.config.naming.user_template().prefix();
                let now = chrono::Utc::now();
                let doc: Vec<serde_json::Value> = entries
                    .iter()
                    .map(|e| crate::render::status::describe(e, prefix, now))
                    .collect();
                println!("{}", serde_json::Value::from(doc));
            } else {
                println!(
                    "{:<52} {:<8} {:<10} LAST SEEN (UTC)",
                    "NAME", "KIND", "STATE"
                );
                for e in entries {
                    let kind = match e.narrative.kind {
                        NarrativeKind::User => "user",
                        NarrativeKind::Prespawned => "waiting",
                    };
                    let seen = e
                        .last_seen
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{:<52} {:<8} {:<10} {}",
                        e.narrative.name, kind, e.narrative.state, seen
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { .. } => {
            print!("{}", config.masked());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => Ok(check(&config).await),
        Command::Activity {
            file: Some(path), ..
        } => Ok(activity_file(&config, &path)),
        Command::Activity { url, file: None } => Ok(activity_url(&config, url).await),
        Command::Probe { path } => Ok(probe(&config, &path)),
    }
}

/// `traefiker probe`: whether the server of this configuration answers 200 on `path`.
pub fn probe(config: &Config, path: &str) -> ExitCode {
    let addr = crate::probe::probe_addr(config.listen);
    match crate::probe::probe(addr, path, crate::probe::PROBE_TIMEOUT) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("traefiker: probe failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<ExitCode, StartupError> {
    let listen = config.listen;
    let grace = config.shutdown_grace;
    let (state, backend) = app::build(config, Role::Serve).await?;
    let listener = std::net::TcpListener::bind(listen).map_err(|e| {
        StartupError::Bind(format!(
            "cannot listen on {listen}: {e} (set listen or --listen)"
        ))
    })?;
    tracing::info!(listen = %listen, "traefiker serving");
    let signalled = Arc::new(OnceLock::new());
    let first = {
        let signalled = signalled.clone();
        async move {
            signals().await;
            let _ = signalled.set(tokio::time::Instant::now());
        }
    };
    app::run(listener, state, first)
        .await
        .map_err(|e| StartupError::Bind(e.to_string()))?;
    if let Some(local) = backend.local {
        // What is left of the budget; children still running after it are killed when the
        // manager is dropped, and by their parent-death signal when the process exits.
        let deadline = signalled
            .get()
            .map_or_else(tokio::time::Instant::now, |at| *at + grace);
        match tokio::time::timeout_at(deadline, local.shutdown_all()).await {
            Ok(Ok(n)) => tracing::info!(stopped = n, "local narratives stopped"),
            Ok(Err(e)) => tracing::error!(error = %e, "could not stop every local narrative"),
            Err(_) => tracing::warn!(
                "local narratives still stopping at the end of shutdown_grace_secs: killed"
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C); a second one ends the process at once
/// (SPEC §11), whatever the graceful shutdown is waiting for.
pub fn signals() -> impl Future<Output = ()> {
    let (first, heard) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut signals = Signals::new();
        signals.next().await;
        let _ = first.send(());
        signals.next().await;
        tracing::warn!("a second signal: exiting now, without finishing the shutdown");
        std::process::exit(1);
    });
    async move {
        let _ = heard.await;
    }
}

/// SIGTERM and SIGINT, listened to once for the whole life of the process, so that a signal
/// between two waits is not missed.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            let term = async {
                match &mut self.term {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match &mut self.int {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! { _ = term => {}, _ = int => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The report of a cycle, for people.
pub fn render_report(report: &ReapReport) -> String {
    let names = |v: &[traefiker_core::ServiceName]| {
        v.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
    };
    let verb = if report.mode == ReapMode::DryRun {
        "would remove"
    } else {
        "removed"
    };
    let mut out = format!("{verb} {} narrative(s)\n", report.removed());
    out.push_str(&format!("  idle:    {}\n", names(&report.idle)));
    if !report.idle_quiet.is_empty() {
        out.push_str(&format!(
            "    of which unanswered (quiet for the timeout, their Jupyter not answering): {}\n",
            names(&report.idle_quiet)
        ));
    }
    out.push_str(&format!("  zombies: {}\n", names(&report.zombies)));
    if let Some(e) = report.activity_error() {
        out.push_str(&format!(
            "  activity unavailable (nothing reaped for idleness): {e}\n"
        ));
    }
    for (name, reason) in &report.skipped {
        out.push_str(&format!("  skipped {name}: {reason:?}\n"));
    }
    if !report.duplicates.is_empty() {
        out.push_str(&format!(
            "  duplicate names (remove the extras): {}\n",
            names(&report.duplicates)
        ));
    }
    out.push_str(&format!(
        "  pool: {} created, {} outdated removed, {} excess removed, {} waiting\n",
        report.pool.created,
        report.pool.outdated_removed,
        report.pool.excess_removed,
        report.pool.waiting
    ));
    for f in report.failures.iter().chain(&report.pool.failures) {
        out.push_str(&format!("  failure: {f}\n"));
    }
    out
}

async fn check(config: &Config) -> ExitCode {
    let mut ok = true;
    let mut line = |good: bool, what: &str, detail: String| {
        ok &= good;
        println!("{} {what}: {detail}", if good { "ok  " } else { "FAIL" });
    };
    match app::backend(config).await {
        Ok(built) => match built.manager.list().await {
            Ok(all) => line(true, "backend", format!("{} narratives listed", all.len())),
            Err(e) => line(false, "backend", e.to_string()),
        },
        Err(e) => line(false, "backend", e.to_string()),
    }
    match app::sources(config) {
        Ok(sources) => {
            for s in sources {
                match s.snapshot(&[]).await {
                    Ok(_) => line(true, &format!("activity {}", s.name()), "readable".into()),
                    Err(e) => line(false, &format!("activity {}", s.name()), e.to_string()),
                }
            }
        }
        Err(e) => line(false, "activity", e.to_string()),
    }
    match app::authenticator(config) {
        Ok(auth) => {
            // An invalid token must be rejected by a live auth2; "unreachable" is the failure.
            match auth.validate("traefiker-check-invalid-token").await {
                Err(crate::auth::AuthError::Unreachable { detail, .. }) => {
                    line(false, "auth2", format!("{detail} (check auth2)"))
                }
                _ => line(true, "auth2", "answers".into()),
            }
        }
        Err(e) => line(false, "auth2", e.to_string()),
    }
    match app::image_source(config) {
        Ok(source) => match source.current().await {
            Ok(image) => line(true, "image", image),
            Err(e) => line(false, "image", e),
        },
        Err(e) => line(false, "image", e.to_string()),
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `traefiker activity --file`: reads a saved page as the reaper would read it.
pub fn activity_file(config: &Config, path: &Path) -> ExitCode {
    let page = File::open(path)
        .map_err(MetricsError::Read)
        .and_then(|file| read_page_from(file, config.traefik_version))
        .map_err(|e| format!("{}: {e}", path.display()));
    print_activity(page)
}

async fn activity_url(config: &Config, url: Option<String>) -> ExitCode {
    let mut tc = TraefikMetricsConfig::new(url.unwrap_or_else(|| config.traefik_metrics.clone()));
    tc.version = config.traefik_version;
    tc.connect_timeout = config.timeouts.connect;
    tc.timeout = config.timeouts.metrics;
    let page = match crate::outbound::client(
        tc.connect_timeout,
        tc.timeout,
        config.security.ca_bundle.as_ref(),
    ) {
        Ok(client) => traefiker_metrics::fetch_page(&client, &tc)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    print_activity(page)
}

fn print_activity(page: Result<PageActivity, String>) -> ExitCode {
    match page {
        Ok(page) => {
            // One write: 10,000 services are 10,000 lines.
            let mut out = std::io::stdout().lock();
            match out
                .write_all(render_activity(&page).as_bytes())
                .and_then(|()| out.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                // A closed pipe (`| head`) is not a failure of the read.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("activity: cannot write the report: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("activity unknown: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a metrics page shows, for people.
pub fn render_activity(page: &PageActivity) -> String {
    // One row per service from both maps, merged after sorting rather than looked up per
    // service: a 10,000-narrative page has 20,000 entries.
    let mut rows: Vec<(&str, Option<f64>, Option<f64>)> = page
        .websockets
        .iter()
        .map(|(s, n)| (s.as_str(), Some(*n), None))
        .chain(
            page.requests
                .iter()
                .map(|(s, n)| (s.as_str(), None, Some(*n))),
        )
        .collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    rows.dedup_by(|next, kept| {
        let same = next.0 == kept.0;
        if same {
            kept.1 = kept.1.or(next.1);
            kept.2 = kept.2.or(next.2);
        }
        same
    });
    let mut out = String::with_capacity(100 * (rows.len() + 1));
    let _ = writeln!(
        out,
        "Traefik {} ({}), {} samples",
        page.version,
        if page.detected {
            "detected"
        } else {
            "configured"
        },
        page.samples
    );
    for (s, ws, req) in rows {
        let state = match (page.version, ws) {
            (PageVersion::V2, Some(n)) if n > 0.0 => "ACTIVE",
            (PageVersion::V2, _) => "idle",
            (PageVersion::V3, _) => "see counter (v3: activity = counter moved between reads)",
        };
        out.push_str(s);
        let width = s.chars().count();
        out.extend(std::iter::repeat_n(' ', 56usize.saturating_sub(width)));
        out.push_str(" websockets=");
        count(&mut out, ws);
        out.push_str(" requests=");
        count(&mut out, req);
        out.push(' ');
        out.push_str(state);
        out.push('\n');
    }
    out
}

/// A count as `f64`'s `Display` writes it, or `-` when the page has none.
fn count(out: &mut String, n: Option<f64>) {
    match n {
        // Counts are whole numbers: written as integers, which `Display` writes the same
        // way for these (no sign, below 2^53), without the float formatter.
        Some(n) if n.fract() == 0.0 && n.is_sign_positive() && n < 9e15 => {
            let _ = write!(out, "{}", n as u64);
        }
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push('-'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(version: PageVersion, ws: &[(&str, f64)], req: &[(&str, f64)]) -> PageActivity {
        let map = |v: &[(&str, f64)]| -> traefiker_metrics::ServiceMap {
            v.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
        };
        PageActivity {
            version,
            detected: true,
            websockets: map(ws),
            requests: map(req),
            samples: 7,
        }
    }

    #[test]
    fn renders_one_sorted_line_per_service_of_either_map() {
        let long = "n".repeat(60);
        let rendered = render_activity(&page(
            PageVersion::V2,
            &[("b", 0.0), ("a", 1.0), ("é", 2.5), (&long, 3.0)],
            &[("a", 3.0), ("c", 1e16), ("b", 0.5), ("d", -0.0)],
        ));
        // What `format!` writes: the name padded to 56 characters, counts as `f64` prints.
        let line = |s: &str, ws: &str, req: &str, state: &str| {
            format!("{s:<56} websockets={ws} requests={req} {state}\n")
        };
        let want = [
            "Traefik v2 (detected), 7 samples\n".to_owned(),
            line("a", "1", "3", "ACTIVE"),
            line("b", "0", "0.5", "idle"),
            line("c", "-", &1e16f64.to_string(), "idle"),
            line("d", "-", &(-0.0f64).to_string(), "idle"),
            line(&long, "3", "-", "ACTIVE"),
            line("é", "2.5", "-", "ACTIVE"),
        ]
        .concat();
        assert_eq!(rendered, want);
    }

    #[test]
    fn a_v3_page_says_to_compare_counters() {
        let rendered = render_activity(&page(PageVersion::V3, &[], &[("a", 4.0)]));
        assert!(rendered.ends_with(
            "websockets=- requests=4 see counter (v3: activity = counter moved between reads)\n"
        ));
    }
}
