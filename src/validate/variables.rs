//! `${…}` substitution and user variables (`vars`, `--var`).

use super::{Diagnostic, Located, Manifest, Scope, TemplateError, Validator, template};

impl Validator<'_> {
    /// Expand a template; on failure report it at the value and return `None`.
    pub(super) fn expand(
        &mut self,
        field: &str,
        value: &Located<String>,
        scope: Scope<'_>,
    ) -> Option<String> {
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
                    _ => match crate::diagnostic::suggest(&name, &known) {
                        Some(close) => format!(
                            "did you mean `${{{close}}}`? Or declare it under `vars:` (`--var {name}=VALUE` can then change it)"
                        ),
                        None => format!(
                            "declare it under `vars:` (`--var {name}=VALUE` can then change it); available here: {}",
                            known.join(", ")
                        ),
                    },
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

    pub(super) fn vars(&mut self, manifest: &Manifest, project: Option<&str>) {
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
        let declared: Vec<&str> = manifest
            .vars
            .iter()
            .map(|(k, _)| k.value.as_str())
            .collect();
        let at = manifest
            .vars
            .first()
            .map(|(k, _)| k.pos)
            .or_else(|| manifest.project.as_ref().map(|p| p.pos))
            .unwrap_or_default();
        for (key, value) in &self.context.overrides {
            // `--var` changes a variable the manifest declares; a typo must not pass silently.
            if !declared.contains(&key.as_str()) {
                let help = match crate::diagnostic::suggest(key, &declared) {
                    Some(close) => format!("did you mean `--var {close}=…`?"),
                    None if declared.is_empty() => {
                        "declare it under `vars:` first (with its usual value)".to_owned()
                    }
                    None => format!("the manifest declares: {}", declared.join(", ")),
                };
                self.push(
                    Diagnostic::error(
                        format!("--var {key}"),
                        at,
                        format!("--var {key}: the manifest declares no variable `{key}`"),
                    )
                    .with_help(help),
                );
                continue;
            }
            self.vars.insert(key.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::table;

    #[test]
    fn references_and_variables() {
        table(&[
            (
                "keypairs:\n  - name: lab-${nope}\n",
                "keypairs[0].name",
                "undefined variable `${nope}`",
            ),
            (
                "vars: { index: \"3\" }\nkeypairs:\n  - name: lab\n",
                "vars.index",
                "reserved variable",
            ),
            (
                "keypairs:\n  - name: lab-${index}\n",
                "keypairs[0].name",
                "undefined variable `${index}`",
            ),
            (
                "keypairs:\n  - name: lab-${index:3}\n    count: 2\n",
                "keypairs[0].name",
                "malformed",
            ),
        ]);
    }
}
