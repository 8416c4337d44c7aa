//! plan(&Desired, &Observed, &Options) -> Plan: what apply must do, as data.
//!
//! Pure functions: no I/O, no clock, no randomness; the same inputs give the same plan in
//! the same order (manifest order, each entry's regions as written, then orphans by region
//! and name). The `reason` on an action is for people; apply decides nothing from it.
//!
//! This file holds the plan's types and `plan` itself; each concern has its own file with
//! its own table tests: `entry` (one manifest entry in its regions: the decision over every
//! key source, file and remote state; tags; file modes), `replace` (`--replace` and
//! recovery's replacement), `recovery` (which key pairs the journal proves were never
//! saved), `orphans` (key pairs the manifest no longer lists), `destroy`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::desired::{APPLY_TAG, Desired, KeyName, KeyPairSpec, KeySource, KeyType, TagSet};
use crate::keys::{FileState, KEY_MODE, PublicKey};
use crate::observe::Observed;
use crate::ownership::{self, Owner};
use crate::resource::{Address, RemoteKeyPair, Scope};

mod conflict;
mod custody;
mod destroy;
mod entry;
#[cfg(test)]
pub(crate) mod fixtures;
mod orphans;
mod recovery;
mod replace;
mod store;

pub(crate) use conflict::Conflict;
pub(crate) use destroy::plan_destroy;
use entry::plan_entry;
use orphans::plan_orphans;
pub(crate) use recovery::saved_after_all;
use recovery::{holds_retired_key, lost_to_interrupted_run};
use replace::{Why, plan_replace};
use store::{Keeping, plan_store};
pub(crate) use store::{Restore, StoreStep, stored_key};

/// Choices the user makes on the command line that change the plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// Delete orphans (`apply --prune`).
    pub prune: bool,
    /// With `prune`/`destroy`: also delete the private key files of what is deleted.
    pub purge_local: bool,
    /// With `destroy`: leave the private key files where they are (by default `destroy`
    /// retires them, so that the next `apply` does not hand last cohort's keys out again).
    pub keep_local: bool,
    /// Entries to delete and recreate (`apply --replace NAME[@REGION]`), by their index in
    /// the desired state: exactly the entry addressed, never another of the same name.
    pub replace: BTreeSet<usize>,
    /// Keys EC2 was asked to create whose private keys were never saved, as the journal
    /// proves: `(apply id, name)`. A key pair carrying that apply id, whose key file does not
    /// exist, lost its private key before anyone had it, and is recreated.
    pub unsaved: BTreeSet<(String, String)>,
    /// SHA-256 fingerprints of keys destroy or prune retired (the journal's `retired`): a
    /// key file still holding one is retired by `destroy` and never imported by `apply`.
    pub retired: BTreeSet<String>,
    /// SHA-256 fingerprints of the keys labctl made for this project (the journal's `made`),
    /// each with the files it wrote them to: only such a key's file is ever retired or
    /// removed, and a pruned key pair's file is found there whatever its entry said.
    pub made: BTreeMap<String, BTreeSet<PathBuf>>,
}

/// The whole plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub project: String,
    pub actions: Vec<Action>,
}

/// One action on one resource, the same shell for every kind: which resource (its address:
/// kind, name, scope), why (for people), and what to do in the kind's own terms. Code that
/// handles every kind (the scheduler, summaries, progress) reads the address and
/// [`Action::change`]; code of one kind takes its operation with [`Action::key_pair`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Action {
    pub address: Address,
    /// For people.
    pub reason: String,
    pub op: Op,
}

/// An action's operation. Each resource kind labctl manages is one variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    KeyPair(KeyPairAction),
}

