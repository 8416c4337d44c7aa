//! `store` and `state`: the team store's kind and KMS key, and the shared state's S3 place.

use super::Validator;
use crate::desired::{KeyStore, SharedState};
use crate::diagnostic::Diagnostic;
use crate::manifest::{Located, Manifest, StoreDef};

/// Why a KMS key reference cannot name a key, if it cannot: a key id, a multi-Region key id,
/// `alias/NAME`, or a key's or alias's ARN.
fn kms_key_problem(text: &str) -> Option<&'static str> {
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
    };
    let key_id = |s: &str| {
        let s = s.strip_prefix("mrk-").unwrap_or(s);
        (32..=36).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    };
    if text.len() > 2048 {
        return Some("is longer than KMS allows (2048)");
    }
    if let Some(name) = text.strip_prefix("alias/") {
        return (!word(name) || name.len() > 250)
            .then_some("is not an alias name (alias/ then letters, digits, / _ -)");
    }
    if let Some(rest) = text.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let ok = matches!(parts.as_slice(),
            [partition, "kms", region, account, resource]
                if partition.starts_with("aws") && !region.is_empty()
                    && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
                    && (resource.strip_prefix("key/").is_some_and(key_id)
                        || resource.strip_prefix("alias/").is_some_and(word)));
        return (!ok)
            .then_some("is not a KMS key or alias ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)");
    }
    (!key_id(text)).then_some("is neither a key id, `alias/NAME` nor an ARN")
}

/// `s3://bucket/prefix` split, or why not.
pub(crate) fn parse_state(text: &str) -> Result<SharedState, String> {
    let Some(rest) = text.strip_prefix("s3://") else {
        return Err("`state` is an S3 place: `s3://BUCKET/PREFIX`".to_owned());
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'))
        && edge(bucket.as_bytes().first())
        && edge(bucket.as_bytes().last())
        && !bucket.contains("..");
    if !bucket_ok {
        return Err(format!(
            "`{bucket}` is not an S3 bucket name (3 to 63 of a-z 0-9 . -, starting and ending with a letter or digit)"
        ));
    }
    let prefix = prefix.trim_end_matches('/');
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if prefix.len() > 512 || (!prefix.is_empty() && !prefix.split('/').all(segment_ok)) {
        return Err(format!(
            "`{prefix}` is not a usable prefix (no empty, `.` or `..` parts, parts of A-Z a-z 0-9 . _ - between `/`, at most 512 bytes)"
        ));
    }
    Ok(SharedState {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    })
}

impl Validator<'_> {
    /// The team store, when the manifest asks for one.
    pub(super) fn store(&mut self, manifest: &Manifest) -> Option<KeyStore> {
        let StoreDef { kind, kms_key_id } = manifest.store.as_ref()?;
        if kind.value != "ssm" {
            self.push(
                Diagnostic::error("store", kind.pos, format!("unknown store `{}`", kind.value))
                    .with_label("labctl keeps keys in `ssm`")
                    .with_help(
                        "write `store: ssm`, or `store: { ssm: { kms_key_id: alias/NAME } }`",
                    ),
            );
            return None;
        }
        if let Some(Located { value, pos }) = kms_key_id
            && let Some(problem) = kms_key_problem(value)
        {
            self.push(
                Diagnostic::error(
                    "store.ssm.kms_key_id",
                    *pos,
                    format!("`{}` {problem}", crate::render::printable(value)),
                )
                .with_help("give the KMS key as alias/NAME, its key id, or its ARN"),
            );
        }
        Some(KeyStore {
            kms_key_id: kms_key_id.as_ref().map(|k| k.value.clone()),
        })
    }

    /// The shared state's place, when the manifest gives one.
    pub(super) fn state(&mut self, manifest: &Manifest) -> Option<SharedState> {
        let state = manifest.state.as_ref()?;
        match parse_state(&state.value) {
            Ok(parsed) => Some(parsed),
            Err(why) => {
                self.push(
                    Diagnostic::error("state", state.pos, why)
                        .with_label("not an S3 place")
                        .with_help("write `state: s3://BUCKET/PREFIX` (the bucket must exist; labctl never creates one)"),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kms_keys_are_ids_aliases_or_arns() {
        for good in [
            "alias/workshop",
            "alias/aws/ssm",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:eu-west-1:111122223333:alias/workshop",
        ] {
            assert_eq!(super::kms_key_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "workshop",
            "alias/",
            "alias/a b",
            "arn:aws:s3:::x",
            "arn:aws:kms:eu-west-1:1:key/x",
        ] {
            assert!(super::kms_key_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn state_is_a_bucket_and_a_prefix() {
        let s = super::parse_state("s3://workshop-state/berlin-2026/").unwrap();
        assert_eq!(
            (s.bucket.as_str(), s.prefix.as_str()),
            ("workshop-state", "berlin-2026")
        );
        assert_eq!(super::parse_state("s3://abc").unwrap().prefix, "");
        for bad in [
            "workshop-state",
            "s3://Ab",
            "s3://a",
            "s3://bucket/a//b",
            "s3://bucket//a",
            "s3://bucket/x';touch y;'",
            "s3://bucket/../x",
            "s3://-x-/p",
        ] {
            assert!(super::parse_state(bad).is_err(), "{bad}");
        }
    }
}
