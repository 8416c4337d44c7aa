//! plan(&Desired, &Observed) -> Plan: what apply must do, as data.
//!
//! A pure function: no I/O, no clock, no randomness; the same inputs give the same plan in
//! the same order (manifest order, then each entry's regions as written). The `reason` on an
//! action is for people; apply decides nothing from it.

use std::path::PathBuf;

use crate::cloud::RemoteKeyPair;
use crate::desired::{Desired, KeyName, KeyPairSpec, KeyType, Region, TagSet};
use crate::keys::{FileState, KEY_MODE, PublicKey};
use crate::observe::Observed;

/// The whole plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub project: String,
    pub actions: Vec<Action>,
}

/// One action on one resource. Each resource kind labctl manages is one variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    KeyPair(KeyPairAction),
}

/// What to do about one key pair in one region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPairAction {
    /// Index of the manifest entry (an entry is one private key across its regions).
    pub entry: usize,
    pub name: KeyName,
    pub region: Region,
    pub output: PathBuf,
    pub output_display: String,
    pub key_type: KeyType,
    pub tags: TagSet,
    pub op: KeyPairOp,
    /// For people.
    pub reason: String,
}

/// Where an import's public key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportSource {
    /// The private key file that exists now.
    File(PublicKey),
    /// The key this apply creates in another region first.
    CreatedIn(Region),
}

/// Why nothing can be done for a key pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// Present remotely, no private key file: EC2 hands out the private key only at creation.
    MissingPrivateKey,
    /// The file holds another key than the remote key pair.
    Mismatch,
    /// The file is not a usable private key (or not a regular file).
    Unreadable,
    /// The key type differs from the manifest's.
    KeyType,
    /// The output path is a symbolic link.
    Symlink,
}

impl Conflict {
    pub fn as_str(self) -> &'static str {
        match self {
            Conflict::MissingPrivateKey => "missing-private-key",
            Conflict::Mismatch => "mismatch",
            Conflict::Unreadable => "unreadable",
            Conflict::KeyType => "key-type",
            Conflict::Symlink => "symlink",
        }
    }

    /// How to get out of the conflict.
    pub fn hint(self) -> &'static str {
        match self {
            Conflict::MissingPrivateKey => {
                "EC2 returned the private key only when the key pair was created. Put the original file back at the output path, or delete the key pair (`aws ec2 delete-key-pair --key-name NAME --region REGION`) so labctl creates a new one"
            }
            Conflict::Mismatch => {
                "the file holds a different key. Point `output` at the right file, or move this file aside and delete the key pair so labctl creates a new one"
            }
            Conflict::Unreadable => {
                "the file is not an unencrypted PEM or OpenSSH private key; check what is at the output path"
            }
            Conflict::KeyType => {
                "labctl never replaces a key pair silently: set `key_type` back, or delete the key pair and its file to have it recreated"
            }
            Conflict::Symlink => {
                "labctl does not follow links for key files; use the real path in `output`"
            }
        }
    }
}

/// The operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPairOp {
    /// EC2 generates the key; the private key is saved to the output file.
    Create,
    /// Import the public key; `fix_mode` when the file must also be set to 0400.
    Import {
        source: ImportSource,
        fix_mode: bool,
    },
    /// Everything matches but the file's mode: chmod 0400.
    FixMode { mode: u32 },
    /// Nothing to do.
    Noop,
    /// Nothing will be done; the reason says why.
    Conflict(Conflict),
}

impl KeyPairOp {
    /// The action's name in output and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            KeyPairOp::Create => "create",
            KeyPairOp::Import { .. } => "import",
            KeyPairOp::FixMode { .. } => "fix-mode",
            KeyPairOp::Noop => "noop",
            KeyPairOp::Conflict(_) => "conflict",
        }
    }

    /// Whether apply changes anything for this action.
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            KeyPairOp::Create | KeyPairOp::Import { .. } | KeyPairOp::FixMode { .. }
        )
    }
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.actions
            .iter()
            .any(|Action::KeyPair(a)| a.op.is_change())
    }

    pub fn has_conflicts(&self) -> bool {
        self.actions
            .iter()
            .any(|Action::KeyPair(a)| matches!(a.op, KeyPairOp::Conflict(_)))
    }
}

/// Compute the plan.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut actions = Vec::new();
    for (entry, spec) in desired.keypairs.iter().enumerate() {
        plan_entry(entry, spec, observed, &mut actions);
    }
    Plan {
        project: desired.project.clone(),
        actions,
    }
}