impl Action {
    /// The key pair operation, when this action is on a key pair.
    #[allow(
        clippy::unnecessary_wraps,
        reason = "key pairs are the one kind today; another kind's action answers None"
    )]
    pub(crate) fn key_pair(&self) -> Option<&KeyPairAction> {
        match &self.op {
            Op::KeyPair(a) => Some(a),
        }
    }

    /// The key pair operation, when this action is on a key pair.
    #[allow(
        clippy::unnecessary_wraps,
        reason = "key pairs are the one kind today; another kind's action answers None"
    )]
    pub(crate) fn key_pair_mut(&mut self) -> Option<&mut KeyPairAction> {
        match &mut self.op {
            Op::KeyPair(a) => Some(a),
        }
    }

    /// The kind of change, whatever the resource.
    pub(crate) fn change(&self) -> Change {
        match &self.op {
            Op::KeyPair(a) => a.change(),
        }
    }

    /// Whether apply changes anything for this action.
    pub(crate) fn is_change(&self) -> bool {
        match &self.op {
            Op::KeyPair(a) => a.is_change(),
        }
    }

    /// The resource's name.
    pub(crate) fn name(&self) -> &KeyName {
        &self.address.name
    }

    /// Where the resource lives.
    pub(crate) fn scope(&self) -> &Scope {
        &self.address.scope
    }

    /// Why nothing can be done, when that is the action.
    pub(crate) fn conflict(&self) -> Option<Conflict> {
        match &self.op {
            Op::KeyPair(KeyPairAction {
                op: KeyPairOp::Conflict(c),
                ..
            }) => Some(*c),
            Op::KeyPair(_) => None,
        }
    }

    /// The local file the resource keeps (a key pair's private key), as people see it; empty
    /// when there is none.
    pub(crate) fn file_display(&self) -> &str {
        match &self.op {
            Op::KeyPair(a) => &a.output_display,
        }
    }
}

/// What to do about one key pair in one scope (the action's address names which).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyPairAction {
    /// Index of the key pair in the desired state; `None` for key pairs not in the manifest.
    pub entry: Option<usize>,
    /// The private key file, when there is one.
    pub output: Option<PathBuf>,
    pub output_display: String,
    /// The tags the key pair must carry (empty for key pairs not in the manifest).
    pub tags: TagSet,
    pub op: KeyPairOp,
    /// The key pair's id in EC2, when it exists there (tags are set by id).
    pub remote_id: Option<String>,
    /// After the op succeeds, set the key file's mode to 0400.
    pub fix_mode: bool,
    /// The PuTTY key file beside the key file, when the manifest asks for one: written with
    /// a new key, or from the existing key file (`write_ppk`).
    pub ppk: Option<PathBuf>,
    /// After the op succeeds, write the PuTTY key from the existing key file.
    pub write_ppk: bool,
    /// SHA-256 fingerprints the journal records as retired before this action deletes its
    /// key pair (decided by `custody`): they are never handed out again.
    pub retires: Vec<String>,
    /// Whether the key pair exists and this manifest owns it (its `labctl:project` tag): what
    /// a conflict's hint may suggest (`--replace` only replaces owned key pairs).
    pub owned: bool,
    /// Before anything else, write the key file from the team store (`store: ssm`).
    pub restore: Option<Restore>,
    /// After the operation: what becomes of the key pair's entry in the team store.
    pub store: StoreStep,
    /// After the key pair of this id is deleted: delete its entry in the team store.
    pub unstore: Option<String>,
}

/// Who generates a new key, and of which type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Generator {
    /// EC2, with `CreateKeyPair`.
    Ec2 { key_type: KeyType },
    /// labctl, locally (RSA of `bits`, or ed25519 when 0).
    Local { key_type: KeyType, bits: u32 },
}

/// Where an import's public key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ImportSource {
    /// The private key file that exists now.
    File(PublicKey),
    /// The manifest's `public_key`.
    Given(PublicKey),
    /// The key this apply creates in another scope first.
    CreatedIn(Scope),
}

/// The operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyPairOp {
    /// A new key: generated by EC2 or labctl, the private key saved to the output file.
    Create { generator: Generator },
    /// Import a public key.
    Import { source: ImportSource },
    /// Delete the key pair and create it anew (`--replace`): the old file is moved aside.
    Replace {
        generator: Generator,
        /// The scope whose key is created; the others import it.
        created_in: Scope,
        /// Whether the key pair exists in this scope (and is deleted first).
        exists: bool,
    },
    /// Set and remove tags on a key pair this manifest owns.
    UpdateTags {
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    /// Take over a matching key pair that has no ownership tag: add the tags.
    Adopt { set: BTreeMap<String, String> },
    /// Everything matches but the file's mode: chmod 0400.
    FixMode { mode: u32 },
    /// Everything matches, but the PuTTY key the manifest asks for is missing: write it
    /// from the key file.
    WritePpk,
    /// Nothing to do.
    Noop,
    /// Nothing will be done; the reason says why.
    Conflict(Conflict),
    /// A key pair owned by this manifest that the manifest no longer lists, left alone
    /// (`apply --prune` deletes it).
    Orphan,
    /// Delete the key pair (`destroy`, or an orphan with `--prune`); what becomes of its file
    /// once no key pair uses it.
    Delete { file: AfterDelete },
    /// The key pairs are gone but their file still holds the key destroy or prune retired
    /// (the delete's answer was lost, or the run was killed): retire (or remove) the file now.
    RetireFile { file: Box<AfterDelete> },
}

