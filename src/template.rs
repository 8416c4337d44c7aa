//! `${name}` substitution in manifest strings.
//!
//! A template is expanded against a lookup function; `$${` is a literal `${`. An unknown or
//! malformed reference is an error naming the variable, never an empty string.

/// The variables labctl defines itself; a manifest's `vars` and `--var` may not use them.
pub(crate) const RESERVED: &[&str] = &["project", "name", "output_dir", "index", "item"];

/// The one rule for a variable's name: letters, digits, `_` and `-`, at least one.
pub(crate) fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether a user may define a variable of this name (in `vars` or with `--var`).
///
/// # Errors
/// A sentence saying why not.
pub(crate) fn check_user_variable(name: &str) -> Result<(), String> {
    if !is_variable_name(name) {
        return Err(format!(
            "`{name}` is not a variable name (letters, digits, `_` and `-`)"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "`{name}` is a reserved variable: labctl defines `project`, `name`, `output_dir`, `index` and `item` itself"
        ));
    }
    Ok(())
}

/// Why a template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// `${name}` where `name` is not defined here.
    Unknown(String),
    /// `${` without a closing `}` or with an empty or malformed name.
    Malformed(String),
}

/// Expand `${name}` references in `text` with `lookup`.
///
/// # Errors
/// The first unknown or malformed reference.
pub(crate) fn expand<'a>(
    text: &str,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err(TemplateError::Malformed(tail.chars().take(24).collect()));
            };
            let reference = &after[..end];
            // `${index:03}`: the value padded with zeros to 3 characters, asked for explicitly.
            let (name, width) = match reference.split_once(':') {
                Some((name, spec)) => match pad_width(spec) {
                    Some(width) => (name, width),
                    None => return Err(TemplateError::Malformed(format!("${{{reference}}}"))),
                },
                None => (reference, 0),
            };
            if !is_variable_name(name) {
                return Err(TemplateError::Malformed(format!("${{{reference}}}")));
            }
            match lookup(name) {
                Some(value) => {
                    for _ in value.chars().count()..width {
                        out.push('0');
                    }
                    out.push_str(value);
                }
                None => return Err(TemplateError::Unknown(name.to_owned())),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The width of a padding spec: `0` followed by 1 to 2 digits (`03` pads to 3).
fn pad_width(spec: &str) -> Option<usize> {
    let digits = spec.strip_prefix('0')?;
    if digits.is_empty() || digits.len() > 2 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{TemplateError, expand};

    fn vars(name: &str) -> Option<&'static str> {
        match name {
            "project" => Some("ecs"),
            "owner" => Some("team"),
            _ => None,
        }
    }

    #[test]
    fn expands_references_and_escapes() {
        assert_eq!(expand("${project}-key", vars).unwrap(), "ecs-key");
        assert_eq!(expand("${project}/${owner}", vars).unwrap(), "ecs/team");
        assert_eq!(expand("cost $5", vars).unwrap(), "cost $5");
        assert_eq!(expand("$${project}", vars).unwrap(), "${project}");
        assert_eq!(expand("", vars).unwrap(), "");
    }

    #[test]
    fn pads_only_when_asked() {
        let seat = |name: &str| (name == "index").then_some("7");
        assert_eq!(expand("seat-${index}", seat).unwrap(), "seat-7");
        assert_eq!(expand("seat-${index:03}", seat).unwrap(), "seat-007");
        assert_eq!(expand("seat-${index:01}", seat).unwrap(), "seat-7");
        for bad in [
            "${index:3}",
            "${index:0}",
            "${index:0x}",
            "${index:}",
            "${:03}",
        ] {
            assert!(
                matches!(expand(bad, seat), Err(TemplateError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn reports_unknown_and_malformed_references() {
        assert_eq!(
            expand("${nope}", vars),
            Err(TemplateError::Unknown("nope".into()))
        );
        assert!(matches!(
            expand("${project", vars),
            Err(TemplateError::Malformed(_))
        ));
        assert!(matches!(
            expand("${}", vars),
            Err(TemplateError::Malformed(_))
        ));
        assert!(matches!(
            expand("${a b}", vars),
            Err(TemplateError::Malformed(_))
        ));
    }
}