fn plan_entry(entry: usize, spec: &KeyPairSpec, observed: &Observed, actions: &mut Vec<Action>) {
    let file = observed
        .local
        .get(&spec.output)
        .unwrap_or(&FileState::Absent);
    let remote = |region: &Region| {
        observed
            .remote
            .get(region)
            .and_then(|pairs| pairs.get(spec.name.as_str()))
    };
    let present_in = spec.regions.iter().find(|r| remote(r).is_some());
    let mut ops: Vec<(KeyPairOp, String)> = spec
        .regions
        .iter()
        .map(|region| region_op(spec, file, remote(region), region, present_in))
        .collect();
    attach_mode_fix(spec, file, &mut ops);
    for (region, (op, reason)) in spec.regions.iter().zip(ops) {
        actions.push(Action::KeyPair(KeyPairAction {
            entry,
            name: spec.name.clone(),
            region: region.clone(),
            output: spec.output.clone(),
            output_display: spec.output_display.clone(),
            key_type: spec.key_type,
            tags: spec.tags.clone(),
            op,
            reason,
        }));
    }
}

/// The op for one region, before any file-mode fix is attached.
fn region_op(
    spec: &KeyPairSpec,
    file: &FileState,
    remote: Option<&RemoteKeyPair>,
    region: &Region,
    present_in: Option<&Region>,
) -> (KeyPairOp, String) {
    let conflict = |c: Conflict, reason: String| (KeyPairOp::Conflict(c), reason);
    let output = &spec.output_display;
    let public = match file {
        FileState::Symlink => {
            return conflict(Conflict::Symlink, format!("{output} is a symbolic link"));
        }
        FileState::NotAFile => {
            return conflict(
                Conflict::Unreadable,
                format!("{output} is not a regular file"),
            );
        }
        FileState::Unreadable { reason } => {
            return conflict(
                Conflict::Unreadable,
                format!("{output} is not a usable private key: {reason}"),
            );
        }
        FileState::Key { public, .. } if public.key_type() != spec.key_type.as_str() => {
            return conflict(
                Conflict::KeyType,
                format!(
                    "{output} holds a key of type {}, the manifest asks for {}",
                    public.key_type(),
                    spec.key_type
                ),
            );
        }
        FileState::Key { public, .. } => Some(public),
        FileState::Absent => None,
    };
    if let Some(remote_type) = remote.and_then(|r| r.key_type.as_deref())
        && remote_type != spec.key_type.as_str()
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
    match (public, remote) {
        (Some(public), Some(remote)) => match &remote.public_key {
            Some(remote_public) if remote_public == public => {
                (KeyPairOp::Noop, "in sync".to_owned())
            }
            Some(_) => conflict(
                Conflict::Mismatch,
                format!("{output} holds a different key than the key pair in EC2"),
            ),
            None => conflict(
                Conflict::Mismatch,
                "EC2 returned no public key to compare the file with".to_owned(),
            ),
        },
        (Some(public), None) => (
            KeyPairOp::Import {
                source: ImportSource::File(public.clone()),
                fix_mode: false,
            },
            format!("absent in {region}; import the public key of {output}"),
        ),
        (None, Some(_)) => conflict(
            Conflict::MissingPrivateKey,
            format!("the key pair exists but {output} does not"),
        ),
        (None, None) => match present_in {
            // Creating here would make a second, different key for one entry.
            Some(other) => conflict(
                Conflict::MissingPrivateKey,
                format!("the key pair exists in {other} but {output} does not"),
            ),
            None if region == primary => (
                KeyPairOp::Create,
                format!(
                    "EC2 generates a new {} key; save it to {output}",
                    spec.key_type
                ),
            ),
            None => (
                KeyPairOp::Import {
                    source: ImportSource::CreatedIn(primary.clone()),
                    fix_mode: false,
                },
                format!("import the public key of the key created in {primary}"),
            ),
        },
    }
}

/// A key file with the wrong mode is fixed once: by the first region in sync, or else by
/// the first import.
fn attach_mode_fix(spec: &KeyPairSpec, file: &FileState, ops: &mut [(KeyPairOp, String)]) {
    let FileState::Key { mode, .. } = file else {
        return;
    };
    if mode & 0o7777 == KEY_MODE {
        return;
    }
    if let Some((op, reason)) = ops.iter_mut().find(|(op, _)| *op == KeyPairOp::Noop) {
        *op = KeyPairOp::FixMode { mode: *mode };
        *reason = format!(
            "{} has mode {mode:04o}; set it to 0400",
            spec.output_display
        );
    } else if let Some((KeyPairOp::Import { fix_mode, .. }, reason)) = ops
        .iter_mut()
        .find(|(op, _)| matches!(op, KeyPairOp::Import { .. }))
    {
        *fix_mode = true;
        reason.push_str(", and set its mode to 0400");
    }
}

