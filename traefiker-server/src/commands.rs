//! What each command of [`crate::cli`] does.

use std::process::ExitCode;

use traefiker_core::{NarrativeKind, ReapMode, ReapReport};
use traefiker_metrics::{read_page, PageActivity, TraefikMetricsConfig};

use crate::app::{self, StartupError};
use crate::cli::Command;
use crate::config::Config;

/// Runs `command` with `config`.
pub async fn run(command: Command, config: Config) -> Result<ExitCode, StartupError> {
    match command {
        Command::Serve => serve(config).await,
        Command::Reap { dry_run } => {
            let (state, _backend) = app::build(config).await?;
            let mode = if dry_run {
                ReapMode::DryRun
            } else {
                ReapMode::Apply
            };
            let report = state.reaper.run(mode).await?;
            print!("{}", render_report(&report));
            Ok(if report.activity_error().is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Status { json } => {
            let (state, _backend) = app::build(config).await?;
            let entries = state.lifecycle.status();
            if json {
                let prefix = state.config.naming.user_template().prefix();
                let now = chrono::Utc::now();
                let doc: Vec<serde_json::Value> = entries
                    .iter()
                    .map(|e| crate::routes::status::describe(e, prefix, now))
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
        Command::Activity { url, file } => Ok(activity(&config, url, file).await),
    }
}

async fn serve(config: Config) -> Result<ExitCode, StartupError> {
    let listen = config.listen;
    let (state, backend) = app::build(config).await?;
    let listener = std::net::TcpListener::bind(listen).map_err(|e| {
        StartupError::Bind(format!(
            "cannot listen on {listen}: {e} (set listen or --listen)"
        ))
    })?;
    tracing::info!(listen = %listen, "traefiker serving");
    app::run(listener, state, shutdown_signal())
        .await
        .map_err(|e| StartupError::Bind(e.to_string()))?;
    if let Some(local) = backend.local {
        match local.shutdown_all().await {
            Ok(n) => tracing::info!(stopped = n, "local narratives stopped"),
            Err(e) => tracing::error!(error = %e, "could not stop every local narrative"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
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

async fn activity(
    config: &Config,
    url: Option<String>,
    file: Option<std::path::PathBuf>,
) -> ExitCode {
    let page: Result<PageActivity, String> = match (url, file) {
        (_, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|body| read_page(&body, config.traefik_version).map_err(|e| e.to_string())),
        (url, None) => {
            let mut tc =
                TraefikMetricsConfig::new(url.unwrap_or_else(|| config.traefik_metrics.clone()));
            tc.version = config.traefik_version;
            tc.connect_timeout = config.timeouts.connect;
            tc.timeout = config.timeouts.metrics;
            match crate::outbound::client(
                tc.connect_timeout,
                tc.timeout,
                config.security.ca_bundle.as_ref(),
            ) {
                Ok(client) => traefiker_metrics::fetch_page(&client, &tc)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    match page {
        Ok(page) => {
            print!("{}", render_activity(&page));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("activity unknown: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a metrics page shows, for people.
pub fn render_activity(page: &PageActivity) -> String {
    let mut out = format!(
        "Traefik {} ({}), {} samples\n",
        page.version,
        if page.detected {
            "detected"
        } else {
            "configured"
        },
        page.samples
    );
    let mut services: Vec<&String> = page.websockets.keys().chain(page.requests.keys()).collect();
    services.sort();
    services.dedup();
    for s in services {
        let ws = page.websockets.get(s).copied();
        let req = page.requests.get(s).copied();
        let state = match (page.version, ws) {
            (traefiker_metrics::PageVersion::V2, Some(n)) if n > 0.0 => "ACTIVE",
            (traefiker_metrics::PageVersion::V2, _) => "idle",
            (traefiker_metrics::PageVersion::V3, _) => {
                "see counter (v3: activity = counter moved between reads)"
            }
        };
        out.push_str(&format!(
            "{s:<56} websockets={} requests={} {state}\n",
            ws.map_or("-".into(), |n| n.to_string()),
            req.map_or("-".into(), |n| n.to_string())
        ));
    }
    out
}
