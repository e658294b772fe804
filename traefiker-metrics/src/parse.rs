//! The Prometheus text exposition format (version 0.0.4), read without copying.
//!
//! [`Lines`] walks a page line by line and hands out borrowed slices of it: a sample's name,
//! its label set and label values are `&str` into the page, and nothing is allocated per
//! line. A label value is only unescaped (one allocation) when it contains an escape and the
//! caller asks for it with [`LabelValue::unescape`].
//!
//! Every line is checked, not only those a caller wants: a page that is not Prometheus text
//! (an HTML error page, a truncated body) must fail, never read as "nobody is active".
//!
//! The grammar accepted is the one of Prometheus' own text parser: `# HELP name doc`,
//! `# TYPE name kind`, other `#` lines are comments, blank lines are skipped, and a sample is
//! `name[{label="value",...}] value [timestamp]` with blanks (spaces, tabs) between tokens, an
//! optional trailing comma in the label set, `\\`, `\"` and `\n` escapes in label values, and
//! `NaN`, `+Inf`, `-Inf` as values. A line may end in CRLF.

use std::borrow::Cow;

use memchr::memchr;

/// The type a `# TYPE` line declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `summary`
    Summary,
    /// `untyped`
    Untyped,
}

impl MetricType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "summary" => Self::Summary,
            "untyped" => Self::Untyped,
            _ => return None,
        })
    }
}

/// One line of a page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Line<'a> {
    /// Empty or only blanks.
    Blank,
    /// A `#` line that is neither `HELP` nor `TYPE`; the text after `#`.
    Comment(&'a str),
    /// `# HELP name doc`; `doc` is still escaped (`\\`, `\n`).
    Help {
        /// The metric family.
        name: &'a str,
        /// Its documentation, as written.
        doc: &'a str,
    },
    /// `# TYPE name kind`.
    Type {
        /// The metric family.
        name: &'a str,
        /// What it declares.
        kind: MetricType,
    },
    /// A sample.
    Sample(Sample<'a>),
}

/// One sample line: `name{labels} value [timestamp]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample<'a> {
    /// The metric name, e.g. `traefik_service_requests_total`.
    pub name: &'a str,
    /// Its labels (possibly none).
    pub labels: Labels<'a>,
    /// The value; may be NaN or infinite.
    pub value: f64,
    /// Milliseconds since the epoch, if the line has one.
    pub timestamp: Option<i64>,
}

/// A sample's label set, already checked; iterating it cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Labels<'a> {
    /// The text after `{`, up to and including the closing `}`; empty when there are no
    /// labels.
    raw: &'a str,
}

impl<'a> Labels<'a> {
    /// The label set as written, without braces.
    pub fn as_raw(&self) -> &'a str {
        self.raw.strip_suffix('}').unwrap_or(self.raw)
    }

    /// The labels in page order.
    pub fn iter(&self) -> LabelIter<'a> {
        LabelIter {
            raw: self.raw,
            pos: 0,
        }
    }

    /// The value of the first label called `name`.
    pub fn get(&self, name: &str) -> Option<LabelValue<'a>> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Iterator over a checked label set.
#[derive(Clone, Debug)]
pub struct LabelIter<'a> {
    raw: &'a str,
    pos: usize,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, LabelValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        // The set was checked when the line was read, so an error here cannot happen; ending
        // the iteration is the no-panic answer if it ever did.
        match next_label(self.raw.as_bytes(), self.pos) {
            Ok(Some(found)) => {
                self.pos = found.next;
                let name = self.raw.get(found.name.0..found.name.1)?;
                let raw = self.raw.get(found.value.0..found.value.1)?;
                Some((
                    name,
                    LabelValue {
                        raw,
                        escaped: found.escaped,
                    },
                ))
            }
            Ok(None) | Err(_) => None,
        }
    }
}

/// A label value as written between its quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelValue<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> LabelValue<'a> {
    /// The value as written, escapes included.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether it contains an escape sequence.
    pub fn has_escapes(&self) -> bool {
        self.escaped
    }

    /// The value with `\\`, `\"` and `\n` resolved; borrowed unless it has escapes.
    pub fn unescape(&self) -> Cow<'a, str> {
        if !self.escaped {
            return Cow::Borrowed(self.raw);
        }
        let mut out = String::with_capacity(self.raw.len());
        let mut chars = self.raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        }
        Cow::Owned(out)
    }

    /// Whether the unescaped value equals `s`, without allocating when there is no escape.
    pub fn eq_str(&self, s: &str) -> bool {
        if self.escaped {
            self.unescape() == s
        } else {
            self.raw == s
        }
    }
}

