//! Properties of the parser: no input panics it, and what is written is what is read.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use traefiker_metrics::parse::{Line, Lines};
use traefiker_metrics::{read_page, TraefikVersion};

#[derive(Clone, Debug)]
struct GenSample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp: Option<i64>,
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v:?}")
    }
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        (0u32..100_000).prop_map(f64::from),
    ]
}

fn sample() -> impl Strategy<Value = GenSample> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,30}",
        prop::collection::vec(
            (
                "[a-zA-Z_][a-zA-Z0-9_]{0,12}",
                // Quotes, backslashes, newlines, commas, braces, `=`, unicode.
                "[a-z\"\\\\\n,{}= é@#]{0,16}",
            ),
            0..5,
        ),
        value(),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(name, labels, value, timestamp)| GenSample {
            name,
            labels,
            value,
            timestamp,
        })
}

#[derive(Clone, Debug)]
struct Layout {
    crlf: bool,
    /// Blanks between tokens: " " or "\t" or several.
    blank: &'static str,
    trailing_comma: bool,
    comment_every: usize,
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        any::<bool>(),
        prop_oneof![Just(" "), Just("\t"), Just("  \t")],
        any::<bool>(),
        1usize..5,
    )
        .prop_map(|(crlf, blank, trailing_comma, comment_every)| Layout {
            crlf,
            blank,
            trailing_comma,
            comment_every,
        })
}

fn render(samples: &[GenSample], layout: &Layout) -> String {
    let eol = if layout.crlf { "\r\n" } else { "\n" };
    let mut page = String::new();
    for (i, s) in samples.iter().enumerate() {
        if i % layout.comment_every == 0 {
            page.push_str(&format!("# HELP {} a \\\\ doc{eol}", s.name));
            page.push_str(&format!("# TYPE {} counter{eol}", s.name));
            page.push_str(&format!("# a comment{eol}{eol}"));
        }
        page.push_str(&s.name);
        if !s.labels.is_empty() || i % 2 == 1 {
            let rendered: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            page.push('{');
            page.push_str(&rendered.join(","));
            if layout.trailing_comma && !rendered.is_empty() {
                page.push(',');
            }
            page.push('}');
        }
        page.push_str(layout.blank);
        page.push_str(&render_value(s.value));
        if let Some(ts) = s.timestamp {
            page.push_str(layout.blank);
            page.push_str(&ts.to_string());
        }
        page.push_str(eol);
    }
    page
}

fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            for line in Lines::new(text) {
                if let Ok(Line::Sample(s)) = line {
                    for (_, v) in s.labels.iter() {
                        let _ = v.unescape();
                    }
                }
            }
            let _ = read_page(text, TraefikVersion::Auto);
        }
    }

    #[test]
    fn prometheus_looking_noise_never_panics(text in "[a-z_{}=\",\\\\\n \t#0-9.+-]{0,256}") {
        for line in Lines::new(&text) {
            if let Ok(Line::Sample(s)) = line {
                s.labels.iter().for_each(|(_, v)| drop(v.unescape()));
            }
        }
        let _ = read_page(&text, TraefikVersion::Auto);
    }

    #[test]
    fn generated_pages_parse_back(samples in prop::collection::vec(sample(), 1..20), layout in layout()) {
        let page = render(&samples, &layout);
        let read: Vec<_> = Lines::new(&page)
            .filter_map(|line| match line.unwrap() {
                Line::Sample(s) => Some(s),
                _ => None,
            })
            .collect();
        prop_assert_eq!(read.len(), samples.len());
        for (got, want) in read.iter().zip(&samples) {
            prop_assert_eq!(got.name, want.name.as_str());
            prop_assert!(same_value(got.value, want.value), "{} vs {}", got.value, want.value);
            prop_assert_eq!(got.timestamp, want.timestamp);
            let labels: Vec<(String, String)> = got
                .labels
                .iter()
                .map(|(k, v)| (k.to_owned(), v.unescape().into_owned()))
                .collect();
            prop_assert_eq!(&labels, &want.labels);
            for (k, _) in &want.labels {
                // `get` finds the first of a repeated name, as Prometheus would refuse it anyway.
                let first = want.labels.iter().find(|(n, _)| n == k).map(|(_, v)| v).unwrap();
                prop_assert!(got.labels.get(k).unwrap().eq_str(first));
            }
        }
    }

    #[test]
    fn generated_service_counters_sum_per_service(
        counts in prop::collection::vec(("[a-z]{1,3}", "[a-z\"\\\\]{0,3}", 0u32..1000), 1..30)
    ) {
        let mut page = String::from("# TYPE traefik_service_requests_total counter\n");
        let mut want = std::collections::HashMap::<String, f64>::new();
        for (service, provider_noise, n) in &counts {
            let full = format!("{service}{provider_noise}@file");
            page.push_str(&format!(
                "traefik_service_requests_total{{code=\"200\",service=\"{}\"}} {n}\n",
                escape(&full)
            ));
            let key = full.rsplit_once('@').unwrap().0.to_owned();
            *want.entry(key).or_default() += f64::from(*n);
        }
        let read = read_page(&page, TraefikVersion::Auto).unwrap();
        prop_assert_eq!(read.requests, want);
    }
}
