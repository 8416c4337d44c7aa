//! A private key's text, zeroized when dropped and never shown.

use std::fmt;

use zeroize::Zeroizing;

/// Secret text (a private key). `Debug` and `Display` print `[redacted]`.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(text: String) -> Self {
        Secret(Zeroizing::new(text))
    }

    /// The secret text, for writing to its file or parsing. Never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_shows_itself() {
        let secret = Secret::new("-----BEGIN RSA PRIVATE KEY-----\nabc".to_owned());
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert!(secret.expose().contains("PRIVATE KEY"));
    }
}