/// Why a page is not Prometheus text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub kind: ParseErrorKind,
}

/// What is wrong with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A sample or `HELP`/`TYPE` line does not start with a valid metric name.
    #[error("expected a metric name")]
    MetricName,
    /// A label name is missing or has a character outside `[a-zA-Z0-9_]`.
    #[error("expected a label name")]
    LabelName,
    /// A label name is not followed by `=`.
    #[error("expected '=' after a label name")]
    Equals,
    /// A label's `=` is not followed by `"`.
    #[error("expected '\"' to open a label value")]
    OpenQuote,
    /// A label value has no closing quote on its line.
    #[error("unterminated label value")]
    UnterminatedValue,
    /// A backslash in a label value is not followed by `\`, `"` or `n`.
    #[error("invalid escape sequence in a label value")]
    Escape,
    /// After a label value comes neither `,` nor `}`.
    #[error("expected ',' or '}}' after a label value")]
    CommaOrBrace,
    /// The label set has no closing brace on its line.
    #[error("unterminated label set")]
    UnterminatedLabels,
    /// The sample has no value.
    #[error("missing sample value")]
    MissingValue,
    /// The value is not a float.
    #[error("invalid sample value")]
    Value,
    /// The timestamp is not an integer.
    #[error("invalid timestamp")]
    Timestamp,
    /// Something follows the timestamp.
    #[error("unexpected text after the timestamp")]
    Trailing,
    /// A `# TYPE` line has an unknown or missing type.
    #[error("invalid metric type in a TYPE line")]
    Type,
}

/// The lines of a page, parsed one by one. It stops after the first error.
#[derive(Clone, Debug)]
pub struct Lines<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    failed: bool,
}

impl<'a> Lines<'a> {
    /// The lines of `text`.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            line: 0,
            failed: false,
        }
    }

    /// The 1-based number of the line last returned.
    pub fn line_number(&self) -> usize {
        self.line
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<Line<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.text.len() {
            return None;
        }
        let rest = self.text.get(self.pos..)?;
        let (line, advance) = match memchr(b'\n', rest.as_bytes()) {
            Some(end) => (rest.get(..end)?, end + 1),
            None => (rest, rest.len()),
        };
        self.pos += advance;
        self.line += 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let parsed = parse_line(line).map_err(|kind| ParseError {
            line: self.line,
            kind,
        });
        if parsed.is_err() {
            self.failed = true;
        }
        Some(parsed)
    }
}

/// Parses one line (without its line ending).
pub fn parse_line(line: &str) -> Result<Line<'_>, ParseErrorKind> {
    let b = line.as_bytes();
    match b.first() {
        None => Ok(Line::Blank),
        Some(b'#') => parse_comment(line),
        Some(c) if is_name_start(*c) => parse_sample(line).map(Line::Sample),
        Some(_) => {
            if b.iter().all(|c| is_blank(*c)) {
                Ok(Line::Blank)
            } else {
                let start = skip_blanks(b, 0);
                if start > 0 && b[start..].first().is_some_and(|c| *c == b'#') {
                    parse_comment(line.get(start..).ok_or(ParseErrorKind::MetricName)?)
                } else if start > 0 {
                    parse_sample(line.get(start..).ok_or(ParseErrorKind::MetricName)?)
                        .map(Line::Sample)
                } else {
                    Err(ParseErrorKind::MetricName)
                }
            }
        }
    }
}

fn parse_comment(line: &str) -> Result<Line<'_>, ParseErrorKind> {
    let b = line.as_bytes();
    let start = skip_blanks(b, 1);
    let word_end = scan_while(b, start, |c| !is_blank(c));
    let word = line.get(start..word_end).unwrap_or("");
    if word != "HELP" && word != "TYPE" {
        return Ok(Line::Comment(line.get(1..).unwrap_or("")));
    }
    let name_start = skip_blanks(b, word_end);
    if name_start == word_end {
        // `# HELP` alone, or `# HELPX`: Prometheus reads these as plain comments.
        return Ok(Line::Comment(line.get(1..).unwrap_or("")));
    }
    let name_end = scan_metric_name(b, name_start)?;
    let name = line
        .get(name_start..name_end)
        .ok_or(ParseErrorKind::MetricName)?;
    if name_end < b.len() && !is_blank(b[name_end]) {
        return Err(ParseErrorKind::MetricName);
    }
    let after = skip_blanks(b, name_end);
    let rest = line.get(after..).unwrap_or("");
    if word == "HELP" {
        return Ok(Line::Help { name, doc: rest });
    }
    let kind = MetricType::parse(rest.trim_end_matches([' ', '\t'])).ok_or(ParseErrorKind::Type)?;
    Ok(Line::Type { name, kind })
}