/// What becomes of a private key file once the last key pair that uses it is deleted. Apply
/// acts on it only when every deletion before it in the entry succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AfterDelete {
    /// The file stays (another key pair still uses it, or the user asked to keep it).
    Keep,
    /// Moved aside to `<file>.retired-<time>`, only while it still holds this key: the next
    /// `apply` makes a new key.
    Retire(PathBuf, PublicKey),
    /// Removed (`--purge-local`), only while it still holds this key.
    Purge(PathBuf, PublicKey),
}

/// The kind of change an action is, without its resource-specific detail: what summaries
/// count, what output and JSON name, and whether apply does anything. Every resource kind's
/// operation maps onto it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Change {
    Create,
    Import,
    Replace,
    Adopt,
    UpdateTags,
    FixMode,
    Write,
    Restore,
    Store,
    Delete,
    Retire,
    Orphan,
    NoOp,
    Conflict,
}

impl Change {
    /// Every kind, in the order people read a summary.
    pub(crate) const ALL: [Change; 14] = [
        Change::Create,
        Change::Import,
        Change::Replace,
        Change::Adopt,
        Change::UpdateTags,
        Change::FixMode,
        Change::Write,
        Change::Restore,
        Change::Store,
        Change::Delete,
        Change::Retire,
        Change::Orphan,
        Change::NoOp,
        Change::Conflict,
    ];

    /// The name in output and JSON.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Import => "import",
            Change::Replace => "replace",
            Change::Adopt => "adopt",
            Change::UpdateTags => "update-tags",
            Change::FixMode => "fix-mode",
            Change::Write => "write",
            Change::Restore => "restore",
            Change::Store => "store",
            Change::Delete => "delete",
            Change::Retire => "retire",
            Change::Orphan => "orphan",
            Change::NoOp => "noop",
            Change::Conflict => "conflict",
        }
    }

    /// Whether apply changes anything for this kind.
    pub(crate) fn is_change(self) -> bool {
        match self {
            Change::Create
            | Change::Import
            | Change::Replace
            | Change::Adopt
            | Change::UpdateTags
            | Change::FixMode
            | Change::Write
            | Change::Restore
            | Change::Store
            | Change::Delete
            | Change::Retire => true,
            Change::Orphan | Change::NoOp | Change::Conflict => false,
        }
    }
}

impl KeyPairOp {
    /// Whether this operation, in `scope`, makes the entry's new key (which its other scopes
    /// then import): a create, or the replacement in the scope it names. The one rule.
    pub(crate) fn makes_key_in(&self, scope: &Scope) -> bool {
        match self {
            KeyPairOp::Create { .. } => true,
            KeyPairOp::Replace { created_in, .. } => created_in == scope,
            _ => false,
        }
    }

    /// The kind of change this is.
    pub(crate) fn change(&self) -> Change {
        match self {
            KeyPairOp::Create { .. } => Change::Create,
            KeyPairOp::Import { .. } => Change::Import,
            KeyPairOp::Replace { .. } => Change::Replace,
            KeyPairOp::UpdateTags { .. } => Change::UpdateTags,
            KeyPairOp::Adopt { .. } => Change::Adopt,
            KeyPairOp::FixMode { .. } => Change::FixMode,
            KeyPairOp::WritePpk => Change::Write,
            KeyPairOp::Noop => Change::NoOp,
            KeyPairOp::Conflict(_) => Change::Conflict,
            KeyPairOp::Orphan => Change::Orphan,
            KeyPairOp::Delete { .. } => Change::Delete,
            KeyPairOp::RetireFile { .. } => Change::Retire,
        }
    }

    /// Whether apply changes anything for this action.
    pub(crate) fn is_change(&self) -> bool {
        self.change().is_change()
    }
}

impl KeyPairAction {
    /// Whether apply changes anything for this action.
    pub(crate) fn is_change(&self) -> bool {
        self.op.is_change()
            || self.fix_mode
            || self.write_ppk
            || self.restore.is_some()
            || self.store != StoreStep::None
    }

    /// The kind of change: the operation's, or the team store's work when the key pair
    /// itself is in sync.
    pub(crate) fn change(&self) -> Change {
        match (&self.op, &self.restore, self.store) {
            (KeyPairOp::Noop | KeyPairOp::WritePpk, Some(_), _) => Change::Restore,
            (KeyPairOp::Noop, None, StoreStep::Put | StoreStep::Adopt) => Change::Store,
            (op, ..) => op.change(),
        }
    }
}

