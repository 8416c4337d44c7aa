//! Key material: the secret wrapper, reading private keys, public keys and the key file store.
//!
//! Private key text lives only in [`Secret`], which zeroizes on drop and never shows itself in
//! `Debug` or `Display`. Nothing in this module prints, logs or returns key material in an
//! error message.

pub mod claim;
mod custody;
pub mod fingerprint;
pub mod folder;
mod generate;
mod git;
mod ppk;
mod public;
mod secret;
mod store;

pub use custody::{KeyCustody, KeyRef};
pub use generate::generate;

/// A throwaway key from `tests/fixtures/keys`, for unit tests.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}
pub use folder::{RESERVED_PREFIX, effective_uid, is_reserved_name, read_bounded};
pub use git::{Exposure, git_exposure};
pub use ppk::{public_key_of_ppk, to_ppk};
pub use public::{PublicKey, encrypted_openssh, public_key_of_private, public_key_of_stored};
pub use secret::Secret;
pub use store::{
    FileCustody, FileState, KEY_MODE, Refusal, StoreError, WriteOutcome, aside_names, parent_of,
    path_identity, ppk_path,
};
