//! plan(&Desired, &Observed, &Options) -> Plan: what apply must do, as data.
//!
//! Pure functions: no I/O, no clock, no randomness; the same inputs give the same plan in
//! the same order (manifest order, each entry's regions as written, then orphans by region
//! and name). The `reason` on an action is for people; apply decides nothing from it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::cloud::RemoteKeyPair;
use crate::desired::{
    APPLY_TAG, Desired, KeyName, KeyPairSpec, KeySource, KeyType, Region, TagSet,
};
use crate::keys::{FileState, KEY_MODE, PublicKey};
use crate::observe::Observed;
use crate::ownership::{self, Owner};

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
    /// Entries to delete and recreate (`apply --replace NAME`).
    pub replace: BTreeSet<KeyName>,
    /// Keys EC2 was asked to create whose private keys were never saved, as the journal
    /// proves: `(apply id, name)`. A key pair carrying that apply id, whose key file does not
    /// exist, lost its private key before anyone had it, and is recreated.
    pub unsaved: BTreeSet<(String, String)>,
}

/// The whole plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub project: String,
    pub actions: Vec<Action>,
}

/// One action on one resource. Each resource kind labctl manages is one variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    KeyPair(KeyPairAction),
}

/// What to do about one key pair in one region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyPairAction {
    /// Index of the key pair in the desired state; `None` for key pairs not in the manifest.
    pub entry: Option<usize>,
    pub name: KeyName,
    pub region: Region,
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
    /// For people.
    pub reason: String,
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
    /// The key this apply creates in another region first.
    CreatedIn(Region),
}

/// Why nothing can be done for a key pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Conflict {
    /// Present remotely, no private key file: EC2 hands out the private key only at creation.
    MissingPrivateKey,
    /// The file (or the manifest's public key) holds another key than the remote key pair.
    Mismatch,
    /// The file is not a usable private key (or not a regular file).
    Unreadable,
    /// The key type or source differs from the manifest's.
    KeyType,
    /// The output path is a symbolic link.
    Symlink,
    /// The key pair carries another manifest's ownership tag.
    OwnedByOther,
    /// `--replace` of a key pair this manifest does not own.
    NotOwned,
    /// The key file belongs to another user or sits in a folder others may change.
    Unsafe,
}

impl Conflict {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Conflict::MissingPrivateKey => "missing-private-key",
            Conflict::Mismatch => "mismatch",
            Conflict::Unreadable => "unreadable",
            Conflict::KeyType => "key-type",
            Conflict::Symlink => "symlink",
            Conflict::OwnedByOther => "owned-by-other",
            Conflict::NotOwned => "not-owned",
            Conflict::Unsafe => "unsafe-file",
        }
    }

    /// How to get out of the conflict.
    pub(crate) fn hint(self) -> &'static str {
        match self {
            Conflict::MissingPrivateKey => {
                "EC2 returned the private key only when the key pair was created. Put the original file back at the output path, or run `labctl apply --replace NAME` to delete the key pair and create a new one"
            }
            Conflict::Mismatch => {
                "the key pair holds a different key. Point `output` (or `public_key`) at the right key, or run `labctl apply --replace NAME` to replace the key pair (the old file is kept)"
            }
            Conflict::Unreadable => {
                "the file is not an unencrypted PEM or OpenSSH private key; check what is at the output path"
            }
            Conflict::KeyType => {
                "labctl never replaces a key pair silently: set `key_type`/`source` back, or run `labctl apply --replace NAME`"
            }
            Conflict::Symlink => {
                "labctl does not follow links for key files; use the real path in `output`"
            }
            Conflict::OwnedByOther => {
                "another manifest (its `labctl:project` tag) owns this key pair; rename the key pair in this manifest"
            }
            Conflict::Unsafe => {
                "another user could read or swap this key: keep key files in a folder only you can write (labctl makes its folders 0700), owned by you"
            }
            Conflict::NotOwned => {
                "`--replace` only replaces key pairs this manifest owns (tagged `labctl:project`); delete it by hand if you are sure"
            }
        }
    }
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
        /// The region whose key is created; the other regions import it.
        created_in: Region,
        /// Whether the key pair exists in this region (and is deleted first).
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
}

/// What becomes of a private key file once the last key pair that uses it is deleted. Apply
/// acts on it only when every deletion before it in the entry succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AfterDelete {
    /// The file stays (another key pair still uses it, or the user asked to keep it).
    Keep,
    /// Moved aside to `<file>.retired-<time>`: the next `apply` makes a new key.
    Retire(PathBuf),
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
    Delete,
    Orphan,
    NoOp,
    Conflict,
}

