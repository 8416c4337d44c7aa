//! Manifest -> [`Desired`]: substitution, EC2's rules, and every cross-entry check.
//!
//! Validation reads nothing but the manifest and, to refuse an `output` that is an existing
//! folder, the metadata of the output paths. It makes no API call and writes nothing. It
//! reports every problem it finds, each on the exact span it comes from.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use crate::desired::{Desired, KeyName, KeyPairSpec, KeyType, PROJECT_TAG, Region, TagSet};
use crate::diagnostic::{self, Diagnostic};
use crate::manifest::{Entry, Located, Manifest, Pos, RegionList};
use crate::template::{self, TemplateError};

/// EC2's limit on tags per resource, labctl's own tag included.
pub const MAX_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;
const DEFAULT_OUTPUT_DIR: &str = "keys";

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
    diagnostics.dedup();
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

struct Validator<'c> {
    context: &'c Context,
    diagnostics: Vec<Diagnostic>,
    vars: HashMap<String, String>,
}

/// Variables a template may use besides the user's `vars`.
#[derive(Default, Clone, Copy)]
struct Scope<'a> {
    name: Option<&'a str>,
    output_dir: Option<&'a str>,
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
            match name {
                "name" => scope.name,
                "output_dir" => scope.output_dir,
                _ => vars.get(name).map(String::as_str),
            }
        };
        match template::expand(&value.value, lookup) {
            Ok(text) => Some(text),
            Err(TemplateError::Unknown(name)) => {
                let mut known: Vec<&str> = self.vars.keys().map(String::as_str).collect();
                if scope.name.is_some() {
                    known.push("name");
                }
                if scope.output_dir.is_some() {
                    known.push("output_dir");
                }
                known.sort_unstable();
                let help = if name == "name" {
                    "`${name}` is only available in `output` and in tag values".to_owned()
                } else {
                    format!(
                        "define it under `vars:` or pass `--var {name}=VALUE`; available here: {}",
                        known.join(", ")
                    )
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
                    .with_help("write `${name}`, or `$${` for a literal `${`"),
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

        let output_dir = match &manifest.defaults.output_dir {
            Some(dir) => self.expand("defaults.output_dir", dir, Scope::default()),
            None => Some(DEFAULT_OUTPUT_DIR.to_owned()),
        };
        let defaults_key_type = manifest
            .defaults
            .key_type
            .as_ref()
            .and_then(|k| self.key_type("defaults.key_type", k));
        let defaults_regions = manifest
            .defaults
            .regions
            .as_ref()
            .map(|list| self.region_list(list));

        let entries = manifest
            .keypairs
            .as_ref()
            .map_or(&[][..], |k| k.value.as_slice());
        let mut specs = Vec::with_capacity(entries.len());
        // (name, region) -> where that name was first given, for duplicate detection.
        let mut seen_names: BTreeMap<(String, String), Pos> = BTreeMap::new();
        let mut seen_outputs: BTreeMap<PathBuf, Pos> = BTreeMap::new();
        for entry in entries {
            let checked = self.entry(
                manifest,
                entry,
                output_dir.as_deref(),
                defaults_key_type,
                defaults_regions.as_ref(),
            );
            if let Some((name, name_pos)) = &checked.name {
                for region in &checked.regions {
                    let key = (name.as_str().to_owned(), region.as_str().to_owned());
                    if let Some(first) = seen_names.get(&key) {
                        self.push(
                            Diagnostic::error(
                                format!("keypairs[{}].name", entry.index),
                                *name_pos,
                                format!("key pair `{name}` is listed twice in {region}"),
                            )
                            .with_label("listed again here")
                            .with_related(*first, "first listed here")
                            .with_help("key pair names are unique per region; rename one of them"),
                        );
                    } else {
                        seen_names.insert(key, *name_pos);
                    }
                }
            }
            if let Some((path, display, output_pos)) = &checked.output {
                if let Some(first) = seen_outputs.get(path) {
                    self.push(
                        Diagnostic::error(
                            format!("keypairs[{}].output", entry.index),
                            *output_pos,
                            format!("two key pairs would write the same file {display}"),
                        )
                        .with_label("written again here")
                        .with_related(*first, "first written here")
                        .with_help("give each key pair its own `output` file"),
                    );
                } else {
                    seen_outputs.insert(path.clone(), *output_pos);
                }
            }
            if let Some(spec) = checked.spec {
                specs.push(spec);
            }
        }
        let project = project?;
        Some(Desired {
            project,
            keypairs: specs,
        })
    }

    fn vars(&mut self, manifest: &Manifest, project: Option<&str>) {
        if let Some(project) = project {
            self.vars.insert("project".to_owned(), project.to_owned());
        }
        let mut defined = Vec::new();
        for (key, value) in &manifest.vars {
            let field = format!("vars.{}", key.value);
            if matches!(key.value.as_str(), "project" | "name" | "output_dir") {
                self.push(
                    Diagnostic::error(&field, key.pos, format!("`{}` is a reserved variable", key.value))
                        .with_help("labctl defines `project`, `name` and `output_dir` itself; pick another name"),
                );
                continue;
            }
            if key.value.is_empty()
                || !key
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                self.push(
                    Diagnostic::error(
                        &field,
                        key.pos,
                        format!("`{}` is not a valid variable name", key.value),
                    )
                    .with_help("use letters, digits, `_` and `-`"),
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

    fn entry(
        &mut self,
        manifest: &Manifest,
        entry: &Entry,
        output_dir: Option<&str>,
        defaults_key_type: Option<KeyType>,
        defaults_regions: Option<&Vec<(Region, Pos)>>,
    ) -> Checked {
        let path = format!("keypairs[{}]", entry.index);
        let name_field = format!("{path}.name");
        let name = entry.name.as_ref().and_then(|n| {
            let text = self.expand(&name_field, n, Scope::default())?;
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
        let regions: Option<Vec<Region>> = match (&entry.regions, defaults_regions) {
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

        let key_type = match &entry.key_type {
            Some(k) => self.key_type(&format!("{path}.key_type"), k),
            None if manifest.defaults.key_type.is_some() => defaults_key_type,
            None => Some(KeyType::Rsa),
        };

        let tags = name
            .as_ref()
            .and_then(|name| self.tags(manifest, entry, name, &path));

        let output_pos = entry.output.as_ref().map_or(name_pos, |o| o.pos);
        let output = name.as_ref().and_then(|name| {
            let scope = Scope {
                name: Some(name.as_str()),
                output_dir,
            };
            let (field, written) = match &entry.output {
                Some(output) => {
                    let field = format!("{path}.output");
                    (field.clone(), self.expand(&field, output, scope)?)
                }
                None => (
                    format!("{path}.output"),
                    format!("{}/{}.pem", output_dir?, name),
                ),
            };
            self.output_path(&field, output_pos, &written)
        });

        let spec = match (name.clone(), regions, key_type, tags, output.clone()) {
            (
                Some(name),
                Some(regions),
                Some(key_type),
                Some(tags),
                Some((output, output_display)),
            ) => Some(KeyPairSpec {
                name,
                regions,
                key_type,
                tags,
                output,
                output_display,
            }),
            _ => None,
        };
        Checked {
            spec,
            name: name.map(|n| (n, name_pos)),
            regions: valid_regions,
            output: output.map(|(path, display)| (path, display, output_pos)),
        }
    }

    fn tags(
        &mut self,
        manifest: &Manifest,
        entry: &Entry,
        name: &KeyName,
        path: &str,
    ) -> Option<TagSet> {
        let scope = Scope {
            name: Some(name.as_str()),
            output_dir: None,
        };
        let key_scope = Scope::default();
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
        if merged.len() >= MAX_TAGS {
            let pos = entry.tags.first().map_or(entry.pos, |(k, _)| k.pos);
            self.push(
                Diagnostic::error(format!("{path}.tags"), pos, format!(
                    "this key pair would carry {} tags, and EC2 allows {MAX_TAGS} including labctl's own `{PROJECT_TAG}`",
                    merged.len() + 1
                ))
                .with_help(format!("keep at most {} tags in `defaults.tags` and the entry's `tags` together", MAX_TAGS - 1)),
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

    /// Resolve an output path: `~/` against home, relative against the manifest's folder.
    fn output_path(&mut self, field: &str, pos: Pos, written: &str) -> Option<(PathBuf, String)> {
        if written.trim().is_empty() {
            self.push(
                Diagnostic::error(field, pos, "the output path is empty")
                    .with_help("name a file such as `keys/lab.pem`"),
            );
            return None;
        }
        let resolved = if let Some(rest) = written.strip_prefix("~/") {
            let Some(home) = &self.context.home else {
                self.push(
                    Diagnostic::error(
                        field,
                        pos,
                        "the output path starts with `~/` but HOME is not set",
                    )
                    .with_help("set HOME, or write the path out in full"),
                );
                return None;
            };
            home.join(rest)
        } else {
            self.context.base_dir.join(written)
        };
        let resolved = normalize(&resolved);
        let display = resolved.display().to_string();
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
