//! `destroy`: delete what the manifest owns, and decide what becomes of each key file.

use super::custody::{Custody, FileOf};
use super::recovery::retired_key_file;
use super::{
    Action, AfterDelete, Change, Desired, KeyPairOp, KeyPairSpec, Observed, Options, Owner, Plan,
    PublicKey, action, ours, ownership, plan_orphans, record_retires,
};

/// Compute the plan for `destroy`: delete every key pair this manifest owns in its regions.
pub(crate) fn plan_destroy(desired: &Desired, observed: &Observed, options: &Options) -> Plan {
    let custody = Custody::for_destroy(desired, observed, options);
    let mut actions = Vec::new();
    for (entry, spec) in desired.keypairs.iter().enumerate() {
        for region in &spec.scopes {
            let remote = observed.pair(region, &spec.name);
            let (op, reason) = match remote {
                None => (KeyPairOp::Noop, format!("absent in {region}")),
                Some(remote) if ours(desired, remote) => (
                    KeyPairOp::Delete {
                        file: AfterDelete::Keep,
                    },
                    format!("delete the key pair from {region}"),
                ),
                Some(remote) => (
                    KeyPairOp::Noop,
                    match ownership::owner(&remote.tags, &desired.project) {
                        Owner::Other(other) => format!("owned by project {other}: left alone"),
                        Owner::Nobody | Owner::This => {
                            "not tagged as this manifest's: left alone".to_owned()
                        }
                    },
                ),
            };
            actions.push(action(Some(entry), spec, region, remote, op, reason));
        }
        let first = actions.len() - spec.scopes.len();
        after_last_delete(entry, spec, observed, &custody, &mut actions[first..]);
        retire_left_behind(
            entry,
            spec,
            observed,
            options,
            &custody,
            &mut actions[first..],
        );
    }
    let all = Options {
        prune: true,
        ..options.clone()
    };
    plan_orphans(desired, observed, &all, &custody, &mut actions);
    super::plan_store(desired, observed, &mut actions, super::Keeping::Deletes);
    record_retires(&custody, &mut actions);
    Plan {
        project: desired.project.clone(),
        actions,
    }
}

/// `destroy`: the key file goes with the last deletion of its key pair, once, as
/// [`Custody::file_fate`] decides: retired by default, removed with `--purge-local`, kept
/// with `--keep-local`, and kept whatever was asked while anything that stays uses it or
/// when labctl did not make its key.
fn after_last_delete(
    entry: usize,
    spec: &KeyPairSpec,
    observed: &Observed,
    custody: &Custody,
    entry_actions: &mut [Action],
) {
    let Some(path) = spec.output.as_ref() else {
        return;
    };
    let leaving_keys: Vec<Option<&PublicKey>> = entry_actions
        .iter()
        .filter(|a| a.change() == Change::Delete)
        .map(|a| {
            observed
                .pair(a.scope(), &spec.name)
                .and_then(|remote| remote.public_key.as_ref())
        })
        .collect();
    let Some(last) = entry_actions
        .iter_mut()
        .rev()
        .find(|a| a.change() == Change::Delete)
    else {
        return;
    };
    let (file, note) = custody.file_fate(
        path,
        &spec.output_display,
        &leaving_keys,
        FileOf::Entry(entry),
    );
    last.reason.push_str(&note);
    if let Some(last) = last.key_pair_mut() {
        last.op = KeyPairOp::Delete { file };
    }
}

