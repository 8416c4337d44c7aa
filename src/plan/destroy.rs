//! `destroy`: delete what the manifest owns, and decide what becomes of each key file.

use super::recovery::retired_key_file;
use super::{
    Action, AfterDelete, Desired, FileState, KeyPairOp, KeyPairSpec, Observed, Options, Owner,
    Plan, action, ours, ownership, plan_orphans,
};

/// Compute the plan for `destroy`: delete every key pair this manifest owns in its regions.
pub(crate) fn plan_destroy(desired: &Desired, observed: &Observed, options: &Options) -> Plan {
    let mut actions = Vec::new();
    for (entry, spec) in desired.keypairs.iter().enumerate() {
        for region in &spec.regions {
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
        let first = actions.len() - spec.regions.len();
        after_last_delete(spec, observed, options, &mut actions[first..]);
        retire_left_behind(spec, observed, options, &mut actions[first..]);
    }
    let all = Options {
        prune: true,
        ..options.clone()
    };
    plan_orphans(desired, observed, &all, &mut actions);
    Plan {
        project: desired.project.clone(),
        actions,
    }
}

/// `destroy`: the key file goes with the last deletion of its key pair, once, and only when
/// no key pair that uses it stays behind (one this manifest does not own): retired by default,
/// removed with `--purge-local`, kept with `--keep-local`.
fn after_last_delete(
    spec: &KeyPairSpec,
    observed: &Observed,
    options: &Options,
    entry_actions: &mut [Action],
) {
    let (Some(path), Some(FileState::Key { public, .. })) = (
        spec.output.as_ref(),
        spec.output.as_ref().and_then(|p| observed.local.get(p)),
    ) else {
        return;
    };
    // Key pairs of this entry that exist and are not deleted: they still use the file.
    let staying: Vec<String> = entry_actions
        .iter()
        .filter(|Action::KeyPair(a)| {
            a.op == KeyPairOp::Noop && observed.has(&a.region, spec.name.as_str())
        })
        .map(|Action::KeyPair(a)| a.region.to_string())
        .collect();
    // A purge removes the file only when it holds the key of every key pair deleted: a file
    // holding another key is someone's only copy of that key.
    let holds_deleted_key = entry_actions
        .iter()
        .filter(|Action::KeyPair(a)| matches!(a.op, KeyPairOp::Delete { .. }))
        .all(|Action::KeyPair(a)| {
            observed
                .pair(&a.region, &spec.name)
                .and_then(|remote| remote.public_key.as_ref())
                == Some(public)
        });
    let Some(Action::KeyPair(last)) = entry_actions
        .iter_mut()
        .rev()
        .find(|Action::KeyPair(a)| matches!(a.op, KeyPairOp::Delete { .. }))
    else {
        return;
    };
    let (file, note) = if !staying.is_empty() {
        (
            AfterDelete::Keep,
            format!(
                "; {} stays: the key pair in {} still uses it",
                spec.output_display,
                staying.join(", ")
            ),
        )
    } else if options.purge_local && holds_deleted_key {
        (
            AfterDelete::Purge(path.clone(), public.clone()),
            format!(" and remove {}", spec.output_display),
        )
    } else if options.purge_local {
        (
            AfterDelete::Retire(path.clone()),
            format!(
                " and retire {} (moved aside, not removed: it holds another key than the key pair)",
                spec.output_display
            ),
        )
    } else if options.keep_local {
        (AfterDelete::Keep, String::new())
    } else {
        (
            AfterDelete::Retire(path.clone()),
            format!(" and retire {} (moved aside)", spec.output_display),
        )
    };
    last.op = KeyPairOp::Delete { file };
    last.reason.push_str(&note);
}

/// Every key pair of the entry is gone, but its file still holds the key an earlier destroy
/// or prune retired (that delete's answer was lost, or the run was killed before the file
/// went): the file is retired now (removed with `--purge-local`), without an API call.
fn retire_left_behind(
    spec: &KeyPairSpec,
    observed: &Observed,
    options: &Options,
    entry_actions: &mut [Action],
) {
    let gone = spec
        .regions
        .iter()
        .all(|r| observed.pair(r, &spec.name).is_none());
    let Some((path, public)) = retired_key_file(spec, observed, options) else {
        return;
    };
    let Some(Action::KeyPair(last)) = entry_actions.last_mut() else {
        return;
    };
    if !gone || options.keep_local {
        return;
    }
    let (file, what) = if options.purge_local {
        (AfterDelete::Purge(path.clone(), public.clone()), "remove")
    } else {
        (AfterDelete::Retire(path.clone()), "retire")
    };
    last.op = KeyPairOp::RetireFile {
        file: Box::new(file),
    };
    last.reason = format!(
        "its key pairs are gone, but {} still holds the key destroy or prune retired; {what} it",
        spec.output_display
    );
}

#[cfg(test)]
mod tests {
    //! What destroy deletes, and when a key file goes.

    use std::path::PathBuf;

    use super::*;
    use crate::cloud::RemoteKeyPair;
    use crate::desired::*;

    use crate::plan::fixtures::*;
    use crate::plan::*;

    #[test]
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
                .into_iter()
                .map(|Action::KeyPair(a)| a.op)
                .collect()
        };
        let both = [("us-east-1", ours.clone()), ("eu-west-1", ours.clone())];
        let delete = |file| KeyPairOp::Delete { file };
        // By default the file is retired with the last deletion.
        assert_eq!(
            fates(&both, &Options::default()),
            [
                delete(AfterDelete::Keep),
                delete(AfterDelete::Retire(path.clone()))
            ]
        );
        let purge = Options {
            purge_local: true,
            ..Options::default()
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
            ..Options::default()
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
                delete(AfterDelete::Retire(path.clone()))
            ]
        );
        let unknown = remote(None, "ed25519");
        assert_eq!(
            fates(&[("us-east-1", unknown)], &purge),
            [delete(AfterDelete::Retire(path.clone())), KeyPairOp::Noop]
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
                .into_iter()
                .map(|Action::KeyPair(a)| a.op)
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
                    file: Box::new(AfterDelete::Retire(path.clone()))
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
        assert!(matches!(
            plan_destroy(&d, &o, &retired).actions[1],
            Action::KeyPair(KeyPairAction {
                op: KeyPairOp::Delete { .. },
                ..
            })
        ));
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
