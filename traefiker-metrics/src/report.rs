//! What the operators' `activity` command prints: who traefiker sees as active, idle and
//! unknown on a page, and how it read the page.

use std::fmt;

use traefiker_core::{Activity, ActivitySnapshot};

use crate::page::PageActivity;

/// A snapshot sorted for people, with how the page was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityReport {
    /// `v2` or `v3`, and whether detected or configured.
    pub version: String,
    /// Services seen active.
    pub active: Vec<String>,
    /// Services the page mentions and says are idle.
    pub idle: Vec<String>,
    /// Services it cannot judge (v3: first sight, counter reset).
    pub unknown: Vec<String>,
    /// Sample lines on the page.
    pub samples: usize,
}

impl ActivityReport {
    /// The report of `snapshot`, computed from `page`.
    pub fn new(page: &PageActivity, snapshot: &ActivitySnapshot) -> Self {
        let mut report = Self {
            version: format!(
                "{} ({})",
                page.version,
                if page.detected {
                    "detected from the page"
                } else {
                    "configured"
                }
            ),
            active: Vec::new(),
            idle: Vec::new(),
            unknown: Vec::new(),
            samples: page.samples,
        };
        for (service, activity) in snapshot.iter() {
            let list = match activity {
                Activity::Active => &mut report.active,
                Activity::Idle => &mut report.idle,
                Activity::Unknown => &mut report.unknown,
            };
            list.push(service.to_owned());
        }
        report.active.sort();
        report.idle.sort();
        report.unknown.sort();
        report
    }
}

impl fmt::Display for ActivityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "traefik version: {} ({} samples)",
            self.version, self.samples
        )?;
        for (title, list) in [
            ("active", &self.active),
            ("idle", &self.idle),
            ("unknown", &self.unknown),
        ] {
            writeln!(f, "{title} ({}):", list.len())?;
            for service in list {
                writeln!(f, "  {service}")?;
            }
        }
        if self.version.starts_with("v3") {
            writeln!(
                f,
                "note: Traefik v3 shows activity as counters that moved between two reads; \
                 an open websocket is invisible until it closes (add narrative_status to activity_sources)"
            )?;
        }
        if !self.unknown.is_empty() {
            writeln!(
                f,
                "note: unknown services are never reaped for idleness this cycle"
            )?;
        }
        Ok(())
    }
}
