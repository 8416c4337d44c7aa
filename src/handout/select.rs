//! Which key pairs a handout covers: named, or matched by `*` and `?`.

use crate::desired::KeyPairSpec;

/// The key pairs named or matched (`*`, `?`) by the selectors; every one when none.
pub(crate) fn select<'a>(
    specs: &'a [KeyPairSpec],
    selectors: &[String],
) -> Result<Vec<&'a KeyPairSpec>, String> {
    for selector in selectors {
        if !specs.iter().any(|s| glob(selector, s.name.as_str())) {
            return Err(format!("no key pair of the manifest matches `{selector}`"));
        }
    }
    let selected: Vec<&KeyPairSpec> = specs
        .iter()
        .filter(|s| selectors.is_empty() || selectors.iter().any(|sel| glob(sel, s.name.as_str())))
        .collect();
    one_bundle_per_name(&selected)?;
    Ok(selected)
}

/// A bundle, its files and its line in the passphrase list are named after its key pair: two
/// selected entries of one name (in two accounts or regions, each with its own key) are
/// refused before anything is written.
fn one_bundle_per_name(selected: &[&KeyPairSpec]) -> Result<(), String> {
    for (i, spec) in selected.iter().enumerate() {
        let same: Vec<&&KeyPairSpec> = selected[i..]
            .iter()
            .filter(|s| s.name == spec.name)
            .collect();
        if same.len() > 1 && !selected[..i].iter().any(|s| s.name == spec.name) {
            let places: Vec<String> = same
                .iter()
                .flat_map(|s| s.scopes.iter().map(ToString::to_string))
                .collect();
            return Err(format!(
                "{} entries are named `{}` ({}), each with its own key; a bundle is named after its key pair, so give them names of their own to hand them out",
                same.len(),
                spec.name,
                places.join(", ")
            ));
        }
    }
    Ok(())
}

/// `*` matches any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn stars_and_question_marks() {
        assert!(glob("seat-*", "seat-12"));
        assert!(glob("seat-?", "seat-1"));
        assert!(!glob("seat-?", "seat-12"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "a-x-b-y-c"));
        assert!(!glob("a*b*c", "a-x-b-y"));
        assert!(glob("lab", "lab"));
        assert!(!glob("lab", "labs"));
    }
}
