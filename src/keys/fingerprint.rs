//! EC2's key fingerprints, computed locally as AWS documents them.
//!
//! | how the key reached EC2 | RSA | ed25519 |
//! |---|---|---|
//! | created by EC2 | SHA-1 of the DER PKCS#8 private key, colon hex | base64 SHA-256 of the SSH public key blob, padded |
//! | imported | MD5 of the DER SubjectPublicKeyInfo, colon hex | same as above |

use base64::Engine as _;
use md5::Md5;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use ssh_key::public::KeyData;

use super::{PublicKey, Secret};

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The fingerprint EC2 shows for an imported key (and, for ed25519, for a created one).
pub fn imported(public: &PublicKey) -> Option<String> {
    match public.key_data() {
        KeyData::Rsa(rsa_public) => {
            let key = rsa::RsaPublicKey::try_from(rsa_public).ok()?;
            let der = key.to_public_key_der().ok()?;
            Some(colon_hex(&Md5::digest(der.as_bytes())))
        }
        KeyData::Ed25519(_) => {
            let blob = ssh_key::PublicKey::from(public.key_data().clone())
                .to_bytes()
                .ok()?;
            Some(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&blob)))
        }
        _ => None,
    }
}

/// The fingerprint EC2 shows for a key it created, from the private key's text.
pub fn created(private: &Secret, public: &PublicKey) -> Option<String> {
    match public.key_data() {
        KeyData::Rsa(_) => {
            let text = private.expose();
            let key = if text.contains("BEGIN RSA PRIVATE KEY") {
                rsa::RsaPrivateKey::from_pkcs1_pem(text).ok()?
            } else {
                rsa::RsaPrivateKey::from_pkcs8_pem(text).ok()?
            };
            let der = key.to_pkcs8_der().ok()?;
            Some(colon_hex(&Sha1::digest(der.as_bytes())))
        }
        _ => imported(public),
    }
}

#[cfg(test)]
mod tests {
    use super::{created, imported};
    use crate::keys::{PublicKey, Secret, fixture, public_key_of_private};

    /// Expected values from the commands AWS documents, run on the fixtures:
    /// `openssl rsa -in K -pubout -outform DER | openssl md5 -c`,
    /// `openssl pkcs8 -in K -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c`,
    /// `ssh-keygen -l -f K` (plus `=`).
    #[test]
    fn matches_the_documented_commands() {
        let rsa = PublicKey::from_openssh(&fixture("rsa-pkcs1.pub")).unwrap();
        assert_eq!(
            imported(&rsa).unwrap(),
            include_str!("../../tests/fixtures/keys/rsa-pkcs1.md5").trim()
        );
        let secret = Secret::new(fixture("rsa-pkcs1.pem"));
        assert_eq!(
            created(&secret, &rsa).unwrap(),
            include_str!("../../tests/fixtures/keys/rsa-pkcs1.sha1").trim()
        );
        let ed = public_key_of_private(&Secret::new(fixture("ed25519-a.pem"))).unwrap();
        assert_eq!(
            imported(&ed).unwrap(),
            include_str!("../../tests/fixtures/keys/ed25519-a.sha256").trim()
        );
    }
}
