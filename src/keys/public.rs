//! Public keys: derived from a private key file's text, or parsed from what EC2 returns, and
//! compared by algorithm and key bytes (comments ignored).

use std::fmt;

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use ssh_key::public::KeyData;

use super::Secret;

/// An SSH public key (RSA or Ed25519).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(KeyData);

impl PublicKey {
    /// Parse an OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
    pub fn from_openssh(line: &str) -> Option<Self> {
        ssh_key::PublicKey::from_openssh(line.trim())
            .ok()
            .map(|k| PublicKey(k.key_data().clone()))
    }

    /// The OpenSSH form without a comment, as `ImportKeyPair` takes it.
    pub fn to_openssh(&self) -> String {
        ssh_key::PublicKey::from(self.0.clone())
            .to_openssh()
            .unwrap_or_default()
    }

    /// The key itself.
    pub fn key_data(&self) -> &KeyData {
        &self.0
    }

    /// OpenSSH's SHA-256 fingerprint (`SHA256:…`, as `ssh-keygen -l` shows it): how the
    /// journal names a retired key without holding the key itself.
    pub fn sha256_fingerprint(&self) -> String {
        ssh_key::PublicKey::from(self.0.clone())
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string()
    }

    /// `rsa` or `ed25519` (EC2's key type names), or the SSH algorithm name for anything else.
    pub fn key_type(&self) -> &'static str {
        match self.0 {
            KeyData::Rsa(_) => "rsa",
            KeyData::Ed25519(_) => "ed25519",
            _ => "other",
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_openssh())
    }
}

/// The base64 body of the PEM block `label`, decoded, whatever its line width, line endings
/// (CRLF) or blank lines around it: what OpenSSH and OpenSSL accept, the strict PEM readers
/// do not (the AWS CLI's `--output text` adds an empty line after the key).
fn pem_block(text: &str, label: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    // Allocated once at its final size: growing it would leave unwiped copies behind.
    let mut body = zeroize::Zeroizing::new(String::with_capacity(stop - start));
    body.extend(
        text[start..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace()),
    );
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .ok()
        .map(zeroize::Zeroizing::new)
}

/// Parse an OpenSSH private key.
fn openssh_private_key(text: &str) -> Option<ssh_key::PrivateKey> {
    let bytes = pem_block(text, "OPENSSH PRIVATE KEY")?;
    ssh_key::PrivateKey::from_bytes(&bytes).ok()
}

/// Derive the public key from a private key's text: OpenSSH, then PKCS#1, then PKCS#8 PEM.
///
/// # Errors
/// A short reason that never quotes the text.
pub fn public_key_of_private(text: &Secret) -> Result<PublicKey, String> {
    if text.expose().contains("BEGIN OPENSSH PRIVATE KEY") {
        let key = private_key_of(text)?;
        return Ok(PublicKey(key.public_key().key_data().clone()));
    }
    Ok(PublicKey(KeyData::Rsa(
        ssh_key::public::RsaPublicKey::try_from(rsa_private_key(text.expose())?.to_public_key())
            .map_err(|_| "the RSA key could not be converted".to_owned())?,
    )))
}

/// The public key of a team store's entry (`store: ssm`), which must be exactly one private
/// key with nothing but whitespace around it: an entry holding the right key and a second one
/// after it (or any text) would pass that text on whole, into a restored key file or an
/// attendee's bundle. What is put there is checked the same way. The one rule of what an
/// entry may hold.
///
/// # Errors
/// A short reason that never quotes the text.
pub fn public_key_of_stored(text: &Secret) -> Result<PublicKey, String> {
    let body = text.expose().trim();
    let one_block = body.starts_with("-----BEGIN ")
        && body.ends_with("-----")
        && body.matches("-----BEGIN ").count() == 1
        && body.matches("-----END ").count() == 1;
    if !one_block {
        return Err("it holds more than one private key, or text around its key".to_owned());
    }
    public_key_of_private(text)
}

/// The private key itself (unencrypted), from OpenSSH, PKCS#1 or PKCS#8 PEM text, to write it
/// in another form (PuTTY's, or OpenSSH's encrypted one).
///
/// # Errors
/// A short reason that never quotes the text.
pub(crate) fn private_key_of(text: &Secret) -> Result<ssh_key::PrivateKey, String> {
    let text = text.expose();
    if text.contains("BEGIN OPENSSH PRIVATE KEY") {
        let key = openssh_private_key(text)
            .ok_or_else(|| "the OpenSSH private key could not be read".to_owned())?;
        if key.is_encrypted() {
            return Err("the private key is encrypted with a passphrase".to_owned());
        }
        return Ok(key);
    }
    let pair = ssh_key::private::RsaKeypair::try_from(rsa_private_key(text)?)
        .map_err(|_| "the RSA key could not be converted".to_owned())?;
    ssh_key::PrivateKey::new(ssh_key::private::KeypairData::Rsa(pair), "")
        .map_err(|_| "the RSA key could not be converted".to_owned())
}

/// An RSA private key from any form labctl reads (OpenSSH, PKCS#1, PKCS#8), read as leniently
/// as every other reader of key text here: the one parser, so a key plan accepts always has
/// the fingerprints a handout shows.
///
/// # Errors
/// A short reason that never quotes the text.
pub(crate) fn rsa_private_key_of(text: &Secret) -> Result<rsa::RsaPrivateKey, String> {
    if text.expose().contains("BEGIN OPENSSH PRIVATE KEY") {
        let key = private_key_of(text)?;
        let pair = key
            .key_data()
            .rsa()
            .ok_or_else(|| "the private key is not an RSA key".to_owned())?;
        let number = |m: &ssh_key::Mpint| {
            m.as_positive_bytes()
                .map(rsa::BigUint::from_bytes_be)
                .ok_or_else(|| "the RSA key could not be converted".to_owned())
        };
        return rsa::RsaPrivateKey::from_components(
            number(&pair.public.n)?,
            number(&pair.public.e)?,
            number(&pair.private.d)?,
            vec![number(&pair.private.p)?, number(&pair.private.q)?],
        )
        .map_err(|_| "the RSA key could not be converted".to_owned());
    }
    rsa_private_key(text.expose())
}

