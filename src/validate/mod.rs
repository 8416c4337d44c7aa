//! Manifest -> [`Desired`]: substitution, EC2's rules, and every cross-entry check.
//!
//! Validation reads nothing but the manifest and, to refuse an `output` that is an existing
//! folder, the metadata of the output paths. It makes no API call and writes nothing. It
//! reports every problem it finds, each on the exact span it comes from.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use crate::desired::{
    APPLY_TAG, Desired, KeyName, KeyPairSpec, KeySource, KeyType, OWN_TAGS, PROJECT_TAG, Region,
    TagSet,
};
use crate::diagnostic::{self, Diagnostic};
use crate::keys::{self, PublicKey};
use crate::manifest::{Entry, Located, Manifest, Pos, RegionList};
use crate::template::{self, TemplateError};

/// EC2's limit on tags per resource, labctl's own tag included.
pub const MAX_TAGS: usize = 50;
mod accounts;
mod entries;
mod key_source;
mod paths;
mod regions;
mod tags;
mod team;
mod variables;

pub use accounts::{reach_is_sound, role_arn_account};
pub use paths::normalize;

const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;
const DEFAULT_OUTPUT_DIR: &str = "keys";
/// The most key pairs one entry may expand to with `count`.
pub const MAX_COUNT: i128 = 1000;
/// The largest first number of a `count` entry.
pub const MAX_INDEX_START: i128 = 1_000_000;
/// Public key files larger than this are refused.
const MAX_PUBLIC_KEY_FILE: usize = 16 * 1024;
/// The longest file name (one path component) Linux and macOS file systems take, in bytes.
const MAX_FILE_NAME: usize = 255;
/// The longest path the operating system takes, in bytes.
const MAX_PATH: usize = 4095;

/// What validation needs besides the manifest.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The folder relative paths in the manifest resolve against.
    pub base_dir: PathBuf,
    /// The home folder for `~/` paths.
    pub home: Option<PathBuf>,
    /// `--var KEY=VALUE` overrides, in the order given.
    pub overrides: Vec<(String, String)>,
}

/// Validate a manifest. The desired state is returned only when there is no error;
/// the diagnostics (warnings included) come sorted by position.
pub fn validate(manifest: &Manifest, context: &Context) -> (Option<Desired>, Vec<Diagnostic>) {
    let mut v = Validator {
        context,
        diagnostics: Vec::new(),
        vars: HashMap::new(),
    };
    let desired = v.run(manifest);
    let mut diagnostics = v.diagnostics;
    diagnostic::sort(&mut diagnostics);
    // An entry expanded by `count` or `for_each` reports a shared mistake once.
    let mut seen = std::collections::HashSet::new();
    diagnostics.retain(|d| seen.insert((d.pos, d.field.clone(), d.message.clone())));
    if diagnostic::has_errors(&diagnostics) {
        (None, diagnostics)
    } else {
        (desired, diagnostics)
    }
}

/// One entry's result: the spec when everything is valid, and the parts that are valid on
/// their own, for the cross-entry checks.
struct Checked {
    spec: Option<KeyPairSpec>,
    /// The seat label, where it was given, and whether the manifest gave it (`seat:`) or it
    /// is the key pair's name.
    seat: Option<(String, Pos, bool)>,
    name: Option<(KeyName, Pos)>,
    /// The scopes it is placed in that are valid on their own.
    scopes: Vec<crate::resource::Scope>,
    output: Option<(PathBuf, String, Pos)>,
    /// The PuTTY key file the entry also writes.
    ppk: Option<PathBuf>,
}

/// The defaults, resolved once for every entry.
struct Resolved {
    output_dir: Option<String>,
    key_type: Option<KeyType>,
    regions: Option<Vec<(Region, Pos)>>,
    source: Option<SourceKind>,
    bits: Option<Located<i128>>,
    purge_tags: bool,
    /// `formats` includes `ppk`.
    ppk: bool,
    /// The manifest's accounts and the default one.
    accounts: accounts::Accounts,
}

/// A `key_type` as written: absent, invalid (already reported), or a type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Declared {
    Absent,
    Invalid,
    Type(KeyType),
}