impl Change {
    /// Every kind, in the order people read a summary.
    pub(crate) const ALL: [Change; 10] = [
        Change::Create,
        Change::Import,
        Change::Replace,
        Change::Adopt,
        Change::UpdateTags,
        Change::FixMode,
        Change::Delete,
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
            Change::Delete => "delete",
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
            | Change::Delete => true,
            Change::Orphan | Change::NoOp | Change::Conflict => false,
        }
    }
}

impl KeyPairOp {
    /// The kind of change this is.
    pub(crate) fn change(&self) -> Change {
        match self {
            KeyPairOp::Create { .. } => Change::Create,
            KeyPairOp::Import { .. } => Change::Import,
            KeyPairOp::Replace { .. } => Change::Replace,
            KeyPairOp::UpdateTags { .. } => Change::UpdateTags,
            KeyPairOp::Adopt { .. } => Change::Adopt,
            KeyPairOp::FixMode { .. } => Change::FixMode,
            KeyPairOp::Noop => Change::NoOp,
            KeyPairOp::Conflict(_) => Change::Conflict,
            KeyPairOp::Orphan => Change::Orphan,
            KeyPairOp::Delete { .. } => Change::Delete,
        }
    }

    /// The action's name in output and JSON.
    pub(crate) fn name(&self) -> &'static str {
        self.change().as_str()
    }

    /// Whether apply changes anything for this action.
    pub(crate) fn is_change(&self) -> bool {
        self.change().is_change()
    }
}

impl KeyPairAction {
    /// Whether apply changes anything for this action.
    pub(crate) fn is_change(&self) -> bool {
        self.op.is_change() || self.fix_mode
    }
}

impl Plan {
    pub(crate) fn has_changes(&self) -> bool {
        self.actions.iter().any(|Action::KeyPair(a)| a.is_change())
    }

