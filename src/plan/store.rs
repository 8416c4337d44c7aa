//! The team store's part of a plan (`store: ssm`), decided in one place for every action:
//! which key file is restored from the store, which key pair's key is put there (made,
//! imported, or found without an entry), which entry another tool wrote is taken over (a
//! CloudFormation key pair's), which entry leaves with its key pair, and which entry stops
//! everything because it holds another key. An entry is deleted only with its key pair, only
//! when it carries this project's tag and holds that key pair's key.

use super::{
    Action, Conflict, Desired, FileState, KeyPairOp, KeyPairSpec, KeySource, Observed, PublicKey,
};

/// What apply does with a key pair's entry in the team store once its operation succeeded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum StoreStep {
    /// Nothing (no store, or the entry holds the key and is this project's).
    #[default]
    None,
    /// Put the key (read from the key file) as the key pair's entry, never over another.
    Put,
    /// The entry holds the key but another tool wrote it: tag it as this project's.
    Adopt,
}

/// A key file written from the team store before anything else: the entry of the key pair
/// `id` (in the action's scope), which holds the key of `public`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Restore {
    pub id: String,
    pub public: PublicKey,
}

/// Where the entry's key can come from when the key file is missing: the first scope of the
/// entry whose key pair (this project's, or nobody's) has a store entry holding that key
/// pair's key (its index, and the restore).
pub(super) fn restorable(
    desired: &Desired,
    spec: &KeyPairSpec,
    file: &FileState,
    observed: &Observed,
) -> Option<(usize, Restore)> {
    if spec.output.is_none() || !matches!(file, FileState::Absent) {
        return None;
    }
    stored_key(desired, spec, observed)
}

/// The store entry that holds the entry's key: in the first scope of the entry whose key
/// pair (this project's, or nobody's) has an entry holding that key pair's key (its index,
/// and where to read it). What `restore` and `handout --from-store` read, and nothing else.
pub(crate) fn stored_key(
    desired: &Desired,
    spec: &KeyPairSpec,
    observed: &Observed,
) -> Option<(usize, Restore)> {
    if desired.store.is_none() || matches!(spec.source, KeySource::PublicKey(_)) {
        return None;
    }
    spec.scopes.iter().enumerate().find_map(|(i, scope)| {
        let remote = observed.pair(scope, &spec.name)?;
        if matches!(
            crate::ownership::owner(&remote.tags, &desired.project),
            crate::ownership::Owner::Other(_)
        ) {
            return None;
        }
        let public = remote.public_key.as_ref()?;
        let stored = observed.stored(scope, remote)?;
        stored.holds(Some(public)).then(|| {
            let id = remote.id.clone()?;
            Some((
                i,
                Restore {
                    id,
                    public: public.clone(),
                },
            ))
        })?
    })
}

/// Whether the action's key pair is there or is being made (what the store keeps a key of).
fn remote_or_new(op: &KeyPairOp, exists: bool) -> bool {
    exists
        || matches!(
            op,
            KeyPairOp::Create { .. } | KeyPairOp::Import { .. } | KeyPairOp::Replace { .. }
        )
}

/// What a plan does with the store: everything (`apply`), or only what leaves with deleted
/// key pairs (`destroy`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Keeping {
    All,
    Deletes,
}

