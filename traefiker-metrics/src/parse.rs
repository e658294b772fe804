//! The Prometheus text exposition format (version 0.0.4), read without copying.
//!
//! [`Lines`] walks a page line by line and hands out borrowed slices of it: a sample's name,
//! its label set and label values are `&str` into the page, and nothing is allocated per
//! line. A label value is only unescaped (one allocation) when it contains an escape and the
//! caller asks for it with [`LabelValue::unescape`].
//!
//! [`Lines::new`] checks every line, not only those a caller wants: a page that is not
//! Prometheus text (an HTML error page, a truncated body) must fail, never read as "nobody is
//! active". [`Lines::reading`] is for callers that want a few families of a large page: a
//! sample of a family they do not read costs a name compare and a `memchr` to its line end
//! (see [`Lines::reading`] for exactly what is still checked), and everything else is
//! checked as by [`Lines::new`]. A page read in pieces continues with [`Lines::continuing`].
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
    /// Where the labels are in `raw`, found while checking it, so iterating does not scan
    /// the set a second time; `None` for a set too large to keep ([`KEPT`] labels, offsets
    /// past `u16::MAX`), which is scanned again instead.
    spans: Option<Spans>,
}

/// How many labels a [`Labels`] keeps the places of: Traefik's series have four to six.
const KEPT: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Spans {
    len: u8,
    spans: [Span; KEPT],
}

/// One label's name and value, as offsets into [`Labels::raw`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Span {
    name: (u16, u16),
    value: (u16, u16),
    escaped: bool,
}

impl Spans {
    /// Keeps `found` (offsets into the line, the set starting at `base`); `false` when it
    /// does not fit.
    #[inline]
    fn keep(&mut self, found: &FoundLabel, base: usize) -> bool {
        let at = |i: usize| u16::try_from(i - base).ok();
        let (Some(name_start), Some(name_end), Some(value_start), Some(value_end)) = (
            at(found.name.0),
            at(found.name.1),
            at(found.value.0),
            at(found.value.1),
        ) else {
            return false;
        };
        let Some(slot) = self.spans.get_mut(usize::from(self.len)) else {
            return false;
        };
        *slot = Span {
            name: (name_start, name_end),
            value: (value_start, value_end),
            escaped: found.escaped,
        };
        self.len += 1;
        true
    }
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
            spans: self.spans,
            next_span: 0,
        }
    }

    /// The value of the first label called `name`.
    pub fn get(&self, name: &str) -> Option<LabelValue<'a>> {
        let [value] = self.get_many([name]);
        value
    }

    /// The values of the first labels called `names[0]`, `names[1]`, …, in one pass.
    ///
    /// Cheaper than [`Labels::iter`] for a few names: only the names compared are sliced
    /// out, and only the values found.
    pub fn get_many<const N: usize>(&self, names: [&str; N]) -> [Option<LabelValue<'a>>; N] {
        let mut found = [None; N];
        let Some(spans) = &self.spans else {
            for (name, value) in self.iter() {
                for (slot, wanted) in found.iter_mut().zip(names) {
                    if wanted == name {
                        slot.get_or_insert(value);
                    }
                }
            }
            return found;
        };
        let bytes = self.raw.as_bytes();
        for span in spans.spans.iter().take(usize::from(spans.len)) {
            let (start, end) = (usize::from(span.name.0), usize::from(span.name.1));
            let name = bytes.get(start..end);
            for (slot, wanted) in found.iter_mut().zip(names) {
                if slot.is_none() && wanted.len() == end - start && name == Some(wanted.as_bytes())
                {
                    *slot = self
                        .raw
                        .get(usize::from(span.value.0)..usize::from(span.value.1))
                        .map(|raw| LabelValue {
                            raw,
                            escaped: span.escaped,
                        });
                }
            }
        }
        found
    }
}

/// Iterator over a checked label set.
#[derive(Clone, Debug)]
pub struct LabelIter<'a> {
    raw: &'a str,
    pos: usize,
    spans: Option<Spans>,
    next_span: usize,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, LabelValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(spans) = &self.spans {
            let span = spans
                .spans
                .get(self.next_span..usize::from(spans.len))?
                .first()?;
            self.next_span += 1;
            let slice = |(start, end): (u16, u16)| self.raw.get(start.into()..end.into());
            return Some((
                slice(span.name)?,
                LabelValue {
                    raw: slice(span.value)?,
                    escaped: span.escaped,
                },
            ));
        }
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

