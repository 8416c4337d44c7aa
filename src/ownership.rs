//! Ownership: may labctl touch this key pair? The one rule that `--prune`, `destroy`,
//! `--replace`, adoption, tag fixes and crash recovery all ask.
//!
//! A key pair is this manifest's when its `labctl:project` tag is the manifest's `project`:
//! only then does labctl change, replace or delete it. One without the tag may be adopted when
//! its key matches; one with another project's tag is never touched. `project` is therefore
//! the ownership identity: two manifests sharing it in one account own the same key pairs.
//!
//! Crash recovery asks a narrower question: was this key pair made by a `CreateKeyPair` whose
//! private key the journal proves was never saved? Only then may it be replaced unasked.

use std::collections::{BTreeMap, BTreeSet};

use crate::desired::{APPLY_TAG, Desired, PROJECT_TAG};
use crate::resource::{RemoteKeyPair, Scope};

/// Who owns a key pair, by its tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner<'a> {
    /// This manifest's project.
    This,
    /// Another project's (its name).
    Other(&'a str),
    /// No ownership tag: made by hand or another tool.
    Nobody,
}

/// Who owns a key pair with these tags, seen from the manifest of `project`.
pub(crate) fn owner<'a>(tags: &'a BTreeMap<String, String>, project: &str) -> Owner<'a> {
    match tags.get(PROJECT_TAG).map(String::as_str) {
        Some(p) if p == project => Owner::This,
        Some(other) => Owner::Other(other),
        None => Owner::Nobody,
    }
}

/// Whether labctl may change, replace or delete a key pair with these tags.
pub(crate) fn is_ours(tags: &BTreeMap<String, String>, project: &str) -> bool {
    owner(tags, project) == Owner::This
}

/// The key pairs this manifest owns in a scope where it no longer places them (by scope and
/// name: `lab` listed only in us-east-1 is an orphan in eu-west-1): the one definition of an
/// orphan, for `--prune`, `destroy`, and observe's look at their files.
pub(crate) fn orphans<'a>(
    desired: &Desired,
    remote: &'a BTreeMap<Scope, BTreeMap<String, RemoteKeyPair>>,
) -> Vec<(&'a Scope, &'a RemoteKeyPair)> {
    let placed: BTreeSet<(&Scope, &str)> = desired
        .keypairs
        .iter()
        .flat_map(|k| k.scopes.iter().map(move |s| (s, k.name.as_str())))
        .collect();
    remote
        .iter()
        .flat_map(|(scope, pairs)| pairs.values().map(move |pair| (scope, pair)))
        .filter(|(scope, pair)| {
            is_ours(&pair.tags, &desired.project) && !placed.contains(&(*scope, pair.name.as_str()))
        })
        .collect()
}

/// Whether a key pair named `name` with these tags was made by a create whose private key was
/// never saved (`unsaved`: `(apply id, name)` from the journal).
pub(crate) fn made_by_unsaved_create(
    tags: &BTreeMap<String, String>,
    name: &str,
    unsaved: &BTreeSet<(String, String)>,
) -> bool {
    tags.get(APPLY_TAG)
        .is_some_and(|id| unsaved.contains(&(id.clone(), name.to_owned())))
}

/// Whether a key pair with these tags was made by this very apply.
pub(crate) fn made_by_this_apply(tags: &BTreeMap<String, String>, apply_id: &str) -> bool {
    tags.get(APPLY_TAG).map(String::as_str) == Some(apply_id)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::{Owner, is_ours, made_by_unsaved_create, owner};

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_project_tag_decides() {
        assert_eq!(
            owner(&tags(&[("labctl:project", "lab")]), "lab"),
            Owner::This
        );
        assert_eq!(
            owner(&tags(&[("labctl:project", "other")]), "lab"),
            Owner::Other("other")
        );
        assert_eq!(owner(&tags(&[("Project", "lab")]), "lab"), Owner::Nobody);
        assert!(!is_ours(&tags(&[]), "lab"));
    }

    #[test]
    fn recovery_needs_the_apply_id_and_the_name() {
        let unsaved: BTreeSet<(String, String)> = [("00aa".to_owned(), "k".to_owned())].into();
        let made = tags(&[("labctl:apply-id", "00aa")]);
        assert!(made_by_unsaved_create(&made, "k", &unsaved));
        assert!(!made_by_unsaved_create(&made, "other", &unsaved));
        assert!(!made_by_unsaved_create(&tags(&[]), "k", &unsaved));
    }
}