    pub(crate) fn has_conflicts(&self) -> bool {
        self.actions
            .iter()
            .any(|Action::KeyPair(a)| matches!(a.op, KeyPairOp::Conflict(_)))
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
        if options.replace.contains(&spec.name) {
            plan_replace(entry, desired, spec, observed, Why::Asked, &mut actions);
        } else if lost_to_interrupted_run(desired, spec, observed, options) {
            plan_replace(
                entry,
                desired,
                spec,
                observed,
                Why::NeverSaved,
                &mut actions,
            );
        } else {
            plan_entry(entry, desired, spec, observed, &mut actions);
        }
    }
    plan_orphans(desired, observed, options, &mut actions);
    Plan {
        project: desired.project.clone(),
        actions,
    }
}

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
    } else if options.purge_local {
        (
            AfterDelete::Purge(path.clone(), public.clone()),
            format!(" and remove {}", spec.output_display),
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

fn action(
    entry: Option<usize>,
    spec: &KeyPairSpec,
    region: &Region,
    remote: Option<&RemoteKeyPair>,
    op: KeyPairOp,
    reason: String,
) -> Action {
    Action::KeyPair(KeyPairAction {
        entry,
        name: spec.name.clone(),
        region: region.clone(),
        output: spec.output.clone(),
        output_display: spec.output_display.clone(),
        tags: spec.tags.clone(),
        op,
        remote_id: remote.and_then(|r| r.id.clone()),
        fix_mode: false,
        reason,
    })
}

fn generator(spec: &KeyPairSpec) -> Option<Generator> {
    let key_type = spec.key_type;
    match spec.source {
        KeySource::Aws => Some(Generator::Ec2 { key_type }),
        KeySource::Local { bits } => Some(Generator::Local { key_type, bits }),
        KeySource::PublicKey(_) => None,
    }
}

fn plan_entry(
    entry: usize,
    desired: &Desired,
    spec: &KeyPairSpec,
    observed: &Observed,
    actions: &mut Vec<Action>,
) {
    let file = spec
        .output
        .as_ref()
        .and_then(|path| observed.local.get(path))
        .unwrap_or(&FileState::Absent);
    let remote = |region: &Region| observed.pair(region, &spec.name);
    let present_in = spec.regions.iter().find(|r| remote(r).is_some());
    let mut planned: Vec<(KeyPairOp, String)> = spec
        .regions
        .iter()
        .map(|region| {
            let (op, reason) = region_op(spec, file, remote(region), region, present_in);
            match (op, remote(region)) {
                (KeyPairOp::Noop, Some(remote)) => tag_op(desired, spec, remote),
                (op, _) => (op, reason),
            }
        })
        .collect();
    let fix_at = mode_fix(spec, file, &mut planned);
    for (i, (region, (op, reason))) in spec.regions.iter().zip(planned).enumerate() {
        let mut a = action(Some(entry), spec, region, remote(region), op, reason);
        let Action::KeyPair(inner) = &mut a;
        inner.fix_mode = fix_at == Some(i);
        actions.push(a);
    }
}

/// Whether the remote key pair matches, before tags are considered.
#[expect(
    clippy::too_many_lines,
    reason = "one decision over every (key source, file, remote) state reads best in one place"
)]
fn region_op(
    spec: &KeyPairSpec,
    file: &FileState,
    remote: Option<&RemoteKeyPair>,
    region: &Region,
    present_in: Option<&Region>,
) -> (KeyPairOp, String) {
    let conflict = |c: Conflict, reason: String| (KeyPairOp::Conflict(c), reason);
    let output = &spec.output_display;
    // The key this entry stands for, when it is known locally.
    let local: Option<&PublicKey> = match (&spec.source, file) {
        (KeySource::PublicKey(given), _) => Some(given),
        (_, FileState::Symlink) => {
            return conflict(Conflict::Symlink, format!("{output} is a symbolic link"));
        }
        (_, FileState::NotAFile) => {
            return conflict(
                Conflict::Unreadable,
                format!("{output} is not a regular file"),
            );
        }
        (_, FileState::Unsafe { reason }) => {
            return conflict(Conflict::Unsafe, format!("{output}: {reason}"));
        }
        (_, FileState::Unreadable { reason }) => {
            return conflict(
                Conflict::Unreadable,
                format!("{output} is not a usable private key: {reason}"),
            );
        }
        (_, FileState::Key { public, .. }) if public.key_type() != spec.key_type.as_str() => {
            return conflict(
                Conflict::KeyType,
                format!(
                    "{output} holds a key of type {}, the manifest asks for {}",
                    public.key_type(),
                    spec.key_type
                ),
            );
        }
        (_, FileState::Key { public, .. }) => Some(public),
        (_, FileState::Absent) => None,
    };
    if let Some(remote_type) = remote.and_then(|r| r.key_type)
        && remote_type != spec.key_type
    {
        return conflict(
            Conflict::KeyType,
            format!(
                "the key pair is {remote_type} in EC2, the manifest asks for {}",
                spec.key_type
            ),
        );
    }
    let primary = &spec.regions[0];
    match (local, remote) {
        (Some(public), Some(remote)) => match &remote.public_key {
            Some(remote_public) if remote_public == public => {
                (KeyPairOp::Noop, "in sync".to_owned())
            }
            Some(_) if matches!(spec.source, KeySource::PublicKey(_)) => conflict(
                Conflict::Mismatch,
                "the key pair holds a different key than `public_key`".to_owned(),
            ),
            Some(_) => conflict(
                Conflict::Mismatch,
                format!("{output} holds a different key than the key pair in EC2"),
            ),
            None => conflict(
                Conflict::Mismatch,
                "EC2 returned no public key to compare with".to_owned(),
            ),
        },
        (Some(public), None) => {
            let source = match &spec.source {
                KeySource::PublicKey(_) => ImportSource::Given(public.clone()),
                KeySource::Aws | KeySource::Local { .. } => ImportSource::File(public.clone()),
            };
            let from = if matches!(source, ImportSource::Given(_)) {
                "`public_key`".to_owned()
            } else {
                output.clone()
            };
            (
                KeyPairOp::Import { source },
                format!("absent in {region}; import the public key of {from}"),
            )
        }
        (None, Some(_)) => conflict(
            Conflict::MissingPrivateKey,
            format!("the key pair exists but {output} does not"),
        ),
        (None, None) => match (present_in, generator(spec)) {
            // Creating here would make a second, different key for one entry.
            (Some(other), _) => conflict(
                Conflict::MissingPrivateKey,
                format!("the key pair exists in {other} but {output} does not"),
            ),
            (None, Some(generator)) if region == primary => {
                let who = match generator {
                    Generator::Ec2 { .. } => "EC2 generates",
                    Generator::Local { .. } => "labctl generates",
                };
                (
                    KeyPairOp::Create { generator },
                    format!("{who} a new {} key; save it to {output}", spec.key_type),
                )
            }
            (None, Some(_)) => (
                KeyPairOp::Import {
                    source: ImportSource::CreatedIn(primary.clone()),
                },
                format!("import the public key of the key created in {primary}"),
            ),
            (None, None) => unreachable_public_key(),
        },
    }
}

