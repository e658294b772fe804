//! Label selectors as the API server reads them in `?labelSelector=`: equality (`k=v`,
//! `k==v`, `k!=v`), sets (`k in (a,b)`, `k notin (a,b)`) and existence (`k`, `!k`), joined by
//! commas that all must hold.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::validate;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed selector: every requirement must hold (the empty selector selects everything).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Selector(Vec<Requirement>);

impl Selector {
    /// Parses `text`, or says why the API server would answer 400.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for term in split_terms(text)? {
            let term = term.trim();
            if term.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(format!("found ',', expected: identifier in {text:?}"));
            }
            out.push(requirement(term)?);
        }
        Ok(Self(out))
    }

    /// Whether `labels` (a JSON object of strings, or absent) satisfy every requirement.
    pub(crate) fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Splits on the commas outside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(format!("unbalanced parentheses in {text:?}"));
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in {text:?}"));
    }
    terms.push(&text[start..]);
    Ok(terms)
}

fn requirement(term: &str) -> Result<Requirement, String> {
    let key = |k: &str| -> Result<String, String> {
        let k = k.trim();
        validate::label_key(k).map_err(|e| format!("invalid label key {k:?}: {e}"))?;
        Ok(k.to_owned())
    };
    let value = |v: &str| -> Result<String, String> {
        let v = v.trim();
        validate::label_value(v).map_err(|e| format!("invalid label value {v:?}: {e}"))?;
        Ok(v.to_owned())
    };
    if let Some(k) = term.strip_prefix('!') {
        return Ok(Requirement::NotExists(key(k)?));
    }
    for (op, set) in [(" notin ", false), (" in ", true)] {
        if let Some((k, rest)) = term.split_once(op) {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("expected a parenthesised set in {term:?}"))?;
            let values = inner
                .split(',')
                .map(value)
                .collect::<Result<BTreeSet<_>, _>>()?;
            return Ok(if set {
                Requirement::In(key(k)?, values)
            } else {
                Requirement::NotIn(key(k)?, values)
            });
        }
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(key(k)?, value(v)?));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(key(k)?, value(v)?));
    }
    Ok(Requirement::Exists(key(term)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn check(selector: &str, labels: Value, expected: bool) {
        let s = Selector::parse(selector).unwrap();
        assert_eq!(
            s.matches(labels.as_object()),
            expected,
            "{selector} on {labels}"
        );
    }

    #[test]
    fn every_operator_selects_as_the_api_server_does() {
        let l = json!({"app": "narrative", "tier": "web"});
        check("", l.clone(), true);
        check("app=narrative", l.clone(), true);
        check("app==narrative", l.clone(), true);
        check("app=other", l.clone(), false);
        check("app!=other", l.clone(), true);
        check("missing!=x", l.clone(), true);
        check("app in (narrative, other)", l.clone(), true);
        check("app notin (narrative)", l.clone(), false);
        check("missing notin (x)", l.clone(), true);
        check("app", l.clone(), true);
        check("!app", l.clone(), false);
        check("!missing", l.clone(), true);
        check("app=narrative,tier=web", l.clone(), true);
        check("app=narrative,tier=db", l.clone(), false);
        check(
            "app.kubernetes.io/name=narrative",
            json!({"app.kubernetes.io/name": "narrative"}),
            true,
        );
        check("app=narrative", Value::Null, false);
    }

    #[test]
    fn malformed_selectors_are_refused() {
        for bad in [
            "=x",
            "app in x",
            "app in (a",
            "a b=c",
            "app=narrative,",
            "-a=b",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad} must be refused");
        }
    }
}
