//! Where a key comes from (`source`, `bits`, `public_key`) and its type.

use super::{
    Declared, Diagnostic, Entry, KeySource, KeyType, Located, MAX_PUBLIC_KEY_FILE, Manifest, Path,
    Pos, PublicKey, Resolved, Scope, SourceKind, Validator, keys,
};

impl Validator<'_> {
    pub(super) fn key_type(&mut self, field: &str, value: &Located<String>) -> Option<KeyType> {
        let parsed = KeyType::parse(&value.value);
        if parsed.is_none() {
            self.push(
                Diagnostic::error(
                    field,
                    value.pos,
                    format!("unknown key type `{}`", value.value),
                )
                .with_label("not a key type")
                .with_help("use `rsa` or `ed25519`"),
            );
        }
        parsed
    }

    pub(super) fn source(&mut self, field: &str, value: &Located<String>) -> Option<SourceKind> {
        match value.value.as_str() {
            "aws" => Some(SourceKind::Aws),
            "local" => Some(SourceKind::Local),
            other => {
                self.push(
                    Diagnostic::error(field, value.pos, format!("unknown key source `{other}`"))
                        .with_label("not a key source")
                        .with_help("use `aws` (EC2 generates the key) or `local` (labctl generates it); to import a key you have, give `public_key` instead"),
                );
                None
            }
        }
    }

    /// Where the key comes from, and its type.
    #[expect(
        clippy::too_many_lines,
        reason = "the rules between source, bits, public_key and key_type are one table"
    )]
    pub(super) fn key_source(
        &mut self,
        manifest: &Manifest,
        entry: &Entry,
        defaults: &Resolved,
        explicit_type: Declared,
        path: &str,
    ) -> (Option<KeySource>, Option<KeyType>) {
        if let Some(public_key) = &entry.public_key {
            let field = format!("{path}.public_key");
            if let Some(source) = &entry.source {
                self.push(
                    Diagnostic::error(
                        format!("{path}.source"),
                        source.pos,
                        "`source` and `public_key` cannot be combined",
                    )
                    .with_related(public_key.pos, "the key comes from here")
                    .with_help("`public_key` imports a key you already have; remove `source`"),
                );
                return (None, None);
            }
            if let Some(output) = &entry.output {
                self.push(
                    Diagnostic::error(
                        format!("{path}.output"),
                        output.pos,
                        "a key pair with `public_key` has no private key file to write",
                    )
                    .with_help("remove `output`: labctl only imports the public key"),
                );
                return (None, None);
            }
            if let Some(bits) = &entry.bits {
                self.push(
                    Diagnostic::error(
                        format!("{path}.bits"),
                        bits.pos,
                        "`bits` applies only to keys labctl generates (`source: local`)",
                    )
                    .with_label("not used"),
                );
                return (None, None);
            }
            let Some(text) = self.expand(&field, public_key, Scope::default()) else {
                return (None, None);
            };
            let Some(key) = self.public_key(&field, public_key.pos, &text) else {
                return (None, None);
            };
            let actual = KeyType::parse(key.key_type());
            if let Declared::Type(declared) = explicit_type
                && Some(declared) != actual
            {
                self.push(
                    Diagnostic::error(
                        &field,
                        public_key.pos,
                        format!(
                            "this is a {} key but `key_type` is {declared}",
                            key.key_type()
                        ),
                    )
                    .with_help(
                        "remove `key_type` (it follows the public key) or give a key of that type",
                    ),
                );
                return (None, None);
            }
            return (Some(KeySource::PublicKey(key)), actual);
        }
        let source_kind = match &entry.source {
            Some(s) => self.source(&format!("{path}.source"), s),
            None if manifest.defaults.source.is_some() => defaults.source,
            None => Some(SourceKind::Aws),
        };
        let key_type = match explicit_type {
            Declared::Type(k) => Some(k),
            Declared::Invalid => None,
            Declared::Absent => Some(KeyType::Rsa),
        };
        let bits = entry.bits.as_ref().or(defaults.bits.as_ref());
        let bits_field = if entry.bits.is_some() {
            format!("{path}.bits")
        } else {
            "defaults.bits".to_owned()
        };
        let (Some(source_kind), Some(resolved_type)) = (source_kind, key_type) else {
            return (None, key_type);
        };
        let source = match (source_kind, resolved_type, bits) {
            (SourceKind::Aws, _, Some(bits)) => {
                self.push(
                    Diagnostic::error(
                        bits_field,
                        bits.pos,
                        "EC2 generates 2048-bit RSA keys only; `bits` needs `source: local`",
                    )
                    .with_help(
                        "add `source: local` to have labctl generate the key, or remove `bits`",
                    ),
                );
                return (None, key_type);
            }
            (SourceKind::Local, KeyType::Ed25519, Some(bits)) if entry.bits.is_some() => {
                self.push(
                    Diagnostic::error(
                        bits_field,
                        bits.pos,
                        "ed25519 keys have no size; `bits` is for RSA",
                    )
                    .with_label("not used"),
                );
                return (None, key_type);
            }
            (SourceKind::Aws, _, None) => KeySource::Aws,
            (SourceKind::Local, KeyType::Ed25519, _) => KeySource::Local { bits: 0 },
            (SourceKind::Local, KeyType::Rsa, None) => KeySource::Local { bits: 2048 },
            (SourceKind::Local, KeyType::Rsa, Some(bits)) => match bits.value {
                2048 | 3072 | 4096 => KeySource::Local {
                    bits: u32::try_from(bits.value).unwrap_or(2048),
                },
                other => {
                    self.push(
                        Diagnostic::error(
                            bits_field,
                            bits.pos,
                            format!("RSA keys of {other} bits are not supported"),
                        )
                        .with_help("use 2048, 3072 or 4096"),
                    );
                    return (None, key_type);
                }
            },
        };
        (Some(source), key_type)
    }

    /// Read a public key: inline (`ssh-ed25519 AAAA…`) or from a file.
    pub(super) fn public_key(&mut self, field: &str, pos: Pos, text: &str) -> Option<PublicKey> {
        let trimmed = text.trim();
        let inline = trimmed.starts_with("ssh-") || trimmed.starts_with("ecdsa-");
        let line = if inline {
            trimmed.to_owned()
        } else {
            let path = self.resolve(trimmed);
            match read_public_key_file(&path) {
                Ok(content) => content
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .unwrap_or_default()
                    .to_owned(),
                Err(err) => {
                    self.push(
                        Diagnostic::error(field, pos, format!("cannot read the public key file {}: {err}", path.display()))
                            .with_help("give the path of an OpenSSH public key (`.pub`), or the key itself: `ssh-ed25519 AAAA…`"),
                    );
                    return None;
                }
            }
        };
        if line.contains("PRIVATE KEY") {
            self.push(
                Diagnostic::error(
                    field,
                    pos,
                    "this is a private key; `public_key` takes the public one",
                )
                .with_help("give the `.pub` file, or `ssh-keygen -y -f KEY` prints the public key"),
            );
            return None;
        }
        let algorithm = line.split_whitespace().next().unwrap_or_default();
        if !matches!(algorithm, "ssh-rsa" | "ssh-ed25519") {
            // Quote a file's content only when it is a known key algorithm: the first word of
            // a credentials file must never reach the screen.
            let what = if algorithm.starts_with("ecdsa-")
                || algorithm.starts_with("ssh-")
                || algorithm.starts_with("sk-")
            {
                format!("`{algorithm}`")
            } else {
                "what this holds".to_owned()
            };
            self.push(
                Diagnostic::error(
                    field,
                    pos,
                    format!("EC2 imports RSA and ed25519 keys only, not {what}"),
                )
                .with_help("give an `ssh-rsa` or `ssh-ed25519` public key"),
            );
            return None;
        }
        let key = PublicKey::from_openssh(&line);
        if key.is_none() {
            self.push(
                Diagnostic::error(field, pos, "the public key could not be read")
                    .with_help("give an OpenSSH public key line, as in a `.pub` file"),
            );
        }
        key
    }
}

/// Read a public key file: a regular file only (never a FIFO or device: opened without
/// blocking), at most [`MAX_PUBLIC_KEY_FILE`] bytes. The error never quotes the content.
fn read_public_key_file(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    let bytes = keys::read_bounded(file, MAX_PUBLIC_KEY_FILE)?
        .ok_or_else(|| std::io::Error::other("it is too large for a public key"))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| std::io::Error::other("it is not a text file"))
}

#[cfg(test)]
mod tests {
    use super::super::table;

    #[test]
    fn key_sources_and_types() {
        table(&[
            (
                "keypairs:\n  - name: a\n    public_key: \"ecdsa-sha2-nistp256 AAAA\"\n",
                "keypairs[0].public_key",
                "RSA and ed25519 keys only",
            ),
            (
                "keypairs:\n  - name: a\n    source: cloud\n",
                "keypairs[0].source",
                "cloud",
            ),
            (
                "keypairs:\n  - name: a\n    key_type: dsa\n",
                "keypairs[0].key_type",
                "unknown key type",
            ),
        ]);
    }
}
