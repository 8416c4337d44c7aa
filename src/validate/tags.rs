//! Tags: defaults and the entry's merged, and EC2's limits on keys and values.

use super::{
    APPLY_TAG, BTreeMap, Diagnostic, Entry, KeyName, Located, MAX_TAG_KEY, MAX_TAG_VALUE, MAX_TAGS,
    Manifest, OWN_TAGS, PROJECT_TAG, Pos, Scope, TagSet, Validator,
};

impl Validator<'_> {
    pub(super) fn tags(
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

    pub(super) fn check_tag(
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
        if crate::desired::reserved_tag_prefix(k).is_some() {
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
}

#[cfg(test)]
mod tests {
    use super::super::table;

    #[test]
    fn reserved_tag_keys() {
        table(&[
            (
                "keypairs:\n  - name: a\n    tags: { \"aws:x\": y }\n",
                "keypairs[0].tags.aws:x",
                "reserved prefix",
            ),
            (
                "keypairs:\n  - name: a\n    tags: { labctl:project: y }\n",
                "keypairs[0].tags.labctl:project",
                "reserved prefix",
            ),
        ]);
    }
}
