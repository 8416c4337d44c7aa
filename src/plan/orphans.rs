//! Key pairs the manifest owns but no longer lists: shown, or deleted with `--prune`.

use super::custody::{Custody, FileOf};
use super::{
    Action, Address, AfterDelete, Desired, KeyName, KeyPairAction, KeyPairOp, Observed, Op,
    Options, TagSet, ownership,
};

/// Key pairs owned by this manifest, in its scopes, that it no longer lists. An orphan is a
/// (scope, name) the manifest does not place, the one definition (observe looks for the files
/// of the names it no longer lists at all).
pub(super) fn plan_orphans(
    desired: &Desired,
    observed: &Observed,
    options: &Options,
    custody: &Custody,
    actions: &mut Vec<Action>,
) {
    for (region, remote) in ownership::orphans(desired, &observed.remote) {
        let name = &remote.name;
        let Ok(key_name) = KeyName::parse(name) else {
            continue;
        };
        // The file goes with the last region's deletion of that name: the file at the
        // default place, or where the journal says labctl wrote this key (an entry with
        // its own `output`), the first that custody lets go. Retired (moved aside, so a
        // seat added back gets a new key), or removed with `--purge-local`.
        let last_region =
            observed.remote.keys().rev().find(|r| observed.has(r, name)) == Some(region);
        let (file, also) = if options.prune && last_region {
            custody
                .files_of(desired.orphan_file(name), remote.public_key.as_ref())
                .into_iter()
                .map(|path| {
                    let shown = path.display().to_string();
                    custody.file_fate(&path, &shown, &[remote.public_key.as_ref()], FileOf::Orphan)
                })
                .find(|(file, _)| *file != AfterDelete::Keep)
                .unwrap_or((AfterDelete::Keep, String::new()))
        } else {
            (AfterDelete::Keep, String::new())
        };
        let held = match &file {
            AfterDelete::Retire(path, _) | AfterDelete::Purge(path, _) => Some(path.clone()),
            AfterDelete::Keep => None,
        };
        let reason = if options.prune {
            format!("no longer in the manifest; delete it{also}")
        } else {
            "no longer in the manifest; `apply --prune` deletes it".to_owned()
        };
        let op = Op::KeyPair(KeyPairAction {
            entry: None,
            output_display: held
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            output: held,
            tags: TagSet::default(),
            op: if options.prune {
                KeyPairOp::Delete { file }
            } else {
                KeyPairOp::Orphan
            },
            remote_id: remote.id.clone(),
            fix_mode: false,
            ppk: None,
            write_ppk: false,
            retires: Vec::new(),
            owned: true,
            restore: None,
            store: super::StoreStep::None,
            unstore: None,
        });
        actions.push(Action {
            address: Address::key_pair(key_name, region.clone()),
            reason,
            op,
        });
    }
}

#[cfg(test)]
mod tests {
    //! Orphans: only owned key pairs, and never a file an entry uses.

    use std::path::PathBuf;

    use crate::desired::*;

    use crate::plan::fixtures::*;
    use crate::plan::*;

    #[test]
    fn orphans_prune_and_destroy_touch_only_owned_key_pairs() {
        let d = desired(&["us-east-1"], KeyType::Ed25519);
        let present = [
            ("us-east-1", remote(Some(key("ed25519-a.pub")), "ed25519")),
            (
                "us-east-1",
                remote_named("old", None, "ed25519", &[(PROJECT_TAG, "lab")]),
            ),
            ("us-east-1", remote_named("by-hand", None, "ed25519", &[])),
            (
                "us-east-1",
                remote_named("theirs", None, "ed25519", &[(PROJECT_TAG, "other")]),
            ),
        ];
        let o = observed(&d, &present, file("ed25519-a.pub", 0o400));
        let names = |p: &Plan| -> Vec<(String, &'static str)> {
            p.actions
                .iter()
                .map(|a| (a.name().to_string(), a.change().as_str()))
                .collect()
        };
        let kept = plan(&d, &o, &Options::default());
        assert_eq!(
            names(&kept),
            [("lab-key".to_owned(), "noop"), ("old".to_owned(), "orphan")]
        );
        assert!(!kept.has_changes());
        let pruned = plan(
            &d,
            &o,
            &Options {
                prune: true,
                ..Options::default()
            },
        );
        assert_eq!(
            names(&pruned),
            [("lab-key".to_owned(), "noop"), ("old".to_owned(), "delete")]
        );
        let destroy = plan_destroy(&d, &o, &Options::default());
        assert_eq!(
            names(&destroy),
            [
                ("lab-key".to_owned(), "delete"),
                ("old".to_owned(), "delete")
            ]
        );
    }

    #[test]
    fn an_orphans_file_is_never_purged_while_an_entry_uses_it() {
        let mut d = desired(&["us-east-1"], KeyType::Ed25519);
        // The entry was renamed and keeps the old file.
        d.keypairs[0].name = KeyName::parse("lab-new").unwrap();
        d.keypairs[0].output = Some(PathBuf::from("keys/lab-key.pem"));
        let old = remote(Some(key("ed25519-a.pub")), "ed25519");
        let o = observed(&d, &[("us-east-1", old)], file("ed25519-a.pub", 0o400));
        let options = Options {
            prune: true,
            purge_local: true,
            ..Options::default()
        };
        let got: Vec<KeyPairOp> = ops_with(&d, &o, &options);
        assert_eq!(
            got,
            [
                import_file("ed25519-a.pub"),
                KeyPairOp::Delete {
                    file: AfterDelete::Keep
                }
            ]
        );
    }

    /// A pruned key pair's file is retired like a destroyed one's, so a seat added back gets
    /// a new key; `--purge-local` removes it; another spelling of the same file, used by an
    /// entry, keeps it where it is.
    #[test]
    fn a_pruned_key_pairs_file_is_retired_unless_an_entry_uses_that_very_file() {
        let d = desired(&["us-east-1"], KeyType::Ed25519);
        let old = remote_named(
            "old",
            Some(key("ed25519-b.pub")),
            "ed25519",
            &[(PROJECT_TAG, "lab"), (APPLY_TAG, "00aa")],
        );
        let mut o = observed(&d, &[("us-east-1", old)], FileState::Absent);
        let old_file = d.orphan_dir.join("old.pem");
        o.local
            .insert(old_file.clone(), file("ed25519-b.pub", 0o400));
        let prune = Options {
            prune: true,
            ..Options::default()
        };
        let delete = |file| KeyPairOp::Delete { file };
        assert_eq!(
            ops_with(&d, &o, &prune)[1],
            delete(AfterDelete::Retire(old_file.clone(), key("ed25519-b.pub")))
        );
        let purge = Options {
            purge_local: true,
            ..prune.clone()
        };
        assert_eq!(
            ops_with(&d, &o, &purge)[1],
            delete(AfterDelete::Purge(old_file.clone(), key("ed25519-b.pub")))
        );
        // The entry names the same file by another path (absolute, through `..`, a linked
        // folder): one file, so it stays.
        let mut d2 = d.clone();
        let spelled = PathBuf::from("/elsewhere/spelling/old.pem");
        d2.keypairs[0].output = Some(spelled.clone());
        let mut o2 = o.clone();
        o2.local.insert(spelled, o.local[&old_file].clone());
        assert_eq!(ops_with(&d2, &o2, &purge)[1], delete(AfterDelete::Keep));
        assert_eq!(ops_with(&d2, &o2, &prune)[1], delete(AfterDelete::Keep));
    }
}
