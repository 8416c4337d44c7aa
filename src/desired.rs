//! The desired state: what the manifest asks for, fully resolved.
//!
//! Every value here has been validated once (names, regions, tags, paths); the types carry
//! that proof, so no later stage re-checks or re-parses them, and nothing after validation
//! looks at YAML again.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::keys::PublicKey;
use crate::resource::{Account, MemberAccount, Scope};

/// The tag key labctl puts on every key pair it creates or imports.
pub const PROJECT_TAG: &str = "labctl:project";
/// Where the team store's entries live (`/ec2/keypair/<key-pair-id>`, as CloudFormation
/// keeps them); labctl touches nothing outside it.
pub const STORE_PATH: &str = "/ec2/keypair/";

/// The tag key naming the apply that had EC2 create a key pair: if the answer to
/// `CreateKeyPair` is lost, labctl recognises (and deletes) only a key pair of its own apply.
pub const APPLY_TAG: &str = "labctl:apply-id";

/// The state folder beside a manifest (its lock, journal and the project's keys): no manifest
/// may put a key file in it.
pub const STATE_DIR: &str = ".labctl";

/// How many of a key pair's tags labctl uses itself.
pub const OWN_TAGS: usize = 2;

/// A validated EC2 key pair name: 1–255 ASCII characters, no leading or trailing space.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct KeyName(String);

