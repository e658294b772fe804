//! Reading typed values out of the merged raw strings, collecting one problem line per key.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub(super) fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) struct Reader<'a> {
    pub(super) raw: &'a BTreeMap<String, String>,
    pub(super) problems: Vec<String>,
}

impl Reader<'_> {
    pub(super) fn opt(&self, key: &str) -> Option<String> {
        self.raw
            .get(key)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    pub(super) fn string(&self, key: &str) -> String {
        self.opt(key).unwrap_or_default()
    }

    pub(super) fn parse<T: FromStr>(&mut self, key: &str, fallback: T) -> T
    where
        T::Err: fmt::Display,
    {
        let text = self.string(key);
        match text.parse() {
            Ok(v) => v,
            Err(e) => {
                self.problems.push(format!("{key}: {e} (got {text:?})"));
                fallback
            }
        }
    }

    pub(super) fn secs(&mut self, key: &str) -> Duration {
        Duration::from_secs(self.parse::<u64>(key, 0))
    }

    pub(super) fn url(&mut self, key: &str) -> String {
        let text = self.string(key);
        if !(text.starts_with("http://") || text.starts_with("https://")) || text.len() < 8 {
            self.problems
                .push(format!("{key}: {text:?} is not an http:// or https:// URL"));
        }
        text
    }

    pub(super) fn opt_url(&mut self, key: &str) -> Option<String> {
        self.opt(key)?;
        Some(self.url(key))
    }

    pub(super) fn boolean(&mut self, key: &str) -> bool {
        match self.string(key).to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            other => {
                self.problems
                    .push(format!("{key}: {other:?} is not true or false"));
                true
            }
        }
    }
}