/// Every key pair of the entry is gone, but its file still holds the key an earlier destroy
/// or prune retired (that delete's answer was lost, or the run was killed before the file
/// went): the file is retired now (removed with `--purge-local`), without an API call.
fn retire_left_behind(
    entry: usize,
    spec: &KeyPairSpec,
    observed: &Observed,
    options: &Options,
    custody: &Custody,
    entry_actions: &mut [Action],
) {
    let gone = spec
        .scopes
        .iter()
        .all(|r| observed.pair(r, &spec.name).is_none());
    let Some((path, public)) = retired_key_file(spec, observed, options) else {
        return;
    };
    if !gone {
        return;
    }
    let (file, _) = custody.file_fate(
        path,
        &spec.output_display,
        &[Some(public)],
        FileOf::Entry(entry),
    );
    let what = match &file {
        AfterDelete::Keep => return,
        AfterDelete::Purge(..) => "remove",
        AfterDelete::Retire(..) => "retire",
    };
    let Some(last) = entry_actions.last_mut() else {
        return;
    };
    last.reason = format!(
        "its key pairs are gone, but {} still holds the key destroy or prune retired; {what} it",
        spec.output_display
    );
    if let Some(last) = last.key_pair_mut() {
        last.op = KeyPairOp::RetireFile {
            file: Box::new(file),
        };
    }
}

#[cfg(test)]
mod tests {
    //! What destroy deletes, and when a key file goes.

    use std::path::PathBuf;

    use super::*;
    use crate::desired::*;
    use crate::resource::RemoteKeyPair;

    use crate::plan::fixtures::*;
    use crate::plan::*;

    #[test]
    #[expect(clippy::too_many_lines, reason = "a table of cases")]
    fn destroy_retires_purges_or_keeps_the_file_only_when_no_key_pair_uses_it() {
        let d = desired(&["us-east-1", "eu-west-1"], KeyType::Ed25519);
        let ours = remote(Some(key("ed25519-a.pub")), "ed25519");
        let theirs = remote_named(
            "lab-key",
            Some(key("ed25519-a.pub")),
            "ed25519",
            &[(PROJECT_TAG, "other")],
        );
        let path = PathBuf::from("keys/lab-key.pem");
        let fates = |present: &[(&str, RemoteKeyPair)], options: &Options| -> Vec<KeyPairOp> {
            let o = observed(&d, present, file("ed25519-a.pub", 0o400));
            plan_destroy(&d, &o, options)
                .actions
                .iter()
                .filter_map(Action::key_pair)
                .map(|a| a.op.clone())
                .collect()
        };
        let both = [("us-east-1", ours.clone()), ("eu-west-1", ours.clone())];
        let delete = |file| KeyPairOp::Delete { file };
        let a = key("ed25519-a.pub");
        // labctl made the key the file holds (the project's record says so).
        let made = Options {
            made: [(a.sha256_fingerprint(), std::collections::BTreeSet::new())].into(),
            ..Options::default()
        };
        // By default the file is retired with the last deletion.
        assert_eq!(
            fates(&both, &made),
            [
                delete(AfterDelete::Keep),
                delete(AfterDelete::Retire(path.clone(), a.clone()))
            ]
        );
        // A key labctl did not make (the user's own key, imported from their file) stays
        // where it is, whatever is asked.
        let purge_any = Options {
            purge_local: true,
            ..Options::default()
        };
        assert_eq!(
            fates(&both, &purge_any),
            [delete(AfterDelete::Keep), delete(AfterDelete::Keep)]
        );
        assert_eq!(
            fates(&both, &Options::default()),
            [delete(AfterDelete::Keep), delete(AfterDelete::Keep)]
        );
        // A key pair labctl created (its apply id) proves the key is labctl's.
        let created = remote_named(
            "lab-key",
            Some(a.clone()),
            "ed25519",
            &[(PROJECT_TAG, "lab"), (APPLY_TAG, "00aa")],
        );
        assert_eq!(
            fates(&[("us-east-1", created)], &purge_any),
            [
                delete(AfterDelete::Purge(path.clone(), a.clone())),
                KeyPairOp::Noop
            ]
        );
        let purge = Options {
            purge_local: true,
            ..made.clone()
        };
        assert_eq!(
            fates(&both, &purge),
            [
                delete(AfterDelete::Keep),
                delete(AfterDelete::Purge(path.clone(), key("ed25519-a.pub")))
            ]
        );
        let keep = Options {
            keep_local: true,
            ..made.clone()
        };
        assert_eq!(
            fates(&both, &keep),
            [delete(AfterDelete::Keep), delete(AfterDelete::Keep)]
        );
        // Another project's key pair in eu-west-1 still uses the file: it stays.
        let mixed = [("us-east-1", ours.clone()), ("eu-west-1", theirs)];
        assert_eq!(
            fates(&mixed, &purge),
            [delete(AfterDelete::Keep), KeyPairOp::Noop]
        );
        // The file holds another key than a key pair deleted (plan's `mismatch`): a purge
        // never removes it; it is moved aside like any retired file.
        let other = remote(Some(key("ed25519-b.pub")), "ed25519");
        let mismatched = [("us-east-1", ours.clone()), ("eu-west-1", other.clone())];
        assert_eq!(
            fates(&mismatched, &purge),
            [
                delete(AfterDelete::Keep),
                delete(AfterDelete::Retire(path.clone(), a.clone()))
            ]
        );
        let unknown = remote(None, "ed25519");
        assert_eq!(
            fates(&[("us-east-1", unknown)], &purge),
            [
                delete(AfterDelete::Retire(path.clone(), a.clone())),
                KeyPairOp::Noop
            ]
        );
    }

