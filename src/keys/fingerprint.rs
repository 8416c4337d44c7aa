//! EC2's key fingerprints, computed locally as AWS documents them.
//!
//! | how the key reached EC2 | RSA | ed25519 |
//! |---|---|---|
//! | created by EC2 | SHA-1 of the DER PKCS#8 private key, colon hex | base64 SHA-256 of the SSH public key blob, padded |
//! | imported | MD5 of the DER SubjectPublicKeyInfo, colon hex | same as above |

use base64::Engine as _;
use md5::Md5;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
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
            let key = super::public::rsa_private_key_of(private).ok()?;
            let der = key.to_pkcs8_der().ok()?;
            Some(colon_hex(&Sha1::digest(der.as_bytes())))
        }
        _ => imported(public),
    }
}

/// Whether `fingerprint`, as EC2 answered the `CreateKeyPair` that returned `private`, is a
/// fingerprint of that key: proof that the private key arrived whole and is the one EC2
/// keeps. Accepted: AWS's documented form for a created key, and a colon-hex MD5, SHA-1 or
/// SHA-256 digest of the key's DER `SubjectPublicKeyInfo` (the forms EC2-compatible servers
/// answer with). Each is a hash of the key itself, so no other key matches by chance.
pub fn proves_created(fingerprint: &str, private: &Secret, public: &PublicKey) -> bool {
    if created(private, public).as_deref() == Some(fingerprint) {
        return true;
    }
    let Some(spki) = subject_public_key_info(public) else {
        return false;
    };
    [
        colon_hex(&Md5::digest(&spki)),
        colon_hex(&Sha1::digest(&spki)),
        colon_hex(&Sha256::digest(&spki)),
    ]
    .iter()
    .any(|digest| digest.eq_ignore_ascii_case(fingerprint))
}

/// The DER `SubjectPublicKeyInfo` of a public key (RFC 5280; RFC 8410 for ed25519).
fn subject_public_key_info(public: &PublicKey) -> Option<Vec<u8>> {
    match public.key_data() {
        KeyData::Rsa(rsa_public) => {
            let key = rsa::RsaPublicKey::try_from(rsa_public).ok()?;
            Some(key.to_public_key_der().ok()?.as_bytes().to_vec())
        }
        KeyData::Ed25519(key) => {
            // SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING { key } }
            let mut der = vec![
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ];
            der.extend_from_slice(key.as_ref());
            Some(der)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{created, imported, proves_created};
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

    /// Every key text labctl reads has its created fingerprint, read by the one lenient
    /// parser: an RSA key in OpenSSH's form, and a PEM key with CRLF line endings and a blank
    /// line (as the AWS CLI's text output leaves it).
    #[test]
    fn created_fingerprints_read_every_form_plan_accepts() {
        let openssh = Secret::new(fixture("rsa-openssh.pem"));
        let public = public_key_of_private(&openssh).unwrap();
        assert_eq!(
            created(&openssh, &public).as_deref(),
            Some(include_str!("../../tests/fixtures/keys/rsa-openssh.sha1").trim())
        );
        let crlf = Secret::new(fixture("rsa-pkcs1.pem").replace('\n', "\r\n") + "\r\n");
        let rsa = PublicKey::from_openssh(&fixture("rsa-pkcs1.pub")).unwrap();
        assert_eq!(public_key_of_private(&crlf).unwrap(), rsa);
        assert_eq!(
            created(&crlf, &rsa).as_deref(),
            Some(include_str!("../../tests/fixtures/keys/rsa-pkcs1.sha1").trim())
        );
    }

    /// A created key's fingerprint proves its private key; another key's does not, and
    /// neither does anything when the private key was cut short.
    #[test]
    fn the_fingerprint_of_a_create_proves_its_key() {
        let rsa = PublicKey::from_openssh(&fixture("rsa-pkcs1.pub")).unwrap();
        let secret = Secret::new(fixture("rsa-pkcs1.pem"));
        let aws = include_str!("../../tests/fixtures/keys/rsa-pkcs1.sha1").trim();
        assert!(proves_created(aws, &secret, &rsa));
        // The SubjectPublicKeyInfo digests (the imported form among them).
        let md5 = include_str!("../../tests/fixtures/keys/rsa-pkcs1.md5").trim();
        assert!(proves_created(md5, &secret, &rsa));
        let ed_secret = Secret::new(fixture("ed25519-a.pem"));
        let ed = public_key_of_private(&ed_secret).unwrap();
        let ed_aws = include_str!("../../tests/fixtures/keys/ed25519-a.sha256").trim();
        assert!(proves_created(ed_aws, &ed_secret, &ed));
        // The SHA-256 of the fixture's SubjectPublicKeyInfo, as Python's `cryptography`
        // computes it (`public_bytes(DER, SubjectPublicKeyInfo)`).
        let spki_sha256 = "3b:60:71:7d:51:b1:38:bb:a1:2d:ff:20:50:50:2e:72:14:61:27:d9:ff:6c:9b:47:11:6b:2e:92:ef:70:ce:32";
        assert!(proves_created(spki_sha256, &ed_secret, &ed));
        // `ssh-keygen -e -m PKCS8 | openssl pkey -pubin -outform DER | openssl sha1 -c`.
        let rsa_spki_sha1 = "02:86:37:76:8f:b7:2f:c3:dc:eb:71:3e:7b:17:1e:c4:eb:b3:c0:f8";
        assert!(proves_created(rsa_spki_sha1, &secret, &rsa));
        let other = public_key_of_private(&Secret::new(fixture("ed25519-b.pem"))).unwrap();
        assert!(!proves_created(
            ed_aws,
            &Secret::new(fixture("ed25519-b.pem")),
            &other
        ));
        assert!(!proves_created("", &ed_secret, &ed));
    }
}
