//! Custody: the one rule for what becomes of a key, and of the file that holds it, when key
//! pairs leave (destroy, prune, replace). Every such decision is made here, from facts, never
//! from path text or names:
//!
//! - the file's identity (device + inode of the opened file: [`Observed::same_file`]) and the
//!   key it holds;
//! - the keys of the key pairs being deleted;
//! - every key pair that stays (listed, and not deleted by this plan) and every entry that
//!   stays, with the files they use;
//! - the project's record of the keys labctl made (the journal's `made`, and `retired`), or a
//!   key pair labctl created that holds the key (`labctl:apply-id`, which only
//!   `CreateKeyPair` by labctl carries).
//!
//! A file is retired (moved aside) or removed (`--purge-local`) only when labctl made the key
//! it holds for this project, no staying entry uses that very file, and no staying key pair
//! holds its key; removed only when it holds the key of every key pair deleted. A key is
//! recorded retired, before its key pair is deleted, only when labctl made it and nothing that
//! stays uses it: a key the user brought (an `output` that already held a key) stays theirs,
//! and a renamed entry that keeps the old file keeps its key. The executor checks again, at
//! the moment it moves or removes a file, that the file still holds the key decided on.

use super::{
    APPLY_TAG, Action, AfterDelete, BTreeSet, Desired, FileState, KeyPairOp, Observed, Options,
    PathBuf, PublicKey, Scope, ours,
};
use crate::resource::RemoteKeyPair;

/// Whose file a decision is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FileOf {
    /// The `output` of this manifest entry (destroy): retired even when it holds another key
    /// than the key pair (that key is the project's too, and must not be handed out again).
    Entry(usize),
    /// A file found for a key pair the manifest no longer lists (at the default place, or
    /// where the journal says labctl wrote its key): it goes only when it holds that very
    /// key, and never while any entry uses that file (the entry's own actions decide).
    Orphan,
}

/// What leaves with a plan, and what stays.
pub(super) struct Custody<'a> {
    desired: &'a Desired,
    observed: &'a Observed,
    options: &'a Options,
    /// Every key pair this plan deletes: `(region, name)`.
    deleting: BTreeSet<(Scope, String)>,
    /// Entries whose key pairs all leave (destroy); every other entry stays and keeps its
    /// file.
    leaving: BTreeSet<usize>,
}

impl<'a> Custody<'a> {
    /// For `plan`: the orphans `--prune` deletes leave, and so do the key pairs and the file
    /// of an entry being replaced (`actions`: the entries' actions); every other entry stays.
    pub(super) fn for_apply(
        desired: &'a Desired,
        observed: &'a Observed,
        options: &'a Options,
        actions: &[Action],
    ) -> Self {
        let mut deleting: BTreeSet<(Scope, String)> = if options.prune {
            crate::ownership::orphans(desired, &observed.remote)
                .into_iter()
                .map(|(scope, pair)| (scope.clone(), pair.name.clone()))
                .collect()
        } else {
            BTreeSet::new()
        };
        let mut leaving = BTreeSet::new();
        for action in actions {
            if let Some(a) = action.key_pair()
                && let KeyPairOp::Replace { exists, .. } = a.op
            {
                leaving.extend(a.entry);
                if exists {
                    deleting.insert((action.scope().clone(), action.name().to_string()));
                }
            }
        }
        Custody {
            desired,
            observed,
            options,
            deleting,
            leaving,
        }
    }

    /// For `destroy`: every key pair the manifest owns leaves; an entry leaves when none of
    /// its key pairs stays (one it does not own stays, and keeps the file).
    pub(super) fn for_destroy(
        desired: &'a Desired,
        observed: &'a Observed,
        options: &'a Options,
    ) -> Self {
        let deleting: BTreeSet<(Scope, String)> = owned_pairs(desired, observed).collect();
        let leaving = desired
            .keypairs
            .iter()
            .enumerate()
            .filter(|(_, k)| {
                k.scopes.iter().all(|r| {
                    !observed.has(r, k.name.as_str())
                        || deleting.contains(&(r.clone(), k.name.to_string()))
                })
            })
            .map(|(i, _)| i)
            .collect();
        Custody {
            desired,
            observed,
            options,
            deleting,
            leaving,
        }
    }

    /// Whether labctl made this key for this project: the project's record says so (made or
    /// retired), or a key pair of this manifest that labctl created holds it.
    fn made_by_labctl(&self, public: &PublicKey) -> bool {
        let fingerprint = public.sha256_fingerprint();
        self.options.made.contains_key(&fingerprint)
            || self.options.retired.contains(&fingerprint)
            || self
                .observed
                .remote
                .values()
                .flat_map(|p| p.values())
                .any(|r| {
                    ours(self.desired, r)
                        && r.tags.contains_key(APPLY_TAG)
                        && r.public_key.as_ref() == Some(public)
                })
    }