fn parse_sample(line: &str) -> Result<Sample<'_>, ParseErrorKind> {
    let b = line.as_bytes();
    let name_end = scan_metric_name(b, 0)?;
    let name = line.get(..name_end).ok_or(ParseErrorKind::MetricName)?;
    let mut i = skip_blanks(b, name_end);
    let mut labels = Labels::default();
    if b.get(i) == Some(&b'{') {
        let start = i + 1;
        let end = scan_label_set(b, start)?;
        labels.raw = line
            .get(start..end)
            .ok_or(ParseErrorKind::UnterminatedLabels)?;
        i = skip_blanks(b, end);
    } else if i == name_end && i < b.len() {
        // A character that is neither a name character, a blank nor `{`.
        return Err(ParseErrorKind::MetricName);
    }
    let value_end = scan_while(b, i, |c| !is_blank(c));
    if value_end == i {
        return Err(ParseErrorKind::MissingValue);
    }
    let value = parse_value(line.get(i..value_end).ok_or(ParseErrorKind::Value)?)?;
    let ts_start = skip_blanks(b, value_end);
    let mut timestamp = None;
    if ts_start < b.len() {
        let ts_end = scan_while(b, ts_start, |c| !is_blank(c));
        let ts = line
            .get(ts_start..ts_end)
            .ok_or(ParseErrorKind::Timestamp)?;
        timestamp = Some(ts.parse::<i64>().map_err(|_| ParseErrorKind::Timestamp)?);
        if skip_blanks(b, ts_end) < b.len() {
            return Err(ParseErrorKind::Trailing);
        }
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp,
    })
}

fn parse_value(s: &str) -> Result<f64, ParseErrorKind> {
    // Most values are small counts: read up to 15 digits exactly (below 2^53) without the
    // general float parser.
    let b = s.as_bytes();
    if b.len() <= 15 && b.iter().all(u8::is_ascii_digit) && !b.is_empty() {
        let n = b.iter().fold(0u64, |n, c| n * 10 + u64::from(c - b'0'));
        return Ok(n as f64);
    }
    // Rust's float syntax is Go's minus hex floats and underscores, which Prometheus
    // exporters do not write; it accepts `NaN`, `+Inf`, `-Inf` in any case, as Go does.
    s.parse::<f64>().map_err(|_| ParseErrorKind::Value)
}

/// Where a label set that starts at `i` (just after `{`) ends: the index after its `}`.
fn scan_label_set(b: &[u8], mut i: usize) -> Result<usize, ParseErrorKind> {
    loop {
        match next_label(b, i)? {
            Some(found) => i = found.next,
            None => {
                // `next_label` stopped at the closing brace.
                let close = skip_blanks(b, i);
                return Ok(close + 1);
            }
        }
    }
}

struct FoundLabel {
    name: (usize, usize),
    value: (usize, usize),
    escaped: bool,
    /// Where the next label (or the closing brace) starts.
    next: usize,
}

/// The label at `i` in a label set, or `None` at the closing brace.
fn next_label(b: &[u8], i: usize) -> Result<Option<FoundLabel>, ParseErrorKind> {
    let mut i = skip_blanks(b, i);
    match b.get(i) {
        None => return Err(ParseErrorKind::UnterminatedLabels),
        Some(b'}') => return Ok(None),
        Some(c) if is_label_start(*c) => {}
        Some(_) => return Err(ParseErrorKind::LabelName),
    }
    let name_start = i;
    i = scan_while(b, i + 1, is_label_char);
    let name = (name_start, i);
    i = skip_blanks(b, i);
    if b.get(i) != Some(&b'=') {
        return Err(ParseErrorKind::Equals);
    }
    i = skip_blanks(b, i + 1);
    if b.get(i) != Some(&b'"') {
        return Err(ParseErrorKind::OpenQuote);
    }
    i += 1;
    let value_start = i;
    let mut escaped = false;
    let value_end = loop {
        i = find_quote_or_backslash(b, i).ok_or(ParseErrorKind::UnterminatedValue)?;
        if b[i] == b'"' {
            break i;
        }
        match b.get(i + 1) {
            Some(b'\\' | b'"' | b'n') => {
                escaped = true;
                i += 2;
            }
            _ => return Err(ParseErrorKind::Escape),
        }
    };
    i = skip_blanks(b, value_end + 1);
    match b.get(i) {
        Some(b',') => i += 1,
        Some(b'}') => {}
        None => return Err(ParseErrorKind::UnterminatedLabels),
        Some(_) => return Err(ParseErrorKind::CommaOrBrace),
    }
    Ok(Some(FoundLabel {
        name,
        value: (value_start, value_end),
        escaped,
        next: i,
    }))
}

