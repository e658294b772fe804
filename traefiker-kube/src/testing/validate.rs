//! The API server's syntax rules for names, label keys and label values (apimachinery's
//! `validation` package), which the fake enforces on every write as the real one does.

/// A DNS-1123 subdomain (object names of pods and leases): at most 253 characters of
/// lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit.
pub(crate) fn dns_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("must be no more than 253 characters and not empty".into());
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'));
    if !ok || !alnum_ends(name, |b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

/// A DNS-1123 label (container names): at most 63 lowercase letters, digits and `-`.
pub(crate) fn dns_label(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err("must be no more than 63 characters and not empty".into());
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok || !alnum_ends(name, |b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric \
                    characters or '-', and must start and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of letters, digits, `-`, `_` and `.`,
/// starting and ending with a letter or digit.
pub(crate) fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    qualified_part(value)
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name part as for values
/// (not empty).
pub(crate) fn label_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            dns_subdomain(prefix).map_err(|e| format!("prefix part {e}"))?;
            name
        }
        None => key,
    };
    if name.is_empty() || name.len() > 63 {
        return Err("name part must be no more than 63 characters and not empty".into());
    }
    qualified_part(name)
}

fn qualified_part(s: &str) -> Result<(), String> {
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok || !alnum_ends(s, |b| b.is_ascii_alphanumeric()) {
        return Err(
            "must consist of alphanumeric characters, '-', '_' or '.', and must start \
                    and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

fn alnum_ends(s: &str, alnum: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(|&c| alnum(c)) && b.last().is_some_and(|&c| alnum(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_values_follow_apimachinery() {
        assert!(dns_subdomain("narrative-alice-522b27").is_ok());
        assert!(dns_subdomain("a.b-c").is_ok());
        assert!(dns_subdomain("Narrative").is_err());
        assert!(dns_subdomain("-a").is_err());
        assert!(dns_subdomain("a_b").is_err());
        assert!(dns_subdomain(&"a".repeat(254)).is_err());
        assert!(dns_label("narrative").is_ok());
        assert!(dns_label("a.b").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("Narrative_pre-1.2").is_ok());
        assert!(label_value(&"a".repeat(63)).is_ok());
        assert!(label_value(&"a".repeat(64)).is_err());
        assert!(label_value("has space").is_err());
        assert!(label_value("trailing-").is_err());
        assert!(label_key("traefiker.owner").is_ok());
        assert!(label_key("app.kubernetes.io/name").is_ok());
        assert!(label_key("Bad_Prefix/name").is_err());
        assert!(label_key("").is_err());
        assert!(label_key("traefik.http.routers.x.rule").is_ok());
    }
}
