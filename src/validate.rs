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
use crate::lock;
use crate::manifest::{Entry, Located, Manifest, Pos, RegionList};
use crate::template::{self, TemplateError};

/// EC2's limit on tags per resource, labctl's own tag included.
pub const MAX_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;
const DEFAULT_OUTPUT_DIR: &str = "keys";
/// The most key pairs one entry may expand to with `count`.
pub const MAX_COUNT: i128 = 1000;
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
    name: Option<(KeyName, Pos)>,
    regions: Vec<Region>,
    output: Option<(PathBuf, String, Pos)>,
}

/// The defaults, resolved once for every entry.
struct Resolved {
    output_dir: Option<String>,
    key_type: Option<KeyType>,
    regions: Option<Vec<(Region, Pos)>>,
    source: Option<SourceKind>,
    bits: Option<Located<i128>>,
    purge_tags: bool,
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

    /// Expand a template; on failure report it at the value and return `None`.
    fn expand(&mut self, field: &str, value: &Located<String>, scope: Scope<'_>) -> Option<String> {
        let vars = &self.vars;
        let lookup = |name: &str| -> Option<&str> {
            match (name, scope.instance) {
                ("name", _) => scope.name,
                ("output_dir", _) => scope.output_dir,
                (_, Some((var, value))) if var == name => Some(value),
                _ => vars.get(name).map(String::as_str),
            }
        };
        match template::expand(&value.value, lookup) {
            Ok(text) => Some(text),
            Err(TemplateError::Unknown(name)) => {
                let mut known: Vec<&str> = self.vars.keys().map(String::as_str).collect();
                known.extend(scope.name.map(|_| "name"));
                known.extend(scope.output_dir.map(|_| "output_dir"));
                known.extend(scope.instance.map(|(var, _)| var));
                known.sort_unstable();
                let help = match name.as_str() {
                    "name" => {
                        "`${name}` is only available in `output` and in tag values".to_owned()
                    }
                    "index" => "`${index}` is only available in an entry with `count`".to_owned(),
                    "item" => "`${item}` is only available in an entry with `for_each`".to_owned(),
                    _ => format!(
                        "define it under `vars:` or pass `--var {name}=VALUE`; available here: {}",
                        known.join(", ")
                    ),
                };
                self.push(
                    Diagnostic::error(
                        field,
                        value.pos,
                        format!("undefined variable `${{{name}}}`"),
                    )
                    .with_label("used here")
                    .with_help(help),
                );
                None
            }
            Err(TemplateError::Malformed(text)) => {
                self.push(
                    Diagnostic::error(
                        field,
                        value.pos,
                        format!("malformed variable reference `{text}`"),
                    )
                    .with_help("write `${name}` (`${index:03}` pads with zeros to 3 digits), or `$${` for a literal `${`"),
                );
                None
            }
        }
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
        let resolved = self.defaults(manifest);

        let entries = manifest
            .keypairs
            .as_ref()
            .map_or(&[][..], |k| k.value.as_slice());
        let mut specs = Vec::with_capacity(entries.len());
        // (name, region) -> where that name was first given, for duplicate detection.
        let mut seen_names: BTreeMap<(String, String), Pos> = BTreeMap::new();
        let mut seen_outputs: BTreeMap<PathBuf, Pos> = BTreeMap::new();
        for entry in entries {
            for instance in self.instances(entry) {
                let instance = instance.as_ref().map(|(var, value)| (*var, value.as_str()));
                let checked = self.entry(manifest, entry, &resolved, instance);
                self.check_unique(entry, &checked, &mut seen_names, &mut seen_outputs);
                specs.extend(checked.spec);
            }
        }
        let project = project?;
        let orphan_dir = self.resolve(resolved.output_dir.as_deref().unwrap_or(DEFAULT_OUTPUT_DIR));
        Some(Desired {
            project,
            keypairs: specs,
            orphan_dir,
        })
    }