impl From<Option<KeyType>> for Declared {
    fn from(parsed: Option<KeyType>) -> Self {
        parsed.map_or(Declared::Invalid, Declared::Type)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    Aws,
    Local,
}

/// Variables a template may use besides the user's `vars`.
#[derive(Default, Clone, Copy)]
struct Scope<'a> {
    name: Option<&'a str>,
    output_dir: Option<&'a str>,
    /// `index` (with `count`) or `item` (with `for_each`) and its value.
    instance: Option<(&'static str, &'a str)>,
}

struct Validator<'c> {
    context: &'c Context,
    diagnostics: Vec<Diagnostic>,
    vars: HashMap<String, String>,
}

fn is_project_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Validator<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn run(&mut self, manifest: &Manifest) -> Option<Desired> {
        if let Some(version) = &manifest.version
            && version.value != 1
        {
            self.push(
                Diagnostic::error(
                    "version",
                    version.pos,
                    format!("unsupported manifest version {}", version.value),
                )
                .with_label("labctl reads version 1")
                .with_help("set `version: 1`"),
            );
        }
        let project = manifest.project.as_ref().map(|p| {
            if !is_project_name(&p.value) {
                self.push(
                    Diagnostic::error(
                        "project",
                        p.pos,
                        format!("`{}` is not a valid project name", p.value),
                    )
                    .with_help("use 1 to 64 characters from A-Z a-z 0-9 . _ -"),
                );
            }
            p.value.clone()
        });
        self.vars(manifest, project.as_deref());
        let mut resolved = self.defaults(manifest);
        resolved.accounts = self.accounts(manifest, project.as_deref());

        let entries = manifest
            .keypairs
            .as_ref()
            .map_or(&[][..], |k| k.value.as_slice());
        let mut specs = Vec::with_capacity(entries.len());
        // (name, region) -> where that name was first given, for duplicate detection.
        let mut seen_names: BTreeMap<(String, crate::resource::Scope), Pos> = BTreeMap::new();
        let mut seen_outputs: BTreeMap<PathBuf, Pos> = BTreeMap::new();
        let mut seen_seats: BTreeMap<String, (Pos, bool)> = BTreeMap::new();
        for entry in entries {
            for instance in self.instances(entry) {
                let instance = instance.as_ref().map(|(var, value)| (*var, value.as_str()));
                let checked = self.entry(manifest, entry, &resolved, instance);
                self.check_unique(entry, &checked, &mut seen_names, &mut seen_outputs);
                self.check_seat(entry, &checked, &mut seen_seats);
                specs.extend(checked.spec);
            }
        }
        self.unused_accounts(&resolved.accounts);
        let store = self.store(manifest);
        let state = self.state(manifest);
        let project = project?;
        let orphan_dir = self.resolve(resolved.output_dir.as_deref().unwrap_or(DEFAULT_OUTPUT_DIR));
        Some(Desired {
            project,
            keypairs: specs,
            orphan_dir,
            accounts: std::mem::take(&mut resolved.accounts.reaches),
            former_scopes: Vec::new(),
            store,
            state,
        })
    }

    /// Seats people tell apart: the same seat label from two key pairs is an error, unless
    /// both are one key pair name (listed in two regions by two entries).
    fn check_seat(
        &mut self,
        entry: &Entry,
        checked: &Checked,
        seen: &mut BTreeMap<String, (Pos, bool)>,
    ) {
        let Some((seat, pos, given)) = &checked.seat else {
            return;
        };
        match seen.get(seat) {
            Some((first, first_given)) if *given || *first_given => {
                let field = if *given { "seat" } else { "name" };
                let mut diagnostic = Diagnostic::error(
                    format!("keypairs[{}].{field}", entry.index),
                    *pos,
                    format!("seat `{seat}` is given to two key pairs"),
                )
                .with_label("given again here")
                .with_help("seats tell attendees apart: make each entry's `seat` its own, e.g. `seat: eu-${index}`");
                if first != pos {
                    diagnostic = diagnostic.with_related(*first, "first given here");
                }
                self.push(diagnostic);
            }
            Some(_) => {}
            None => {
                seen.insert(seat.clone(), (*pos, *given));
            }
        }
    }

    /// The same name twice in a region, or two entries writing one file, with both places.
    fn check_unique(
        &mut self,
        entry: &Entry,
        checked: &Checked,
        seen_names: &mut BTreeMap<(String, crate::resource::Scope), Pos>,
        seen_outputs: &mut BTreeMap<PathBuf, Pos>,
    ) {
        if let Some((name, name_pos)) = &checked.name {
            for region in &checked.scopes {
                let key = (name.as_str().to_owned(), region.clone());
                if let Some(first) = seen_names.get(&key) {
                    let mut diagnostic = Diagnostic::error(
                        format!("keypairs[{}].name", entry.index),
                        *name_pos,
                        format!("key pair `{name}` is listed twice in {region}"),
                    )
                    .with_label("listed again here")
                    .with_help(
                        "key pair names are unique per account and region; rename one of them",
                    );
                    if first == name_pos {
                        diagnostic = diagnostic.with_help(
                            "every key pair of a `count` or `for_each` entry needs its own name: use `${index}` or `${item}` in `name`",
                        );
                    } else {
                        diagnostic = diagnostic.with_related(*first, "first listed here");
                    }
                    self.push(diagnostic);
                } else {
                    seen_names.insert(key, *name_pos);
                }
            }
        }
        if let (Some(ppk), Some((_, _, output_pos))) = (&checked.ppk, &checked.output) {
            let ppk = &crate::keys::path_identity(ppk);
            if let Some(first) = seen_outputs.get(ppk) {
                self.push(
                    Diagnostic::error(
                        format!("keypairs[{}].output", entry.index),
                        *output_pos,
                        format!("two key pairs would write the same file {}", ppk.display()),
                    )
                    .with_label("its PuTTY key is written here")
                    .with_related(*first, "first written here")
                    .with_help("give each key pair its own `output` file"),
                );
            } else {
                seen_outputs.insert(ppk.clone(), *output_pos);
            }
        }
        if let Some((path, display, output_pos)) = &checked.output {
            let path = &crate::keys::path_identity(path);
            if let Some(first) = seen_outputs.get(path) {
                let mut diagnostic = Diagnostic::error(
                    format!("keypairs[{}].output", entry.index),
                    *output_pos,
                    format!("two key pairs would write the same file {display}"),
                )
                .with_label("written again here")
                .with_help("give each key pair its own `output` file");
                if first != output_pos {
                    diagnostic = diagnostic.with_related(*first, "first written here");
                }
                self.push(diagnostic);
            } else {
                seen_outputs.insert(path.clone(), *output_pos);
            }
        }
    }

    fn defaults(&mut self, manifest: &Manifest) -> Resolved {
        let d = &manifest.defaults;
        let output_dir = match &d.output_dir {
            Some(dir) => self.expand("defaults.output_dir", dir, Scope::default()),
            None => Some(DEFAULT_OUTPUT_DIR.to_owned()),
        };
        let key_type = d
            .key_type
            .as_ref()
            .and_then(|k| self.key_type("defaults.key_type", k));
        let regions = d.regions.as_ref().map(|list| self.region_list(list));
        let source = d
            .source
            .as_ref()
            .and_then(|s| self.source("defaults.source", s));
        Resolved {
            output_dir,
            key_type,
            regions,
            source,
            bits: d.bits.clone(),
            purge_tags: d.purge_tags.as_ref().is_some_and(|p| p.value),
            ppk: d
                .formats
                .as_ref()
                .and_then(|f| self.formats("defaults.formats", f))
                .unwrap_or(false),
            accounts: accounts::Accounts::default(),
        }
    }

    /// A `formats` list: `pem` (always written) and `ppk` (PuTTY). Returns whether `ppk` is
    /// asked for, or `None` when the list is wrong (reported).
    fn formats(&mut self, field: &str, list: &Located<Vec<Located<String>>>) -> Option<bool> {
        const FORMATS: &[&str] = &["pem", "ppk"];
        let mut seen: BTreeMap<&str, Pos> = BTreeMap::new();
        let mut ok = true;
        for (i, item) in list.value.iter().enumerate() {
            let value = item.value.as_str();
            if !FORMATS.contains(&value) {
                let mut diagnostic = Diagnostic::error(
                    format!("{field}[{i}]"),
                    item.pos,
                    format!("unknown key file format `{value}`"),
                )
                .with_label("not a format");
                diagnostic = match diagnostic::suggest(&value.to_ascii_lowercase(), FORMATS) {
                    Some(close) => diagnostic.with_help(format!("did you mean `{close}`?")),
                    None => diagnostic.with_help(
                        "labctl writes `pem` (the OpenSSH key, always) and `ppk` (PuTTY's)",
                    ),
                };
                self.push(diagnostic);
                ok = false;
            } else if let Some(first) = seen.get(value) {
                self.push(
                    Diagnostic::error(
                        format!("{field}[{i}]"),
                        item.pos,
                        format!("`{value}` is listed twice"),
                    )
                    .with_label("listed again here")
                    .with_related(*first, "first listed here"),
                );
                ok = false;
            } else {
                seen.insert(value, item.pos);
            }
        }
        if ok && !seen.contains_key("pem") {
            self.push(
                Diagnostic::error(field, list.pos, "`formats` must include `pem`")
                    .with_label("no pem")
                    .with_help(
                        "the `.pem` file is the key labctl works from; write `formats: [pem, ppk]`",
                    ),
            );
            ok = false;
        }
        ok.then(|| seen.contains_key("ppk"))
    }
}

