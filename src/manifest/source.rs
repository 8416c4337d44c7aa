//! The manifest file on disk and its YAML syntax, with the limits that keep hostile input harmless.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_saphyr::{Budget, DuplicateKeyPolicy, Options, options::AliasLimits};

use super::node::{Kind, Node, Pos};
use crate::diagnostic::Diagnostic;

/// Manifests larger than this are refused before parsing.
pub const MAX_MANIFEST_BYTES: u64 = 8 * 1024 * 1024;

/// The text of a manifest and the name it is shown under.
#[derive(Clone, Debug)]
pub struct Source {
    /// The path as the user gave it (shown in messages).
    pub path: PathBuf,
    /// The text; invalid UTF-8 is reported and replaced before it gets here.
    pub text: String,
}

impl Source {
    /// A source from text in memory (tests, stdin).
    pub fn from_text(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Source {
            path: path.into(),
            text: text.into(),
        }
    }

    /// The name shown in diagnostics.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Read a manifest file, refusing anything that is not a regular file of sane size.
    ///
    /// # Errors
    /// A file-level diagnostic (no position) when the file cannot be used; the source is still
    /// returned for invalid UTF-8 so the error can point at the line.
    pub fn read(path: &Path) -> Result<Source, Box<ReadError>> {
        let fail = |message: String| Err(ReadError::boxed(None, Diagnostic::file(message)));
        // Check before opening: opening a FIFO would block.
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(ReadError::boxed(
                    None,
                    Diagnostic::file(format!("no manifest at {}", path.display())).with_help(
                        "give the manifest's path, or run labctl in the folder that holds labctl.yaml",
                    ),
                ));
            }
            Err(err) => return fail(format!("cannot read {}: {err}", path.display())),
        };
        if meta.is_dir() {
            return fail(format!(
                "{} is a folder, not a manifest file",
                path.display()
            ));
        }
        if !meta.is_file() {
            return fail(format!(
                "{} is not a regular file (a pipe or device?)",
                path.display()
            ));
        }
        if meta.len() > MAX_MANIFEST_BYTES {
            return fail(too_large(path));
        }
        let file = match fs::File::open(path) {
            Ok(file) => file,
            Err(err) => return fail(format!("cannot read {}: {err}", path.display())),
        };
        let mut bytes = Vec::new();
        if let Err(err) = file.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes) {
            return fail(format!("cannot read {}: {err}", path.display()));
        }
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return fail(too_large(path));
        }
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Source {
                path: path.to_owned(),
                text,
            }),
            Err(err) => {
                let valid = err.utf8_error().valid_up_to();
                let bytes = err.into_bytes();
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let prefix = String::from_utf8_lossy(&bytes[..valid]);
                let line = prefix.matches('\n').count() + 1;
                let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                let pos = Pos {
                    offset: prefix.len(),
                    len: 1,
                    line,
                    column,
                };
                let diagnostic = Diagnostic::error("", pos, "the manifest is not valid UTF-8 text")
                    .with_help("save the file as UTF-8");
                Err(ReadError::boxed(
                    Some(Source {
                        path: path.to_owned(),
                        text,
                    }),
                    diagnostic,
                ))
            }
        }
    }
}

/// Why a manifest file could not be read; `source` is kept when the text can still be shown.
#[derive(Debug)]
pub struct ReadError {
    pub source: Option<Source>,
    pub diagnostic: Diagnostic,
}

impl ReadError {
    fn boxed(source: Option<Source>, diagnostic: Diagnostic) -> Box<Self> {
        Box::new(ReadError { source, diagnostic })
    }
}

fn too_large(path: &Path) -> String {
    format!(
        "{} is larger than {} MiB; a manifest of key pairs is never that large",
        path.display(),
        MAX_MANIFEST_BYTES / 1024 / 1024
    )
}

/// The YAML crate's limits: generous for any real manifest, tight enough that alias bombs and
/// deep nesting fail fast with bounded memory.
fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_depth = 64;
    budget.max_events = 1_000_000;
    budget.max_aliases = 10_000;
    budget.max_anchors = 10_000;
    budget.max_nodes = 250_000;
    budget.max_documents = 2;
    budget.max_total_scalar_bytes = 16 * 1024 * 1024;
    let mut alias_limits = AliasLimits::default();
    alias_limits.max_total_replayed_events = 50_000;
    alias_limits.max_replay_stack_depth = 16;
    alias_limits.max_alias_expansions_per_anchor = 500;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options.strict_booleans = true;
    options.with_snippet = false;
    options.alias_limits = alias_limits;
    options
}

/// Parse YAML text into a node tree.
pub(super) fn parse_yaml(text: &str) -> Result<Node, Box<Diagnostic>> {
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(Box::new(
            Diagnostic::file("the manifest is empty")
                .with_help("start with `version: 1`, a `project:` and a list of `keypairs:`"),
        ));
    }
    match serde_saphyr::from_str_with_options::<Node>(text, options()) {
        Ok(node) if matches!(node.kind, Kind::Null) => Err(Box::new(
            Diagnostic::file("the manifest is empty")
                .with_help("start with `version: 1`, a `project:` and a list of `keypairs:`"),
        )),
        Ok(node) => Ok(node),
        Err(err) => Err(Box::new(yaml_error(text, &err))),
    }
}

