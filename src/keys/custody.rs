//! The one custody interface: every step that looks at, reads, keeps or lets go of a private
//! key names the key by reference ([`KeyRef`]) and asks [`KeyCustody`]. Key files
//! ([`FileCustody`], through [`KeyFolder`](super::folder::KeyFolder)) are the one key home
//! today.

use std::path::{Path, PathBuf};

use super::store::{FileCustody, FileState, StoreError, WriteOutcome};
use super::{PublicKey, Secret};

/// Where one key is kept, and in which form: a reference to a key, not a path to handle. A
/// key file today, as OpenSSH/PEM text or in PuTTY's form beside it; a team store's entry is
/// the next kind of key home.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRef<'a> {
    /// An OpenSSH or PEM private key file.
    Pem(&'a Path),
    /// A PuTTY private key file.
    Ppk(&'a Path),
}

/// The one custody interface: every step that looks at, reads, keeps or lets go of a private
/// key goes through it, by key reference. [`FileCustody`] (on top of [`KeyFolder`]) is the one
/// implementation today.
pub trait KeyCustody: Copy + Send + Sync + 'static {
    /// What is there, with the trust verdict (never the key itself).
    fn inspect(self, key: KeyRef<'_>) -> FileState;

    /// The private key, when it is there and trusted.
    fn read(self, key: KeyRef<'_>) -> Option<Secret>;

    /// Keep a new key: never over another, owner-only from its first byte.
    ///
    /// # Errors
    /// Why it could not be kept; nothing is left behind then.
    fn save_new(self, key: KeyRef<'_>, secret: &Secret) -> Result<WriteOutcome, StoreError>;

    /// Retire the key (moved aside, `.retired-<now>`), only while it still holds `expected`;
    /// where it went, or `None` when it holds another key by now.
    ///
    /// # Errors
    /// Why it could not be moved.
    fn retire(
        self,
        key: KeyRef<'_>,
        expected: &PublicKey,
        now: u64,
    ) -> Result<Option<PathBuf>, StoreError>;

    /// Remove the key, only while it still holds `expected`; whether it was removed.
    ///
    /// # Errors
    /// Why it could not be checked or removed.
    fn remove_if_holds(self, key: KeyRef<'_>, expected: &PublicKey) -> Result<bool, StoreError>;
}

impl KeyCustody for FileCustody {
    fn inspect(self, key: KeyRef<'_>) -> FileState {
        match key {
            KeyRef::Pem(path) => Self::inspect_pem(path),
            KeyRef::Ppk(path) => Self::inspect_ppk(path),
        }
    }

    fn read(self, key: KeyRef<'_>) -> Option<Secret> {
        match key {
            KeyRef::Pem(path) | KeyRef::Ppk(path) => Self::read_file(path),
        }
    }

    fn save_new(self, key: KeyRef<'_>, secret: &Secret) -> Result<WriteOutcome, StoreError> {
        match key {
            KeyRef::Pem(path) | KeyRef::Ppk(path) => Self::write_file(path, secret),
        }
    }

    fn retire(
        self,
        key: KeyRef<'_>,
        expected: &PublicKey,
        now: u64,
    ) -> Result<Option<PathBuf>, StoreError> {
        match key {
            KeyRef::Pem(path) => Self::retire_key(path, expected, now),
            KeyRef::Ppk(path) => Self::retire_ppk(path, expected, now),
        }
    }

    fn remove_if_holds(self, key: KeyRef<'_>, expected: &PublicKey) -> Result<bool, StoreError> {
        match key {
            KeyRef::Pem(path) => Self::remove_key(path, expected),
            KeyRef::Ppk(path) => Self::remove_ppk(path, expected),
        }
    }
}