/// The diagnostics of a manifest as `(severity, field, message)`, for the table tests of each
/// concern.
#[cfg(test)]
fn check(yaml: &str) -> Vec<(diagnostic::Severity, String, String)> {
    let source = crate::manifest::Source::from_text("labctl.yaml", yaml);
    let (manifest, mut diagnostics) = crate::manifest::parse(&source);
    if let Some(manifest) = manifest {
        let context = Context {
            base_dir: PathBuf::from("/work/lab"),
            home: Some(PathBuf::from("/home/me")),
            overrides: Vec::new(),
        };
        diagnostics.extend(validate(&manifest, &context).1);
    }
    diagnostics
        .into_iter()
        .map(|d| (d.severity, d.field, d.message))
        .collect()
}

/// Run a table: each manifest body (after a common head) gives exactly one diagnostic of
/// that field, whose message contains the text.
#[cfg(test)]
fn table(cases: &[(&str, &str, &str)]) {
    for (body, field, text) in cases {
        let yaml = format!("version: 1\nproject: lab\ndefaults: {{ region: us-east-1 }}\n{body}");
        let found = check(&yaml);
        let errors: Vec<&(diagnostic::Severity, String, String)> = found
            .iter()
            .filter(|(s, _, _)| *s == diagnostic::Severity::Error)
            .collect();
        assert_eq!(errors.len(), 1, "{body}: {found:?}");
        assert_eq!(errors[0].1, *field, "{body}: {found:?}");
        assert!(errors[0].2.contains(text), "{body}: {found:?}");
    }
}

#[cfg(test)]
mod tests {
    //! Snapshots of the diagnostics people read: wording changes show up as diffs.

    use std::path::PathBuf;

    use super::{Context, validate};
    use crate::diagnostic::{self, Style};

    #[test]
    fn every_mistake_with_its_line_and_help() {
        let text = "version: 1\nproject: lab\nvars: { owner: me }\ndefaults:\n  region: us-east1\nkeypairs:\n  - name: lab-${ownr}\n    key_type: dsa\n  - name: ../lab\n    tags: { \"aws:x\": y }\n";
        let source = crate::manifest::Source::from_text("labctl.yaml", text);
        let (manifest, mut diagnostics) = crate::manifest::parse(&source);
        let context = Context {
            base_dir: PathBuf::from("lab"),
            home: None,
            overrides: Vec::new(),
        };
        diagnostics.extend(validate(&manifest.unwrap(), &context).1);
        diagnostic::sort(&mut diagnostics);
        insta::assert_snapshot!(diagnostic::render_human(
            "labctl.yaml",
            text,
            &diagnostics,
            Style { color: false }
        ));
    }
}
