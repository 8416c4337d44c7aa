//! One manifest entry in each of its regions: the decision over every (key source, key
//! file, remote key pair) state, then tags and the key file's mode.

use std::fmt::Write as _;

use super::{
    APPLY_TAG, Action, BTreeMap, Conflict, Desired, FileState, Generator, ImportSource, KEY_MODE,
    KeyPairOp, KeyPairSpec, KeySource, Observed, Owner, PublicKey, RemoteKeyPair, Scope, action,
    generator, ownership,
};

/// One entry: an action per region, then the key file's mode fixed once. A key file the
/// team store can give back is planned as if it were there (apply writes it first, from the
/// store, and nothing is created or replaced); when that plan has a conflict anywhere, the
/// entry is planned without it (nothing may use a key file that is not written).
pub(super) fn plan_entry(
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
    let restore = super::store::restorable(desired, spec, file, observed);
    if restore.is_some() {
        let mut with_restore = Vec::new();
        plan_entry_with(
            entry,
            desired,
            spec,
            observed,
            file,
            restore.as_ref(),
            &mut with_restore,
        );
        if with_restore.iter().all(|a| a.conflict().is_none()) {
            actions.extend(with_restore);
            return;
        }
    }
    plan_entry_with(entry, desired, spec, observed, file, None, actions);
}

fn plan_entry_with(
    entry: usize,
    desired: &Desired,
    spec: &KeyPairSpec,
    observed: &Observed,
    file: &FileState,
    restore: Option<&(usize, super::Restore)>,
    actions: &mut Vec<Action>,
) {
    let restored;
    let file = match restore {
        Some((_, r)) => {
            restored = FileState::Key {
                public: r.public.clone(),
                mode: KEY_MODE,
                id: crate::keys::folder::FileId { dev: 0, ino: 0 },
            };
            &restored
        }
        None => file,
    };
    let remote = |region: &Scope| observed.pair(region, &spec.name);
    let present_in = spec.scopes.iter().find(|r| remote(r).is_some());
    let mut planned: Vec<(KeyPairOp, String)> = spec
        .scopes
        .iter()
        .map(|region| {
            let (op, reason) = region_op(spec, file, remote(region), region, present_in);
            match (op, remote(region)) {
                (KeyPairOp::Noop, Some(remote)) => tag_op(desired, spec, remote),
                (op, _) => (op, reason),
            }
        })
        .collect();
    let ppk = spec
        .ppk
        .as_ref()
        .map(|path| observed.local.get(path).unwrap_or(&FileState::Absent));
    if let Some(problem) = ppk.and_then(|state| ppk_problem(spec, file, state)) {
        for planned in &mut planned {
            if !matches!(planned.0, KeyPairOp::Conflict(_)) {
                *planned = problem.clone();
            }
        }
    }
    if spec.ppk.is_some() {
        // A new key is saved with its PuTTY form.
        for (region, (op, reason)) in spec.scopes.iter().zip(&mut planned) {
            if op.makes_key_in(region) {
                let _ = write!(reason, ", with {}", ppk_display(spec));
            }
        }
    }
    let fix_at = mode_fix(spec, file, &mut planned);
    let ppk_at = ppk.and_then(|state| ppk_write(spec, file, state, &mut planned));
    for (i, (region, (op, reason))) in spec.scopes.iter().zip(planned).enumerate() {
        let mut a = action(Some(entry), spec, region, remote(region), op, reason);
        if let Some(inner) = a.key_pair_mut() {
            inner.fix_mode = fix_at == Some(i);
            inner.write_ppk = ppk_at == Some(i);
            if let Some((at, r)) = restore
                && *at == i
                && !matches!(inner.op, KeyPairOp::Conflict(_))
            {
                inner.restore = Some(r.clone());
                let from = format!(
                    "{} comes back from SSM {}{}",
                    spec.output_display,
                    crate::desired::STORE_PATH,
                    r.id
                );
                a.reason = if a.reason == "in sync" {
                    from
                } else {
                    format!("{from}; {}", a.reason)
                };
            }
        }
        actions.push(a);
    }
}

/// The PuTTY key file as people see it.
fn ppk_display(spec: &KeyPairSpec) -> String {
    crate::keys::ppk_path(std::path::Path::new(&spec.output_display))
        .display()
        .to_string()
}

