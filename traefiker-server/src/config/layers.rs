//! The raw layers the configuration is merged from: defaults, the environment, a TOML file
//! and `--set` flags, each as strings by key.

use std::collections::BTreeMap;
use std::path::Path;

use super::keys::KEYS;

/// Raw values by key, as each source gives them.
pub type Layer = BTreeMap<String, String>;

/// The defaults layer.
pub fn defaults() -> Layer {
    KEYS.iter()
        .filter_map(|k| k.default.map(|d| (k.name.to_owned(), d.to_owned())))
        .collect()
}

/// The environment layer: keys of exactly their name, plus every `NARRENV_*`.
pub fn from_env<I: IntoIterator<Item = (String, String)>>(vars: I) -> Layer {
    vars.into_iter()
        .filter(|(k, _)| k.starts_with("NARRENV_") || KEYS.iter().any(|key| key.name == k))
        .collect()
}

/// The file layer: a TOML table of keys (strings, numbers, booleans, or arrays for lists).
pub fn from_toml(path: &Path) -> Result<Layer, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("config file {}: {e}", path.display())])?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| vec![format!("config file {}: {e}", path.display())])?;
    let mut layer = Layer::new();
    let mut problems = Vec::new();
    for (k, v) in table {
        if !KEYS.iter().any(|key| key.name == k) && !k.starts_with("NARRENV_") {
            problems.push(format!("config file {}: unknown key {k:?}", path.display()));
            continue;
        }
        let text = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) if k == "local_command" => serde_json::Value::from(
                items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>(),
            )
            .to_string(),
            // Windows contain commas (day lists): an array of windows joins with `;`.
            toml::Value::Array(items) if k == "pool_schedule" => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| i.to_string())
                })
                .collect::<Vec<_>>()
                .join("; "),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => {
                problems.push(format!(
                    "{k}: unsupported value {other} in {}",
                    path.display()
                ));
                continue;
            }
        };
        layer.insert(k, text);
    }
    if problems.is_empty() {
        Ok(layer)
    } else {
        Err(problems)
    }
}

/// Parses `KEY=VALUE` flags into a layer.
pub fn from_flags(sets: &[String]) -> Result<Layer, Vec<String>> {
    let mut layer = Layer::new();
    let mut problems = Vec::new();
    for set in sets {
        match set.split_once('=') {
            Some((k, v)) if KEYS.iter().any(|key| key.name == k) || k.starts_with("NARRENV_") => {
                layer.insert(k.to_owned(), v.to_owned());
            }
            _ => problems.push(format!(
                "--set {set:?}: expected KEY=VALUE with a known key"
            )),
        }
    }
    if problems.is_empty() {
        Ok(layer)
    } else {
        Err(problems)
    }
}
