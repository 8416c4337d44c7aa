//! The JSON Schema of manifest v1, for editors' YAML language servers.
//!
//! These types exist only to describe the format (draft-07, which editors accept); the
//! manifest is read by `manifest`, which must accept exactly these fields (a test checks the
//! two agree). Descriptions here are what users see when they hover a field in an editor.

use std::collections::BTreeMap;

use schemars::JsonSchema;

/// A labctl manifest: the EC2 key pairs a lab or workshop needs.
#[derive(JsonSchema)]
#[schemars(title = "labctl manifest", deny_unknown_fields)]
#[allow(dead_code)]
struct ManifestV1 {
    /// Manifest format version; must be 1.
    #[schemars(range(min = 1, max = 1))]
    version: u8,
    /// Identifies the manifest; labctl tags every key pair it creates with `labctl:project=<project>`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9._-]{1,64}$"))]
    project: String,
    /// User variables, used as `${name}` in names, regions, tags and paths; `--var KEY=VALUE` overrides them.
    #[serde(default)]
    vars: BTreeMap<String, String>,
    /// Other AWS accounts, by the name entries use in `account`/`accounts`; labctl assumes each one's role (STS `AssumeRole`) with your credentials.
    #[serde(default)]
    accounts: Option<BTreeMap<String, AccountDef>>,
    /// Settings every key pair inherits unless it sets its own.
    #[serde(default)]
    defaults: Option<Defaults>,
    /// The key pairs. One entry is one private key, present in every region it lists.
    #[schemars(length(min = 1))]
    keypairs: Vec<KeyPair>,
    /// The team's copy of every private key: `ssm` keeps each as a SecureString at `/ec2/keypair/<key-pair-id>` in its key pair's account and region (as CloudFormation does); a machine without a key file gets it from there.
    #[serde(default)]
    store: Option<Store>,
    /// Where the lock and the journal are shared by every machine: `s3://BUCKET/PREFIX` (the bucket must exist).
    #[serde(default)]
    #[schemars(regex(pattern = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"))]
    state: Option<String>,
}

/// `ssm`, or `{ ssm: { kms_key_id: … } }`.
#[derive(JsonSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum Store {
    /// The team store's kind.
    Kind(StoreKind),
    /// The store with its settings.
    Settings(StoreSettings),
}

/// The team store's kind.
#[derive(JsonSchema)]
#[allow(dead_code)]
#[serde(rename_all = "lowercase")]
enum StoreKind {
    Ssm,
}

/// `{ ssm: { kms_key_id: … } }`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct StoreSettings {
    /// SSM Parameter Store's settings.
    ssm: Option<SsmSettings>,
}

/// SSM Parameter Store's settings.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct SsmSettings {
    /// The KMS key the entries are encrypted with: `alias/NAME`, a key id or an ARN. Default: the account's `alias/aws/ssm`.
    #[serde(default)]
    kms_key_id: Option<String>,
}

/// Settings every key pair inherits.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct Defaults {
    /// The default region (give `region` or `regions`, not both).
    #[serde(default)]
    region: Option<RegionName>,
    /// The default regions (give `region` or `regions`, not both).
    #[serde(default)]
    regions: Option<Regions>,
    /// The default key type: `rsa` (2048-bit, as EC2 generates it) or `ed25519`. Default: `rsa`.
    #[serde(default)]
    key_type: Option<KeyType>,
    /// Who generates keys: `aws` (EC2, the default) or `local` (labctl; EC2 never sees the private key).
    #[serde(default)]
    source: Option<Source>,
    /// RSA key size for `source: local`: 2048, 3072 or 4096. Default: 2048.
    #[serde(default)]
    bits: Option<Bits>,
    /// Folder for private key files when an entry gives no `output`. Default: `keys`, next to the manifest.
    #[serde(default)]
    output_dir: Option<String>,
    /// Tags on every key pair; an entry's own tags win. `${name}` in a value is the key pair's name.
    #[serde(default)]
    #[schemars(schema_with = "tags_schema")]
    tags: Option<BTreeMap<String, String>>,
    /// Remove tags that are neither in the manifest nor labctl's from key pairs this manifest owns. Default: false.
    #[serde(default)]
    purge_tags: Option<bool>,
    /// Key file formats to write: `pem` (always) and `ppk` (PuTTY's, beside the `.pem`). Default: [pem].
    #[serde(default)]
    formats: Option<Vec<Format>>,
    /// The account (a name under `accounts`) of entries that give none. Default: your own account.
    #[serde(default)]
    account: Option<String>,
    /// The role assumed in accounts given by `id`. Default: `OrganizationAccountAccessRole`.
    #[serde(default)]
    role_name: Option<String>,
}