fn scan_metric_name(b: &[u8], start: usize) -> Result<usize, ParseErrorKind> {
    match b.get(start) {
        Some(c) if is_name_start(*c) => Ok(scan_while(b, start + 1, is_name_char)),
        _ => Err(ParseErrorKind::MetricName),
    }
}

#[inline]
fn scan_while(b: &[u8], mut i: usize, keep: impl Fn(u8) -> bool) -> usize {
    while i < b.len() && keep(b[i]) {
        i += 1;
    }
    i
}

#[inline]
fn skip_blanks(b: &[u8], i: usize) -> usize {
    scan_while(b, i, is_blank)
}

/// The first `"` or `\\` at or after `i`. Label values are short (5–60 bytes), where
/// eight bytes at a time beats `memchr2`'s per-call set-up; found by the classic "has zero
/// byte" test on the word XORed with each needle (its lowest hit is exact).
#[inline]
fn find_quote_or_backslash(b: &[u8], mut i: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const QUOTE: u64 = LO * b'"' as u64;
    const BACKSLASH: u64 = LO * b'\\' as u64;
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(bytes);
        let q = word ^ QUOTE;
        let s = word ^ BACKSLASH;
        let hits = (q.wrapping_sub(LO) & !q & HI) | (s.wrapping_sub(LO) & !s & HI);
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while i < b.len() {
        if b[i] == b'"' || b[i] == b'\\' {
            return Some(i);
        }
        i += 1;
    }
    None
}

const BLANK: u8 = 1;
const NAME_START: u8 = 2;
const NAME: u8 = 4;
const LABEL_START: u8 = 8;
const LABEL: u8 = 16;

/// Character classes by byte: one load instead of a chain of comparisons in the hot loops.
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic();
        let digit = b.is_ascii_digit();
        let mut class = 0;
        if b == b' ' || b == b'\t' {
            class |= BLANK;
        }
        if alpha || b == b'_' || b == b':' {
            class |= NAME_START | NAME;
        }
        if digit {
            class |= NAME | LABEL;
        }
        if alpha || b == b'_' {
            class |= LABEL_START | LABEL;
        }
        table[c] = class;
        c += 1;
    }
    table
};

#[inline]
fn is_blank(c: u8) -> bool {
    CLASS[c as usize] & BLANK != 0
}

#[inline]
fn is_name_start(c: u8) -> bool {
    CLASS[c as usize] & NAME_START != 0
}

#[inline]
fn is_name_char(c: u8) -> bool {
    CLASS[c as usize] & NAME != 0
}

#[inline]
fn is_label_start(c: u8) -> bool {
    CLASS[c as usize] & LABEL_START != 0
}