    /// What that stays uses the file `path` (by identity), said for people; `None` when
    /// nothing does.
    fn file_used_by(&self, path: &std::path::Path, of: FileOf) -> Option<String> {
        self.desired
            .keypairs
            .iter()
            .enumerate()
            .filter(|(i, k)| {
                let stays = match of {
                    FileOf::Orphan => true,
                    FileOf::Entry(_) => !self.leaving.contains(i),
                };
                stays
                    && k.output
                        .as_ref()
                        .is_some_and(|o| self.observed.same_file(o, path))
            })
            .map(|(_, k)| {
                let regions: Vec<String> = k
                    .scopes
                    .iter()
                    .filter(|r| {
                        self.observed.has(r, k.name.as_str())
                            && !self.deleting.contains(&((*r).clone(), k.name.to_string()))
                    })
                    .map(ToString::to_string)
                    .collect();
                if regions.is_empty() {
                    format!("`{}` in the manifest uses it", k.name)
                } else {
                    format!("the key pair in {} still uses it", regions.join(", "))
                }
            })
            .next()
    }

    /// Whether something that stays uses the key `public`: a listed key pair this plan does
    /// not delete, or the file of an entry that stays.
    fn key_stays(&self, public: &PublicKey) -> bool {
        let pair_stays = self.observed.remote.iter().any(|(region, pairs)| {
            pairs.values().any(|r| {
                r.public_key.as_ref() == Some(public)
                    && !self.deleting.contains(&(region.clone(), r.name.clone()))
            })
        });
        pair_stays
            || self
                .desired
                .keypairs
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.leaving.contains(i))
                .filter_map(|(_, k)| k.output.as_ref())
                .any(|o| matches!(self.observed.local.get(o), Some(FileState::Key { public: p, .. }) if p == public))
    }

    /// What becomes of the file `path` once the key pairs holding `leaving_keys` are
    /// deleted, and the words the plan adds for people (empty when nothing is said).
    pub(super) fn file_fate(
        &self,
        path: &std::path::Path,
        shown: &str,
        leaving_keys: &[Option<&PublicKey>],
        of: FileOf,
    ) -> (AfterDelete, String) {
        let keep = |note: String| (AfterDelete::Keep, note);
        let Some(FileState::Key { public, .. }) = self.observed.local.get(path) else {
            return keep(String::new());
        };
        if let Some(user) = self.file_used_by(path, of) {
            return keep(match of {
                FileOf::Entry(_) => format!("; {shown} stays: {user}"),
                FileOf::Orphan => String::new(),
            });
        }
        let holds = !leaving_keys.is_empty() && leaving_keys.iter().all(|k| *k == Some(public));
        if of == FileOf::Orphan && !holds {
            return keep(String::new());
        }
        if !self.made_by_labctl(public) {
            return keep(format!(
                "; {shown} stays: labctl did not make the key it holds (a key you brought stays yours)"
            ));
        }
        if self.key_stays(public) {
            return keep(format!(
                "; {shown} stays: a key pair or entry that stays uses its key"
            ));
        }
        if self.options.keep_local {
            keep(String::new())
        } else if self.options.purge_local && holds {
            (
                AfterDelete::Purge(path.to_owned(), public.clone()),
                format!(" and remove {shown}"),
            )
        } else if self.options.purge_local {
            (
                AfterDelete::Retire(path.to_owned(), public.clone()),
                format!(
                    " and retire {shown} (moved aside, not removed: it holds another key than the key pair)"
                ),
            )
        } else {
            (
                AfterDelete::Retire(path.to_owned(), public.clone()),
                format!(" and retire {shown} (moved aside)"),
            )
        }
    }

    /// The keys to record retired before this action deletes its key pair: the key pair's own
    /// (when labctl made it and nothing that stays uses it) and the key of any file the
    /// action retires or removes.
    pub(super) fn retires(&self, action: &Action) -> Vec<String> {
        let Some(a) = action.key_pair() else {
            return Vec::new();
        };
        let deletes = matches!(
            a.op,
            KeyPairOp::Delete { .. } | KeyPairOp::Replace { exists: true, .. }
        );
        let mut keys = Vec::new();
        // `destroy --keep-local` keeps the keys for later: they come back with the next apply.
        if deletes
            && !self.options.keep_local
            && let Some(public) = self
                .observed
                .pair(action.scope(), action.name())
                .and_then(|r: &RemoteKeyPair| r.public_key.as_ref())
            && self.made_by_labctl(public)
            && !self.key_stays(public)
        {
            keys.push(public.sha256_fingerprint());
        }
        if let KeyPairOp::Delete {
            file: AfterDelete::Retire(_, public) | AfterDelete::Purge(_, public),
        } = &a.op
        {
            keys.push(public.sha256_fingerprint());
        }
        keys.dedup();
        keys
    }

    /// Files where labctl wrote the key `public` (the journal's `made`), besides `default`.
    pub(super) fn files_of(
        &self,
        default: Option<PathBuf>,
        public: Option<&PublicKey>,
    ) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = default.into_iter().collect();
        if let Some(made) = public.and_then(|p| self.options.made.get(&p.sha256_fingerprint())) {
            files.extend(
                made.iter()
                    .filter(|p| !files.contains(p))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        files
    }
}

