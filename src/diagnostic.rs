//! Problems found in a manifest, each tied to the exact place in the file.
//!
//! Loading and validation never stop at the first problem: they collect [`Diagnostic`]s, and
//! the caller shows them all at once, sorted by position. A diagnostic only describes; it
//! never decides what happens next (the presence of an error-severity diagnostic does).

use serde::Serialize;

use crate::manifest::Pos;

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The manifest cannot be used.
    Error,
    /// The manifest can be used, but something looks wrong.
    Warning,
}

/// A secondary place in the file that helps explain a diagnostic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub pos: Pos,
    pub text: String,
}

/// One problem in a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Where in the manifest's structure, e.g. `keypairs[1].regions[0]`; empty for the document.
    pub field: String,
    /// What is wrong, in a sentence without the field.
    pub message: String,
    /// The main place of the problem; `None` when the file has no position for it.
    pub pos: Option<Pos>,
    /// The text under the main caret.
    pub label: String,
    /// Other places involved (e.g. "first defined here").
    pub related: Vec<Label>,
    /// How to fix it, when that is obvious.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `pos` about `field`.
    pub fn error(field: impl Into<String>, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            field: field.into(),
            message: message.into(),
            pos: Some(pos),
            label: "here".to_owned(),
            related: Vec::new(),
            help: None,
        }
    }

    /// A warning at `pos` about `field`.
    pub fn warning(field: impl Into<String>, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(field, pos, message)
        }
    }

    /// A diagnostic about the whole file (no position in it).
    pub fn file(message: impl Into<String>) -> Self {
        Diagnostic {
            pos: None,
            ..Diagnostic::error("", Pos::default(), message)
        }
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    #[must_use]
    pub fn with_related(mut self, pos: Pos, text: impl Into<String>) -> Self {
        self.related.push(Label {
            pos,
            text: text.into(),
        });
        self
    }

    /// The message as shown to people: the field first, so every line names it.
    pub fn headline(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }

    /// Sort key: position in the file, errors before warnings at the same place.
    fn sort_key(&self) -> (usize, usize, Severity) {
        self.pos
            .map_or((0, 0, self.severity), |p| (p.line, p.column, self.severity))
    }
}

/// Sort diagnostics by their position in the file (stable for equal positions).
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(Diagnostic::sort_key);
}

/// True when any diagnostic is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(|d| d.severity == Severity::Error)
}

/// How to render diagnostics for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

struct Shown<'a> {
    diagnostic: &'a Diagnostic,
    source: &'a miette::NamedSource<String>,
}

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.diagnostic.headline())
    }
}

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.diagnostic.headline())
    }
}

impl std::error::Error for Shown<'_> {}

fn span(pos: Pos) -> miette::SourceSpan {
    miette::SourceSpan::new(pos.offset.into(), pos.len)
}

impl miette::Diagnostic for Shown<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.diagnostic
            .pos
            .map(|_| self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let pos = self.diagnostic.pos?;
        let primary = miette::LabeledSpan::new_primary_with_span(
            Some(self.diagnostic.label.clone()),
            span(pos),
        );
        let related = self
            .diagnostic
            .related
            .iter()
            .map(|l| miette::LabeledSpan::new_with_span(Some(l.text.clone()), span(l.pos)));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}

/// Lines longer than this are not shown as a snippet.
const MAX_SNIPPET_LINE: usize = 400;

/// The line of `text` that holds byte `offset`.
fn line_at(text: &str, offset: usize) -> &str {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    &text[start..end]
}