    /// The same name twice in a region, or two entries writing one file, with both places.
    fn check_unique(
        &mut self,
        entry: &Entry,
        checked: &Checked,
        seen_names: &mut BTreeMap<(String, String), Pos>,
        seen_outputs: &mut BTreeMap<PathBuf, Pos>,
    ) {
        if let Some((name, name_pos)) = &checked.name {
            for region in &checked.regions {
                let key = (name.as_str().to_owned(), region.as_str().to_owned());
                if let Some(first) = seen_names.get(&key) {
                    let mut diagnostic = Diagnostic::error(
                        format!("keypairs[{}].name", entry.index),
                        *name_pos,
                        format!("key pair `{name}` is listed twice in {region}"),
                    )
                    .with_label("listed again here")
                    .with_help("key pair names are unique per region; rename one of them");
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
        if let Some((path, display, output_pos)) = &checked.output {
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

    /// The values of `${index}` or `${item}` an entry expands to; `[None]` for a plain entry.
    fn instances(&mut self, entry: &Entry) -> Vec<Option<(&'static str, String)>> {
        let path = format!("keypairs[{}]", entry.index);
        match (&entry.count, &entry.for_each) {
            (Some(count), Some(_)) => {
                self.push(
                    Diagnostic::error(
                        format!("{path}.count"),
                        count.pos,
                        "give either `count` or `for_each`, not both",
                    )
                    .with_help("`count: N` numbers the key pairs; `for_each: [a, b]` names them"),
                );
                vec![]
            }
            (Some(count), None) => {
                if !(1..=MAX_COUNT).contains(&count.value) {
                    self.push(
                        Diagnostic::error(
                            format!("{path}.count"),
                            count.pos,
                            format!("`count` must be 1 to {MAX_COUNT}"),
                        )
                        .with_label("out of range"),
                    );
                    return vec![];
                }
                // Never padded by itself: a seat keeps its name when `count` grows past a
                // digit boundary. `${index:02}` pads, when the manifest asks for it.
                (1..=count.value)
                    .map(|i| Some(("index", i.to_string())))
                    .collect()
            }
            (None, Some(items)) => {
                if items.value.is_empty() {
                    self.push(
                        Diagnostic::error(
                            format!("{path}.for_each"),
                            items.pos,
                            "`for_each` is empty",
                        )
                        .with_help("list at least one item, e.g. `for_each: [alice, bob]`"),
                    );
                }
                let mut out: Vec<Option<(&'static str, String)>> =
                    Vec::with_capacity(items.value.len());
                let mut seen: HashMap<&str, Pos> = HashMap::new();
                for (i, item) in items.value.iter().enumerate() {
                    if let Some(first) = seen.get(item.value.as_str()) {
                        self.push(
                            Diagnostic::error(
                                format!("{path}.for_each[{i}]"),
                                item.pos,
                                format!("`{}` is listed twice", item.value),
                            )
                            .with_label("listed again here")
                            .with_related(*first, "first listed here"),
                        );
                        continue;
                    }
                    seen.insert(&item.value, item.pos);
                    out.push(Some(("item", item.value.clone())));
                }
                out
            }
            (None, None) => vec![None],
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
        }
    }

    fn vars(&mut self, manifest: &Manifest, project: Option<&str>) {
        if let Some(project) = project {
            self.vars.insert("project".to_owned(), project.to_owned());
        }
        let mut defined = Vec::new();
        for (key, value) in &manifest.vars {
            let field = format!("vars.{}", key.value);
            if let Err(message) = template::check_user_variable(&key.value) {
                self.push(
                    Diagnostic::error(&field, key.pos, message)
                        .with_help("pick another name: letters, digits, `_` and `-`"),
                );
                continue;
            }
            // Variables may use `${project}`, not each other: no order or cycles to explain.
            if let Some(text) = self.expand(&field, value, Scope::default()) {
                defined.push((key.value.clone(), text));
            }
        }
        for (key, text) in defined {
            self.vars.insert(key, text);
        }
        for (key, value) in &self.context.overrides {
            self.vars.insert(key.clone(), value.clone());
        }
    }

    fn key_type(&mut self, field: &str, value: &Located<String>) -> Option<KeyType> {
        let parsed = KeyType::parse(&value.value);
        if parsed.is_none() {
            self.push(
                Diagnostic::error(
                    field,
                    value.pos,
                    format!("unknown key type `{}`", value.value),
                )
                .with_label("not a key type")
                .with_help("use `rsa` or `ed25519`"),
            );
        }
        parsed
    }

    fn source(&mut self, field: &str, value: &Located<String>) -> Option<SourceKind> {
        match value.value.as_str() {
            "aws" => Some(SourceKind::Aws),
            "local" => Some(SourceKind::Local),
            other => {
                self.push(
                    Diagnostic::error(field, value.pos, format!("unknown key source `{other}`"))
                        .with_label("not a key source")
                        .with_help("use `aws` (EC2 generates the key) or `local` (labctl generates it); to import a key you have, give `public_key` instead"),
                );
                None
            }
        }
    }

    /// Expand and check a region list; duplicates are reported with both places.
    fn region_list(&mut self, list: &RegionList) -> Vec<(Region, Pos)> {
        let mut out: Vec<(Region, Pos)> = Vec::with_capacity(list.items.len());
        if list.invalid {
            return out;
        }
        if list.items.is_empty() {
            self.push(
                Diagnostic::error(&list.field, list.pos, "the region list is empty")
                    .with_help("list at least one region, e.g. `regions: [us-east-1]`"),
            );
        }
        for (i, item) in list.items.iter().enumerate() {
            let field = if list.items.len() > 1 || list.field.ends_with('s') {
                format!("{}[{i}]", list.field)
            } else {
                list.field.clone()
            };
            let Some(text) = self.expand(&field, item, Scope::default()) else {
                continue;
            };
            match Region::parse(&text) {
                Ok(region) => {
                    if let Some((_, first)) = out.iter().find(|(r, _)| *r == region) {
                        self.push(
                            Diagnostic::error(
                                &field,
                                item.pos,
                                format!("region {region} is listed twice"),
                            )
                            .with_label("listed again here")
                            .with_related(*first, "first listed here")
                            .with_help("remove one of them"),
                        );
                        continue;
                    }
                    if !region.is_known() {
                        self.push(
                            Diagnostic::warning(
                                &field,
                                item.pos,
                                format!("region {region} is not one labctl knows"),
                            )
                            .with_label("unknown region")
                            .with_help("check the spelling; a region AWS opened recently is fine"),
                        );
                    }
                    out.push((region, item.pos));
                }
                Err(message) => self.push(
                    Diagnostic::error(&field, item.pos, message)
                        .with_label("not a region")
                        .with_help(
                            "regions look like `us-east-1`, `ap-southeast-1`, `us-gov-west-1`",
                        ),
                ),
            }
        }
        out
    }

    #[expect(
        clippy::too_many_lines,
        reason = "each field of an entry is resolved in turn; splitting scatters the defaults logic"
    )]
    fn entry(
        &mut self,
        manifest: &Manifest,
        entry: &Entry,
        defaults: &Resolved,
        instance: Option<(&'static str, &str)>,
    ) -> Checked {
        let path = format!("keypairs[{}]", entry.index);
        let name_field = format!("{path}.name");
        let base = Scope {
            instance,
            ..Scope::default()
        };
        let name = entry.name.as_ref().and_then(|n| {
            let text = self.expand(&name_field, n, base)?;
            match KeyName::parse(&text) {
                Ok(name) => Some(name),
                Err(message) => {
                    self.push(
                        Diagnostic::error(&name_field, n.pos, message).with_label("this name"),
                    );
                    None
                }
            }
        });
        let name_pos = entry.name.as_ref().map_or(entry.pos, |n| n.pos);

        let mut valid_regions: Vec<Region> = Vec::new();
        let regions: Option<Vec<Region>> = match (&entry.regions, &defaults.regions) {
            (Some(list), _) => {
                let checked: Vec<Region> =
                    self.region_list(list).into_iter().map(|(r, _)| r).collect();
                valid_regions.clone_from(&checked);
                (!list.invalid && checked.len() == list.items.len()).then_some(checked)
            }
            (None, Some(defaults)) => {
                valid_regions = defaults.iter().map(|(r, _)| r.clone()).collect();
                Some(valid_regions.clone())
            }
            (None, None) => {
                if manifest.defaults.regions.is_none() {
                    self.push(
                        Diagnostic::error(
                            format!("{path}.region"),
                            name_pos,
                            "this key pair has no region",
                        )
                        .with_label("no region for this key pair")
                        .with_help(
                            "add `region: <region>` to the entry, or `region:` under `defaults:`",
                        ),
                    );
                }
                None
            }
        };
        let regions = regions.filter(|r| !r.is_empty());

        let explicit_type = match &entry.key_type {
            Some(k) => Declared::from(self.key_type(&format!("{path}.key_type"), k)),
            None if manifest.defaults.key_type.is_some() => Declared::from(defaults.key_type),
            None => Declared::Absent,
        };
        let (source, key_type) = self.key_source(manifest, entry, defaults, explicit_type, &path);

        let tags = name
            .as_ref()
            .and_then(|name| self.tags(manifest, entry, name, &path, instance));

        let output_pos = entry.output.as_ref().map_or(name_pos, |o| o.pos);
        let writes_file = !matches!(source, Some(KeySource::PublicKey(_)));
        let output = name.as_ref().filter(|_| writes_file).and_then(|name| {
            let scope = Scope {
                name: Some(name.as_str()),
                output_dir: defaults.output_dir.as_deref(),
                instance,
            };
            let field = format!("{path}.output");
            // A name that is not one plain file name must not build a path: `../lab` would
            // write outside the key folder.
            let builds_path = entry
                .output
                .as_ref()
                .is_none_or(|o| o.value.contains("${name}"));
            let file_name = crate::desired::key_file_name(name.as_str());
            if builds_path && file_name.is_none() {
                self.push(
                    Diagnostic::error(
                        &name_field,
                        name_pos,
                        format!("the key pair name `{name}` cannot name a key file: it contains `/` or is `.` or `..`"),
                    )
                    .with_label("used in the key file's path")
                    .with_help("rename the key pair, or give `output` a path that does not use `${name}`"),
                );
                return None;
            }
            let written = match &entry.output {
                Some(output) => self.expand(&field, output, scope)?,
                None => format!("{}/{}", defaults.output_dir.as_deref()?, file_name?),
            };
            self.output_path(&field, output_pos, &written)
        });
        let purge_tags = entry
            .purge_tags
            .as_ref()
            .map_or(defaults.purge_tags, |p| p.value);

        let spec = match (name.clone(), regions, key_type, source, tags) {
            (Some(name), Some(regions), Some(key_type), Some(source), Some(tags))
                if output.is_some() || !writes_file =>
            {
                let (output, output_display) = match output.clone() {
                    Some((path, display)) => (Some(path), display),
                    None => (None, String::new()),
                };
                Some(KeyPairSpec {
                    name,
                    regions,
                    key_type,
                    source,
                    tags,
                    purge_tags,
                    output,
                    output_display,
                })
            }
            _ => None,
        };
        Checked {
            spec,
            name: name.map(|n| (n, name_pos)),
            regions: valid_regions,
            output: output.map(|(path, display)| (path, display, output_pos)),
        }
    }

    /// Where the key comes from, and its type.
    #[expect(
        clippy::too_many_lines,
        reason = "the rules between source, bits, public_key and key_type are one table"
    )]
    fn key_source(
        &mut self,
        manifest: &Manifest,
        entry: &Entry,
        defaults: &Resolved,
        explicit_type: Declared,
        path: &str,
    ) -> (Option<KeySource>, Option<KeyType>) {
        if let Some(public_key) = &entry.public_key {
            let field = format!("{path}.public_key");
            if let Some(source) = &entry.source {
                self.push(
                    Diagnostic::error(
                        format!("{path}.source"),
                        source.pos,
                        "`source` and `public_key` cannot be combined",
                    )
                    .with_related(public_key.pos, "the key comes from here")
                    .with_help("`public_key` imports a key you already have; remove `source`"),
                );
                return (None, None);
            }
            if let Some(output) = &entry.output {
                self.push(
                    Diagnostic::error(
                        format!("{path}.output"),
                        output.pos,
                        "a key pair with `public_key` has no private key file to write",
                    )
                    .with_help("remove `output`: labctl only imports the public key"),
                );
                return (None, None);
            }
            if let Some(bits) = &entry.bits {
                self.push(
                    Diagnostic::error(
                        format!("{path}.bits"),
                        bits.pos,
                        "`bits` applies only to keys labctl generates (`source: local`)",
                    )
                    .with_label("not used"),
                );
                return (None, None);
            }
            let Some(text) = self.expand(&field, public_key, Scope::default()) else {
                return (None, None);
            };
            let Some(key) = self.public_key(&field, public_key.pos, &text) else {
                return (None, None);
            };
            let actual = KeyType::parse(key.key_type());
            if let Declared::Type(declared) = explicit_type
                && Some(declared) != actual
            {
                self.push(
                    Diagnostic::error(
                        &field,
                        public_key.pos,
                        format!(
                            "this is a {} key but `key_type` is {declared}",
                            key.key_type()
                        ),
                    )
                    .with_help(
                        "remove `key_type` (it follows the public key) or give a key of that type",
                    ),
                );
                return (None, None);
            }
            return (Some(KeySource::PublicKey(key)), actual);
        }
        let source_kind = match &entry.source {
            Some(s) => self.source(&format!("{path}.source"), s),
            None if manifest.defaults.source.is_some() => defaults.source,
            None => Some(SourceKind::Aws),
        };
        let key_type = match explicit_type {
            Declared::Type(k) => Some(k),
            Declared::Invalid => None,
            Declared::Absent => Some(KeyType::Rsa),
        };
        let bits = entry.bits.as_ref().or(defaults.bits.as_ref());
        let bits_field = if entry.bits.is_some() {
            format!("{path}.bits")
        } else {
            "defaults.bits".to_owned()
        };
        let (Some(source_kind), Some(resolved_type)) = (source_kind, key_type) else {
            return (None, key_type);
        };
        let source = match (source_kind, resolved_type, bits) {
            (SourceKind::Aws, _, Some(bits)) => {
                self.push(
                    Diagnostic::error(
                        bits_field,
                        bits.pos,
                        "EC2 generates 2048-bit RSA keys only; `bits` needs `source: local`",
                    )
                    .with_help(
                        "add `source: local` to have labctl generate the key, or remove `bits`",
                    ),
                );
                return (None, key_type);
            }
            (SourceKind::Local, KeyType::Ed25519, Some(bits)) if entry.bits.is_some() => {
                self.push(
                    Diagnostic::error(
                        bits_field,
                        bits.pos,
                        "ed25519 keys have no size; `bits` is for RSA",
                    )
                    .with_label("not used"),
                );
                return (None, key_type);
            }
            (SourceKind::Aws, _, None) => KeySource::Aws,
            (SourceKind::Local, KeyType::Ed25519, _) => KeySource::Local { bits: 0 },
            (SourceKind::Local, KeyType::Rsa, None) => KeySource::Local { bits: 2048 },
            (SourceKind::Local, KeyType::Rsa, Some(bits)) => match bits.value {
                2048 | 3072 | 4096 => KeySource::Local {
                    bits: u32::try_from(bits.value).unwrap_or(2048),
                },
                other => {
                    self.push(
                        Diagnostic::error(
                            bits_field,
                            bits.pos,
                            format!("RSA keys of {other} bits are not supported"),
                        )
                        .with_help("use 2048, 3072 or 4096"),
                    );
                    return (None, key_type);
                }
            },
        };
        (Some(source), key_type)
    }

    /// Read a public key: inline (`ssh-ed25519 AAAA…`) or from a file.
    fn public_key(&mut self, field: &str, pos: Pos, text: &str) -> Option<PublicKey> {
        let trimmed = text.trim();
        let inline = trimmed.starts_with("ssh-") || trimmed.starts_with("ecdsa-");
        let line = if inline {
            trimmed.to_owned()
        } else {
            let path = self.resolve(trimmed);
            match read_public_key_file(&path) {
                Ok(content) => content
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .unwrap_or_default()
                    .to_owned(),
                Err(err) => {
                    self.push(
                        Diagnostic::error(field, pos, format!("cannot read the public key file {}: {err}", path.display()))
                            .with_help("give the path of an OpenSSH public key (`.pub`), or the key itself: `ssh-ed25519 AAAA…`"),
                    );
                    return None;
                }
            }
        };
        if line.contains("PRIVATE KEY") {
            self.push(
                Diagnostic::error(
                    field,
                    pos,
                    "this is a private key; `public_key` takes the public one",
                )
                .with_help("give the `.pub` file, or `ssh-keygen -y -f KEY` prints the public key"),
            );
            return None;
        }
        let algorithm = line.split_whitespace().next().unwrap_or_default();
        if !matches!(algorithm, "ssh-rsa" | "ssh-ed25519") {
            // Quote a file's content only when it is a known key algorithm: the first word of
            // a credentials file must never reach the screen.
            let what = if algorithm.starts_with("ecdsa-")
                || algorithm.starts_with("ssh-")
                || algorithm.starts_with("sk-")
            {
                format!("`{algorithm}`")
            } else {
                "what this holds".to_owned()
            };
            self.push(
                Diagnostic::error(
                    field,
                    pos,
                    format!("EC2 imports RSA and ed25519 keys only, not {what}"),
                )
                .with_help("give an `ssh-rsa` or `ssh-ed25519` public key"),
            );
            return None;
        }
        let key = PublicKey::from_openssh(&line);
        if key.is_none() {
            self.push(
                Diagnostic::error(field, pos, "the public key could not be read")
                    .with_help("give an OpenSSH public key line, as in a `.pub` file"),
            );
        }
        key
    }

    fn tags(
        &mut self,
        manifest: &Manifest,
        entry: &Entry,
        name: &KeyName,
        path: &str,
        instance: Option<(&'static str, &str)>,
    ) -> Option<TagSet> {
        let scope = Scope {
            name: Some(name.as_str()),
            output_dir: None,
            instance,
        };
        let key_scope = Scope {
            instance,
            ..Scope::default()
        };
        // Defaults first, then the entry's: the entry's value wins.
        let sources = [
            ("defaults.tags".to_owned(), &manifest.defaults.tags),
            (format!("{path}.tags"), &entry.tags),
        ];
        let mut merged: BTreeMap<String, (String, Pos)> = BTreeMap::new();
        let mut ok = true;
        for (parent, tags) in sources {
            for (key, value) in tags {
                let field = format!("{parent}.{}", key.value);
                let (Some(k), Some(v)) = (
                    self.expand(&field, key, key_scope),
                    self.expand(&field, value, scope),
                ) else {
                    ok = false;
                    continue;
                };
                ok &= self.check_tag(&field, key, value, &k, &v);
                merged.insert(k, (v, key.pos));
            }
        }
        if merged.len() + OWN_TAGS > MAX_TAGS {
            let pos = entry.tags.first().map_or(entry.pos, |(k, _)| k.pos);
            self.push(
                Diagnostic::error(format!("{path}.tags"), pos, format!(
                    "this key pair would carry {} tags, and EC2 allows {MAX_TAGS} including labctl's own `{PROJECT_TAG}` and `{APPLY_TAG}`",
                    merged.len() + OWN_TAGS
                ))
                .with_help(format!("keep at most {} tags in `defaults.tags` and the entry's `tags` together", MAX_TAGS - OWN_TAGS)),
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        let mut tags: BTreeMap<String, String> =
            merged.into_iter().map(|(k, (v, _))| (k, v)).collect();
        tags.insert(
            PROJECT_TAG.to_owned(),
            self.vars.get("project").cloned().unwrap_or_default(),
        );
        Some(TagSet::from_checked(tags))
    }

    fn check_tag(
        &mut self,
        field: &str,
        key: &Located<String>,
        value: &Located<String>,
        k: &str,
        v: &str,
    ) -> bool {
        let mut ok = true;
        let key_chars = k.chars().count();
        if key_chars == 0 || key_chars > MAX_TAG_KEY {
            self.push(
                Diagnostic::error(
                    field,
                    key.pos,
                    format!(
                        "tag key is {key_chars} characters long; EC2 allows 1 to {MAX_TAG_KEY}"
                    ),
                )
                .with_label("this tag key"),
            );
            ok = false;
        }
        let lower = k.to_ascii_lowercase();
        if lower.starts_with("aws:") || lower.starts_with("labctl:") {
            self.push(
                Diagnostic::error(field, key.pos, format!("tag key `{k}` uses a reserved prefix"))
                    .with_label("reserved")
                    .with_help("`aws:` belongs to AWS and `labctl:` to labctl's ownership tags; choose another key"),
            );
            ok = false;
        }
        let value_chars = v.chars().count();
        if value_chars > MAX_TAG_VALUE {
            self.push(
                Diagnostic::error(field, value.pos, format!("tag value is {value_chars} characters long; EC2 allows at most {MAX_TAG_VALUE}"))
                    .with_label("this value"),
            );
            ok = false;
        }
        ok
    }

    /// Resolve a path from the manifest: `~/` against home, relative against the manifest's folder.
    fn resolve(&self, written: &str) -> PathBuf {
        let path = match (written.strip_prefix("~/"), &self.context.home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => self.context.base_dir.join(written),
        };
        normalize(&path)
    }

    /// Resolve an output path, refusing empty ones and existing folders.
    fn output_path(&mut self, field: &str, pos: Pos, written: &str) -> Option<(PathBuf, String)> {
        if written.trim().is_empty() {
            self.push(
                Diagnostic::error(field, pos, "the output path is empty")
                    .with_help("name a file such as `keys/lab.pem`"),
            );
            return None;
        }
        if written.starts_with("~/") && self.context.home.is_none() {
            self.push(
                Diagnostic::error(
                    field,
                    pos,
                    "the output path starts with `~/` but HOME is not set",
                )
                .with_help("set HOME, or write the path out in full"),
            );
            return None;
        }
        let resolved = self.resolve(written);
        let display = resolved.display().to_string();
        if let Some(reserved) = resolved
            .components()
            .map(Component::as_os_str)
            .find(|c| *c == lock::STATE_DIR || keys::is_reserved_name(c))
        {
            self.push(
                Diagnostic::error(
                    field,
                    pos,
                    format!(
                        "the output {display} uses `{}`, a name labctl keeps for its own files",
                        reserved.to_string_lossy()
                    ),
                )
                .with_label("reserved")
                .with_help(format!(
                    "names starting with `{}` and the folder `{}` hold labctl's temporary and state files; pick another name",
                    keys::RESERVED_PREFIX,
                    lock::STATE_DIR
                )),
            );
            return None;
        }
        if let Some(long) = resolved
            .components()
            .map(Component::as_os_str)
            .find(|c| c.len() > MAX_FILE_NAME)
        {
            self.push(
                Diagnostic::error(
                    field,
                    pos,
                    format!(
                        "the file name `{}…` is {} bytes long; file systems allow {MAX_FILE_NAME}",
                        long.to_string_lossy().chars().take(24).collect::<String>(),
                        long.len()
                    ),
                )
                .with_label("too long for a file name")
                .with_help("shorten the key pair name, or give `output` a shorter file name"),
            );
            return None;
        }
        if resolved.as_os_str().len() > MAX_PATH {
            self.push(
                Diagnostic::error(
                    field,
                    pos,
                    format!(
                        "the output path is {} bytes long; file systems allow {MAX_PATH}",
                        resolved.as_os_str().len()
                    ),
                )
                .with_help("use a shorter `output_dir` or `output`"),
            );
            return None;
        }
        if written.ends_with('/') || resolved.is_dir() {
            self.push(
                Diagnostic::error(
                    field,
                    pos,
                    format!("the output {display} is a folder, not a file"),
                )
                .with_label("a folder")
                .with_help("name the private key file itself, e.g. `keys/lab.pem`"),
            );
            return None;
        }
        Some((resolved, display))
    }
}

/// Read a public key file: a regular file only (never a FIFO or device: opened without
/// blocking), at most [`MAX_PUBLIC_KEY_FILE`] bytes. The error never quotes the content.
fn read_public_key_file(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    let bytes = keys::read_bounded(file, MAX_PUBLIC_KEY_FILE)?
        .ok_or_else(|| std::io::Error::other("it is too large for a public key"))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| std::io::Error::other("it is not a text file"))
}

/// Lexically clean a path: drop `.`, fold `a/..`; never touches the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let last_is_normal =
                    matches!(out.components().next_back(), Some(Component::Normal(_)));
                if last_is_normal {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}