/// Another AWS account and the role labctl assumes there: give `role_arn` or `id`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct AccountDef {
    /// The role to assume, e.g. `arn:aws:iam::111111111111:role/OrganizationAccountAccessRole`.
    #[serde(default)]
    role_arn: Option<String>,
    /// The 12-digit account id, in quotes; the role is `defaults.role_name` there.
    #[serde(default)]
    #[schemars(regex(pattern = r"^([0-9]{12}|.*\$\{.*)$"))]
    id: Option<String>,
    /// The external id the role's trust policy asks for (variables allowed).
    #[serde(default)]
    external_id: Option<String>,
    /// The role session's name, as the account's audit log (`CloudTrail`) shows it. Default: `labctl-<project>`.
    #[serde(default)]
    session_name: Option<String>,
}

/// One key pair.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct KeyPair {
    /// The EC2 key pair name: 1 to 255 ASCII characters, no leading or trailing space. `${project}` and vars are substituted.
    #[schemars(length(min = 1, max = 255))]
    name: String,
    /// Make this many key pairs from this entry (one per attendee); `${index}` (1, 2, … never padded; `${index:03}` pads to 3 digits) in `name`, `output` and tag values numbers them.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    count: Option<u32>,
    /// Make one key pair per item; `${item}` in `name`, `output` and tag values is the item. Give `count` or `for_each`, not both.
    #[serde(default)]
    #[schemars(length(min = 1))]
    for_each: Option<Vec<String>>,
    /// With `count`: the first `${index}` (default 1), e.g. 16 to go on from a first group of 15.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1_000_000))]
    index_start: Option<u32>,
    /// With `count`: numbers to leave out (a no-show's seat); each must be one `count` gives.
    #[serde(default)]
    skip: Option<Vec<u32>>,
    /// The seat label people know this key pair by (handout README and passphrase list), e.g. `eu-${index}`; `${index}`, `${item}`, `${name}` and vars are substituted. Unique in the manifest. Default: the key pair name.
    #[serde(default)]
    seat: Option<String>,
    /// The region of this key pair (give `region` or `regions`, not both). Default: the defaults' region(s).
    #[serde(default)]
    region: Option<RegionName>,
    /// The regions of this key pair; the key is generated in the first and imported into the others.
    #[serde(default)]
    regions: Option<Regions>,
    /// The account of this key pair, a name under `accounts` (`${item}` allowed); give `account` or `accounts`, not both. Default: `defaults.account`, else your own.
    #[serde(default)]
    account: Option<String>,
    /// The accounts of this key pair: one private key, made in the first and imported into every account × region.
    #[serde(default)]
    #[schemars(length(min = 1))]
    accounts: Option<Vec<String>>,
    /// The key type: `rsa` or `ed25519`. Default: the defaults' key type, else `rsa` (or the type of `public_key`).
    #[serde(default)]
    key_type: Option<KeyType>,
    /// Who generates the key: `aws` (EC2, the default) or `local` (labctl). Not with `public_key`.
    #[serde(default)]
    source: Option<Source>,
    /// RSA key size for `source: local`: 2048, 3072 or 4096.
    #[serde(default)]
    bits: Option<Bits>,
    /// Import a key you already have: the path of an OpenSSH public key file, or the key itself (`ssh-ed25519 AAAA…`). No private key file is written.
    #[serde(default)]
    public_key: Option<String>,
    /// Tags for this key pair, merged over the defaults' tags (this entry's value wins).
    #[serde(default)]
    #[schemars(schema_with = "tags_schema")]
    tags: Option<BTreeMap<String, String>>,
    /// Remove tags that are neither in the manifest nor labctl's. Default: the defaults' setting, else false.
    #[serde(default)]
    purge_tags: Option<bool>,
    /// The private key file. Default: `${output_dir}/${name}.pem`. Relative paths resolve against the manifest's folder, `~/` against the home folder.
    #[serde(default)]
    output: Option<String>,
    /// Key file formats to write: `pem` (always) and `ppk` (PuTTY's, beside the `.pem`). Default: the defaults' setting, else [pem].
    #[serde(default)]
    formats: Option<Vec<Format>>,
}