/// A metric family as its `# TYPE` line declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family<'a> {
    /// The family name, e.g. `traefik_service_request_duration_seconds`.
    pub name: &'a str,
    /// Its type, which says which sample names belong to it.
    pub kind: MetricType,
}

impl Family<'_> {
    /// The length of the sample name `line` starts with, if it is one of this family's
    /// sample names (the family name, with `_bucket`, `_sum` or `_count` as its type allows)
    /// followed by `{`, a space or a tab.
    #[inline]
    fn sample_name_len(&self, line: &[u8]) -> Option<usize> {
        let n = self.name.len();
        if !starts_with(line, self.name.as_bytes()) {
            return None;
        }
        let boundary = |at: usize| matches!(line.get(at), Some(b'{' | b' ' | b'\t')).then_some(at);
        let suffixed = |histogram: bool| {
            let rest = line.get(n..)?.strip_prefix(b"_")?;
            // Constant-length compares: inlined, no `memcmp` call.
            let len = if histogram && rest.starts_with(b"bucket") {
                6
            } else if rest.starts_with(b"sum") {
                3
            } else if rest.starts_with(b"count") {
                5
            } else {
                return None;
            };
            boundary(n + 1 + len)
        };
        match self.kind {
            MetricType::Counter | MetricType::Gauge | MetricType::Untyped => boundary(n),
            MetricType::Histogram => suffixed(true),
            MetricType::Summary => boundary(n).or_else(|| suffixed(false)),
        }
    }
}

/// Whether `hay` starts with `prefix`, compared eight bytes at a time in line: a `memcmp`
/// call per line was the largest cost of passing over lines.
#[inline]
fn starts_with(hay: &[u8], prefix: &[u8]) -> bool {
    let n = prefix.len();
    let Some(hay) = hay.get(..n) else {
        return false;
    };
    if n < 8 {
        return hay.iter().zip(prefix).all(|(a, b)| a == b);
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_ne_bytes)
    };
    let mut diff = 0;
    let mut at = 0;
    while at + 8 <= n {
        diff |= word(hay, at) ^ word(prefix, at);
        at += 8;
    }
    // The last word overlaps the previous one unless `n` is a multiple of eight.
    diff |= word(hay, n - 8) ^ word(prefix, n - 8);
    diff == 0
}

/// Where a page read in pieces stands after one piece: what [`Lines::continuing`] needs to
/// read the next as if the page were whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position<'a> {
    /// Lines read so far (returned and passed over).
    pub line: usize,
    /// The family of the last `# TYPE` line, if any.
    pub family: Option<Family<'a>>,
    /// Whether [`Lines::reading`] passes over that family's samples.
    pub skipping: bool,
}

/// The lines of a page, parsed one by one. It stops after the first error.
#[derive(Clone, Debug)]
pub struct Lines<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    failed: bool,
    /// `None`: every line is parsed and returned. `Some`: the families the caller reads;
    /// samples of other declared families are passed over.
    read: Option<&'a [&'a str]>,
    /// The family of the last `# TYPE` line. Its name was checked on that line, so a
    /// sample that starts with one of its sample names needs no second check of the name.
    family: Option<Family<'a>>,
    /// Whether `family`'s samples are passed over.
    skipping: bool,
    skipped: usize,
}