#[cfg(test)]
mod tests {
    //! The planner as a table: remote state x local file x manifest -> action.

    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::{Action, Conflict, ImportSource, KeyPairOp, plan};
    use crate::cloud::RemoteKeyPair;
    use crate::desired::{Desired, KeyName, KeyPairSpec, KeyType, Region, TagSet};
    use crate::keys::{FileState, PublicKey};
    use crate::observe::Observed;

    fn key(name: &str) -> PublicKey {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/keys")
            .join(name);
        PublicKey::from_openssh(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn desired(regions: &[&str], key_type: KeyType) -> Desired {
        Desired {
            project: "lab".into(),
            keypairs: vec![KeyPairSpec {
                name: KeyName::parse("lab-key").unwrap(),
                regions: regions.iter().map(|r| Region::parse(r).unwrap()).collect(),
                key_type,
                tags: TagSet::default(),
                output: PathBuf::from("keys/lab-key.pem"),
                output_display: "keys/lab-key.pem".into(),
            }],
        }
    }

    fn remote(public: Option<PublicKey>, key_type: &str) -> RemoteKeyPair {
        RemoteKeyPair {
            name: "lab-key".into(),
            id: Some("key-1".into()),
            fingerprint: None,
            key_type: Some(key_type.into()),
            public_key: public,
            tags: BTreeMap::new(),
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
        plan(desired, observed)
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

    /// (what, key pairs present per region, the key file, expected op).
    type Case = (
        &'static str,
        Vec<(&'static str, RemoteKeyPair)>,
        FileState,
        KeyPairOp,
    );

    #[test]
    fn one_region() {
        let d = desired(&["us-east-1"], KeyType::Ed25519);
        let a = || Some(key("ed25519-a.pub"));
        let cases: Vec<Case> = vec![
            (
                "nothing anywhere",
                vec![],
                FileState::Absent,
                KeyPairOp::Create,
            ),
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
                KeyPairOp::Import {
                    source: ImportSource::File(key("ed25519-a.pub")),
                    fix_mode: false,
                },
            ),
            (
                "deleted remotely, loose mode",
                vec![],
                file("ed25519-a.pub", 0o600),
                KeyPairOp::Import {
                    source: ImportSource::File(key("ed25519-a.pub")),
                    fix_mode: true,
                },
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
        ];
        for (what, present, local, expected) in cases {
            let o = observed(&d, &present, local);
            assert_eq!(ops(&d, &o), vec![expected], "{what}");
        }
    }

    #[test]
    fn several_regions() {
        let d = desired(
            &["us-east-1", "eu-west-1", "ap-southeast-1"],
            KeyType::Ed25519,
        );
        let a = || Some(key("ed25519-a.pub"));
        let from_file = || KeyPairOp::Import {
            source: ImportSource::File(key("ed25519-a.pub")),
            fix_mode: false,
        };

        // Nothing anywhere: create in the first region, import the new key elsewhere.
        let created_in = || KeyPairOp::Import {
            source: ImportSource::CreatedIn(Region::parse("us-east-1").unwrap()),
            fix_mode: false,
        };
        assert_eq!(
            ops(&d, &observed(&d, &[], FileState::Absent)),
            vec![KeyPairOp::Create, created_in(), created_in()]
        );

        // Present in one region, file present: import into the others.
        let o = observed(
            &d,
            &[("eu-west-1", remote(a(), "ed25519"))],
            file("ed25519-a.pub", 0o400),
        );
        assert_eq!(ops(&d, &o), vec![from_file(), KeyPairOp::Noop, from_file()]);

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
                from_file(),
                KeyPairOp::FixMode { mode: 0o644 },
                KeyPairOp::Noop
            ]
        );
    }

    #[test]
    fn planning_is_deterministic_and_in_manifest_order() {
        let d = desired(&["us-west-2", "eu-west-1"], KeyType::Rsa);
        let o = observed(&d, &[], FileState::Absent);
        let first = plan(&d, &o);
        assert_eq!(first, plan(&d, &o));
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
