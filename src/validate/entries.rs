//! One entry of `keypairs`: its instances (`count`, `for_each`) and each one resolved.

use std::path::PathBuf;

use super::{
    Checked, Declared, Diagnostic, Entry, HashMap, KeyName, KeyPairSpec, KeySource, MAX_COUNT,
    MAX_INDEX_START, Manifest, Pos, Region, Resolved, Scope, Validator,
};

impl Validator<'_> {
    /// The values of `${index}` or `${item}` an entry expands to; `[None]` for a plain entry.
    pub(super) fn instances(&mut self, entry: &Entry) -> Vec<Option<(&'static str, String)>> {
        let path = format!("keypairs[{}]", entry.index);
        if entry.count.is_none() {
            self.numbering_without_count(entry, &path);
        }
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
                let numbers = self.numbers(entry, &path, count.value);
                self.check_not_all_skipped(entry, &path, &numbers);
                numbers
                    .into_iter()
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

    /// The numbers of a `count` entry: `count` of them from `index_start` (default 1), less
    /// those in `skip` (each must be one of them, once).
    fn numbers(&mut self, entry: &Entry, path: &str, count: i128) -> Vec<i128> {
        let start = match &entry.index_start {
            Some(start) if !(0..=MAX_INDEX_START).contains(&start.value) => {
                self.push(
                    Diagnostic::error(
                        format!("{path}.index_start"),
                        start.pos,
                        format!("`index_start` must be 0 to {MAX_INDEX_START}"),
                    )
                    .with_label("out of range"),
                );
                return vec![];
            }
            Some(start) => start.value,
            None => 1,
        };
        let range = start..start + count;
        let mut skipped: HashMap<i128, Pos> = HashMap::new();
        for (i, skip) in entry.skip.iter().flat_map(|s| s.value.iter()) {
            let field = format!("{path}.skip[{i}]");
            if !range.contains(&skip.value) {
                self.push(
                    Diagnostic::error(
                        field,
                        skip.pos,
                        format!(
                            "{} is not one of this entry's numbers ({} to {})",
                            skip.value,
                            range.start,
                            range.end - 1
                        ),
                    )
                    .with_label("not a seat here")
                    .with_help(
                        "`skip` leaves out numbers `count` gives, from `index_start` (default 1)",
                    ),
                );
            } else if let Some(first) = skipped.get(&skip.value) {
                self.push(
                    Diagnostic::error(field, skip.pos, format!("{} is skipped twice", skip.value))
                        .with_label("skipped again here")
                        .with_related(*first, "first skipped here"),
                );
            } else {
                skipped.insert(skip.value, skip.pos);
            }
        }
        range.filter(|i| !skipped.contains_key(i)).collect()
    }

    /// Leaving out every number: an entry that makes no key pair is a mistake, not a plan.
    fn check_not_all_skipped(&mut self, entry: &Entry, path: &str, numbers: &[i128]) {
        if let (true, Some(skip)) = (numbers.is_empty(), &entry.skip) {
            self.push(
                Diagnostic::error(
                    format!("{path}.skip"),
                    skip.pos,
                    "`skip` leaves out every number `count` gives: this entry makes no key pair",
                )
                .with_help("raise `count`, or remove the entry"),
            );
        }
    }

    /// `index_start` and `skip` number a `count` entry's key pairs: an error on any other.
    fn numbering_without_count(&mut self, entry: &Entry, path: &str) {
        let fields = [
            ("index_start", entry.index_start.as_ref().map(|s| s.pos)),
            ("skip", entry.skip.as_ref().map(|s| s.pos)),
        ];
        for (field, pos) in fields {
            if let Some(pos) = pos {
                self.push(
                    Diagnostic::error(
                        format!("{path}.{field}"),
                        pos,
                        format!("`{field}` numbers the key pairs of a `count` entry; this entry has no `count`"),
                    )
                    .with_help("add `count: N`, or remove it"),
                );
            }
        }
    }

    /// One instance of an entry: its name, regions, key source and type, tags and key file,
    /// each resolved against the defaults in turn.
    pub(super) fn entry(
        &mut self,
        manifest: &Manifest,
        entry: &Entry,
        defaults: &Resolved,
        instance: Option<(&'static str, &str)>,
    ) -> Checked {
        let path = format!("keypairs[{}]", entry.index);
        let name = self.entry_name(entry, &path, instance);
        let name_pos = entry.name.as_ref().map_or(entry.pos, |n| n.pos);
        let (regions, valid_regions) =
            self.entry_regions(manifest, entry, defaults, &path, name_pos);
        let accounts = self.entry_accounts(entry, &defaults.accounts, instance);
        // Every (account, region), accounts outer: the first is where the key is made.
        let place = |regions: &[Region]| -> Vec<crate::resource::Scope> {
            accounts
                .iter()
                .flatten()
                .flat_map(|account| {
                    regions.iter().map(|region| crate::resource::Scope {
                        account: account.clone(),
                        region: region.clone(),
                    })
                })
                .collect()
        };
        let valid_scopes = place(&valid_regions);
        let regions = regions.filter(|_| accounts.is_some()).map(|r| place(&r));
        let explicit_type = self.entry_key_type(manifest, entry, defaults, &path);
        let (source, key_type) = self.key_source(manifest, entry, defaults, explicit_type, &path);
        // A name in error still leaves the tags and the output to check (every undefined
        // variable of a file is reported at once): under a stand-in name that never reaches
        // a key pair or the cross-entry checks.
        let stand_in = name
            .is_none()
            .then(|| KeyName::parse("name").ok())
            .flatten();
        let checked_name = name.as_ref().or(stand_in.as_ref());
        let tags = checked_name.and_then(|n| self.tags(manifest, entry, n, &path, instance));
        let output_pos = entry.output.as_ref().map_or(name_pos, |o| o.pos);
        let writes_file = !matches!(source, Some(KeySource::PublicKey(_)));
        let output = checked_name
            .filter(|_| writes_file)
            .and_then(|n| self.entry_output(entry, defaults, &path, n, name_pos, instance))
            .filter(|_| name.is_some());
        let purge_tags = entry
            .purge_tags
            .as_ref()
            .map_or(defaults.purge_tags, |p| p.value);
        let ppk = self.entry_ppk(entry, defaults, &path, writes_file, output.as_ref());
        let seat = name
            .as_ref()
            .and_then(|n| self.entry_seat(entry, &path, n, name_pos, instance));

        let seat_label = seat
            .as_ref()
            .map(|s| s.0.clone())
            .or_else(|| name.as_ref().map(ToString::to_string));
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
                    scopes: regions,
                    key_type,
                    source,
                    tags,
                    purge_tags,
                    output,
                    output_display,
                    ppk: ppk.clone(),
                    seat: seat_label.unwrap_or_default(),
                })
            }
            _ => None,
        };
        Checked {
            spec,
            seat,
            name: name.map(|n| (n, name_pos)),
            scopes: valid_scopes,
            output: output.map(|(path, display)| (path, display, output_pos)),
            ppk,
        }
    }

    /// The PuTTY key file of an entry whose `formats` (or the defaults') include `ppk`: the
    /// output with the extension `.ppk`.
    fn entry_ppk(
        &mut self,
        entry: &Entry,
        defaults: &Resolved,
        path: &str,
        writes_file: bool,
        output: Option<&(PathBuf, String)>,
    ) -> Option<PathBuf> {
        let field = format!("{path}.formats");
        let wanted = match &entry.formats {
            Some(list) => {
                let wanted = self.formats(&field, list).unwrap_or(false);
                if wanted && !writes_file {
                    self.push(
                        Diagnostic::error(
                            &field,
                            list.pos,
                            "a key pair with `public_key` has no private key to write for PuTTY",
                        )
                        .with_help("remove `formats`: labctl only imports the public key"),
                    );
                    return None;
                }
                wanted
            }
            None => defaults.ppk,
        };
        let (file, display) = output.filter(|_| wanted && writes_file)?;
        if file.extension().is_some_and(|e| e == "ppk") {
            self.push(
                Diagnostic::error(
                    format!("{path}.output"),
                    entry.output.as_ref().map_or(entry.pos, |o| o.pos),
                    format!("the output {display} ends in `.ppk`, where the PuTTY key goes"),
                )
                .with_help("name the private key file `….pem`; labctl writes the `.ppk` beside it"),
            );
            return None;
        }
        Some(crate::keys::ppk_path(file))
    }

    /// The seat label of one instance: the entry's `seat` template expanded (`${index}`,
    /// `${item}`, `${name}`, variables), else the key pair's name; with where it was given and
    /// whether it was (a name is unique by itself; a template may repeat itself).
    fn entry_seat(
        &mut self,
        entry: &Entry,
        path: &str,
        name: &KeyName,
        name_pos: Pos,
        instance: Option<(&'static str, &str)>,
    ) -> Option<(String, Pos, bool)> {
        let Some(template) = &entry.seat else {
            return Some((name.to_string(), name_pos, false));
        };
        let field = format!("{path}.seat");
        let scope = Scope {
            name: Some(name.as_str()),
            instance,
            ..Scope::default()
        };
        let text = self.expand(&field, template, scope)?;
        if let Some(problem) = seat_problem(&text) {
            self.push(
                Diagnostic::error(
                    &field,
                    template.pos,
                    format!("seat `{}`: {problem}", text.escape_debug()),
                )
                .with_label("this seat")
                .with_help("a seat is what attendees are told, e.g. `seat: eu-${index}`"),
            );
            return None;
        }
        Some((text, template.pos, true))
    }

    /// The entry's name, with `${index}`/`${item}` and variables substituted, by EC2's rules.
    fn entry_name(
        &mut self,
        entry: &Entry,
        path: &str,
        instance: Option<(&'static str, &str)>,
    ) -> Option<KeyName> {
        let name_field = format!("{path}.name");
        let base = Scope {
            instance,
            ..Scope::default()
        };
        entry.name.as_ref().and_then(|n| {
            let text = self.expand(&name_field, n, base)?;
            match KeyName::parse(&text) {
                Ok(name) => match crate::desired::portable_name_problem(name.as_str()) {
                    None => Some(name),
                    Some(message) => {
                        self.push(
                            Diagnostic::error(&name_field, n.pos, message)
                                .with_label("this name")
                                .with_help("use letters, digits, `-`, `_` and `.`"),
                        );
                        None
                    }
                },
                Err(message) => {
                    self.push(
                        Diagnostic::error(&name_field, n.pos, message).with_label("this name"),
                    );
                    None
                }
            }
        })
    }

    /// The entry's regions (its own, else the defaults'), and those that were valid (for the
    /// cross-entry checks even when some were not).
    fn entry_regions(
        &mut self,
        manifest: &Manifest,
        entry: &Entry,
        defaults: &Resolved,
        path: &str,
        name_pos: Pos,
    ) -> (Option<Vec<Region>>, Vec<Region>) {
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
        (regions.filter(|r| !r.is_empty()), valid_regions)
    }

    /// The key type the entry declares: its own, else the defaults'.
    fn entry_key_type(
        &mut self,
        manifest: &Manifest,
        entry: &Entry,
        defaults: &Resolved,
        path: &str,
    ) -> Declared {
        match &entry.key_type {
            Some(k) => Declared::from(self.key_type(&format!("{path}.key_type"), k)),
            None if manifest.defaults.key_type.is_some() => Declared::from(defaults.key_type),
            None => Declared::Absent,
        }
    }

    /// The private key file: `output`, else `${output_dir}/<name>.pem`, never a path a name
    /// could lead out of its folder.
    fn entry_output(
        &mut self,
        entry: &Entry,
        defaults: &Resolved,
        path: &str,
        name: &KeyName,
        name_pos: Pos,
        instance: Option<(&'static str, &str)>,
    ) -> Option<(PathBuf, String)> {
        let name_field = format!("{path}.name");
        let output_pos = entry.output.as_ref().map_or(name_pos, |o| o.pos);
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
    }
}

#[cfg(test)]
mod tests {
    use super::super::table;

    #[test]
    fn count_and_for_each() {
        table(&[
            (
                "keypairs:\n  - name: a-${index}\n    count: 0\n",
                "keypairs[0].count",
                "must be 1 to",
            ),
            (
                "keypairs:\n  - name: a-${item}\n    for_each: []\n",
                "keypairs[0].for_each",
                "is empty",
            ),
            (
                "keypairs:\n  - name: a\n    count: 2\n    for_each: [x]\n",
                "keypairs[0].count",
                "not both",
            ),
        ]);
    }
}

/// The longest seat label: a name people read out, not a paragraph.
const MAX_SEAT: usize = 128;

/// Why a seat label cannot be one: empty, padded with spaces (nobody types those), too long,
/// with control or text-direction characters (what is shown would not be what is written), or
/// starting like a spreadsheet formula (the passphrase list is opened in one).
fn seat_problem(seat: &str) -> Option<String> {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if seat.trim().is_empty() {
        Some("a seat label needs text".to_owned())
    } else if seat.trim() != seat {
        Some("no spaces before or after a seat label".to_owned())
    } else if seat.chars().count() > MAX_SEAT {
        Some(format!("at most {MAX_SEAT} characters"))
    } else if seat.chars().any(|c| c.is_control() || bidi(c)) {
        Some("control and text-direction characters are not allowed".to_owned())
    } else if seat.starts_with(['=', '+', '-', '@', '\'']) {
        Some("a seat label may not start with `=`, `+`, `-`, `@` or `'` (a spreadsheet opening the passphrase list would take it for a formula)".to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod seat_tests {
    use super::seat_problem;

    #[test]
    fn seat_labels_are_what_people_can_read_and_type() {
        for ok in ["1", "eu-7", "Table 3, left", "Åsa"] {
            assert_eq!(seat_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "  ",
            " 7",
            "7 ",
            "a\tb",
            "x\u{202e}y",
            "=HYPERLINK(1)",
            "-1",
            "@a",
            "'x",
        ] {
            assert!(seat_problem(bad).is_some(), "{bad:?}");
        }
        assert!(seat_problem(&"s".repeat(129)).is_some());
    }
}