/// What the store does for a key pair that stays (or is made): a note for the reason, or
/// the conflict of an entry that holds another key.
fn keep_step(
    a: &mut super::KeyPairAction,
    stored: Option<&crate::observe_store::Stored>,
    remote_public: Option<&PublicKey>,
    shown: &str,
) -> Result<Option<String>, String> {
    let in_sync = matches!(
        a.op,
        KeyPairOp::Noop
            | KeyPairOp::UpdateTags { .. }
            | KeyPairOp::Adopt { .. }
            | KeyPairOp::FixMode { .. }
            | KeyPairOp::WritePpk
    );
    let made = matches!(
        a.op,
        KeyPairOp::Create { .. } | KeyPairOp::Import { .. } | KeyPairOp::Replace { .. }
    );
    match stored {
        Some(stored) if stored.foreign && (in_sync || made) => Err(format!(
            "{shown} is another project's (its `labctl:project` tag)"
        )),
        _ if made => {
            a.store = StoreStep::Put;
            Ok(Some("; keep its key in SSM".to_owned()))
        }
        None if in_sync => {
            a.store = StoreStep::Put;
            Ok(Some(format!("; keep its key in {shown}")))
        }
        Some(stored) if in_sync && stored.holds(remote_public) && !stored.tagged => {
            a.store = StoreStep::Adopt;
            Ok(Some(format!(
                "; take over {shown} (tag it as this project's)"
            )))
        }
        Some(stored)
            if (in_sync || matches!(a.op, KeyPairOp::Conflict(Conflict::MissingPrivateKey)))
                && !stored.holds(remote_public) =>
        {
            let what = if stored.public.is_some() {
                "another key than the key pair"
            } else {
                "no usable private key"
            };
            Err(format!("{shown} holds {what}"))
        }
        _ => Ok(None),
    }
}

/// Decide the store's part of every action (after every other decision).
pub(super) fn plan_store(
    desired: &Desired,
    observed: &Observed,
    actions: &mut [Action],
    keeping: Keeping,
) {
    if desired.store.is_none() {
        return;
    }
    for action in actions.iter_mut() {
        let scope = action.address.scope.clone();
        let remote = observed.pair(&scope, &action.address.name);
        let stored = remote.and_then(|r| observed.stored(&scope, r));
        let remote_public = remote.and_then(|r| r.public_key.as_ref());
        let shown = remote
            .and_then(|r| r.id.as_deref())
            .map(|id| format!("SSM {}{id}", crate::desired::STORE_PATH))
            .unwrap_or_default();
        let Some(a) = action.key_pair_mut() else {
            continue;
        };
        let mut note = None;
        // What leaves with a key pair labctl deletes.
        if matches!(
            a.op,
            KeyPairOp::Delete { .. } | KeyPairOp::Replace { exists: true, .. }
        ) && let Some(stored) = stored
        {
            if stored.tagged && stored.holds(remote_public) {
                a.unstore = remote.and_then(|r| r.id.clone());
                note = Some(format!("; delete its key from {shown}"));
            } else {
                note = Some(format!(
                    "; {shown} is not this project's copy of its key and stays"
                ));
            }
        }
        if matches!(a.op, KeyPairOp::Conflict(Conflict::Mismatch))
            && stored.is_some_and(|s| s.holds(remote_public))
        {
            a.op = KeyPairOp::Conflict(Conflict::StaleKeyFile);
            note = Some(format!(
                "; {shown} holds the key pair's key: move {} aside and `labctl apply` restores it",
                a.output_display
            ));
        }
        let public_key_entry = a
            .entry
            .and_then(|e| desired.keypairs.get(e))
            .is_none_or(|spec| matches!(spec.source, KeySource::PublicKey(_)));
        if !public_key_entry && keeping == Keeping::All && remote_or_new(&a.op, remote.is_some()) {
            match keep_step(a, stored, remote_public, &shown) {
                Ok(kept) => note = kept.or(note),
                Err(why) => {
                    a.op = KeyPairOp::Conflict(Conflict::StoreMismatch);
                    a.restore = None;
                    action.reason = why;
                    continue;
                }
            }
        }
        if let Some(note) = note {
            if matches!(a.op, KeyPairOp::Noop) && a.restore.is_none() && a.store != StoreStep::None
            {
                note.trim_start_matches("; ").clone_into(&mut action.reason);
            } else {
                action.reason.push_str(&note);
            }
        }
    }
}

/// Whether the team store holds the current key of one of the entry's key pairs (this
/// project's or nobody's): the entry's key is not lost, whatever the journal says, and the
/// key file a run trusts is the store's, never a new key.
pub(super) fn keeps_current_key(
    desired: &Desired,
    spec: &KeyPairSpec,
    observed: &Observed,
) -> bool {
    restorable(desired, spec, &FileState::Absent, observed).is_some()
}