/// Why an entry's PuTTY key file stops everything: it is not a usable file, or it holds
/// another key than the key file (or there is no key file, and a new key would overwrite it).
fn ppk_problem(spec: &KeyPairSpec, file: &FileState, ppk: &FileState) -> Option<Planned> {
    let shown = ppk_display(spec);
    if let Some((refusal, why)) = ppk.refusal(&shown, "PuTTY key") {
        return Some(conflict(Conflict::refusing(refusal), why));
    }
    match ppk {
        FileState::Key { public, .. } => match file {
            FileState::Key { public: pem, .. } if pem == public => None,
            FileState::Key { .. } => Some(conflict(
                Conflict::PpkMismatch,
                format!("{shown} holds another key than {}", spec.output_display),
            )),
            _ => Some(conflict(
                Conflict::PpkMismatch,
                format!(
                    "{shown} exists but {} does not; labctl never overwrites a key file",
                    spec.output_display
                ),
            )),
        },
        // Absent, or refused above.
        _ => None,
    }
}

/// A missing PuTTY key for a key file that exists is written once: by the first region in
/// sync (as a `write` action), or else along with the first other change. A new key gets its
/// PuTTY key when it is saved. Returns the index of the action that carries the write, when
/// it is not a `write` action itself.
fn ppk_write(
    spec: &KeyPairSpec,
    file: &FileState,
    ppk: &FileState,
    planned: &mut [(KeyPairOp, String)],
) -> Option<usize> {
    if !matches!(ppk, FileState::Absent)
        || !matches!(file, FileState::Key { .. })
        || planned.iter().any(|(op, _)| {
            matches!(
                op,
                KeyPairOp::Create { .. } | KeyPairOp::Replace { .. } | KeyPairOp::Conflict(_)
            )
        })
    {
        return None;
    }
    let shown = ppk_display(spec);
    if let Some((op, reason)) = planned.iter_mut().find(|(op, _)| *op == KeyPairOp::Noop) {
        *op = KeyPairOp::WritePpk;
        *reason = format!("write {shown}, the PuTTY form of {}", spec.output_display);
        return None;
    }
    let index = planned.iter().position(|(op, _)| op.is_change())?;
    let _ = write!(planned[index].1, "; write {shown}");
    Some(index)
}

/// An action and its reason.
type Planned = (KeyPairOp, String);

fn conflict(c: Conflict, reason: String) -> Planned {
    (KeyPairOp::Conflict(c), reason)
}

/// The key this entry stands for, when it is known locally (the manifest's `public_key`, or
/// the key in the file); a conflict when the file cannot be used.
fn local_key<'a>(
    spec: &'a KeyPairSpec,
    file: &'a FileState,
) -> Result<Option<&'a PublicKey>, (Conflict, String)> {
    let output = &spec.output_display;
    if !matches!(spec.source, KeySource::PublicKey(_))
        && let Some((refusal, why)) = file.refusal(output, "private key")
    {
        return Err((Conflict::refusing(refusal), why));
    }
    match (&spec.source, file) {
        (KeySource::PublicKey(given), _) => Ok(Some(given)),
        (_, FileState::Key { public, .. }) if public.key_type() != spec.key_type.as_str() => Err((
            Conflict::KeyType,
            format!(
                "{output} holds a key of type {}, the manifest asks for {}",
                public.key_type(),
                spec.key_type
            ),
        )),
        (_, FileState::Key { public, .. }) => Ok(Some(public)),
        // Absent, or refused above.
        _ => Ok(None),
    }
}

/// A key pair in EC2 of another type than the manifest's is a conflict.
fn remote_type_conflict(spec: &KeyPairSpec, remote: Option<&RemoteKeyPair>) -> Option<Planned> {
    let remote_type = remote.and_then(|r| r.key_type)?;
    (remote_type != spec.key_type).then(|| {
        conflict(
            Conflict::KeyType,
            format!(
                "the key pair is {remote_type} in EC2, the manifest asks for {}",
                spec.key_type
            ),
        )
    })
}

/// Whether the remote key pair matches, before tags are considered: the local key and the
/// remote key pair's type first, then the decision over (local key, remote key pair).
fn region_op(
    spec: &KeyPairSpec,
    file: &FileState,
    remote: Option<&RemoteKeyPair>,
    region: &Scope,
    present_in: Option<&Scope>,
) -> Planned {
    let local = match local_key(spec, file) {
        Ok(local) => local,
        Err((c, reason)) => return conflict(c, reason),
    };
    if let Some(planned) = remote_type_conflict(spec, remote) {
        return planned;
    }
    match (local, remote) {
        (Some(public), Some(remote)) => compare(spec, public, remote),
        (Some(public), None) => import_here(spec, public, region),
        (None, Some(_)) => conflict(
            Conflict::MissingPrivateKey,
            format!("the key pair exists but {} does not", spec.output_display),
        ),
        (None, None) => new_key_here(spec, region, present_in),
    }
}