impl KeyName {
    /// Check a key pair name against EC2's rules.
    ///
    /// # Errors
    /// A sentence saying what is wrong with the name.
    pub fn parse(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("the key pair name is empty".to_owned());
        }
        if name.len() > 255 {
            return Err(format!(
                "the key pair name is {} characters long; EC2 allows at most 255",
                name.len()
            ));
        }
        if !name.is_ascii() {
            return Err("the key pair name must be ASCII; EC2 refuses other characters".to_owned());
        }
        if name.chars().any(|c| c.is_ascii_control()) {
            return Err("the key pair name contains a control character".to_owned());
        }
        if name.trim() != name {
            return Err("the key pair name starts or ends with a space".to_owned());
        }
        Ok(KeyName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A region name of the form AWS uses (`us-east-1`, `us-gov-west-1`, `cn-north-1`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Region(String);

/// Regions labctl knows of; a well-formed name outside this list is only a warning.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

impl Region {
    /// `us-east-1`: where global requests go when nothing else names a region.
    pub fn us_east_1() -> Self {
        Region("us-east-1".to_owned())
    }

    /// Check the form of a region name.
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn parse(name: &str) -> Result<Self, String> {
        let parts: Vec<&str> = name.split('-').collect();
        let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
        let ok = match parts.as_slice() {
            [geo, area, number] => {
                geo.len() == 2 && lower(geo) && lower(area) && is_region_number(number)
            }
            [geo, partition, area, number] => {
                geo.len() == 2
                    && lower(geo)
                    && (*partition == "gov" || partition.starts_with("iso") && lower(partition))
                    && lower(area)
                    && is_region_number(number)
            }
            _ => false,
        };
        if ok {
            Ok(Region(name.to_owned()))
        } else {
            Err(format!(
                "`{name}` is not an AWS region name (like `us-east-1` or `eu-central-2`)"
            ))
        }
    }

    /// Whether labctl knows this region (unknown ones may be new or mistyped).
    pub fn is_known(&self) -> bool {
        KNOWN_REGIONS.contains(&self.0.as_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_region_number(s: &str) -> bool {
    (1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key algorithm EC2 generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Rsa,
    Ed25519,
}

impl KeyType {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "rsa" => Some(KeyType::Rsa),
            "ed25519" => Some(KeyType::Ed25519),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tags a key pair must carry, labctl's ownership tag included, within EC2's limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TagSet(BTreeMap<String, String>);

impl TagSet {
    /// Build a tag set from already-checked pairs (validation checks the limits).
    pub(crate) fn from_checked(tags: BTreeMap<String, String>) -> Self {
        TagSet(tags)
    }

    /// This tag set plus one tag of labctl's own.
    #[must_use]
    pub fn with(&self, key: &str, value: &str) -> Self {
        let mut tags = self.0.clone();
        tags.insert(key.to_owned(), value.to_owned());
        TagSet(tags)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a key pair's key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// EC2 generates the key in the first region (`CreateKeyPair`); the rest import it.
    Aws,
    /// labctl generates the key (RSA of `bits`, or ed25519 when `bits` is 0), saves the
    /// private key first, then imports the public key into every region.
    Local { bits: u32 },
    /// A public key the user already has; no private key file is involved.
    PublicKey(PublicKey),
}

/// One key pair to provision: one key (and at most one private key file), present in one or
/// more regions. A `count` or `for_each` entry gives one of these per key pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPairSpec {
    pub name: KeyName,
    /// Where it is placed (each region of the caller's account today), in the order written;
    /// the first is where the key is made (EC2's `CreateKeyPair` or labctl's own), the others
    /// import it.
    pub scopes: Vec<Scope>,
    pub key_type: KeyType,
    pub source: KeySource,
    pub tags: TagSet,
    /// Remove tags that are neither in the manifest nor labctl's (`purge_tags: true`).
    pub purge_tags: bool,
    /// Where the private key lives; `None` for a `public_key` entry.
    pub output: Option<PathBuf>,
    /// The output path for display (empty when there is none).
    pub output_display: String,
    /// The PuTTY private key beside the output (`formats: [pem, ppk]`), when asked for.
    pub ppk: Option<PathBuf>,
    /// The seat label people know this key pair by (handout's README and passphrase list):
    /// the entry's `seat` template expanded, else the key pair's name. Unique in a manifest.
    pub seat: String,
}

/// How labctl reaches a member account: the role it assumes there (STS `AssumeRole` with
/// the caller's credentials). Never credentials: those live in memory for one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    pub account: std::sync::Arc<MemberAccount>,
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: String,
    /// Not in the manifest any more: an account labctl placed key pairs in before (from the
    /// state folder), still read so that nothing is stranded there.
    pub former: bool,
}

/// Everything the manifest asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub project: String,
    pub keypairs: Vec<KeyPairSpec>,
    /// The default output folder, resolved: where a key pair no longer in the manifest
    /// would have its file (`apply --prune --purge-local` looks there).
    pub orphan_dir: PathBuf,
    /// How each member account the manifest places key pairs in is reached (by id), and the
    /// former ones labctl still reads (see [`Reach::former`]).
    pub accounts: Vec<Reach>,
    /// Scopes of former accounts: read for their orphans, never placed in.
    pub former_scopes: Vec<Scope>,
    /// The team store every private key is also kept in (`store: ssm`).
    pub store: Option<KeyStore>,
    /// Where the lock and the journal are shared (`state: s3://bucket/prefix`).
    pub state: Option<SharedState>,
}

/// The team store: SSM Parameter Store, each key a SecureString at `/ec2/keypair/<id>` in its
/// key pair's account and region.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyStore {
    /// The KMS key the entries are encrypted with (`None`: the account's `alias/aws/ssm`).
    pub kms_key_id: Option<String>,
}

/// The shared state's place: `s3://bucket/prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedState {
    pub bucket: String,
    /// Without leading or trailing `/` (empty: the bucket's top).
    pub prefix: String,
}

impl std::fmt::Display for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// The reserved prefix a tag key starts with, in any case, if it does: `aws:` is AWS's,
/// `labctl:` labctl's own (its ownership tags). The one rule for both: validation refuses
/// them in a manifest; the planner removes stale `labctl:` tags and leaves `aws:` ones alone.
pub fn reserved_tag_prefix(key: &str) -> Option<&'static str> {
    ["aws:", "labctl:"].into_iter().find(|prefix| {
        key.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    })
}

/// Why a key pair name from the manifest cannot name the files made for it everywhere they go
/// (its key file, the handout bundle, entries in a zip opened on Windows), if it cannot: `\`
/// is a folder separator to Windows and zip tools (`..\x` would unpack outside its folder),
/// and `<>:"|?*` cannot be part of a Windows file name.
pub fn portable_name_problem(name: &str) -> Option<String> {
    if name.contains('\\') {
        return Some(format!(
            "the key pair name `{name}` contains `\\`, a folder separator to Windows and zip tools (its handout bundle could unpack outside its folder)"
        ));
    }
    name.chars().find(|c| "<>:\"|?*".contains(*c)).map(|c| {
        format!("the key pair name `{name}` contains `{c}`, which cannot be part of a file name on Windows (its key file and handout bundle are named after it)")
    })
}

/// The file name of a key pair's private key in its folder (`<name>.pem`), when the name can
/// stand as one file name: not with `/`, not `.` or `..`. The one place of this convention.
pub fn key_file_name(name: &str) -> Option<String> {
    (!name.contains('/') && name != "." && name != "..").then(|| format!("{name}.pem"))
}

/// The one folder every key file of `files` is `<folder>/<name>.pem` in, when there is one
/// (`files`: each key pair's name and its key file as shown; key pairs without a key file are
/// left out): then plans, reports and `output` say the key files once instead of on every line.
pub fn common_key_folder<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<String> {
    let mut folder: Option<String> = None;
    for (name, file) in files {
        if file.is_empty() {
            continue;
        }
        let here = file.strip_suffix(&format!("/{name}.pem"))?;
        match &folder {
            Some(f) if f != here => return None,
            Some(_) => {}
            None => folder = Some(here.to_owned()),
        }
    }
    folder
}

impl Desired {
    /// The folders this manifest keeps key files in (each `output`'s and `.ppk`'s), sorted,
    /// each once.
    pub fn key_folders(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .keypairs
            .iter()
            .flat_map(|k| k.output.iter().chain(k.ppk.iter()))
            .map(|file| crate::keys::parent_of(file))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Where a key pair of this name that the manifest no longer lists has its file, by the
    /// default convention (`apply --prune --purge-local` looks there).
    pub fn orphan_file(&self, name: &str) -> Option<PathBuf> {
        key_file_name(name).map(|file| self.orphan_dir.join(file))
    }

    /// Every scope the manifest places a key pair in, and the former accounts' scopes,
    /// sorted: what a run reads.
    pub fn scopes(&self) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = self
            .keypairs
            .iter()
            .flat_map(|k| k.scopes.iter().cloned())
            .chain(self.former_scopes.iter().cloned())
            .collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }

    /// How the member account of `scope` is reached, if it is one.
    pub fn reach(&self, scope: &Scope) -> Option<&Reach> {
        let Account::Member(member) = &scope.account else {
            return None;
        };
        self.accounts.iter().find(|r| r.account == *member)
    }
}

#[cfg(test)]
mod tests {
    use super::{KeyName, Region};

    #[test]
    fn region_forms() {
        for ok in [
            "us-east-1",
            "us-gov-west-1",
            "cn-north-1",
            "eu-central-2",
            "us-isob-east-1",
            "xx-mars-1",
        ] {
            assert!(Region::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us_east_1",
            "useast1",
            "us-east-123",
            "us-east-1a",
            "u-east-1",
        ] {
            assert!(Region::parse(bad).is_err(), "{bad}");
        }
        assert!(!Region::parse("xx-mars-1").unwrap().is_known());
        assert!(Region::parse("us-east-1").unwrap().is_known());
    }

    #[test]
    fn key_files_are_said_once_only_when_they_share_one_folder() {
        use super::common_key_folder;
        let files = [("a", "keys/a.pem"), ("b", "keys/b.pem"), ("pub", "")];
        assert_eq!(common_key_folder(files).as_deref(), Some("keys"));
        assert_eq!(
            common_key_folder([("a", "keys/a.pem"), ("b", "other/b.pem")]),
            None
        );
        assert_eq!(common_key_folder([("a", "keys/own.pem")]), None);
        assert_eq!(common_key_folder([("a", "")]), None);
    }

    #[test]
    fn reserved_tag_prefixes_in_any_case() {
        use super::reserved_tag_prefix;
        assert_eq!(reserved_tag_prefix("labctl:project"), Some("labctl:"));
        assert_eq!(reserved_tag_prefix("LabCtl:team"), Some("labctl:"));
        assert_eq!(reserved_tag_prefix("AWS:cloudformation"), Some("aws:"));
        assert_eq!(reserved_tag_prefix("labctl"), None);
        assert_eq!(reserved_tag_prefix("Team"), None);
        assert_eq!(reserved_tag_prefix("é"), None);
    }

    #[test]
    fn key_name_rules() {
        assert!(KeyName::parse("lab-a").is_ok());
        assert!(KeyName::parse("").is_err());
        assert!(KeyName::parse(" lab").is_err());
        assert!(KeyName::parse("lab ").is_err());
        assert!(KeyName::parse("läb").is_err());
        assert!(KeyName::parse(&"a".repeat(255)).is_ok());
        assert!(KeyName::parse(&"a".repeat(256)).is_err());
    }
}
