//! The PromQL the project ships: every expression of the rules (`deploy/prometheus/`) and of
//! the Grafana dashboard (`deploy/grafana/`), and the metric names each one reads. The
//! observing e2e evaluates them against a real Prometheus; the test below checks every name
//! against what traefiker's `/metrics` and Traefik's metrics really serve.

use std::collections::BTreeSet;
use std::path::PathBuf;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};
use serde_json::Value;

use crate::traefik::workspace_root;

/// The rules file, relative to the workspace root.
pub const RULES: &str = "deploy/prometheus/traefiker.rules.yml";
/// The rules' unit tests.
pub const RULE_TESTS: &str = "deploy/prometheus/tests/traefiker.test.yml";
/// The example Prometheus configuration.
pub const PROMETHEUS_CONFIG: &str = "deploy/prometheus/prometheus.yml";
/// The dashboard.
pub const DASHBOARD: &str = "deploy/grafana/traefiker.json";

/// What an expression is for, which decides what the e2e expects of its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A recording rule: it and the series it records must answer.
    Record,
    /// An alert's condition: empty while all is well, so only its error and its names count.
    Alert,
    /// A dashboard panel's query: a panel must have something to show.
    Panel,
}

/// One expression and where it comes from.
#[derive(Clone, Debug)]
pub struct Query {
    /// Its name: the recorded series, the alert, or the panel's title and the query's ref.
    pub name: String,
    /// What it is for.
    pub kind: Kind,
    /// The PromQL, with Grafana's variables replaced for a plain Prometheus.
    pub expr: String,
}

/// Grafana's variables in the dashboard's queries, and what a plain Prometheus query uses
/// instead.
const GRAFANA_VARIABLES: [(&str, &str); 2] = [("$__rate_interval", "1m"), ("$__interval", "15s")];

fn read(relative: &str) -> Result<String, String> {
    let path: PathBuf = workspace_root().join(relative);
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every rule of [`RULES`].
pub fn rules() -> Result<Vec<Query>, String> {
    rules_in(&read(RULES)?).map_err(|e| format!("{RULES}: {e}"))
}

fn rules_in(text: &str) -> Result<Vec<Query>, String> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let mut out = Vec::new();
    let groups = doc["groups"].as_sequence().ok_or("no groups")?;
    for group in groups {
        for rule in group["rules"]
            .as_sequence()
            .ok_or("a group without rules")?
        {
            let expr = rule["expr"].as_str().ok_or("a rule without expr")?;
            let (name, kind) = match (rule["record"].as_str(), rule["alert"].as_str()) {
                (Some(record), None) => (record, Kind::Record),
                (None, Some(alert)) => (alert, Kind::Alert),
                _ => return Err(format!("a rule that is not one record or alert: {expr}")),
            };
            out.push(Query {
                name: name.to_owned(),
                kind,
                expr: expr.trim().to_owned(),
            });
        }
    }
    Ok(out)
}

/// Every query of every panel of [`DASHBOARD`].
pub fn panels() -> Result<Vec<Query>, String> {
    panels_in(&read(DASHBOARD)?).map_err(|e| format!("{DASHBOARD}: {e}"))
}

fn panels_in(text: &str) -> Result<Vec<Query>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = doc["panels"].as_array().into_iter().flatten().collect();
    while let Some(panel) = stack.pop() {
        // A collapsed row carries its panels inside it.
        stack.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                continue;
            };
            let mut expr = expr.to_owned();
            for (variable, value) in GRAFANA_VARIABLES {
                expr = expr.replace(variable, value);
            }
            if expr.contains('$') {
                return Err(format!(
                    "panel {:?} uses a variable the e2e cannot replace: {expr}",
                    panel["title"]
                ));
            }
            out.push(Query {
                name: format!(
                    "{} ({})",
                    panel["title"].as_str().unwrap_or("untitled"),
                    target["refId"].as_str().unwrap_or("?")
                ),
                kind: Kind::Panel,
                expr,
            });
        }
    }
    out.reverse();
    Ok(out)
}

