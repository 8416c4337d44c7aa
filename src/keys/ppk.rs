//! PuTTY private keys (PPK version 3, read by PuTTY 0.75+ and WinSCP), derived locally from an
//! OpenSSH or PEM private key; optionally encrypted with a passphrase (Argon2id, AES-256-CBC,
//! HMAC-SHA-256, as PuTTY itself writes them).
//!
//! The format (PuTTY's documentation, appendix C): a text file with the algorithm, the
//! encryption, a comment, the public key blob and the private key blob in base64 (64 characters
//! a line), and a MAC over all of it. Unencrypted, the MAC key is empty.

use std::fmt::Write as _;

use base64::Engine as _;
use cbc::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use ssh_key::private::KeypairData;
use zeroize::Zeroizing;

use super::public::private_key_of;
use super::{PublicKey, Secret};

/// Argon2id as PuTTY's own defaults: 8 MiB, one lane; 13 passes (PuTTY tunes passes to about
/// a tenth of a second on the machine that writes the key; a fixed count keeps bundles
/// reproducible in cost).
const ARGON2_MEMORY_KIB: u32 = 8192;
const ARGON2_PASSES: u32 = 13;
const ARGON2_LANES: u32 = 1;

/// SSH wire encoding: a `string` (length-prefixed bytes).
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn base64_lines(bytes: &[u8]) -> Vec<String> {
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    text.as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

/// The PPK text of a private key, with `comment` (a key pair name: no line breaks) and, when
/// given, encrypted with `passphrase`.
///
/// # Errors
/// A short reason that never quotes the key.
pub fn to_ppk(private: &Secret, comment: &str, passphrase: Option<&str>) -> Result<Secret, String> {
    let key = private_key_of(private)?;
    let algorithm = key.algorithm().as_str().to_owned();
    let public_blob = key
        .public_key()
        .to_bytes()
        .map_err(|_| "the public key could not be encoded".to_owned())?;
    let mut private_blob = private_blob_of(&key)?;
    let comment: String = comment
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();

    let mut text = Zeroizing::new(String::new());
    let encryption = if passphrase.is_some() {
        "aes256-cbc"
    } else {
        "none"
    };
    let _ = writeln!(text, "PuTTY-User-Key-File-3: {algorithm}");
    let _ = writeln!(text, "Encryption: {encryption}");
    let _ = writeln!(text, "Comment: {comment}");
    let public_lines = base64_lines(&public_blob);
    let _ = writeln!(text, "Public-Lines: {}", public_lines.len());
    for line in &public_lines {
        let _ = writeln!(text, "{line}");
    }

    let mac_key = if let Some(passphrase) = passphrase {
        write_encrypted(&mut text, &mut private_blob, passphrase)?
    } else {
        write_private(&mut text, &private_blob);
        Zeroizing::new(Vec::new())
    };

    let tag = private_mac(
        &mac_key,
        [
            algorithm.as_bytes(),
            encryption.as_bytes(),
            comment.as_bytes(),
            &public_blob,
            &private_blob,
        ],
    )
    .ok_or_else(|| "bad MAC key".to_owned())?;
    let _ = writeln!(text, "Private-MAC: {tag}");
    Ok(Secret::new(std::mem::take(&mut *text)))
}

/// The private part of a PPK: PuTTY's blob of the key's private numbers.
fn private_blob_of(key: &ssh_key::PrivateKey) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut private_blob = Zeroizing::new(Vec::new());
    match key.key_data() {
        KeypairData::Ed25519(pair) => put_string(&mut private_blob, pair.private.as_ref()),
        KeypairData::Rsa(pair) => {
            for part in [
                &pair.private.d,
                &pair.private.p,
                &pair.private.q,
                &pair.private.iqmp,
            ] {
                put_string(&mut private_blob, part.as_bytes());
            }
        }
        _ => return Err("only RSA and ed25519 keys can be written for PuTTY".to_owned()),
    }
    Ok(private_blob)
}

