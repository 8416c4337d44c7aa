//! Shared inputs for the planner's table tests.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::desired::*;
use crate::keys::{FileState, PublicKey};
use crate::observe::Observed;
use crate::resource::{RemoteKeyPair, Scope};

pub(super) const EC2: KeyPairOp = KeyPairOp::Create {
    generator: Generator::Ec2 {
        key_type: KeyType::Ed25519,
    },
};

/// A region of the caller's account.
pub(crate) fn scope(region: &str) -> Scope {
    Scope::caller(Region::parse(region).unwrap())
}

pub(super) fn key(name: &str) -> PublicKey {
    PublicKey::from_openssh(&crate::keys::fixture(name)).unwrap()
}

pub(super) fn tags(extra: &[(&str, &str)]) -> TagSet {
    let mut map: BTreeMap<String, String> = extra
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    map.insert(PROJECT_TAG.into(), "lab".into());
    TagSet::from_checked(map)
}

pub(super) fn desired(regions: &[&str], key_type: KeyType) -> Desired {
    Desired {
        project: "lab".into(),
        keypairs: vec![KeyPairSpec {
            name: KeyName::parse("lab-key").unwrap(),
            scopes: regions.iter().map(|r| scope(r)).collect(),
            key_type,
            source: KeySource::Aws,
            tags: tags(&[("Team", "blue")]),
            purge_tags: false,
            ppk: None,
            seat: "lab-key".into(),
            output: Some(PathBuf::from("keys/lab-key.pem")),
            output_display: "keys/lab-key.pem".into(),
        }],
        orphan_dir: PathBuf::from("keys"),
        accounts: Vec::new(),
        former_scopes: Vec::new(),
        store: None,
        state: None,
    }
}

/// A remote key pair owned by project `lab` with the manifest's tags.
pub(super) fn remote(public: Option<PublicKey>, key_type: &str) -> RemoteKeyPair {
    remote_named(
        "lab-key",
        public,
        key_type,
        &[(PROJECT_TAG, "lab"), ("Team", "blue")],
    )
}

pub(super) fn remote_named(
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

pub(super) fn observed(
    desired: &Desired,
    present: &[(&str, RemoteKeyPair)],
    file: FileState,
) -> Observed {
    let mut remote: BTreeMap<Scope, BTreeMap<String, RemoteKeyPair>> = desired
        .scopes()
        .into_iter()
        .map(|r| (r, BTreeMap::new()))
        .collect();
    for (region, pair) in present {
        remote
            .get_mut(&scope(region))
            .unwrap()
            .insert(pair.name.clone(), pair.clone());
    }
    Observed {
        remote,
        local: BTreeMap::from([(PathBuf::from("keys/lab-key.pem"), file)]),
        stored: BTreeMap::new(),
        stranded: BTreeMap::new(),
    }
}

pub(super) fn ops(desired: &Desired, observed: &Observed) -> Vec<KeyPairOp> {
    ops_with(desired, observed, &Options::default())
}

/// The operations `plan` chooses with these options, in plan order.
pub(super) fn ops_with(
    desired: &Desired,
    observed: &Observed,
    options: &Options,
) -> Vec<KeyPairOp> {
    plan(desired, observed, options)
        .actions
        .iter()
        .filter_map(Action::key_pair)
        .map(|a| a.op.clone())
        .collect()
}

/// A key file holding `public`; each call is another file (its own inode).
pub(super) fn file(public: &str, mode: u32) -> FileState {
    static INODE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    FileState::Key {
        public: key(public),
        mode,
        id: crate::keys::folder::FileId {
            dev: 1,
            ino: INODE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        },
    }
}

pub(super) fn import_file(public: &str) -> KeyPairOp {
    KeyPairOp::Import {
        source: ImportSource::File(key(public)),
    }
}

/// (what, key pairs present per region, the key file, expected op).
pub(super) type Case = (
    &'static str,
    Vec<(&'static str, RemoteKeyPair)>,
    FileState,
    KeyPairOp,
);
