//! Properties of the parser: no input panics it, and what is written is what is read.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use traefiker_metrics::parse::{Line, Lines};
use traefiker_metrics::{read_page, PageReader, TraefikVersion};

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
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        piece in 1usize..8,
    ) {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            for lines in [Lines::new(text), Lines::reading(text, &["a"])] {
                for line in lines {
                    if let Ok(Line::Sample(s)) = line {
                        for (_, v) in s.labels.iter() {
                            let _ = v.unescape();
                        }
                    }
                }
            }
            let _ = read_page(text, TraefikVersion::Auto);
        }
        let mut reader = PageReader::new(TraefikVersion::Auto);
        if bytes.chunks(piece).all(|chunk| reader.feed(chunk).is_ok()) {
            let _ = reader.finish();
        }
    }

    #[test]
    fn prometheus_looking_noise_never_panics(text in "[a-z_{}=\",\\\\\n \t#0-9.+-]{0,256}") {
        let declared = format!("# TYPE a gauge\n{text}");
        for line in Lines::reading(&declared, &[]) {
            if let Ok(Line::Sample(s)) = line {
                s.labels.iter().for_each(|(_, v)| drop(v.unescape()));
            }
        }
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
        let mut want = traefiker_metrics::ServiceMap::default();
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

    #[test]
    fn reading_returns_what_new_returns_but_the_samples_it_passes_over(
        samples in prop::collection::vec((sample(), 0..FAMILIES.len()), 1..30),
        layout in layout(),
        read in prop::collection::vec(0..FAMILIES.len(), 0..3),
    ) {
        let samples: Vec<GenSample> = samples
            .into_iter()
            .map(|(s, family)| GenSample { name: FAMILIES[family].to_owned(), ..s })
            .collect();
        let page = render(&samples, &layout);
        let read: Vec<&str> = read.iter().map(|i| FAMILIES[*i]).collect();
        let all = numbered(&mut Lines::new(&page));
        let mut lines = Lines::reading(&page, &read);
        let got = numbered(&mut lines);
        for sample in &got {
            prop_assert!(all.contains(sample), "{sample:?} is not what Lines::new read");
        }
        let of_read = |v: &[Numbered]| v.iter().filter(|s| read.contains(&s.1.as_str())).count();
        prop_assert_eq!(of_read(&got), of_read(&all));
        prop_assert_eq!(got.len() + lines.skipped(), all.len());
    }

    #[test]
    fn a_page_read_in_pieces_reads_as_the_whole_page(
        samples in prop::collection::vec(traefik_sample(), 1..30),
        layout in layout(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let page = render(&samples, &layout);
        let whole = read_page(&page, TraefikVersion::Auto).unwrap();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(page.len() + 1)).collect();
        cuts.sort_unstable();
        let mut reader = PageReader::new(TraefikVersion::Auto);
        let mut from = 0;
        for cut in cuts.into_iter().chain([page.len()]) {
            reader.feed(&page.as_bytes()[from..cut]).unwrap();
            from = cut;
        }
        prop_assert_eq!(reader.finish().unwrap(), whole);
    }
}

/// Sample names for pages where families repeat; `fam_a_sum` is not a sample of the counter
/// `fam_a`, so it is read in full even while `fam_a` is passed over.
const FAMILIES: [&str; 3] = ["fam_a", "fam_b", "fam_a_sum"];

/// A sample as the line it is on: number, name, label set, value bits, timestamp.
type Numbered = (usize, String, String, u64, Option<i64>);

fn numbered(lines: &mut Lines<'_>) -> Vec<Numbered> {
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if let Line::Sample(s) = line.unwrap() {
            out.push((
                lines.line_number(),
                s.name.to_owned(),
                s.labels.as_raw().to_owned(),
                s.value.to_bits(),
                s.timestamp,
            ));
        }
    }
    out
}

/// A sample of a family `read_page` reads or passes over, with a service and a protocol, and
/// a whole-number value (sums of whole numbers do not depend on how they are grouped).
fn traefik_sample() -> impl Strategy<Value = GenSample> {
    const NAMES: [&str; 3] = [
        "traefik_service_requests_total",
        "traefik_service_open_connections",
        "traefik_service_server_up",
    ];
    (
        sample(),
        0..NAMES.len(),
        "[a-z\"\\\\@é]{1,6}",
        any::<bool>(),
        0u32..100_000,
    )
        .prop_map(|(s, name, service, websocket, value)| {
            let mut labels = s.labels;
            labels.retain(|(k, _)| k != "service" && k != "protocol");
            labels.push(("service".to_owned(), service));
            labels.push((
                "protocol".to_owned(),
                if websocket { "websocket" } else { "http" }.to_owned(),
            ));
            GenSample {
                name: NAMES[name].to_owned(),
                labels,
                value: f64::from(value),
                ..s
            }
        })
}