/// A private key file format.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum Format {
    /// The OpenSSH or PEM private key (`.pem`), as EC2 or labctl made it.
    Pem,
    /// PuTTY's private key (PPK version 3, `.ppk`), for PuTTY 0.75+ and WinSCP.
    Ppk,
}

/// A region name such as `us-east-1`.
struct RegionName;

impl JsonSchema for RegionName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RegionName".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An AWS region name such as `us-east-1`, `eu-central-2` or `us-gov-west-1` (variables allowed).",
            "pattern": "^([a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]{1,2}|.*\\$\\{.*\\}.*)$"
        })
    }
}

/// One region, or a list of regions.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Regions {
    One(RegionName),
    Many(#[schemars(length(min = 1))] Vec<RegionName>),
}

/// Who generates a key.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum Source {
    /// EC2 generates the key (`CreateKeyPair`) and hands out the private key once.
    Aws,
    /// labctl generates the key and imports its public key; EC2 never sees the private key.
    Local,
}

/// RSA key size in bits.
struct Bits;

impl JsonSchema for Bits {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Bits".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "description": "RSA key size for `source: local`.",
            "enum": [2048, 3072, 4096]
        })
    }
}

/// The key algorithm.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum KeyType {
    /// RSA 2048-bit, as EC2 generates it.
    Rsa,
    /// Ed25519 (not usable for Windows instances).
    Ed25519,
}

/// Tag keys (1 to 128 characters, not starting with `aws:` or `labctl:`) and values (at most 256 characters).
fn tags_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "Tags: keys of 1 to 128 characters, not starting with `aws:` or `labctl:`; values of at most 256 characters. `${name}` in a value is the key pair's name.",
        "propertyNames": {"minLength": 1, "maxLength": 128, "not": {"pattern": "^([aA][wW][sS]|[lL][aA][bB][cC][tT][lL]):"}},
        "additionalProperties": {"type": "string", "maxLength": 256},
        "maxProperties": 48
    })
}

/// The JSON Schema of manifest v1 (draft-07), pretty-printed with a final newline.
pub(crate) fn json_schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<ManifestV1>();
    // A stable identity: the copy attached to this version's release (docs/compatibility.md).
    schema.insert("$id".to_owned(), serde_json::Value::String(schema_id()));
    crate::render::json_document(&schema)
}

/// Where this version's schema is published.
pub(crate) fn schema_id() -> String {
    format!(
        "{}/releases/download/v{}/labctl.schema.json",
        env!("CARGO_PKG_REPOSITORY"),
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use crate::manifest::{FIELDS_DEFAULTS, FIELDS_ENTRY, FIELDS_TOP};

    fn properties(schema: &serde_json::Value) -> Vec<String> {
        let mut names: Vec<String> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn sorted(fields: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        names.sort();
        names
    }

    /// The schema describes exactly the fields the loader accepts.
    #[test]
    fn schema_and_loader_agree_on_fields() {
        let schema: serde_json::Value = serde_json::from_str(&super::json_schema()).unwrap();
        assert_eq!(properties(&schema), sorted(FIELDS_TOP));
        assert_eq!(
            properties(&schema["definitions"]["Defaults"]),
            sorted(FIELDS_DEFAULTS)
        );
        assert_eq!(
            properties(&schema["definitions"]["KeyPair"]),
            sorted(FIELDS_ENTRY)
        );
    }

    #[test]
    fn every_field_has_a_description() {
        let schema: serde_json::Value = serde_json::from_str(&super::json_schema()).unwrap();
        for object in [
            &schema,
            &schema["definitions"]["Defaults"],
            &schema["definitions"]["KeyPair"],
        ] {
            for (name, property) in object["properties"].as_object().unwrap() {
                assert!(
                    property.get("description").is_some(),
                    "{name} has no description"
                );
            }
        }
    }
}
