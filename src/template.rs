//! `${name}` substitution in manifest strings.
//!
//! A template is expanded against a lookup function; `$${` is a literal `${`. An unknown or
//! malformed reference is an error naming the variable, never an empty string.

/// Why a template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `${name}` where `name` is not defined here.
    Unknown(String),
    /// `${` without a closing `}` or with an empty or malformed name.
    Malformed(String),
}

/// Expand `${name}` references in `text` with `lookup`.
///
/// # Errors
/// The first unknown or malformed reference.
pub fn expand<'a>(
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
            let name = &after[..end];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(TemplateError::Malformed(format!("${{{name}}}")));
            }
            match lookup(name) {
                Some(value) => out.push_str(value),
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
