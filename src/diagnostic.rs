//! Diagnostics: every problem found in a rule set or expression, with where and why.
//!
//! A [`Diagnostic`] carries a stable [`Code`], a JSON-pointer path into the rule-set
//! document, a byte span inside the expression (or document) text, a one-line message,
//! help, and a "did you mean" suggestion. [`Diagnostic::render`] shows the source line
//! with a caret under the span; the serde form serves UIs.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A half-open byte range `start..end` in a source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from byte offsets; offsets beyond `u32::MAX` saturate.
    pub fn new(start: usize, end: usize) -> Span {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Span { start: clamp(start), end: clamp(end.max(start)) }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    /// The span as a `usize` range.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Stable diagnostic codes. The numbers never change meaning; new codes are added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Code {
    /// E0001: the expression is not valid CEL syntax.
    Syntax,
    /// E0002: valid CEL, but outside the subset nurture supports.
    Unsupported,
    /// E0003: a configured limit was exceeded.
    LimitExceeded,
    /// E0004: a literal is malformed (bad escape, out-of-range number, bad regex,
    /// bad timestamp).
    InvalidLiteral,
    /// E0101: a name that nothing declares.
    UnknownName,
    /// E0102: a field the contact or event type does not have.
    UnknownField,
    /// E0103: a function nurture does not know.
    UnknownFunction,
    /// E0104: no overload of an operator or function accepts these argument types.
    NoMatchingOverload,
    /// E0105: a value of one type where another is required.
    TypeMismatch,
    /// E0201: the document is not valid JSON or TOML.
    DocumentSyntax,
    /// E0202: a key the format does not define.
    UnknownKey,
    /// E0203: a required key is missing or a value has the wrong shape.
    InvalidDocument,
    /// E0204: two rules (or declarations) share an id.
    DuplicateId,
    /// E0205: an event type the schema does not declare.
    UnknownEventType,
    /// E0206: a structured filter that does not fit its field.
    InvalidFilter,
}

impl Code {
    /// The stable code, such as `E0102`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "E0001",
            Code::Unsupported => "E0002",
            Code::LimitExceeded => "E0003",
            Code::InvalidLiteral => "E0004",
            Code::UnknownName => "E0101",
            Code::UnknownField => "E0102",
            Code::UnknownFunction => "E0103",
            Code::NoMatchingOverload => "E0104",
            Code::TypeMismatch => "E0105",
            Code::DocumentSyntax => "E0201",
            Code::UnknownKey => "E0202",
            Code::InvalidDocument => "E0203",
            Code::DuplicateId => "E0204",
            Code::UnknownEventType => "E0205",
            Code::InvalidFilter => "E0206",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, located and explained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// One-line, lowercase message.
    pub message: String,
    /// JSON pointer into the rule-set document (`/rules/3/condition`); empty for a
    /// standalone expression.
    pub path: String,
    /// Byte span inside `source`, when the problem has a precise place.
    pub span: Option<Span>,
    /// How to fix it.
    pub help: Option<String>,
    /// A close known name, for misspellings.
    pub did_you_mean: Option<String>,
    /// The text the span points into (an expression, or the document itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Arc<str>>,
}