impl Plan {
    pub(crate) fn has_changes(&self) -> bool {
        self.actions.iter().any(Action::is_change)
    }

    pub(crate) fn has_conflicts(&self) -> bool {
        self.actions.iter().any(|a| a.change() == Change::Conflict)
    }
}

/// Every action that deletes a key pair records first which keys leave with it.
fn record_retires(custody: &custody::Custody, actions: &mut [Action]) {
    for action in actions.iter_mut() {
        let retires = custody.retires(action);
        if let Some(a) = action.key_pair_mut() {
            a.retires = retires;
        }
    }
}

/// Whether this manifest owns a remote key pair (see [`ownership`]).
fn ours(desired: &Desired, remote: &RemoteKeyPair) -> bool {
    ownership::is_ours(&remote.tags, &desired.project)
}

/// Compute the plan for `apply`.
pub(crate) fn plan(desired: &Desired, observed: &Observed, options: &Options) -> Plan {
    let mut actions = Vec::new();
    for (entry, spec) in desired.keypairs.iter().enumerate() {
        if options.replace.contains(&entry) {
            plan_replace(entry, desired, spec, observed, Why::Asked, &mut actions);
        } else if store::keeps_current_key(desired, spec, observed) {
            // The team store has the key: a missing file is restored, another key in the
            // file is a conflict; never a new key (another machine may have handed it out).
            plan_entry(entry, desired, spec, observed, &mut actions);
        } else if lost_to_interrupted_run(desired, spec, observed, options) {
            plan_replace(
                entry,
                desired,
                spec,
                observed,
                Why::NeverSaved,
                &mut actions,
            );
        } else if holds_retired_key(desired, spec, observed, options) {
            plan_replace(entry, desired, spec, observed, Why::Retired, &mut actions);
        } else {
            plan_entry(entry, desired, spec, observed, &mut actions);
        }
    }
    let custody = custody::Custody::for_apply(desired, observed, options, &actions);
    plan_orphans(desired, observed, options, &custody, &mut actions);
    plan_store(desired, observed, &mut actions, Keeping::All);
    record_retires(&custody, &mut actions);
    Plan {
        project: desired.project.clone(),
        actions,
    }
}

fn action(
    entry: Option<usize>,
    spec: &KeyPairSpec,
    scope: &Scope,
    remote: Option<&RemoteKeyPair>,
    op: KeyPairOp,
    reason: String,
) -> Action {
    let op = Op::KeyPair(KeyPairAction {
        entry,
        output: spec.output.clone(),
        output_display: spec.output_display.clone(),
        tags: spec.tags.clone(),
        op,
        remote_id: remote.and_then(|r| r.id.clone()),
        fix_mode: false,
        ppk: spec.ppk.clone(),
        write_ppk: false,
        retires: Vec::new(),
        owned: remote.is_some_and(|r| {
            let owner = r.tags.get(crate::desired::PROJECT_TAG).map(String::as_str);
            owner.is_some() && owner == spec.tags.get(crate::desired::PROJECT_TAG)
        }),
        restore: None,
        store: StoreStep::None,
        unstore: None,
    });
    Action {
        address: Address::key_pair(spec.name.clone(), scope.clone()),
        reason,
        op,
    }
}

fn generator(spec: &KeyPairSpec) -> Option<Generator> {
    let key_type = spec.key_type;
    match spec.source {
        KeySource::Aws => Some(Generator::Ec2 { key_type }),
        KeySource::Local { bits } => Some(Generator::Local { key_type, bits }),
        KeySource::PublicKey(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{EC2, scope};
    use super::{Generator, KeyPairOp};
    use crate::desired::KeyType;

    /// Which scope makes an entry's key: the one rule apply, the plan's `.ppk` note and the
    /// report ask.
    #[test]
    fn a_create_makes_the_key_and_a_replacement_only_where_it_says() {
        let (east, west) = (scope("us-east-1"), scope("eu-west-1"));
        assert!(EC2.makes_key_in(&east));
        let replace = KeyPairOp::Replace {
            generator: Generator::Ec2 {
                key_type: KeyType::Ed25519,
            },
            created_in: east.clone(),
            exists: true,
        };
        assert!(replace.makes_key_in(&east));
        assert!(!replace.makes_key_in(&west));
        assert!(!KeyPairOp::Noop.makes_key_in(&east));
    }
}