fn yaml_error(text: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let message = clean_message(&err.without_snippet().to_string());
    let lowered = message.to_lowercase();
    let line_text = err
        .location()
        .and_then(|l| {
            text.lines()
                .nth(usize::try_from(l.line()).unwrap_or(1).saturating_sub(1))
        })
        .unwrap_or("");
    let help = yaml_help(text, &lowered, line_text);
    let diagnostic = yaml_diagnostic(text, err, &message);
    match help {
        Some(help) => diagnostic.with_help(help),
        None => diagnostic,
    }
}

/// What to do about a YAML error (`lowered`: its message in lower case; `line_text`: the line
/// it points at), when labctl knows.
fn yaml_help(text: &str, lowered: &str, line_text: &str) -> Option<String> {
    let help = if lowered.contains("more than one yaml document") {
        Some("a manifest is one YAML document: remove the `---` separator and what follows")
    } else if lowered.contains("budget")
        || lowered.contains("alias")
        || lowered.contains("depth")
        || lowered.contains("recursion")
    {
        Some("the manifest nests or repeats too much; write the values out plainly")
    } else if lowered.contains("duplicate") {
        Some("each field may appear once in a mapping; remove one of them")
    } else if line_text.contains("${") && (line_text.contains('{') || line_text.contains('[')) {
        Some(
            "inside `{ }` or `[ ]`, put values that contain `${...}` in quotes: \"${project}-key\"",
        )
    } else {
        None
    };
    let tab_line = text
        .lines()
        .position(|l| {
            l.starts_with([' ', '\t']) && l[..l.len() - l.trim_start().len()].contains('\t')
        })
        .map(|i| i + 1);
    help.map(str::to_owned).or_else(|| {
        if let Some(line) = tab_line {
            Some(format!(
                "YAML indents with spaces, never tabs: line {line} has a tab in its indentation"
            ))
        } else if lowered.contains("indent")
            || lowered.contains("mapping values are not allowed")
            || lowered.contains("did not find expected")
        {
            Some(
                "check the indentation: the fields of one mapping, and the `-` items of one list, start in the same column"
                    .to_owned(),
            )
        } else {
            None
        }
    })
}

/// The diagnostic of a YAML error, pointing at where YAML gave up (and at an unclosed `[`,
/// `{` or quote that caused it).
fn yaml_diagnostic(text: &str, err: &serde_saphyr::Error, message: &str) -> Diagnostic {
    match err.location() {
        Some(location) if location.line() > 0 => {
            let line = usize::try_from(location.line()).unwrap_or(0);
            let column = usize::try_from(location.column()).unwrap_or(0);
            let offset = location
                .span()
                .byte_offset()
                .and_then(|o| usize::try_from(o).ok())
                .unwrap_or_else(|| offset_of(text, line, column));
            let pos = Pos {
                offset: offset.min(text.len()),
                len: 0,
                line,
                column,
            };
            let diagnostic = Diagnostic::error("", pos, format!("invalid YAML: {message}"));
            // An unclosed `[`, `{` or quote is reported where YAML gives up, often lines
            // later: point at where it was opened.
            match unclosed(text, pos.offset) {
                Some((at, c)) => {
                    let (line, column) = line_column(text, at);
                    let opened = Pos {
                        offset: at,
                        len: c.len_utf8(),
                        line,
                        column,
                    };
                    diagnostic.with_related(opened, format!("this `{c}` is never closed"))
                }
                None => diagnostic,
            }
        }
        _ => Diagnostic::file(format!("invalid YAML: {message}")),
    }
}

/// The last `[`, `{` or quote opened before `upto` and not closed by then: (offset, char).
/// Quotes open only where a scalar starts (after `: `, `- `, `[`, `{`, `,` or indentation),
/// so an apostrophe inside a plain word is not taken for one; `#` starts a comment only after
/// whitespace.
fn unclosed(text: &str, upto: usize) -> Option<(usize, char)> {
    let mut stack: Vec<(usize, char)> = Vec::new();
    let mut quote: Option<(usize, char)> = None;
    let mut previous = '\n';
    let mut chars = text[..upto.min(text.len())].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if let Some((_, q)) = quote {
            if q == '"' && c == '\\' {
                chars.next();
            } else if c == q {
                if q == '\'' && chars.peek().is_some_and(|(_, n)| *n == '\'') {
                    chars.next();
                } else {
                    quote = None;
                }
            }
            previous = c;
            continue;
        }
        let scalar_start = matches!(previous, '\n' | ' ' | '\t' | '[' | '{' | ',' | ':' | '-');
        match c {
            '#' if matches!(previous, '\n' | ' ' | '\t') => {
                while chars.peek().is_some_and(|(_, n)| *n != '\n') {
                    chars.next();
                }
            }
            '"' | '\'' if scalar_start => quote = Some((i, c)),
            '[' | '{' => stack.push((i, c)),
            ']' | '}' => {
                stack.pop();
            }
            _ => {}
        }
        previous = c;
    }
    quote.or_else(|| stack.last().copied())
}

/// 1-based line and column (in characters, as editors count) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The YAML crate's message, without its position (the report shows it) or API advice.
fn clean_message(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or("invalid YAML").trim();
    let lowered = first.to_lowercase();
    if lowered.contains("multiple yaml documents") {
        return "the file holds more than one YAML document".to_owned();
    }
    let mut message = first;
    for cut in [", set DuplicateKeyPolicy", "; use from_str", " at line "] {
        if let Some(at) = message.find(cut) {
            message = &message[..at];
        }
    }
    message.trim().to_owned()
}

/// Byte offset of a 1-based line and column.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return offset
                + l.char_indices()
                    .nth(column.saturating_sub(1))
                    .map_or(l.len(), |(b, _)| b);
        }
        offset += l.len();
    }
    text.len()
}
