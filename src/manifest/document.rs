//! The manifest's structure: which fields exist, which are required, and their types.
//!
//! [`read`] walks the YAML tree and keeps going after a mistake, so one run reports every
//! unknown field, wrong type and missing field. What it returns is still raw text with
//! positions: substitution and the meaning of values belong to `validate`.

use super::Located;
use super::accounts::AccountDef;
use super::node::{Kind, Node, Pos};
use crate::diagnostic::Diagnostic;

/// Top-level fields.
pub const FIELDS_TOP: &[&str] = &[
    "version", "project", "vars", "accounts", "defaults", "keypairs", "store", "state",
];
/// Fields of `defaults`.
pub const FIELDS_DEFAULTS: &[&str] = &[
    "region",
    "regions",
    "key_type",
    "source",
    "bits",
    "output_dir",
    "tags",
    "purge_tags",
    "formats",
    "account",
    "role_name",
];
/// Fields of one `keypairs` entry.
pub const FIELDS_ENTRY: &[&str] = &[
    "name",
    "count",
    "for_each",
    "index_start",
    "skip",
    "seat",
    "region",
    "regions",
    "account",
    "accounts",
    "key_type",
    "source",
    "bits",
    "public_key",
    "tags",
    "purge_tags",
    "output",
    "formats",
];

/// A manifest as written, before substitution and validation.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    pub version: Option<Located<i128>>,
    pub project: Option<Located<String>>,
    pub vars: Vec<(Located<String>, Located<String>)>,
    /// The `accounts` mapping, in the order written.
    pub accounts: Vec<AccountDef>,
    pub defaults: Defaults,
    /// The `keypairs` list and where it is; `None` when missing or not a list.
    pub keypairs: Option<Located<Vec<Entry>>>,
    /// Where the team's copy of each private key is kept (`store: ssm`).
    pub store: Option<super::team::StoreDef>,
    /// Where the lock and the journal are shared (`state: s3://bucket/prefix`).
    pub state: Option<Located<String>>,
}

/// The `defaults` block.
#[derive(Clone, Debug, Default)]
pub struct Defaults {
    pub regions: Option<RegionList>,
    pub key_type: Option<Located<String>>,
    pub source: Option<Located<String>>,
    pub bits: Option<Located<i128>>,
    pub output_dir: Option<Located<String>>,
    pub tags: Vec<(Located<String>, Located<String>)>,
    pub purge_tags: Option<Located<bool>>,
    pub formats: Option<Located<Vec<Located<String>>>>,
    /// The account of entries that name none (an `accounts` name).
    pub account: Option<Located<String>>,
    /// The role assumed in accounts given by `id`.
    pub role_name: Option<Located<String>>,
}

/// `region: x` or `regions: [x, y]` (and `account`/`accounts`), whichever was written.
#[derive(Clone, Debug)]
pub struct RegionList {
    /// The field path, e.g. `keypairs[0].regions`.
    pub field: String,
    pub pos: Pos,
    pub items: Vec<Located<String>>,
    /// The value was of the wrong type (already reported): there is a setting, but no list.
    pub invalid: bool,
}

/// The integers of a list, each with its place in it.
pub(crate) type IndexedInts = Vec<(usize, Located<i128>)>;

/// One entry of `keypairs`.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Index in the `keypairs` list.
    pub index: usize,
    pub pos: Pos,
    pub name: Option<Located<String>>,
    pub count: Option<Located<i128>>,
    pub for_each: Option<Located<Vec<Located<String>>>>,
    /// The first `${index}` of a `count` entry (default 1).
    pub index_start: Option<Located<i128>>,
    /// Numbers a `count` entry leaves out (a no-show's seat), each with its place in the
    /// list (an item that is not an integer was reported and is left out).
    pub skip: Option<Located<IndexedInts>>,
    /// The seat label template (default: the key pair's name).
    pub seat: Option<Located<String>>,
    pub regions: Option<RegionList>,
    /// `account: x` or `accounts: [x, y]`: names of the manifest's `accounts` (boxed: most
    /// entries give none, and an entry's size counts 10,000 times in a large manifest).
    pub accounts: Option<Box<RegionList>>,
    pub key_type: Option<Located<String>>,
    pub source: Option<Located<String>>,
    pub bits: Option<Located<i128>>,
    pub public_key: Option<Located<String>>,
    pub tags: Vec<(Located<String>, Located<String>)>,
    pub purge_tags: Option<Located<bool>>,
    pub output: Option<Located<String>>,
    pub formats: Option<Located<Vec<Located<String>>>>,
}