/// The entry's key is known locally and the key pair exists: in sync, or a mismatch.
fn compare(spec: &KeyPairSpec, public: &PublicKey, remote: &RemoteKeyPair) -> Planned {
    match &remote.public_key {
        Some(remote_public) if remote_public == public => (KeyPairOp::Noop, "in sync".to_owned()),
        Some(_) if matches!(spec.source, KeySource::PublicKey(_)) => conflict(
            Conflict::Mismatch,
            "the key pair holds a different key than `public_key`".to_owned(),
        ),
        Some(_) => conflict(
            Conflict::Mismatch,
            format!(
                "{} holds a different key than the key pair in EC2",
                spec.output_display
            ),
        ),
        None => conflict(
            Conflict::Mismatch,
            "EC2 returned no public key to compare with".to_owned(),
        ),
    }
}

/// The entry's key is known locally and the key pair is absent here: import it.
fn import_here(spec: &KeyPairSpec, public: &PublicKey, region: &Scope) -> Planned {
    let (source, from) = match &spec.source {
        KeySource::PublicKey(_) => (
            ImportSource::Given(public.clone()),
            "`public_key`".to_owned(),
        ),
        KeySource::Aws | KeySource::Local { .. } => (
            ImportSource::File(public.clone()),
            spec.output_display.clone(),
        ),
    };
    (
        KeyPairOp::Import { source },
        format!("absent in {region}; import the public key of {from}"),
    )
}

/// No local key and no key pair here: create the key in the entry's first region and import
/// it into the others; never a second key when the key pair exists in another region.
fn new_key_here(spec: &KeyPairSpec, region: &Scope, present_in: Option<&Scope>) -> Planned {
    let output = &spec.output_display;
    let primary = &spec.scopes[0];
    match (present_in, generator(spec)) {
        (Some(other), _) => conflict(
            Conflict::MissingPrivateKey,
            format!("the key pair exists in {other} but {output} does not"),
        ),
        (None, Some(generator)) if region == primary => {
            let by = match generator {
                Generator::Ec2 { .. } => "made by EC2",
                Generator::Local { .. } => "made by labctl",
            };
            (
                KeyPairOp::Create { generator },
                format!("a new {} key {by}", spec.key_type),
            )
        }
        (None, Some(_)) => (
            KeyPairOp::Import {
                source: ImportSource::CreatedIn(primary.clone()),
            },
            format!("the key created in {primary}"),
        ),
        (None, None) => unreachable_public_key(),
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
                .filter(|k| match crate::desired::reserved_tag_prefix(k) {
                    Some("aws:") => false,
                    Some(_) => true,
                    None => spec.purge_tags,
                })
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

#[cfg(test)]
mod tests {
    //! One entry as a table: remote state x local file x manifest -> action.

    use std::collections::BTreeMap;

    use crate::desired::*;
    use crate::keys::FileState;
    use crate::plan::fixtures::*;
    use crate::plan::*;

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
                ("AWS:Other", "s"),
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

    /// The reserved prefixes are one rule in any case (`desired::reserved_tag_prefix`): a
    /// stale `LabCtl:` tag is labctl's to remove, as validation refuses it in a manifest.
    #[test]
    fn stale_labctl_tags_are_removed_in_any_case() {
        let d = desired(&["us-east-1"], KeyType::Ed25519);
        let present = remote_named(
            "lab-key",
            Some(key("ed25519-a.pub")),
            "ed25519",
            &[(PROJECT_TAG, "lab"), ("Team", "blue"), ("LabCtl:old", "x")],
        );
        let o = observed(&d, &[("us-east-1", present)], file("ed25519-a.pub", 0o400));
        assert_eq!(
            ops(&d, &o),
            vec![KeyPairOp::UpdateTags {
                set: BTreeMap::new(),
                remove: vec!["LabCtl:old".into()]
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
            source: ImportSource::CreatedIn(scope("us-east-1")),
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
            .filter_map(Action::key_pair)
            .map(|a| a.fix_mode)
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
            source: ImportSource::CreatedIn(scope("us-east-1")),
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
    fn planning_is_deterministic_and_in_manifest_order() {
        let d = desired(&["us-west-2", "eu-west-1"], KeyType::Rsa);
        let o = observed(&d, &[], FileState::Absent);
        let first = plan(&d, &o, &Options::default());
        assert_eq!(first, plan(&d, &o, &Options::default()));
        let regions: Vec<String> = first
            .actions
            .iter()
            .map(|a| a.scope().to_string())
            .collect();
        assert_eq!(regions, ["us-west-2", "eu-west-1"]);
        assert!(first.has_changes());
        assert!(!first.has_conflicts());
    }
}