/// A `public_key` entry always has its key (`local` is `Some`); kept as a function so the
/// match above stays exhaustive without a silent arm.
fn unreachable_public_key() -> (KeyPairOp, String) {
    (
        KeyPairOp::Conflict(Conflict::Mismatch),
        "internal: a public_key entry without its key".to_owned(),
    )
}

/// For a key pair whose key matches: noop, adopt, update its tags, or a conflict of ownership.
fn tag_op(desired: &Desired, spec: &KeyPairSpec, remote: &RemoteKeyPair) -> (KeyPairOp, String) {
    let missing: BTreeMap<String, String> = spec
        .tags
        .iter()
        .filter(|(k, v)| remote.tags.get(*k).map(String::as_str) != Some(*v))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    match ownership::owner(&remote.tags, &desired.project) {
        Owner::This => {
            let stale: Vec<String> = remote
                .tags
                .keys()
                .filter(|k| spec.tags.get(k).is_none())
                .filter(|k| k.as_str() != APPLY_TAG)
                .filter(|k| k.starts_with("labctl:") || (spec.purge_tags && !k.starts_with("aws:")))
                .cloned()
                .collect();
            if missing.is_empty() && stale.is_empty() {
                (KeyPairOp::Noop, "in sync".to_owned())
            } else {
                let mut parts: Vec<String> =
                    missing.iter().map(|(k, v)| format!("{k}={v}")).collect();
                parts.extend(stale.iter().map(|k| format!("-{k}")));
                (
                    KeyPairOp::UpdateTags {
                        set: missing,
                        remove: stale,
                    },
                    format!("tags differ: {}", parts.join(", ")),
                )
            }
        }
        Owner::Other(other) => (
            KeyPairOp::Conflict(Conflict::OwnedByOther),
            format!("the key pair belongs to project {other}"),
        ),
        Owner::Nobody => (
            KeyPairOp::Adopt { set: missing },
            "the key matches but the key pair has no ownership tag; adopt it".to_owned(),
        ),
    }
}

/// A key file with the wrong mode is fixed once: by the first region in sync (as a
/// `fix-mode` action), or else along with the first other change. Returns the index of the
/// action that carries the fix, when it is not a `fix-mode` action itself.
fn mode_fix(
    spec: &KeyPairSpec,
    file: &FileState,
    planned: &mut [(KeyPairOp, String)],
) -> Option<usize> {
    let FileState::Key { mode, .. } = file else {
        return None;
    };
    if mode & 0o7777 == KEY_MODE || matches!(spec.source, KeySource::PublicKey(_)) {
        return None;
    }
    if let Some((op, reason)) = planned.iter_mut().find(|(op, _)| *op == KeyPairOp::Noop) {
        *op = KeyPairOp::FixMode { mode: *mode };
        *reason = format!(
            "{} has mode {mode:04o}; set it to 0400",
            spec.output_display
        );
        return None;
    }
    let index = planned.iter().position(|(op, _)| op.is_change())?;
    let note = format!("; set {} to 0400", spec.output_display);
    planned[index].1.push_str(&note);
    Some(index)
}

/// Whether every key pair of this entry that exists was made by a `CreateKeyPair` whose
/// private key the journal says was never saved, and the key file does not exist: the private
/// key is gone, and nobody ever had it. A key that was saved and later moved away is not.
fn lost_to_interrupted_run(
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
        .regions
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

/// `--replace`: delete the entry's key pairs and create a new key, if this manifest owns them.
/// Why an entry is replaced.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    /// `--replace NAME`.
    Asked,
    /// The journal proves its private key was never saved.
    NeverSaved,
}

fn plan_replace(
    entry: usize,
    desired: &Desired,
    spec: &KeyPairSpec,
    observed: &Observed,
    why: Why,
    actions: &mut Vec<Action>,
) {
    let remote = |region: &Region| observed.pair(region, &spec.name);
    let unowned = spec
        .regions
        .iter()
        .filter_map(remote)
        .any(|r| !ours(desired, r));
    let symlink = spec
        .output
        .as_ref()
        .is_some_and(|p| matches!(observed.local.get(p), Some(FileState::Symlink)));
    let primary = &spec.regions[0];
    for region in &spec.regions {
        let (op, reason) = match generator(spec) {
            _ if unowned => (
                KeyPairOp::Conflict(Conflict::NotOwned),
                "not every key pair of this entry carries this manifest's ownership tag".to_owned(),
            ),
            _ if symlink => (
                KeyPairOp::Conflict(Conflict::Symlink),
                format!("{} is a symbolic link", spec.output_display),
            ),
            None => (
                KeyPairOp::Conflict(Conflict::KeyType),
                "a `public_key` entry imports the key it names; change `public_key` instead"
                    .to_owned(),
            ),
            Some(generator) => {
                let exists = remote(region).is_some();
                let reason = match (region == primary, exists) {
                    (true, true) => format!(
                        "delete the key pair, move {} aside, create a new key",
                        spec.output_display
                    ),
                    (true, false) => {
                        format!("move {} aside, create a new key", spec.output_display)
                    }
                    (false, true) => {
                        format!("delete the key pair, import the new key created in {primary}")
                    }
                    (false, false) => format!("import the new key created in {primary}"),
                };
                let reason = match why {
                    Why::Asked => reason,
                    Why::NeverSaved => format!(
                        "created by an apply whose private key was never saved; recreate it ({reason})"
                    ),
                };
                (
                    KeyPairOp::Replace {
                        generator,
                        created_in: primary.clone(),
                        exists,
                    },
                    reason,
                )
            }
        };
        actions.push(action(
            Some(entry),
            spec,
            region,
            remote(region),
            op,
            reason,
        ));
    }
}