impl Diagnostic {
    /// A diagnostic with a code and message and nothing else yet.
    pub fn new(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            message: message.into(),
            path: String::new(),
            span: None,
            help: None,
            did_you_mean: None,
            source: None,
        }
    }

    /// Sets the span.
    pub fn with_span(mut self, span: Span) -> Diagnostic {
        self.span = Some(span);
        self
    }

    /// Sets the help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Sets the suggestion.
    pub fn with_did_you_mean(mut self, name: Option<String>) -> Diagnostic {
        self.did_you_mean = name;
        self
    }

    /// Sets the document path.
    pub fn with_path(mut self, path: impl Into<String>) -> Diagnostic {
        self.path = path.into();
        self
    }

    /// Sets the source text the span points into.
    pub fn with_source(mut self, source: Arc<str>) -> Diagnostic {
        self.source = Some(source);
        self
    }

    /// Renders the diagnostic for a terminal: the message, the location, the source line
    /// with a caret under the span, the help and the suggestion.
    ///
    /// ```
    /// use nurture::{Diagnostic, Code, Span};
    /// let d = Diagnostic::new(Code::UnknownField, "no field `sise` on contact")
    ///     .with_source("contact.sise > 10".into())
    ///     .with_span(Span::new(8, 12))
    ///     .with_did_you_mean(Some("size".into()));
    /// assert_eq!(d.render(), "\
    /// error[E0102]: no field `sise` on contact
    ///  --> 1:9
    ///   |
    /// 1 | contact.sise > 10
    ///   |         ^^^^
    ///   = did you mean `size`?
    /// ");
    /// ```
    pub fn render(&self) -> String {
        let mut out = format!("error[{}]: {}\n", self.code, self.message);
        let location = self.span.zip(self.source.as_deref());
        match location {
            Some((span, source)) => {
                let (line_no, col, line) = locate(source, span.start as usize);
                let gutter = line_no.to_string().len();
                let pad = " ".repeat(gutter);
                let prefix = if self.path.is_empty() { String::new() } else { format!("{} ", self.path) };
                out.push_str(&format!("{pad}--> {prefix}{line_no}:{col}\n"));
                out.push_str(&format!("{pad} |\n"));
                let shown = shorten(line, col - 1);
                out.push_str(&format!("{line_no} | {}\n", shown.text));
                let caret_start = shown.caret_offset;
                let line_end = line.len().max(col - 1);
                let span_len = (span.end as usize)
                    .min(span.start as usize + (line_end + 1 - (col - 1)))
                    .saturating_sub(span.start as usize);
                let width = source
                    .get(span.start as usize..span.start as usize + span_len)
                    .map_or(1, |s| s.chars().count().clamp(1, 80));
                out.push_str(&format!("{pad} | {}{}\n", " ".repeat(caret_start), "^".repeat(width)));
            }
            None if !self.path.is_empty() => {
                out.push_str(&format!(" --> {}\n", self.path));
            }
            None => {}
        }
        let pad = match location {
            Some((span, source)) => " ".repeat(locate(source, span.start as usize).0.to_string().len()),
            None => String::new(),
        };
        if let Some(help) = &self.help {
            out.push_str(&format!("{pad} = help: {help}\n"));
        }
        if let Some(name) = &self.did_you_mean {
            out.push_str(&format!("{pad} = did you mean `{name}`?\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if !self.path.is_empty() {
            write!(f, " at {}", self.path)?;
        }
        Ok(())
    }
}

/// Line number (1-based), column in characters (1-based) and the text of the line
/// containing byte `offset`.
fn locate(source: &str, offset: usize) -> (usize, usize, &str) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[offset..].find('\n').map_or(source.len(), |i| offset + i);
    let line_no = source[..line_start].matches('\n').count() + 1;
    let col = source[line_start..offset].chars().count() + 1;
    (line_no, col, &source[line_start..line_end])
}

struct Shown {
    text: String,
    caret_offset: usize,
}

/// Keeps a very long line readable: at most 100 characters around the caret.
fn shorten(line: &str, caret_col: usize) -> Shown {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= 100 {
        return Shown { text: line.to_string(), caret_offset: caret_col };
    }
    let start = caret_col.saturating_sub(40);
    let end = (start + 100).min(chars.len());
    let mut text = String::new();
    let mut caret_offset = caret_col - start;
    if start > 0 {
        text.push_str("...");
        caret_offset += 3;
    }
    text.extend(&chars[start..end]);
    if end < chars.len() {
        text.push_str("...");
    }
    Shown { text, caret_offset }
}

/// The closest of `candidates` to `name` by edit distance, if close enough to be a
/// plausible misspelling.
pub(crate) fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, c)| c.to_string())
}