/// The text with the body of every private key in it starred out, byte for byte (so every
/// position still points where it did): a key pasted into a manifest is never shown in a
/// snippet.
fn redact_private_keys(text: &str) -> String {
    const BEGIN: &str = "PRIVATE KEY-----";
    const END: &str = "-----END";
    let mut bytes = text.as_bytes().to_vec();
    let mut from = 0;
    while let Some(found) = text[from..].find(BEGIN) {
        let start = from + found + BEGIN.len();
        let end = text[start..].find(END).map_or(text.len(), |i| start + i);
        for byte in &mut bytes[start..end] {
            if !byte.is_ascii_whitespace() {
                *byte = b'*';
            }
        }
        from = end;
    }
    // A key's body without its armour (pasted as one value): a run of base64 that starts as
    // an OpenSSH key (`openssh-key-v1`) or a DER structure does.
    for marker in ["b3BlbnNzaC1rZXktdjE", "MII"] {
        let mut from = 0;
        while let Some(found) = text[from..].find(marker) {
            let start = from + found;
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
                .map_or(text.len(), |i| start + i);
            if end - start >= 40 {
                for byte in &mut bytes[start..end] {
                    *byte = b'*';
                }
            }
            from = end.max(start + 1);
        }
    }
    // Only whole characters were replaced by ASCII, so the text is still UTF-8.
    String::from_utf8(bytes).unwrap_or_default()
}

/// Render diagnostics as people read them: a headline naming the field, the file, line and
/// column, the source line with a caret, and a `help:` where a fix is obvious.
pub fn render_human(file: &str, text: &str, diagnostics: &[Diagnostic], style: Style) -> String {
    let source = miette::NamedSource::new(file, redact_private_keys(text));
    let theme = if style.color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_context_lines(1);
    let mut out = String::new();
    for diagnostic in diagnostics {
        // A snippet of a huge line helps nobody: name the place in the headline instead.
        let plain;
        let diagnostic = match diagnostic.pos {
            Some(pos) if line_at(text, pos.offset).len() > MAX_SNIPPET_LINE => {
                plain = Diagnostic {
                    message: format!(
                        "{} (line {}, column {})",
                        diagnostic.message, pos.line, pos.column
                    ),
                    pos: None,
                    related: Vec::new(),
                    ..diagnostic.clone()
                };
                &plain
            }
            _ => diagnostic,
        };
        let shown = Shown {
            diagnostic,
            source: &source,
        };
        let mut one = String::new();
        if handler.render_report(&mut one, &shown).is_err() || one.trim().is_empty() {
            one = format!("  × {}\n", diagnostic.headline());
        }
        if diagnostic.pos.is_none() {
            // Without a snippet, the file is not named by the report itself.
            one = one.replacen(
                &diagnostic.headline(),
                &format!("{file}: {}", diagnostic.headline()),
                1,
            );
        }
        out.push_str(&one);
    }
    out
}

/// One diagnostic as JSON (see `docs/json.md`).
#[derive(Serialize)]
pub struct JsonDiagnostic<'a> {
    pub severity: Severity,
    pub message: &'a str,
    pub file: &'a str,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub field: &'a str,
    pub help: Option<&'a str>,
    /// Other places that matter (where a duplicate was first listed, where an unclosed `[`
    /// was opened), each with a line, a column and what it is.
    pub related: Vec<JsonPlace<'a>>,
}

/// A related place of a diagnostic in JSON.
#[derive(Serialize)]
pub struct JsonPlace<'a> {
    pub line: usize,
    pub column: usize,
    pub text: &'a str,
}

impl<'a> JsonDiagnostic<'a> {
    pub fn new(file: &'a str, diagnostic: &'a Diagnostic) -> Self {
        JsonDiagnostic {
            severity: diagnostic.severity,
            message: &diagnostic.message,
            file,
            line: diagnostic.pos.map(|p| p.line),
            column: diagnostic.pos.map(|p| p.column),
            field: &diagnostic.field,
            help: diagnostic.help.as_deref(),
            related: diagnostic
                .related
                .iter()
                .map(|l| JsonPlace {
                    line: l.pos.line,
                    column: l.pos.column,
                    text: &l.text,
                })
                .collect(),
        }
    }
}
/// The known name closest to an unknown one, when it is close enough to be a typo.
pub fn suggest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), *k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}
