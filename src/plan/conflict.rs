//! Why nothing can be done for a key pair, and how to get out of it.

use super::{Address, KeyPairAction};
use crate::keys::Refusal;

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
    /// The PuTTY key file holds another key than the key file, or exists without it.
    PpkMismatch,
    /// The team store's entry of the key pair holds another key (or none).
    StoreMismatch,
    /// The key file holds another key than the key pair, and the team store holds the key
    /// pair's own: an old key file (another machine replaced the key).
    StaleKeyFile,
}

impl Conflict {
    /// The conflict of a key file the trust verdict refuses.
    pub(crate) fn refusing(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Symlink => Conflict::Symlink,
            Refusal::NotAFile | Refusal::Unreadable => Conflict::Unreadable,
            Refusal::Unsafe => Conflict::Unsafe,
        }
    }

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
            Conflict::PpkMismatch => "ppk-mismatch",
            Conflict::StoreMismatch => "store-mismatch",
            Conflict::StaleKeyFile => "stale-key-file",
        }
    }

    /// How to get out of the conflict for this action, with the key pair's own name in the
    /// command it gives. A key pair this manifest does not own is never offered `--replace`
    /// (which would refuse it).
    pub(crate) fn hint_for(self, address: &Address, action: &KeyPairAction) -> String {
        let name = address.name.as_str();
        match self {
            Conflict::MissingPrivateKey | Conflict::Mismatch | Conflict::KeyType
                if !action.owned =>
            {
                format!(
                    "the key pair `{name}` in {} is not tagged as this manifest's, so labctl will not replace it. Put its private key at the output path, or, if nobody needs it, delete it yourself (`aws ec2 delete-key-pair --key-name {name} --region {}`) and run apply again",
                    address.scope, address.scope.region
                )
            }
            _ => self.hint().replace("NAME", name),
        }
    }

    /// How to get out of the conflict (`NAME` standing for the key pair's name).
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
            Conflict::StaleKeyFile => {
                "the team store holds the key pair's current key (another machine replaced it, and may have handed it out): move the old key file aside and run `labctl apply`, which writes the current key from the store; never `--replace` it"
            }
            Conflict::StoreMismatch => {
                "labctl never uses or overwrites a store entry that does not hold the key pair's key: look at it (`aws ssm get-parameter --name /ec2/keypair/KEY-PAIR-ID`), delete it yourself if it is wrong, and run apply again"
            }
            Conflict::PpkMismatch => {
                "the `.ppk` beside the key file is not its PuTTY form; move it away and labctl writes the right one (it never overwrites a key file)"
            }
        }
    }
}
