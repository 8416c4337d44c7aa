//! Generating key pairs locally (`source: local`): EC2 never sees the private key.

use rand_core::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey;

use super::{PublicKey, Secret, public_key_of_private};
use crate::desired::KeyType;

/// Generate a private key: ed25519 in OpenSSH format, or RSA of `bits` in PKCS#1 PEM (the
/// format EC2 hands out; `ssh` reads both). Returns the key and its public half.
///
/// # Errors
/// A short reason (never key material).
pub fn generate(key_type: KeyType, bits: u32) -> Result<(Secret, PublicKey), String> {
    let text = match key_type {
        KeyType::Ed25519 => {
            let key = ssh_key::PrivateKey::random(&mut OsRng, ssh_key::Algorithm::Ed25519)
                .map_err(|e| format!("cannot generate an ed25519 key: {e}"))?;
            key.to_openssh(ssh_key::LineEnding::LF)
                .map_err(|e| format!("cannot encode the key: {e}"))?
        }
        KeyType::Rsa => {
            let bits = usize::try_from(bits).map_err(|_| "key size out of range".to_owned())?;
            let key = rsa::RsaPrivateKey::new(&mut OsRng, bits)
                .map_err(|e| format!("cannot generate an RSA key: {e}"))?;
            key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                .map_err(|e| format!("cannot encode the key: {e}"))?
        }
    };
    let secret = Secret::new(text.to_string());
    let public = public_key_of_private(&secret)?;
    Ok((secret, public))
}

#[cfg(test)]
mod tests {
    use super::generate;
    use crate::desired::KeyType;
    use crate::keys::public_key_of_private;

    #[test]
    fn generated_keys_read_back_as_the_same_public_key() {
        for (key_type, bits, header) in [
            (KeyType::Ed25519, 0, "OPENSSH PRIVATE KEY"),
            (KeyType::Rsa, 2048, "RSA PRIVATE KEY"),
        ] {
            let (secret, public) = generate(key_type, bits).unwrap();
            assert!(secret.expose().contains(header));
            assert_eq!(public_key_of_private(&secret).unwrap(), public);
            assert_eq!(public.key_type(), key_type.as_str());
            let (_, other) = generate(key_type, bits).unwrap();
            assert_ne!(public, other, "two generated keys are equal");
        }
    }
}