/// Read the document's structure, collecting every structural problem.
pub(super) fn read(root: &Node) -> (Manifest, Vec<Diagnostic>) {
    let mut reader = Reader::default();
    let manifest = reader.manifest(root);
    (manifest, reader.diagnostics)
}

#[derive(Default)]
pub(super) struct Reader {
    diagnostics: Vec<Diagnostic>,
    /// Unknown fields reported with a suggestion: (the suggested field's path, where).
    misspelled: Vec<(String, Pos)>,
}

pub(super) fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

impl Reader {
    pub(super) fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub(super) fn wrong_type(&mut self, field: &str, node: &Node, expected: &str) {
        let mut diagnostic = Diagnostic::error(
            field,
            node.pos,
            format!("expected {expected}, found {}", node.kind.describe()),
        )
        .with_label(format!("expected {expected}"));
        if expected == "a string"
            && matches!(node.kind, Kind::Int(_) | Kind::Float(_) | Kind::Bool(_))
        {
            diagnostic = diagnostic.with_help("put the value in quotes to make it a string");
        }
        self.error(diagnostic);
    }

    /// The entries of a mapping with string keys; unknown keys are reported (with a suggestion).
    pub(super) fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        what: &str,
        known: &[&str],
    ) -> Option<Vec<(&'n str, &'n Node, &'n Node)>> {
        let Kind::Map(entries) = &node.kind else {
            self.wrong_type(
                if path.is_empty() { "" } else { path },
                node,
                &format!("a mapping ({what})"),
            );
            return None;
        };
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let Kind::Str(name) = &key.kind else {
                self.error(Diagnostic::error(
                    path,
                    key.pos,
                    format!("field names must be strings, found {}", key.kind.describe()),
                ));
                continue;
            };
            if known.contains(&name.as_str()) {
                out.push((name.as_str(), key, value));
            } else {
                let mut diagnostic = Diagnostic::error(
                    join(path, name),
                    key.pos,
                    format!("unknown field `{name}` in {what}"),
                )
                .with_label("unknown field");
                diagnostic = match crate::diagnostic::suggest(name, known) {
                    Some(s) => {
                        self.misspelled.push((join(path, s), key.pos));
                        diagnostic.with_help(format!("did you mean `{s}`?"))
                    }
                    None => diagnostic.with_help(format!("{what} takes: {}", known.join(", "))),
                };
                self.error(diagnostic);
            }
        }
        Some(out)
    }

    pub(super) fn string(&mut self, field: &str, node: &Node) -> Option<Located<String>> {
        if let Kind::Str(s) = &node.kind {
            Some(Located {
                value: s.clone(),
                pos: node.pos,
            })
        } else {
            self.wrong_type(field, node, "a string");
            None
        }
    }

    fn int(&mut self, field: &str, node: &Node) -> Option<Located<i128>> {
        if let Kind::Int(v) = node.kind {
            Some(Located {
                value: v,
                pos: node.pos,
            })
        } else {
            self.wrong_type(field, node, "an integer");
            None
        }
    }

    fn boolean(&mut self, field: &str, node: &Node) -> Option<Located<bool>> {
        if let Kind::Bool(v) = node.kind {
            Some(Located {
                value: v,
                pos: node.pos,
            })
        } else {
            self.wrong_type(field, node, "`true` or `false`");
            None
        }
    }

    fn string_list(&mut self, field: &str, node: &Node) -> Option<Located<Vec<Located<String>>>> {
        let Kind::Seq(items) = &node.kind else {
            self.wrong_type(field, node, "a list of strings");
            return None;
        };
        let value = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.string(&format!("{field}[{i}]"), item))
            .collect();
        Some(Located {
            value,
            pos: node.pos,
        })
    }

    fn int_list(&mut self, field: &str, node: &Node) -> Option<Located<IndexedInts>> {
        let Kind::Seq(items) = &node.kind else {
            self.wrong_type(field, node, "a list of integers");
            return None;
        };
        let value = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| Some((i, self.int(&format!("{field}[{i}]"), item)?)))
            .collect();
        Some(Located {
            value,
            pos: node.pos,
        })
    }

    fn string_map(&mut self, field: &str, node: &Node) -> Vec<(Located<String>, Located<String>)> {
        let Kind::Map(entries) = &node.kind else {
            if !matches!(node.kind, Kind::Null) {
                self.wrong_type(field, node, "a mapping of names to strings");
            }
            return Vec::new();
        };
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let Some(key) = self.string(field, key) else {
                continue;
            };
            let value_field = join(field, &key.value);
            if let Some(value) = self.string(&value_field, value) {
                out.push((key, value));
            }
        }
        out
    }

    fn regions(&mut self, field: &str, key: &Node, node: &Node, what: &str) -> RegionList {
        let items = match &node.kind {
            Kind::Str(s) => vec![Located {
                value: s.clone(),
                pos: node.pos,
            }],
            Kind::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.string(&format!("{field}[{i}]"), item))
                .collect(),
            _ => {
                let article = if what.starts_with('a') { "an" } else { "a" };
                self.wrong_type(
                    field,
                    node,
                    &format!("{article} {what} name or a list of {what} names"),
                );
                return RegionList {
                    field: field.to_owned(),
                    pos: node.pos,
                    items: Vec::new(),
                    invalid: true,
                };
            }
        };
        let pos = if matches!(node.kind, Kind::Seq(_)) {
            key.pos
        } else {
            node.pos
        };
        RegionList {
            field: field.to_owned(),
            pos,
            items,
            invalid: false,
        }
    }

    /// `region` and `regions` (or `account` and `accounts`) are two spellings of one
    /// setting; both at once is an error.
    pub(super) fn region_setting(
        &mut self,
        path: &str,
        slot: &mut Option<RegionList>,
        name: &str,
        key: &Node,
        value: &Node,
    ) {
        let field = join(path, name);
        let what = name.trim_end_matches('s');
        if let Some(previous) = slot.as_ref() {
            let diagnostic = Diagnostic::error(
                &field,
                key.pos,
                format!("give either `{what}` or `{what}s`, not both"),
            )
            .with_related(previous.pos, format!("{what}s already given here"))
            .with_help(format!("use `{what}s: [a, b]` for several {what}s"));
            self.error(diagnostic);
            return;
        }
        *slot = Some(self.regions(&field, key, value, what));
    }

    fn manifest(&mut self, root: &Node) -> Manifest {
        let mut manifest = Manifest::default();
        let Some(fields) = self.fields(root, "", "the manifest", FIELDS_TOP) else {
            return manifest;
        };
        let mut seen_keypairs = false;
        let mut seen_version = false;
        let mut seen_project = false;
        for (name, key, value) in fields {
            match name {
                "version" => {
                    seen_version = true;
                    if let Kind::Int(v) = value.kind {
                        manifest.version = Some(Located {
                            value: v,
                            pos: value.pos,
                        });
                    } else {
                        self.wrong_type("version", value, "the integer 1");
                    }
                }
                "project" => {
                    seen_project = true;
                    manifest.project = self.string("project", value);
                }
                "vars" => manifest.vars = self.string_map("vars", value),
                "accounts" => manifest.accounts = self.accounts(value),
                "store" => manifest.store = self.store(value),
                "state" => manifest.state = self.string("state", value),
                "defaults" => manifest.defaults = self.defaults(value),
                "keypairs" => {
                    seen_keypairs = true;
                    manifest.keypairs = self.keypairs(key, value);
                }
                _ => {}
            }
        }
        for (seen, field, help) in [
            (
                seen_version,
                "version",
                "add `version: 1` at the top of the manifest",
            ),
            (
                seen_project,
                "project",
                "add `project: <name>`; labctl tags what it creates with it",
            ),
            (
                seen_keypairs,
                "keypairs",
                "add `keypairs:` with at least one `- name: ...`",
            ),
        ] {
            if !seen {
                let start = Pos {
                    offset: root.pos.offset,
                    len: 0,
                    line: root.pos.line.max(1),
                    column: root.pos.column.max(1),
                };
                self.error(
                    Diagnostic::error(field, start, format!("missing required field `{field}`"))
                        .with_label("in this manifest")
                        .with_help(help),
                );
            }
        }
        manifest
    }

    fn defaults(&mut self, node: &Node) -> Defaults {
        let mut defaults = Defaults::default();
        if matches!(node.kind, Kind::Null) {
            return defaults;
        }
        let Some(fields) = self.fields(node, "defaults", "defaults", FIELDS_DEFAULTS) else {
            return defaults;
        };
        for (name, key, value) in fields {
            match name {
                "region" | "regions" => {
                    self.region_setting("defaults", &mut defaults.regions, name, key, value);
                }
                "key_type" => defaults.key_type = self.string("defaults.key_type", value),
                "source" => defaults.source = self.string("defaults.source", value),
                "bits" => defaults.bits = self.int("defaults.bits", value),
                "output_dir" => defaults.output_dir = self.string("defaults.output_dir", value),
                "tags" => defaults.tags = self.string_map("defaults.tags", value),
                "purge_tags" => defaults.purge_tags = self.boolean("defaults.purge_tags", value),
                "formats" => defaults.formats = self.string_list("defaults.formats", value),
                "account" => defaults.account = self.string("defaults.account", value),
                "role_name" => defaults.role_name = self.string("defaults.role_name", value),
                _ => {}
            }
        }
        if defaults.regions.is_none() {
            defaults.regions = self.misspelled_regions("defaults");
        }
        defaults
    }

    /// A misspelled `region`/`regions` (reported already) is a region setting that is not
    /// usable, like one of the wrong type: one mistake, not also "this key pair has no region".
    fn misspelled_regions(&self, parent: &str) -> Option<RegionList> {
        let names = [join(parent, "region"), join(parent, "regions")];
        self.misspelled
            .iter()
            .find(|(field, _)| names.contains(field))
            .map(|(field, pos)| RegionList {
                field: field.clone(),
                pos: *pos,
                items: Vec::new(),
                invalid: true,
            })
    }

    fn keypairs(&mut self, key: &Node, node: &Node) -> Option<Located<Vec<Entry>>> {
        let Kind::Seq(items) = &node.kind else {
            if matches!(node.kind, Kind::Null) {
                self.error(
                    Diagnostic::error("keypairs", key.pos, "`keypairs` is empty")
                        .with_help("list at least one key pair: `- name: my-key`"),
                );
            } else {
                self.wrong_type("keypairs", node, "a list of key pairs");
            }
            return None;
        };
        if items.is_empty() {
            self.error(
                Diagnostic::error("keypairs", node.pos, "`keypairs` is empty")
                    .with_help("list at least one key pair: `- name: my-key`"),
            );
        }
        // Sized once: a manifest of 10,000 entries holds 10,000, not the 16,384 of doubling.
        let mut entries = Vec::with_capacity(items.len());
        entries.extend(
            items
                .iter()
                .enumerate()
                .filter_map(|(index, item)| self.entry(index, item)),
        );
        Some(Located {
            value: entries,
            pos: key.pos,
        })
    }

    fn entry(&mut self, index: usize, node: &Node) -> Option<Entry> {
        let path = format!("keypairs[{index}]");
        let fields = self.fields(node, &path, "a key pair", FIELDS_ENTRY)?;
        let mut entry = Entry {
            index,
            pos: node.pos,
            name: None,
            count: None,
            for_each: None,
            index_start: None,
            skip: None,
            seat: None,
            regions: None,
            accounts: None,
            key_type: None,
            source: None,
            bits: None,
            public_key: None,
            tags: Vec::new(),
            purge_tags: None,
            output: None,
            formats: None,
        };
        let mut seen_name = false;
        for (name, key, value) in fields {
            let field = join(&path, name);
            match name {
                "name" => {
                    seen_name = true;
                    entry.name = self.string(&field, value);
                }
                "region" | "regions" => {
                    self.region_setting(&path, &mut entry.regions, name, key, value);
                }
                "account" | "accounts" => {
                    let mut setting = entry.accounts.take().map(|b| *b);
                    self.region_setting(&path, &mut setting, name, key, value);
                    entry.accounts = setting.map(Box::new);
                }
                "key_type" => entry.key_type = self.string(&field, value),
                "source" => entry.source = self.string(&field, value),
                "bits" => entry.bits = self.int(&field, value),
                "public_key" => entry.public_key = self.string(&field, value),
                "count" => entry.count = self.int(&field, value),
                "for_each" => entry.for_each = self.string_list(&field, value),
                "index_start" => entry.index_start = self.int(&field, value),
                "skip" => entry.skip = self.int_list(&field, value),
                "seat" => entry.seat = self.string(&field, value),
                "tags" => entry.tags = self.string_map(&field, value),
                "purge_tags" => entry.purge_tags = self.boolean(&field, value),
                "output" => entry.output = self.string(&field, value),
                "formats" => entry.formats = self.string_list(&field, value),
                _ => {}
            }
        }
        if !seen_name {
            self.error(
                Diagnostic::error(
                    join(&path, "name"),
                    node.pos,
                    "missing required field `name`",
                )
                .with_label("this key pair has no name")
                .with_help("add `name: <key pair name>`"),
            );
        }
        if entry.regions.is_none() {
            entry.regions = self.misspelled_regions(&path);
        }
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::suggest;

    #[test]
    fn suggests_close_field_names_only() {
        assert_eq!(suggest("regoin", super::FIELDS_ENTRY), Some("region"));
        assert_eq!(suggest("keytype", super::FIELDS_ENTRY), Some("key_type"));
        assert_eq!(suggest("colour", super::FIELDS_ENTRY), None);
    }
}