/// The key derivation lines and the private lines of an encrypted PPK (Argon2id, AES-256-CBC,
/// padded with random bytes); returns the MAC key.
fn write_encrypted(
    text: &mut Zeroizing<String>,
    private_blob: &mut Zeroizing<Vec<u8>>,
    passphrase: &str,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut salt = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, Some(80))
        .map_err(|_| "bad Argon2 parameters".to_owned())?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut derived = Zeroizing::new([0u8; 80]);
    argon
        .hash_password_into(passphrase.as_bytes(), &salt, derived.as_mut())
        .map_err(|_| "the passphrase could not be turned into a key".to_owned())?;
    let _ = writeln!(text, "Key-Derivation: Argon2id");
    let _ = writeln!(text, "Argon2-Memory: {ARGON2_MEMORY_KIB}");
    let _ = writeln!(text, "Argon2-Passes: {ARGON2_PASSES}");
    let _ = writeln!(text, "Argon2-Parallelism: {ARGON2_LANES}");
    let hex = to_hex(&salt);
    let _ = writeln!(text, "Argon2-Salt: {hex}");
    // Pad to the cipher's block with random bytes (the MAC covers the padding).
    let pad = (16 - private_blob.len() % 16) % 16;
    let mut padding = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut padding);
    private_blob.extend_from_slice(&padding[..pad]);
    let mac_key = Zeroizing::new(derived[48..80].to_vec());
    // The MAC is over the plain private blob; encrypt a copy for the file.
    let mut encrypted = Zeroizing::new(private_blob.to_vec());
    let length = encrypted.len();
    cbc::Encryptor::<aes::Aes256>::new(derived[..32].into(), derived[32..48].into())
        .encrypt_padded_mut::<NoPadding>(&mut encrypted, length)
        .map_err(|_| "the private key could not be encrypted".to_owned())?;
    write_private(text, &encrypted);
    Ok(mac_key)
}

/// PPK v3's `Private-MAC`: HMAC-SHA-256 under `key` (empty for an unencrypted file) over the
/// algorithm, encryption, comment, public blob and plain private blob, each as an SSH string,
/// in lower-case hex. The one computation, for writing a file and for checking one.
fn private_mac(key: &[u8], fields: [&[u8]; 5]) -> Option<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    let mut covered = Zeroizing::new(Vec::new());
    for field in fields {
        put_string(&mut covered, field);
    }
    mac.update(&covered);
    Some(to_hex(&mac.finalize().into_bytes()))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

fn write_private(text: &mut String, blob: &[u8]) {
    let lines = Zeroizing::new(base64_lines(blob));
    let _ = writeln!(text, "Private-Lines: {}", lines.len());
    for line in lines.iter() {
        let _ = writeln!(text, "{line}");
    }
}

/// The public key of a PPK file (stored in clear, whether or not the private part is
/// encrypted), to check that a `.ppk` belongs with its `.pem`.
pub fn public_key_of_ppk(text: &str) -> Option<PublicKey> {
    let mut lines = text.lines().map(str::trim_end);
    let first = lines.next()?;
    if !first.starts_with("PuTTY-User-Key-File-") {
        return None;
    }
    let count: usize = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("Public-Lines: "))?
        .trim()
        .parse()
        .ok()?;
    if count > 64 {
        return None;
    }
    let body: String = lines.take(count).collect();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let key = ssh_key::PublicKey::from_bytes(&blob).ok()?;
    PublicKey::from_openssh(&key.to_openssh().ok()?)
}