#[inline]
fn is_label_char(c: u8) -> bool {
    CLASS[c as usize] & LABEL != 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample(line: &str) -> Sample<'_> {
        match parse_line(line).unwrap() {
            Line::Sample(s) => s,
            other => panic!("not a sample: {other:?}"),
        }
    }

    fn labels<'a>(s: &Sample<'a>) -> Vec<(&'a str, String)> {
        s.labels
            .iter()
            .map(|(n, v)| (n, v.unescape().into_owned()))
            .collect()
    }

    #[test]
    fn reads_a_plain_sample() {
        let s = sample("go_goroutines 187");
        assert_eq!(s.name, "go_goroutines");
        assert_eq!(s.value, 187.0);
        assert_eq!(s.timestamp, None);
        assert_eq!(s.labels.iter().count(), 0);
    }

    #[test]
    fn reads_labels_with_escapes_commas_and_braces_in_quotes() {
        let s = sample(r#"m{a="x,y}z",b="q\"uo\\te\nnl" , c = "" ,} 1.5e3 1700000000000"#);
        assert_eq!(
            labels(&s),
            vec![
                ("a", "x,y}z".to_owned()),
                ("b", "q\"uo\\te\nnl".to_owned()),
                ("c", String::new())
            ]
        );
        assert_eq!(s.value, 1500.0);
        assert_eq!(s.timestamp, Some(1_700_000_000_000));
        assert!(s.labels.get("b").unwrap().has_escapes());
        assert!(s.labels.get("b").unwrap().eq_str("q\"uo\\te\nnl"));
        assert!(!s.labels.get("a").unwrap().has_escapes());
    }

    #[test]
    fn reads_special_values() {
        assert!(sample("m NaN").value.is_nan());
        assert_eq!(sample("m +Inf").value, f64::INFINITY);
        assert_eq!(sample("m -Inf").value, f64::NEG_INFINITY);
        assert_eq!(sample("m{le=\"+Inf\"}\t3 -5").timestamp, Some(-5));
    }

    #[test]
    fn reads_help_type_comments_and_blanks() {
        assert_eq!(
            parse_line("# TYPE traefik_x counter").unwrap(),
            Line::Type {
                name: "traefik_x",
                kind: MetricType::Counter
            }
        );
        assert_eq!(
            parse_line("# HELP traefik_x Some \\n doc").unwrap(),
            Line::Help {
                name: "traefik_x",
                doc: "Some \\n doc"
            }
        );
        assert_eq!(
            parse_line("# just a comment").unwrap(),
            Line::Comment(" just a comment")
        );
        assert_eq!(parse_line("").unwrap(), Line::Blank);
        assert_eq!(parse_line("  \t").unwrap(), Line::Blank);
    }

    #[test]
    fn finds_quotes_and_backslashes_at_every_offset() {
        for len in 0..40 {
            for at in 0..len {
                for needle in [b'"', b'\\'] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = needle;
                    for start in 0..=at {
                        assert_eq!(find_quote_or_backslash(&bytes, start), Some(at));
                    }
                    assert_eq!(find_quote_or_backslash(&bytes, at + 1), None);
                }
            }
        }
        // Bytes just below and above the needles, and high bytes, are no hits.
        assert_eq!(
            find_quote_or_backslash(b"!#[]\xff\x80\x00\x01xyz\"", 0),
            Some(11)
        );
    }

    #[test]
    fn reads_integers_exactly_and_other_numbers_as_floats() {
        assert_eq!(parse_value("0"), Ok(0.0));
        assert_eq!(parse_value("999999999999999"), Ok(999_999_999_999_999.0));
        assert_eq!(
            parse_value("12345678901234567890"),
            Ok(12_345_678_901_234_567_890.0)
        );
        assert_eq!(parse_value("1.5e3"), Ok(1500.0));
        assert_eq!(parse_value("-3"), Ok(-3.0));
        assert!(parse_value("").is_err());
    }

    #[test]
    fn handles_crlf_and_counts_lines() {
        let page = "# TYPE a gauge\r\na 1\r\n\r\nb{x=\"y\"} 2\r\n";
        let lines: Vec<_> = Lines::new(page).collect::<Result<_, _>>().unwrap();
        assert_eq!(lines.len(), 4);
        assert!(matches!(lines[3], Line::Sample(Sample { value: 2.0, .. })));
    }

    fn error_of(line: &str) -> ParseErrorKind {
        parse_line(line).unwrap_err()
    }

    #[test]
    fn rejects_what_is_not_prometheus_text() {
        assert_eq!(error_of("<!DOCTYPE html>"), ParseErrorKind::MetricName);
        assert_eq!(error_of("m"), ParseErrorKind::MissingValue);
        assert_eq!(error_of("m{"), ParseErrorKind::UnterminatedLabels);
        assert_eq!(error_of("m{a=\"b} 1"), ParseErrorKind::UnterminatedValue);
        assert_eq!(error_of("m{a=\"\\x\"} 1"), ParseErrorKind::Escape);
        assert_eq!(error_of("m{a=b} 1"), ParseErrorKind::OpenQuote);
        assert_eq!(error_of("m{a} 1"), ParseErrorKind::Equals);
        assert_eq!(error_of("m{1=\"\"} 1"), ParseErrorKind::LabelName);
        assert_eq!(error_of("m{a=\"\" b=\"\"} 1"), ParseErrorKind::CommaOrBrace);
        assert_eq!(error_of("m abc"), ParseErrorKind::Value);
        assert_eq!(error_of("m 1 2.5"), ParseErrorKind::Timestamp);
        assert_eq!(error_of("m 1 2 3"), ParseErrorKind::Trailing);
        assert_eq!(error_of("m-x 1"), ParseErrorKind::MetricName);
        assert_eq!(error_of("# TYPE m flavour"), ParseErrorKind::Type);
        assert_eq!(error_of("# TYPE 9m counter"), ParseErrorKind::MetricName);
    }

    #[test]
    fn stops_after_the_first_error_with_its_line() {
        let mut lines = Lines::new("a 1\n<html>\nb 2\n");
        assert!(lines.next().unwrap().is_ok());
        assert_eq!(
            lines.next().unwrap().unwrap_err(),
            ParseError {
                line: 2,
                kind: ParseErrorKind::MetricName
            }
        );
        assert!(lines.next().is_none());
    }
}