/// The metric names `expr` reads.
pub fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    struct Names(BTreeSet<String>, Vec<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            let selector = match expr {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            match &selector.name {
                Some(name) => {
                    self.0.insert(name.clone());
                }
                None => self.1.push(selector.to_string()),
            }
            Ok(true)
        }
    }
    let parsed = parser::parse(expr).map_err(|e| format!("{expr}: {e}"))?;
    let mut names = Names(BTreeSet::new(), Vec::new());
    walk_expr(&mut names, &parsed)?;
    match names.1.first() {
        Some(unnamed) => Err(format!(
            "{expr}: the selector {unnamed} names no metric; write the name so it can be checked"
        )),
        None => Ok(names.0),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::path::Path;

    /// The sample names a Prometheus text or OpenMetrics page declares: each family's name from
    /// its `# TYPE` line, with the suffixes its type's samples carry.
    fn served_names(page: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for line in page.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["", "_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                _ => &[""],
            };
            for suffix in suffixes {
                out.insert(format!("{name}{suffix}"));
            }
        }
        out
    }

    /// Traefik's real pages (Traefik 3.7.15, captured) that the activity source is tested on.
    fn traefik_pages() -> Result<Vec<(PathBuf, String)>, String> {
        let dir = workspace_root().join("traefiker-metrics/tests/fixtures/traefik");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let real = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("v3.7-") && n.ends_with(".prom"));
            if real {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                out.push((path, text));
            }
        }
        Ok(out)
    }

    /// Names Prometheus itself gives every target.
    const PROMETHEUS_NAMES: [&str; 1] = ["up"];

    /// `path` relative to the workspace root, for messages.
    fn shown(path: &Path) -> String {
        path.strip_prefix(workspace_root())
            .unwrap_or(path)
            .display()
            .to_string()
    }

    #[test]
    fn names_are_read_from_the_expression_tree() {
        let names = metric_names(
            "sum by (job) (rate(a_total{x=\"y\"}[5m])) / on (job) b > 0 and absent(up{job=\"c\"})",
        )
        .unwrap();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["a_total", "b", "up"]
        );
        assert!(metric_names("{job=\"x\"}").is_err(), "a nameless selector");
        assert!(metric_names("sum(").is_err(), "not PromQL");
    }

    #[test]
    fn a_page_serves_each_family_with_its_types_suffixes() {
        let names =
            served_names("# TYPE c counter\nc_total 1\n# TYPE h histogram\n# TYPE g gauge\ng 1\n");
        for name in ["c", "c_total", "h_bucket", "h_sum", "h_count", "g"] {
            assert!(names.contains(name), "{name} in {names:?}");
        }
        assert!(!names.contains("h"));
    }

    /// Every metric an expression of the rules or the dashboard reads is one traefiker's
    /// `/metrics` serves (all its families are declared from the start), one of Traefik 3.7's
    /// real pages, `up`, or a series a rule records. A renamed metric fails here, not in a
    /// silent alert.
    #[test]
    fn every_name_the_rules_and_the_dashboard_read_is_served() {
        let traefiker = traefiker_server::telemetry::Metrics::new().encode();
        let mut known = served_names(&traefiker);
        assert!(
            known.contains("traefiker_connects_total"),
            "traefiker's page as parsed: {known:?}"
        );
        for (path, page) in traefik_pages().unwrap() {
            let names = served_names(&page);
            assert!(
                names.iter().any(|n| n.starts_with("traefik_")),
                "{} declares no traefik_ family",
                shown(&path)
            );
            known.extend(names);
        }
        known.extend(PROMETHEUS_NAMES.iter().map(|n| (*n).to_owned()));
        let rules = rules().unwrap();
        known.extend(
            rules
                .iter()
                .filter(|q| q.kind == Kind::Record)
                .map(|q| q.name.clone()),
        );
        let panels = panels().unwrap();
        assert!(rules.iter().any(|q| q.kind == Kind::Alert));
        assert!(panels.len() >= 10, "{} dashboard queries", panels.len());
        let mut unknown = Vec::new();
        for query in rules.iter().chain(&panels) {
            for name in metric_names(&query.expr).unwrap() {
                if !known.contains(&name) {
                    unknown.push(format!("{name} (in {})", query.name));
                }
            }
        }
        assert!(
            unknown.is_empty(),
            "metrics neither traefiker nor Traefik serves: {unknown:#?}"
        );
    }
}