/// The indefinite article for a phrase: "an" before a vowel sound ("an inactivity
/// trigger", "an `adjust_score` action"), else "a". Leading quotes and backticks are
/// skipped; common English exceptions ("a unique", "a one-off", "an hour") are known.
pub(crate) fn article(phrase: &str) -> &'static str {
    let word = phrase.trim_start_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    const CONSONANT_SOUND: [&str; 8] = ["one", "once", "uni", "use", "usu", "uti", "eu", "ur"];
    const VOWEL_SOUND: [&str; 3] = ["hour", "honest", "honor"];
    if VOWEL_SOUND.iter().any(|p| word.starts_with(p)) {
        return "an";
    }
    if CONSONANT_SOUND.iter().any(|p| word.starts_with(p)) {
        return "a";
    }
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u' | '8') => "an",
        _ => "a",
    }
}

/// Levenshtein distance with transpositions counted as one edit; bounded inputs only
/// (names), so the quadratic table is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(256).collect();
    let b: Vec<char> = b.chars().take(256).collect();
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Escapes a key for use in a JSON pointer (RFC 6901).
pub(crate) fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A pointer written as `/a/b` whose last segment may need escaping.
pub(crate) fn pointer_path(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((head, last)) => format!("{head}/{}", pointer_escape(last)),
        None => path.to_string(),
    }
}

/// The error returned when compiling fails: every diagnostic found, in document order.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[error("{}", render_all(.diagnostics))]
pub struct CompileError {
    /// The problems, at least one.
    pub diagnostics: Vec<Diagnostic>,
}

impl CompileError {
    /// Wraps diagnostics.
    pub(crate) fn new(diagnostics: Vec<Diagnostic>) -> CompileError {
        CompileError { diagnostics }
    }

    /// All diagnostics rendered, one after another.
    pub fn render(&self) -> String {
        self.diagnostics.iter().map(Diagnostic::render).collect::<Vec<_>>().join("\n")
    }
}

fn render_all(diagnostics: &[Diagnostic]) -> String {
    match diagnostics {
        [one] => one.to_string(),
        many => format!(
            "{} problems, the first: {}",
            many.len(),
            many.first().map(ToString::to_string).unwrap_or_default()
        ),
    }
}

/// Finds ids used twice in one list of declarations, in linear time, reporting each
/// repeat at its path with the path of the first use.
pub(crate) struct UniqueIds<'a> {
    /// What the ids name, for messages: "rule id", "band name".
    what: &'static str,
    first: std::collections::HashMap<&'a str, String>,
}

impl<'a> UniqueIds<'a> {
    pub(crate) fn new(what: &'static str) -> UniqueIds<'a> {
        UniqueIds { what, first: std::collections::HashMap::new() }
    }

    /// Records `id`, declared at `path`; `false` (and a diagnostic) when it was seen.
    pub(crate) fn first_use(&mut self, id: &'a str, path: String, diagnostics: &mut Vec<Diagnostic>) -> bool {
        match self.first.get(id) {
            Some(first) => {
                diagnostics.push(
                    Diagnostic::new(Code::DuplicateId, format!("{} `{id}` is used twice", self.what))
                        .with_path(path)
                        .with_help(format!("{}s must be unique; the first use is {first}", self.what)),
                );
                false
            }
            None => {
                self.first.insert(id, path);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_close_names() {
        assert_eq!(
            did_you_mean("compnay_size", ["company_size", "country"]).as_deref(),
            Some("company_size")
        );
        assert_eq!(did_you_mean("xyz", ["company_size"]), None);
    }

    #[test]
    fn articles_follow_the_sound() {
        for (phrase, expected) in [
            ("inactivity trigger", "an"),
            ("`adjust_score` action", "an"),
            ("threshold trigger", "a"),
            ("`send` action", "a"),
            ("unique id", "a"),
            ("once policy", "a"),
            ("hour", "an"),
            ("", "a"),
        ] {
            assert_eq!(article(phrase), expected, "{phrase}");
        }
    }

    #[test]
    fn render_on_second_line() {
        let d = Diagnostic::new(Code::Syntax, "unexpected `)`")
            .with_source("a &&\n b)".into())
            .with_span(Span::new(7, 8))
            .with_path("/rules/0/condition");
        assert_eq!(
            d.render(),
            "error[E0001]: unexpected `)`\n --> /rules/0/condition 2:3\n  |\n2 |  b)\n  |   ^\n"
        );
    }
}