/// Every key pair this manifest owns in its scopes: `(scope, name)`.
fn owned_pairs<'a>(
    desired: &'a Desired,
    observed: &'a Observed,
) -> impl Iterator<Item = (Scope, String)> + 'a {
    observed.remote.iter().flat_map(move |(region, pairs)| {
        pairs
            .values()
            .filter(|r| ours(desired, r))
            .map(move |r| (region.clone(), r.name.clone()))
    })
}

#[cfg(test)]
mod tests {
    //! Which keys leave with a delete, and which files are found for a pruned key pair.

    use std::path::PathBuf;

    use crate::desired::*;
    use crate::plan::fixtures::*;
    use crate::plan::*;

    fn retires(p: &Plan) -> Vec<(String, Vec<String>)> {
        p.actions
            .iter()
            .filter_map(|a| Some((a.name().to_string(), a.key_pair()?.retires.clone())))
            .collect()
    }

    /// `--replace` retires the key it replaces when labctl made it (in every region at once),
    /// never a key the user brought.
    #[test]
    fn replace_retires_the_key_it_replaces_only_when_labctl_made_it() {
        let d = desired(&["us-east-1", "eu-west-1"], KeyType::Ed25519);
        let a = key("ed25519-a.pub");
        let both = [
            ("us-east-1", remote(Some(a.clone()), "ed25519")),
            ("eu-west-1", remote(Some(a.clone()), "ed25519")),
        ];
        let o = observed(&d, &both, file("ed25519-a.pub", 0o400));
        let made = Options {
            replace: [0].into(),
            made: [(a.sha256_fingerprint(), std::collections::BTreeSet::new())].into(),
            ..Options::default()
        };
        let fp = a.sha256_fingerprint();
        assert_eq!(
            retires(&plan(&d, &o, &made)),
            [
                ("lab-key".to_owned(), vec![fp.clone()]),
                ("lab-key".to_owned(), vec![fp.clone()])
            ]
        );
        let brought = Options {
            replace: [0].into(),
            ..Options::default()
        };
        assert!(
            retires(&plan(&d, &o, &brought))
                .iter()
                .all(|(_, r)| r.is_empty())
        );
    }

    /// A pruned key pair whose entry had its own `output`: its file is found where labctl
    /// wrote the key, and retired with it; a key an entry still holds is never retired.
    #[test]
    fn a_pruned_key_pairs_file_is_found_where_labctl_wrote_its_key() {
        let d = desired(&["us-east-1"], KeyType::Ed25519);
        let b = key("ed25519-b.pub");
        let old = remote_named("old", Some(b.clone()), "ed25519", &[(PROJECT_TAG, "lab")]);
        let mut o = observed(&d, &[("us-east-1", old)], FileState::Absent);
        let custom = PathBuf::from("/w/seats/old/key.pem");
        o.local.insert(custom.clone(), file("ed25519-b.pub", 0o400));
        let options = Options {
            prune: true,
            made: [(b.sha256_fingerprint(), [custom.clone()].into())].into(),
            ..Options::default()
        };
        let p = plan(&d, &o, &options);
        let pruned = p.actions[1].key_pair().unwrap();
        assert_eq!(
            pruned.op,
            KeyPairOp::Delete {
                file: AfterDelete::Retire(custom.clone(), b.clone())
            }
        );
        assert_eq!(pruned.retires, [b.sha256_fingerprint()]);
        // The entry now holds that key in its own file (renamed, kept the key): nothing is
        // retired, and the file it uses stays.
        let mut o2 = o.clone();
        o2.local.insert(
            d.keypairs[0].output.clone().unwrap(),
            file("ed25519-b.pub", 0o400),
        );
        let p = plan(&d, &o2, &options);
        let pruned = p.actions[1].key_pair().unwrap();
        assert!(pruned.retires.is_empty(), "{pruned:?}");
        assert_eq!(
            pruned.op,
            KeyPairOp::Delete {
                file: AfterDelete::Keep
            }
        );
    }
}