/// An RSA private key from PKCS#1 or PKCS#8 PEM text.
fn rsa_private_key(text: &str) -> Result<rsa::RsaPrivateKey, String> {
    if text.contains("BEGIN RSA PRIVATE KEY") {
        pem_block(text, "RSA PRIVATE KEY")
            .and_then(|der| rsa::RsaPrivateKey::from_pkcs1_der(&der).ok())
            .ok_or_else(|| "the PKCS#1 RSA private key could not be read".to_owned())
    } else if text.contains("BEGIN PRIVATE KEY") {
        pem_block(text, "PRIVATE KEY")
            .and_then(|der| rsa::RsaPrivateKey::from_pkcs8_der(&der).ok())
            .ok_or_else(|| {
                "the PKCS#8 private key could not be read (labctl reads RSA keys in this form)"
                    .to_owned()
            })
    } else if text.contains("ENCRYPTED PRIVATE KEY") {
        Err("the private key is encrypted with a passphrase".to_owned())
    } else {
        Err("the file does not hold a PEM or OpenSSH private key".to_owned())
    }
}

/// The private key in OpenSSH's own form, encrypted with `passphrase` (bcrypt-pbkdf and
/// AES-256-CTR, what `ssh-keygen -p` writes), with `comment`.
///
/// # Errors
/// A short reason that never quotes the key.
pub fn encrypted_openssh(text: &Secret, comment: &str, passphrase: &str) -> Result<Secret, String> {
    let mut key = private_key_of(text)?;
    key.set_comment(comment);
    let encrypted = key
        .encrypt(&mut rand_core::OsRng, passphrase)
        .map_err(|_| "the private key could not be encrypted".to_owned())?;
    let text = encrypted
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|_| "the private key could not be encoded".to_owned())?;
    Ok(Secret::new(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{PublicKey, Secret, public_key_of_private, public_key_of_stored};
    use crate::keys::fixture;

    #[test]
    fn a_store_entry_is_one_key_alone() {
        let (a, b) = (fixture("ed25519-a.pem"), fixture("ed25519-b.pem"));
        let expected = public_key_of_private(&Secret::new(a.clone())).unwrap();
        for ok in [a.clone(), format!("\n{a}\n\n"), fixture("rsa-pkcs1.pem")] {
            assert!(public_key_of_stored(&Secret::new(ok)).is_ok());
        }
        assert_eq!(
            public_key_of_stored(&Secret::new(a.clone())).unwrap(),
            expected
        );
        // The right key first and more after it (or before it): never one key alone.
        for smuggled in [
            format!("{a}{b}"),
            format!("{a}\n{b}"),
            format!("Bag Attributes\n{a}"),
            format!("{a}\ntrailing words"),
        ] {
            let refused = public_key_of_stored(&Secret::new(smuggled)).unwrap_err();
            assert!(refused.contains("more than one private key"), "{refused}");
            assert!(!refused.contains("PRIVATE KEY"));
        }
    }

    #[test]
    fn derives_the_public_key_of_every_supported_format() {
        for (private, public) in [
            ("ed25519-a.pem", "ed25519-a.pub"),
            ("rsa-pkcs1.pem", "rsa-pkcs1.pub"),
            ("rsa-pkcs8.pem", "rsa-pkcs1.pub"),
            ("rsa-openssh.pem", "rsa-openssh.pub"),
        ] {
            let derived = public_key_of_private(&Secret::new(fixture(private))).unwrap();
            let expected = PublicKey::from_openssh(&fixture(public)).unwrap();
            assert_eq!(derived, expected, "{private}");
        }
    }

    #[test]
    fn reads_openssh_keys_with_other_line_widths() {
        let text = fixture("ed25519-a.pem");
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let rewrapped = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            body.as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        );
        let derived = public_key_of_private(&Secret::new(rewrapped)).unwrap();
        assert_eq!(
            derived,
            PublicKey::from_openssh(&fixture("ed25519-a.pub")).unwrap()
        );
    }

    #[test]
    fn refuses_encrypted_and_garbage_without_quoting_them() {
        let encrypted =
            public_key_of_private(&Secret::new(fixture("ed25519-encrypted.pem"))).unwrap_err();
        assert!(encrypted.contains("passphrase"), "{encrypted}");
        for garbage in [
            "",
            "hello",
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        ] {
            let reason = public_key_of_private(&Secret::new(garbage.to_owned())).unwrap_err();
            assert!(!reason.contains("AAAA"));
        }
    }

    #[test]
    fn public_keys_compare_without_comments() {
        let line = fixture("ed25519-a.pub");
        let without_comment: String = line
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            PublicKey::from_openssh(&line),
            PublicKey::from_openssh(&without_comment)
        );
        assert_ne!(
            PublicKey::from_openssh(&line),
            PublicKey::from_openssh(&fixture("ed25519-b.pub"))
        );
        assert_eq!(
            PublicKey::from_openssh(&line).unwrap().key_type(),
            "ed25519"
        );
        assert_eq!(
            PublicKey::from_openssh(&fixture("rsa-pkcs1.pub"))
                .unwrap()
                .key_type(),
            "rsa"
        );
    }
}