    /// A key file left holding a retired key after its key pairs are gone is retired by the
    /// next destroy (removed with `--purge-local`, left with `--keep-local`), with no delete.
    #[test]
    fn a_file_left_holding_a_retired_key_is_retired_without_a_delete() {
        let d = desired(&["us-east-1", "eu-west-1"], KeyType::Ed25519);
        let path = PathBuf::from("keys/lab-key.pem");
        let o = observed(&d, &[], file("ed25519-a.pub", 0o400));
        let fates = |options: &Options| -> Vec<KeyPairOp> {
            plan_destroy(&d, &o, options)
                .actions
                .iter()
                .filter_map(Action::key_pair)
                .map(|a| a.op.clone())
                .collect()
        };
        assert_eq!(
            fates(&Options::default()),
            [KeyPairOp::Noop, KeyPairOp::Noop]
        );
        let retired = Options {
            retired: [key("ed25519-a.pub").sha256_fingerprint()].into(),
            ..Options::default()
        };
        assert_eq!(
            fates(&retired),
            [
                KeyPairOp::Noop,
                KeyPairOp::RetireFile {
                    file: Box::new(AfterDelete::Retire(path.clone(), key("ed25519-a.pub")))
                }
            ]
        );
        let purge = Options {
            purge_local: true,
            ..retired.clone()
        };
        assert_eq!(
            fates(&purge)[1],
            KeyPairOp::RetireFile {
                file: Box::new(AfterDelete::Purge(path.clone(), key("ed25519-a.pub")))
            }
        );
        let keep = Options {
            keep_local: true,
            ..retired.clone()
        };
        assert_eq!(fates(&keep), [KeyPairOp::Noop, KeyPairOp::Noop]);
        // A key pair still exists: the ordinary delete decides, not this.
        let ours = remote(Some(key("ed25519-a.pub")), "ed25519");
        let o = observed(&d, &[("eu-west-1", ours)], file("ed25519-a.pub", 0o400));
        assert_eq!(
            plan_destroy(&d, &o, &retired).actions[1].change(),
            Change::Delete
        );
        // And apply never imports the retired key: it makes a new one.
        let o = observed(&d, &[], file("ed25519-a.pub", 0o400));
        let ops = ops_with(&d, &o, &retired);
        assert!(
            ops.iter()
                .all(|op| matches!(op, KeyPairOp::Replace { exists: false, .. })),
            "{ops:?}"
        );
        assert_eq!(
            ops_with(&d, &o, &Options::default()),
            [import_file("ed25519-a.pub"), import_file("ed25519-a.pub")]
        );
    }
}
