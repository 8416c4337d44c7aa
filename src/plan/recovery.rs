//! Crash recovery: which key pairs the journal proves nobody ever had the private key of.

use super::{
    Desired, FileState, KeyPairSpec, KeySource, Observed, Options, RemoteKeyPair, ours, ownership,
};

/// Whether every key pair of this entry that exists was made by a `CreateKeyPair` whose
/// private key the journal says was never saved, and the key file does not exist: the private
/// key is gone, and nobody ever had it. A key that was saved and later moved away is not.
pub(super) fn lost_to_interrupted_run(
    desired: &Desired,
    spec: &KeyPairSpec,
    observed: &Observed,
    options: &Options,
) -> bool {
    if options.unsaved.is_empty() || !matches!(spec.source, KeySource::Aws) {
        return false;
    }
    let file_absent = spec
        .output
        .as_ref()
        .is_some_and(|p| matches!(observed.local.get(p), None | Some(FileState::Absent)));
    let present: Vec<&RemoteKeyPair> = spec
        .scopes
        .iter()
        .filter_map(|r| observed.pair(r, &spec.name))
        .collect();
    file_absent
        && !present.is_empty()
        && present.iter().all(|r| {
            ours(desired, r)
                && ownership::made_by_unsaved_create(&r.tags, spec.name.as_str(), &options.unsaved)
        })
}

/// Keys the journal lists as created but never saved whose private key is saved after all:
/// the entry's key file is in place and holds the key of a key pair tagged with that apply
/// id. A kill between "file linked into place" and "journal says saved" leaves such a
/// record; left alone, a later apply (the file moved away by then) would replace a live key
/// pair as "never saved". The caller records them `made` and `saved`: `(apply id, name, the
/// file, its key)`.
pub(crate) fn saved_after_all(
    desired: &Desired,
    observed: &Observed,
    unsaved: &std::collections::BTreeSet<(String, String)>,
) -> Vec<(String, String, std::path::PathBuf, crate::keys::PublicKey)> {
    let mut found = Vec::new();
    for spec in &desired.keypairs {
        let (Some(path), Some(FileState::Key { public, .. })) = (
            spec.output.as_ref(),
            spec.output.as_ref().and_then(|p| observed.local.get(p)),
        ) else {
            continue;
        };
        for (id, name) in unsaved.iter().filter(|(_, n)| n == spec.name.as_str()) {
            let holds = spec
                .scopes
                .iter()
                .filter_map(|r| observed.pair(r, &spec.name))
                .any(|r| {
                    r.tags.get(crate::desired::APPLY_TAG) == Some(id)
                        && r.public_key.as_ref() == Some(public)
                });
            if holds {
                found.push((id.clone(), name.clone(), path.clone(), public.clone()));
            }
        }
    }
    found
}

/// Whether the entry's key file holds a key that destroy or prune retired (the journal's
/// `retired`): a key that left with its key pair is never imported again; `apply` moves the
/// file aside and makes a new key instead.
///
/// With a shared journal (`state: s3://…`, where whoever may write the bucket can mark a key
/// retired), a key one of the entry's key pairs still holds is never replaced on that word
/// alone: the entry is planned as it is (in sync, or a conflict).
pub(super) fn holds_retired_key(
    desired: &crate::desired::Desired,
    spec: &KeyPairSpec,
    observed: &Observed,
    options: &Options,
) -> bool {
    let Some((_, public)) = retired_key_file(spec, observed, options) else {
        return false;
    };
    let live = spec.scopes.iter().any(|scope| {
        observed
            .pair(scope, &spec.name)
            .is_some_and(|k| k.public_key.as_ref() == Some(public))
    });
    !(desired.state.is_some() && live)
}

/// The entry's key file and its key, when that key is one destroy or prune retired.
pub(super) fn retired_key_file<'a>(
    spec: &'a KeyPairSpec,
    observed: &'a Observed,
    options: &Options,
) -> Option<(&'a std::path::PathBuf, &'a crate::keys::PublicKey)> {
    if options.retired.is_empty() || matches!(spec.source, KeySource::PublicKey(_)) {
        return None;
    }
    let path = spec.output.as_ref()?;
    match observed.local.get(path) {
        Some(FileState::Key { public, .. })
            if options.retired.contains(&public.sha256_fingerprint()) =>
        {
            Some((path, public))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! Recovery acts only on what the journal proves.

    use crate::desired::*;
    use crate::keys::FileState;
    use crate::plan::fixtures::*;
    use crate::plan::*;

    #[test]
    fn a_key_pair_lost_with_a_killed_run_is_recreated_not_reported() {
        let d = desired(&["us-east-1"], KeyType::Ed25519);
        let lost = remote_named(
            "lab-key",
            Some(key("ed25519-a.pub")),
            "ed25519",
            &[(PROJECT_TAG, "lab"), (APPLY_TAG, "00aa")],
        );
        let o = observed(&d, &[("us-east-1", lost)], FileState::Absent);
        // Without knowing of the killed run: the private key is missing, a conflict.
        assert_eq!(
            ops(&d, &o),
            vec![KeyPairOp::Conflict(Conflict::MissingPrivateKey)]
        );
        // The journal proves run 00aa never saved this key: nobody ever had it; recreate.
        let options = Options {
            unsaved: [("00aa".to_owned(), "lab-key".to_owned())].into(),
            ..Options::default()
        };
        let got: Vec<KeyPairOp> = ops_with(&d, &o, &options);
        assert!(
            matches!(got.as_slice(), [KeyPairOp::Replace { exists: true, .. }]),
            "{got:?}"
        );
        // A key the journal says was saved is not recovered from: another id, or another name.
        let other = Options {
            unsaved: [
                ("00bb".to_owned(), "lab-key".to_owned()),
                ("00aa".to_owned(), "lab-other".to_owned()),
            ]
            .into(),
            ..Options::default()
        };
        let got: Vec<KeyPairOp> = ops_with(&d, &o, &other);
        assert_eq!(got, vec![KeyPairOp::Conflict(Conflict::MissingPrivateKey)]);
    }
}