/// Key pairs owned by this manifest, in its regions, that it no longer lists.
fn plan_orphans(
    desired: &Desired,
    observed: &Observed,
    options: &Options,
    actions: &mut Vec<Action>,
) {
    let wanted: BTreeSet<(&Region, &str)> = desired
        .keypairs
        .iter()
        .flat_map(|k| k.regions.iter().map(move |r| (r, k.name.as_str())))
        .collect();
    for (region, pairs) in &observed.remote {
        for (name, remote) in pairs {
            if wanted.contains(&(region, name.as_str())) || !ours(desired, remote) {
                continue;
            }
            let Ok(key_name) = KeyName::parse(name) else {
                continue;
            };
            // The file is removed only when asked, only when it holds this very key, and
            // never when an entry of the manifest uses that file; with the last region's
            // deletion of that name.
            let candidate = desired.orphan_file(name);
            let used_by_entry = desired
                .keypairs
                .iter()
                .any(|k| k.output.is_some() && k.output == candidate);
            let holds_key = !used_by_entry
                && matches!(
                    (candidate.as_ref().and_then(|c| observed.local.get(c)), &remote.public_key),
                    (Some(FileState::Key { public, .. }), Some(remote_public)) if public == remote_public
                );
            let last_region =
                observed.remote.keys().rev().find(|r| observed.has(r, name)) == Some(region);
            // `holds_key` implies a candidate file: it was found holding this key.
            let held = candidate.clone().filter(|_| holds_key);
            let file = match (&remote.public_key, &held) {
                (Some(public), Some(path)) if options.purge_local && last_region => {
                    AfterDelete::Purge(path.clone(), public.clone())
                }
                _ => AfterDelete::Keep,
            };
            let reason = if options.prune {
                let also = match &file {
                    AfterDelete::Purge(p, _) => format!(" and remove {}", p.display()),
                    AfterDelete::Keep | AfterDelete::Retire(_) => String::new(),
                };
                format!("no longer in the manifest; delete it{also}")
            } else {
                "no longer in the manifest; `apply --prune` deletes it".to_owned()
            };
            actions.push(Action::KeyPair(KeyPairAction {
                entry: None,
                name: key_name,
                region: region.clone(),
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
                reason,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    //! The planner as a table: remote state x local file x manifest -> action.

    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::{
        Action, AfterDelete, Conflict, Generator, ImportSource, KeyPairOp, Options, plan,
        plan_destroy,
    };
    use crate::cloud::RemoteKeyPair;
    use crate::desired::{
        APPLY_TAG, Desired, KeyName, KeyPairSpec, KeySource, KeyType, PROJECT_TAG, Region, TagSet,
    };
    use crate::keys::{FileState, PublicKey};
    use crate::observe::Observed;

    const EC2: KeyPairOp = KeyPairOp::Create {
        generator: Generator::Ec2 {
            key_type: KeyType::Ed25519,
        },
    };

    fn key(name: &str) -> PublicKey {
        PublicKey::from_openssh(&crate::keys::fixture(name)).unwrap()
    }

    fn tags(extra: &[(&str, &str)]) -> TagSet {
        let mut map: BTreeMap<String, String> = extra
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        map.insert(PROJECT_TAG.into(), "lab".into());
        TagSet::from_checked(map)
    }

    fn desired(regions: &[&str], key_type: KeyType) -> Desired {
        Desired {
            project: "lab".into(),
            keypairs: vec![KeyPairSpec {
                name: KeyName::parse("lab-key").unwrap(),
                regions: regions.iter().map(|r| Region::parse(r).unwrap()).collect(),
                key_type,
                source: KeySource::Aws,
                tags: tags(&[("Team", "blue")]),
                purge_tags: false,
                output: Some(PathBuf::from("keys/lab-key.pem")),
                output_display: "keys/lab-key.pem".into(),
            }],
            orphan_dir: PathBuf::from("keys"),
        }
    }

    /// A remote key pair owned by project `lab` with the manifest's tags.
    fn remote(public: Option<PublicKey>, key_type: &str) -> RemoteKeyPair {
        remote_named(
            "lab-key",
            public,
            key_type,
            &[(PROJECT_TAG, "lab"), ("Team", "blue")],
        )
    }

    fn remote_named(
        name: &str,
        public: Option<PublicKey>,
        key_type: &str,
        tags: &[(&str, &str)],
    ) -> RemoteKeyPair {
        RemoteKeyPair {
            name: name.into(),
            id: Some(format!("key-{name}")),
            fingerprint: None,
            key_type: KeyType::parse(key_type),
            public_key: public,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    fn observed(desired: &Desired, present: &[(&str, RemoteKeyPair)], file: FileState) -> Observed {
        let mut remote: BTreeMap<Region, BTreeMap<String, RemoteKeyPair>> = desired
            .regions()
            .into_iter()
            .map(|r| (r, BTreeMap::new()))
            .collect();
        for (region, pair) in present {
            remote
                .get_mut(&Region::parse(region).unwrap())
                .unwrap()
                .insert(pair.name.clone(), pair.clone());
        }
        Observed {
            remote,
            local: BTreeMap::from([(PathBuf::from("keys/lab-key.pem"), file)]),
        }
    }

    fn ops(desired: &Desired, observed: &Observed) -> Vec<KeyPairOp> {
        plan(desired, observed, &Options::default())
            .actions
            .into_iter()
            .map(|Action::KeyPair(a)| a.op)
            .collect()
    }

    fn file(public: &str, mode: u32) -> FileState {
        FileState::Key {
            public: key(public),
            mode,
        }
    }

    fn import_file(public: &str) -> KeyPairOp {
        KeyPairOp::Import {
            source: ImportSource::File(key(public)),
        }
    }

    /// (what, key pairs present per region, the key file, expected op).
    type Case = (
        &'static str,
        Vec<(&'static str, RemoteKeyPair)>,
        FileState,
        KeyPairOp,
    );

    #[test]
    #[expect(clippy::too_many_lines, reason = "a table of cases")]
    fn one_region() {
        let d = desired(&["us-east-1"], KeyType::Ed25519);
        let a = || Some(key("ed25519-a.pub"));
        let cases: Vec<Case> = vec![
            ("nothing anywhere", vec![], FileState::Absent, EC2),
            (
                "in sync",
                vec![("us-east-1", remote(a(), "ed25519"))],
                file("ed25519-a.pub", 0o400),
                KeyPairOp::Noop,
            ),
            (
                "in sync, loose mode",
                vec![("us-east-1", remote(a(), "ed25519"))],
                file("ed25519-a.pub", 0o644),
                KeyPairOp::FixMode { mode: 0o644 },
            ),
            (
                "deleted remotely",
                vec![],
                file("ed25519-a.pub", 0o400),
                import_file("ed25519-a.pub"),
            ),
            (
                "private key lost",
                vec![("us-east-1", remote(a(), "ed25519"))],
                FileState::Absent,
                KeyPairOp::Conflict(Conflict::MissingPrivateKey),
            ),
            (
                "another key in the file",
                vec![("us-east-1", remote(a(), "ed25519"))],
                file("ed25519-b.pub", 0o400),
                KeyPairOp::Conflict(Conflict::Mismatch),
            ),
            (
                "EC2 returned no public key",
                vec![("us-east-1", remote(None, "ed25519"))],
                file("ed25519-a.pub", 0o400),
                KeyPairOp::Conflict(Conflict::Mismatch),
            ),
            (
                "garbage in the file",
                vec![("us-east-1", remote(a(), "ed25519"))],
                FileState::Unreadable { reason: "x".into() },
                KeyPairOp::Conflict(Conflict::Unreadable),
            ),
            (
                "a folder at the path",
                vec![],
                FileState::NotAFile,
                KeyPairOp::Conflict(Conflict::Unreadable),
            ),
            (
                "a symlink at the path",
                vec![],
                FileState::Symlink,
                KeyPairOp::Conflict(Conflict::Symlink),
            ),
            (
                "remote key of another type",
                vec![("us-east-1", remote(Some(key("rsa-pkcs1.pub")), "rsa"))],
                FileState::Absent,
                KeyPairOp::Conflict(Conflict::KeyType),
            ),
            (
                "local key of another type",
                vec![],
                file("rsa-pkcs1.pub", 0o400),
                KeyPairOp::Conflict(Conflict::KeyType),
            ),
            (
                "made by hand, key matches",
                vec![("us-east-1", remote_named("lab-key", a(), "ed25519", &[]))],
                file("ed25519-a.pub", 0o400),
                KeyPairOp::Adopt {
                    set: BTreeMap::from([
                        (PROJECT_TAG.into(), "lab".into()),
                        ("Team".into(), "blue".into()),
                    ]),
                },
            ),
            (
                "another project's key pair",
                vec![(
                    "us-east-1",
                    remote_named("lab-key", a(), "ed25519", &[(PROJECT_TAG, "other")]),
                )],
                file("ed25519-a.pub", 0o400),
                KeyPairOp::Conflict(Conflict::OwnedByOther),
            ),
            (
                "tag drift and a stale labctl tag; foreign tags kept",
                vec![(
                    "us-east-1",
                    remote_named(
                        "lab-key",
                        a(),
                        "ed25519",
                        &[
                            (PROJECT_TAG, "lab"),
                            ("Team", "red"),
                            ("labctl:old", "x"),
                            ("Cost", "1"),
                        ],
                    ),
                )],
                file("ed25519-a.pub", 0o400),
                KeyPairOp::UpdateTags {
                    set: BTreeMap::from([("Team".into(), "blue".into())]),
                    remove: vec!["labctl:old".into()],
                },
            ),
        ];
        for (what, present, local, expected) in cases {
            let o = observed(&d, &present, local);
            assert_eq!(ops(&d, &o), vec![expected], "{what}");
        }
    }

    #[test]
    fn purge_tags_removes_foreign_tags_but_never_aws_ones() {
        let mut d = desired(&["us-east-1"], KeyType::Ed25519);
        d.keypairs[0].purge_tags = true;
        let present = remote_named(
            "lab-key",
            Some(key("ed25519-a.pub")),
            "ed25519",
            &[
                (PROJECT_TAG, "lab"),
                ("Team", "blue"),
                ("Cost", "1"),
                ("aws:cloudformation:stack", "s"),
            ],
        );
        let o = observed(&d, &[("us-east-1", present)], file("ed25519-a.pub", 0o400));
        assert_eq!(
            ops(&d, &o),
            vec![KeyPairOp::UpdateTags {
                set: BTreeMap::new(),
                remove: vec!["Cost".into()]
            }]
        );
    }

    #[test]
    fn several_regions() {
        let d = desired(
            &["us-east-1", "eu-west-1", "ap-southeast-1"],
            KeyType::Ed25519,
        );
        let a = || Some(key("ed25519-a.pub"));
        let created_in = || KeyPairOp::Import {
            source: ImportSource::CreatedIn(Region::parse("us-east-1").unwrap()),
        };
        assert_eq!(
            ops(&d, &observed(&d, &[], FileState::Absent)),
            vec![EC2, created_in(), created_in()]
        );

        // Present in one region, file present: import into the others.
        let o = observed(
            &d,
            &[("eu-west-1", remote(a(), "ed25519"))],
            file("ed25519-a.pub", 0o400),
        );
        assert_eq!(
            ops(&d, &o),
            vec![
                import_file("ed25519-a.pub"),
                KeyPairOp::Noop,
                import_file("ed25519-a.pub")
            ]
        );

        // Present in a later region only, no file: never create a second, different key.
        let o = observed(
            &d,
            &[("ap-southeast-1", remote(a(), "ed25519"))],
            FileState::Absent,
        );
        assert_eq!(
            ops(&d, &o),
            vec![KeyPairOp::Conflict(Conflict::MissingPrivateKey); 3]
        );

        // Loose mode is fixed once, on the first region in sync.
        let o = observed(
            &d,
            &[
                ("eu-west-1", remote(a(), "ed25519")),
                ("ap-southeast-1", remote(a(), "ed25519")),
            ],
            file("ed25519-a.pub", 0o644),
        );
        assert_eq!(
            ops(&d, &o),
            vec![
                import_file("ed25519-a.pub"),
                KeyPairOp::FixMode { mode: 0o644 },
                KeyPairOp::Noop
            ]
        );

        // Nowhere in sync: the first import carries the mode fix.
        let o = observed(&d, &[], file("ed25519-a.pub", 0o644));
        let p = plan(&d, &o, &Options::default());
        let fixes: Vec<bool> = p
            .actions
            .iter()
            .map(|Action::KeyPair(a)| a.fix_mode)
            .collect();
        assert_eq!(fixes, [true, false, false]);
    }

    #[test]
    fn key_sources() {
        let mut d = desired(&["us-east-1", "eu-west-1"], KeyType::Rsa);
        d.keypairs[0].source = KeySource::Local { bits: 4096 };
        let local = KeyPairOp::Create {
            generator: Generator::Local {
                key_type: KeyType::Rsa,
                bits: 4096,
            },
        };
        let created_in = KeyPairOp::Import {
            source: ImportSource::CreatedIn(Region::parse("us-east-1").unwrap()),
        };
        assert_eq!(
            ops(&d, &observed(&d, &[], FileState::Absent)),
            vec![local, created_in]
        );

        let mut d = desired(&["us-east-1"], KeyType::Ed25519);
        d.keypairs[0].source = KeySource::PublicKey(key("ed25519-a.pub"));
        d.keypairs[0].output = None;
        let given = KeyPairOp::Import {
            source: ImportSource::Given(key("ed25519-a.pub")),
        };
        assert_eq!(ops(&d, &observed(&d, &[], FileState::Absent)), vec![given]);
        let o = observed(
            &d,
            &[("us-east-1", remote(Some(key("ed25519-a.pub")), "ed25519"))],
            FileState::Absent,
        );
        assert_eq!(ops(&d, &o), vec![KeyPairOp::Noop]);
        let o = observed(
            &d,
            &[("us-east-1", remote(Some(key("ed25519-b.pub")), "ed25519"))],
            FileState::Absent,
        );
        assert_eq!(ops(&d, &o), vec![KeyPairOp::Conflict(Conflict::Mismatch)]);
    }

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
        let names = |p: &super::Plan| -> Vec<(String, &'static str)> {
            p.actions
                .iter()
                .map(|Action::KeyPair(a)| (a.name.to_string(), a.op.name()))
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
    fn replace_only_what_this_manifest_owns() {
        let d = desired(&["us-east-1", "eu-west-1"], KeyType::Ed25519);
        let options = Options {
            replace: [KeyName::parse("lab-key").unwrap()].into(),
            ..Options::default()
        };
        let owned = observed(
            &d,
            &[("us-east-1", remote(Some(key("ed25519-a.pub")), "ed25519"))],
            FileState::Absent,
        );
        let p = plan(&d, &owned, &options);
        let region = Region::parse("us-east-1").unwrap();
        let expected = |exists| KeyPairOp::Replace {
            generator: Generator::Ec2 {
                key_type: KeyType::Ed25519,
            },
            created_in: region.clone(),
            exists,
        };
        let got: Vec<KeyPairOp> = p
            .actions
            .into_iter()
            .map(|Action::KeyPair(a)| a.op)
            .collect();
        assert_eq!(got, [expected(true), expected(false)]);

        let unowned = observed(
            &d,
            &[(
                "us-east-1",
                remote_named("lab-key", Some(key("ed25519-a.pub")), "ed25519", &[]),
            )],
            FileState::Absent,
        );
        let got: Vec<KeyPairOp> = plan(&d, &unowned, &options)
            .actions
            .into_iter()
            .map(|Action::KeyPair(a)| a.op)
            .collect();
        assert_eq!(got, vec![KeyPairOp::Conflict(Conflict::NotOwned); 2]);
    }

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
        let got: Vec<KeyPairOp> = plan(&d, &o, &options)
            .actions
            .into_iter()
            .map(|Action::KeyPair(a)| a.op)
            .collect();
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
        let got: Vec<KeyPairOp> = plan(&d, &o, &other)
            .actions
            .into_iter()
            .map(|Action::KeyPair(a)| a.op)
            .collect();
        assert_eq!(got, vec![KeyPairOp::Conflict(Conflict::MissingPrivateKey)]);
    }

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
        let got: Vec<KeyPairOp> = plan(&d, &o, &options)
            .actions
            .into_iter()
            .map(|Action::KeyPair(a)| a.op)
            .collect();
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

    #[test]
    fn planning_is_deterministic_and_in_manifest_order() {
        let d = desired(&["us-west-2", "eu-west-1"], KeyType::Rsa);
        let o = observed(&d, &[], FileState::Absent);
        let first = plan(&d, &o, &Options::default());
        assert_eq!(first, plan(&d, &o, &Options::default()));
        let regions: Vec<String> = first
            .actions
            .iter()
            .map(|Action::KeyPair(a)| a.region.to_string())
            .collect();
        assert_eq!(regions, ["us-west-2", "eu-west-1"]);
        assert!(first.has_changes());
        assert!(!first.has_conflicts());
    }
}
