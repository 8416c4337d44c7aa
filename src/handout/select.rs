//! Which key pairs a handout covers: named, or matched by `*` and `?`.

use crate::desired::KeyPairSpec;

/// The key pairs named or matched (`*`, `?`) by the selectors; every one when none.
pub(crate) fn select<'a>(
    specs: &'a [KeyPairSpec],
    selectors: &[String],
) -> Result<Vec<&'a KeyPairSpec>, String> {
    if selectors.is_empty() {
        return Ok(specs.iter().collect());
    }
    for selector in selectors {
        if !specs.iter().any(|s| glob(selector, s.name.as_str())) {
            return Err(format!("no key pair of the manifest matches `{selector}`"));
        }
    }
    Ok(specs
        .iter()
        .filter(|s| selectors.iter().any(|sel| glob(sel, s.name.as_str())))
        .collect())
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