/// The public key of a whole, unencrypted PPK v3 file, as labctl writes beside a key file:
/// every field present, the private lines there, and its `Private-MAC` right (for an
/// unencrypted file, an HMAC-SHA-256 with an empty key over the fields). A file cut short (the
/// public lines alone), changed, or encrypted is not taken for the key's PuTTY form.
pub(super) fn verified_public_key_of_ppk(text: &str) -> Option<PublicKey> {
    let mut lines = text.lines().map(str::trim_end);
    let algorithm = lines.next()?.strip_prefix("PuTTY-User-Key-File-3: ")?;
    let encryption = lines.next()?.strip_prefix("Encryption: ")?;
    if encryption != "none" {
        return None;
    }
    let comment = lines.next()?.strip_prefix("Comment: ")?;
    let mut blob = |label: &str| -> Option<Zeroizing<Vec<u8>>> {
        let count: usize = lines.next()?.strip_prefix(label)?.trim().parse().ok()?;
        if count > 256 {
            return None;
        }
        let body: Zeroizing<String> = Zeroizing::new(lines.by_ref().take(count).collect());
        base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .ok()
            .map(Zeroizing::new)
    };
    let public_blob = blob("Public-Lines: ")?;
    let private_blob = blob("Private-Lines: ")?;
    let tag = lines.next()?.strip_prefix("Private-MAC: ")?.trim();
    let expected = private_mac(
        &[],
        [
            algorithm.as_bytes(),
            encryption.as_bytes(),
            comment.as_bytes(),
            &public_blob,
            &private_blob,
        ],
    )?;
    if expected != tag.to_ascii_lowercase() {
        return None;
    }
    let key = ssh_key::PublicKey::from_bytes(&public_blob).ok()?;
    PublicKey::from_openssh(&key.to_openssh().ok()?)
}

#[cfg(test)]
mod tests {
    use super::{public_key_of_ppk, to_ppk, verified_public_key_of_ppk};
    use crate::keys::{Secret, fixture, public_key_of_private};

    #[test]
    fn the_unencrypted_ppk_of_a_fixture_is_puttys_own() {
        // `puttygen ed25519-a.pem -O private` wrote exactly this.
        let ppk = to_ppk(&Secret::new(fixture("ed25519-a.pem")), "fixture-a", None).unwrap();
        assert_eq!(
            ppk.expose(),
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: fixture-a\nPublic-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAIIKC+GTDYUzuKsCrKKwTqzbpr7ygMrwnYJ4+xQuE\nWAAB\nPrivate-Lines: 1\nAAAAIEz450gxAaoRgdtA+BBdooJIhYH1WQdVvkqmqZfv1nEs\nPrivate-MAC: c77db04be71e083fe2de9fa16c1233d2e03bdd944877486c222d02eec5810b89\n"
        );
    }

    /// PuTTY's own file (the fixture above) is whole; cut after its public lines, with one
    /// character changed, or encrypted, it is not taken for the key's PuTTY form.
    #[test]
    fn only_a_whole_unencrypted_ppk_is_verified() {
        let pem = Secret::new(fixture("ed25519-a.pem"));
        let public = public_key_of_private(&pem).unwrap();
        let ppk = to_ppk(&pem, "fixture-a", None).unwrap();
        let text = ppk.expose();
        assert_eq!(verified_public_key_of_ppk(text), Some(public.clone()));
        let cut = &text[..text.find("Private-Lines").unwrap()];
        assert_eq!(public_key_of_ppk(cut), Some(public.clone()));
        assert_eq!(verified_public_key_of_ppk(cut), None);
        let changed = text.replace("Comment: fixture-a", "Comment: fixture-b");
        assert_eq!(verified_public_key_of_ppk(&changed), None);
        let encrypted = to_ppk(&pem, "k", Some("pass")).unwrap();
        assert_eq!(verified_public_key_of_ppk(encrypted.expose()), None);
    }

    #[test]
    fn a_ppk_carries_the_public_key_of_its_pem_in_every_form() {
        for name in [
            "ed25519-a.pem",
            "rsa-openssh.pem",
            "rsa-pkcs1.pem",
            "rsa-pkcs8.pem",
        ] {
            let pem = Secret::new(fixture(name));
            let public = public_key_of_private(&pem).unwrap();
            for passphrase in [None, Some("correct horse")] {
                let ppk = to_ppk(&pem, "k", passphrase).unwrap();
                assert_eq!(
                    public_key_of_ppk(ppk.expose()),
                    Some(public.clone()),
                    "{name}"
                );
                let body: String = ppk.expose().lines().skip(4).collect();
                assert!(!format!("{ppk:?}").contains("AAAA"), "Debug shows the key");
                assert!(!body.is_empty());
            }
        }
        assert_eq!(public_key_of_ppk("not a key"), None);
    }
}