impl<'a> Lines<'a> {
    /// The lines of `text`, every one parsed and returned.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            line: 0,
            failed: false,
            read: None,
            family: None,
            skipping: false,
            skipped: 0,
        }
    }

    /// The lines of `text` a caller that reads only the families `read` needs.
    ///
    /// After a `# TYPE` line declaring a family not in `read` (and that no name in `read`
    /// starts with), each following line that starts with one of that family's sample
    /// names (the family name, plus `_bucket`, `_sum` or `_count` for a histogram, `_sum` or
    /// `_count` for a summary) followed by `{`, a space or a tab is passed over: it is
    /// counted in [`Lines::skipped`], not returned, and its label set, value and timestamp
    /// are not checked. That is the whole check of such a line: a name compare against a
    /// `TYPE` line that was itself checked in full, and a `memchr` to its line end.
    ///
    /// Every other line is parsed and checked as by [`Lines::new`]: `# HELP`, `# TYPE` and
    /// comment lines, samples of the families in `read`, samples no `TYPE` line declared,
    /// and anything that does not start with the declared family's name. So a page that is
    /// not Prometheus text still fails at its first line (nothing is passed over before a
    /// valid `TYPE` line), and a line of another shape inside a family fails there.
    pub fn reading(text: &'a str, read: &'a [&'a str]) -> Self {
        Self {
            read: Some(read),
            ..Self::new(text)
        }
    }

    /// Continues a page read in pieces: `self` reads the piece that follows the one
    /// `at` was taken from (with [`Lines::position`]), numbering lines and passing over a
    /// family's samples as if the page were whole.
    pub fn continuing(mut self, at: Position<'a>) -> Self {
        self.line = at.line;
        self.family = at.family;
        self.skipping = at.skipping && self.read.is_some();
        self
    }

    /// Where this piece of the page ends, for [`Lines::continuing`] on the next.
    pub fn position(&self) -> Position<'a> {
        Position {
            line: self.line,
            family: self.family,
            skipping: self.skipping,
        }
    }

    /// The 1-based number of the line last returned or passed over.
    pub fn line_number(&self) -> usize {
        self.line
    }

    /// How many sample lines [`Lines::reading`] passed over so far.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Whether the samples of `family` are passed over.
    fn skips(&self, family: &str) -> bool {
        // A read family that starts with `family` (say `x_count` after a histogram `x`)
        // could be taken for one of its samples: such a family is read in full.
        self.read
            .is_some_and(|read| !read.iter().any(|r| r.starts_with(family)))
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<Line<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        let mut rest = bytes.get(self.pos..)?;
        if self.failed || rest.is_empty() {
            return None;
        }
        // The hot loop of `reading`: most lines of a large page belong to families the
        // caller does not read.
        if let Some(family) = self.family.filter(|_| self.skipping) {
            while let Some(name_len) = family.sample_name_len(rest) {
                let advance = match memchr(b'\n', rest.get(name_len..)?) {
                    Some(end) => name_len + end + 1,
                    None => rest.len(),
                };
                self.pos += advance;
                self.line += 1;
                self.skipped += 1;
                rest = rest.get(advance..)?;
                if rest.is_empty() {
                    return None;
                }
            }
        }
        let (end, advance) = match memchr(b'\n', rest) {
            Some(end) => (end, end + 1),
            None => (rest.len(), rest.len()),
        };
        let line = self.text.get(self.pos..self.pos + end)?;
        self.pos += advance;
        self.line += 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let known_name = self
            .family
            .and_then(|family| family.sample_name_len(line.as_bytes()));
        let parsed = match known_name {
            Some(name_len) => parse_sample_after(line, name_len).map(Line::Sample),
            None => parse_line(line),
        }
        .map_err(|kind| ParseError {
            line: self.line,
            kind,
        });
        match &parsed {
            Ok(Line::Type { name, kind }) => {
                self.family = Some(Family { name, kind: *kind });
                self.skipping = self.skips(name);
            }
            Ok(_) => {}
            Err(_) => self.failed = true,
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
    parse_sample_after(line, scan_metric_name(line.as_bytes(), 0)?)
}

/// [`parse_sample`] of a line whose first `name_end` bytes are a valid metric name.
fn parse_sample_after(line: &str, name_end: usize) -> Result<Sample<'_>, ParseErrorKind> {
    let b = line.as_bytes();
    let name = line.get(..name_end).ok_or(ParseErrorKind::MetricName)?;
    let mut i = skip_blanks(b, name_end);
    let mut labels = Labels::default();
    if b.get(i) == Some(&b'{') {
        let start = i + 1;
        let (end, spans) = scan_label_set(b, start)?;
        labels.raw = line
            .get(start..end)
            .ok_or(ParseErrorKind::UnterminatedLabels)?;
        labels.spans = spans;
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

/// Where a label set that starts at `i` (just after `{`) ends (the index after its `}`),
/// and where its labels are, if they fit in [`Spans`].
fn scan_label_set(b: &[u8], mut i: usize) -> Result<(usize, Option<Spans>), ParseErrorKind> {
    let base = i;
    let mut spans = Spans::default();
    let mut kept = true;
    loop {
        match next_label(b, i)? {
            Some(found) => {
                kept = kept && spans.keep(&found, base);
                i = found.next;
            }
            None => {
                // `next_label` stopped at the closing brace.
                let close = skip_blanks(b, i);
                return Ok((close + 1, kept.then_some(spans)));
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

    /// `(line number, sample name)` of the samples `lines` returns, and how many it passed
    /// over; panics on an error.
    fn read_samples<'a>(mut lines: Lines<'a>) -> (Vec<(usize, &'a str)>, usize) {
        let mut out = Vec::new();
        while let Some(line) = lines.next() {
            if let Line::Sample(s) = line.unwrap() {
                out.push((lines.line_number(), s.name));
            }
        }
        (out, lines.skipped())
    }

    const MIXED: &str = "# HELP skip_g A gauge nobody reads.\n\
        # TYPE skip_g gauge\n\
        skip_g{a=\"1\"} 1\n\
        skip_g 2\n\
        skip_g\t3\n\
        # TYPE want counter\n\
        want{service=\"s\"} 4\n\
        # TYPE skip_h histogram\n\
        skip_h_bucket{le=\"+Inf\"} 5\n\
        skip_h_sum 6\n\
        skip_h_count 7\n\
        skip_h{odd=\"no suffix\"} 8\n\
        skip_hx 9\n\
        # TYPE skip_s summary\n\
        skip_s{quantile=\"0.5\"} 10\n\
        skip_s_sum 11\n\
        skip_s_count 12\n\
        skip_s_bucket 13\n\
        undeclared 14\n";

    #[test]
    fn reading_passes_over_the_samples_of_declared_families_it_does_not_read() {
        let (read, skipped) = read_samples(Lines::reading(MIXED, &["want"]));
        assert_eq!(
            read,
            vec![
                (7, "want"),
                // Not one of a histogram's sample names: parsed and returned.
                (12, "skip_h"),
                (13, "skip_hx"),
                (18, "skip_s_bucket"),
                (19, "undeclared"),
            ]
        );
        assert_eq!(skipped, 9);
        let (all, none) = read_samples(Lines::new(MIXED));
        assert_eq!((all.len(), none), (14, 0));
    }

    #[test]
    fn reading_everything_declared_passes_over_nothing() {
        let read = ["skip_g", "want", "skip_h", "skip_s"];
        assert_eq!(
            read_samples(Lines::reading(MIXED, &read)),
            read_samples(Lines::new(MIXED))
        );
    }

    #[test]
    fn a_read_family_that_looks_like_a_sample_of_another_is_read() {
        // `h_count` could be a sample of the histogram `h`: `h` is then read in full.
        let page = "# TYPE h histogram\nh_count 1\nh_sum 2\n";
        let (read, skipped) = read_samples(Lines::reading(page, &["h_count"]));
        assert_eq!((read, skipped), (vec![(2, "h_count"), (3, "h_sum")], 0));
    }

    #[test]
    fn a_passed_over_sample_is_checked_by_name_only() {
        // The documented trade-off: a broken label set or value in a family nobody reads
        // is not looked at. `Lines::new` still refuses it.
        for broken in [
            "skip_g{a=\"unterminated 1",
            "skip_g{} not-a-number",
            "skip_g ",
        ] {
            let page = format!("# TYPE skip_g gauge\n{broken}\n");
            let (read, skipped) = read_samples(Lines::reading(&page, &[]));
            assert_eq!((read.len(), skipped), (0, 1), "{broken}");
            assert!(Lines::new(&page).any(|l| l.is_err()), "{broken}");
        }
    }

    #[test]
    fn reading_checks_in_full_what_does_not_start_with_the_declared_name() {
        let error_at = |page: &str| {
            Lines::reading(page, &[])
                .find_map(Result::err)
                .map(|e| (e.line, e.kind))
        };
        let declared = "# TYPE skip_g gauge\nskip_g 1\n";
        assert_eq!(
            error_at(&format!("{declared}<html><body>502</body></html>\n")),
            Some((3, ParseErrorKind::MetricName))
        );
        assert_eq!(
            error_at(&format!("{declared}skip_g-x 1\n")),
            Some((3, ParseErrorKind::MetricName))
        );
        assert_eq!(
            error_at(&format!("{declared}skip_gauge{{a=b}} 1\n")),
            Some((3, ParseErrorKind::OpenQuote))
        );
        assert_eq!(
            error_at(&format!("{declared}# TYPE skip_g flavour\n")),
            Some((3, ParseErrorKind::Type))
        );
        assert_eq!(
            error_at("# TYPE want counter\nwant{service=\"s} 1\n"),
            None,
            "a read family, but `reading(&[])` reads none"
        );
        let mut read = Lines::reading("# TYPE want counter\nwant{service=\"s} 1\n", &["want"]);
        assert_eq!(
            read.find_map(Result::err).map(|e| (e.line, e.kind)),
            Some((2, ParseErrorKind::UnterminatedValue))
        );
        // Nothing is passed over before a `TYPE` line: an error page fails at its first line.
        assert_eq!(
            error_at("404 page not found\n"),
            Some((1, ParseErrorKind::MetricName))
        );
    }

    #[test]
    fn a_page_read_in_pieces_continues_where_the_last_piece_ended() {
        let whole = read_samples(Lines::reading(MIXED, &["want"]));
        // Every cut at a line boundary.
        for (cut, _) in MIXED.match_indices('\n') {
            let (first, second) = MIXED.split_at(cut + 1);
            let mut lines = Lines::reading(first, &["want"]);
            let (mut read, skipped) = read_samples(lines.clone());
            while lines.next().is_some() {}
            let more = Lines::reading(second, &["want"]).continuing(lines.position());
            let (rest, rest_skipped) = read_samples(more);
            read.extend(rest);
            assert_eq!(
                (read, skipped + rest_skipped),
                whole,
                "cut after byte {cut}"
            );
        }
        let at = Position {
            line: 41,
            family: Some(Family {
                name: "skip_g",
                kind: MetricType::Gauge,
            }),
            skipping: true,
        };
        let mut next = Lines::reading("skip_g 1\n<html>\n", &[]).continuing(at);
        assert_eq!(
            next.find_map(Result::err),
            Some(ParseError {
                line: 43,
                kind: ParseErrorKind::MetricName
            })
        );
        // `Lines::new` passes nothing over, even when told where another reader stood.
        let all = Lines::new("skip_g 1\n").continuing(at);
        assert_eq!(read_samples(all), (vec![(42, "skip_g")], 0));
    }

    #[test]
    fn compares_prefixes_of_every_length_at_every_byte() {
        for len in 0..40usize {
            let prefix: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut hay = prefix.clone();
            hay.extend_from_slice(b"{x} 1");
            assert!(starts_with(&hay, &prefix), "{len}");
            if len > 0 {
                assert!(
                    !starts_with(&prefix[..len - 1], &prefix),
                    "shorter than {len}"
                );
            }
            for at in 0..len {
                let mut other = hay.clone();
                other[at] ^= 0x20;
                assert!(!starts_with(&other, &prefix), "{len} {at}");
            }
        }
    }

    #[test]
    fn labels_beyond_what_is_kept_are_scanned_again() {
        let many: Vec<String> = (0..KEPT + 3).map(|i| format!("l{i}=\"v{i}\"")).collect();
        let line = format!("m{{{}}} 1", many.join(","));
        let s = sample(&line);
        assert!(s.labels.spans.is_none());
        let got: Vec<(&str, String)> = labels(&s);
        let want: Vec<(String, String)> = (0..KEPT + 3)
            .map(|i| (format!("l{i}"), format!("v{i}")))
            .collect();
        assert_eq!(
            got.iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect::<Vec<_>>(),
            want
        );
        // A value past `u16::MAX` bytes into the set.
        let long = "x".repeat(70_000);
        let line = format!("m{{a=\"{long}\",b=\"q\\\"\"}} 1");
        let s = sample(&line);
        assert!(s.labels.spans.is_none());
        assert_eq!(s.labels.get("b").unwrap().unescape(), "q\"");
        assert_eq!(s.labels.get("a").unwrap().raw().len(), 70_000);
        // Kept: the same answers as a scan.
        let s = sample(r#"m{a="1",b="2\\",c=""} 1"#);
        assert_eq!(s.labels.spans.map(|k| k.len), Some(3));
        assert_eq!(
            labels(&s),
            vec![
                ("a", "1".to_owned()),
                ("b", "2\\".to_owned()),
                ("c", String::new())
            ]
        );
        assert!(s.labels.get("b").unwrap().has_escapes());
    }

    #[test]
    fn gets_several_labels_in_one_pass_whether_kept_or_scanned() {
        let few = r#"m{code="200",service="s\"q",protocol="http",service="second"} 1"#;
        let many = format!(
            "m{{{},service=\"s\\\"q\",protocol=\"http\",service=\"second\"}} 1",
            (0..KEPT)
                .map(|i| format!("l{i}=\"{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        for line in [few, many.as_str()] {
            let s = sample(line);
            let [service, protocol, missing, again] = s
                .labels
                .get_many(["service", "protocol", "servic", "service"]);
            // The first of a repeated name, as `get` answers.
            assert_eq!(service.unwrap().unescape(), "s\"q", "{line}");
            assert!(service.unwrap().has_escapes());
            assert_eq!(protocol.unwrap().raw(), "http");
            assert_eq!(missing, None);
            assert_eq!(again, service);
            assert_eq!(s.labels.get("service"), service);
        }
        assert_eq!(sample("m 1").labels.get_many(["a"]), [None]);
    }
}
