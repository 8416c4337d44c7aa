//! The team store over `aws-sdk-ssm`: each private key a SecureString at
//! `/ec2/keypair/<key-pair-id>` in the key pair's own account and region, as CloudFormation's
//! `AWS::EC2::KeyPair` keeps it. Requests go through the scope's SSM client with the same
//! credentials, pace and retry policy as EC2's (see `send.rs`); SSM's requests of a scope share
//! one bucket (Parameter Store's throughput quota). Values are never logged or quoted.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType, ResourceTypeForTagging, Tag};

use super::ec2::Ec2;
use super::{CloudError, CloudErrorKind};
use crate::keys::Secret;
use crate::resource::Scope;

use crate::desired::STORE_PATH;

/// The store entry of the key pair `id`: `/ec2/keypair/<id>`.
pub(crate) fn stored_name(id: &str) -> String {
    format!("{STORE_PATH}{id}")
}

/// SSM's operations labctl sends: the one list (the pacer's bucket, errors named as SSM's).
pub(super) const OPERATIONS: &[&str] = &[
    "GetParameters",
    "GetParameter",
    "PutParameter",
    "DeleteParameter",
    "DescribeParameters",
    "AddTagsToResource",
    "ListTagsForResource",
];

/// Requests that only read (still sent after Ctrl-C, as EC2's looks are).
pub(super) const READS: &[&str] = &[
    "DescribeKeyPairs",
    "GetParameters",
    "GetParameter",
    "DescribeParameters",
    "ListTagsForResource",
];

/// `GetParameters` takes at most this many names.
const NAMES_PER_REQUEST: usize = 10;

fn ssm_tags(tags: &BTreeMap<String, String>) -> Option<Vec<Tag>> {
    let tags: Vec<Tag> = tags
        .iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect();
    (!tags.is_empty()).then_some(tags)
}

/// Whether a key pair id can name a store entry (EC2's ids: `key-` and hex).
fn storable(id: &str) -> bool {
    id.strip_prefix("key-").is_some_and(|hex| {
        !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

impl Ec2 {
    /// [`send_with`](Ec2::send_with) on the scope's SSM client.
    async fn send_ssm<T, E, F, Fut>(
        &self,
        scope: &Scope,
        operation: &'static str,
        call: F,
    ) -> Result<T, CloudError>
    where
        F: Fn(aws_sdk_ssm::Client) -> Fut,
        Fut: std::future::Future<
                Output = Result<
                    T,
                    aws_sdk_ssm::error::SdkError<
                        E,
                        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
                    >,
                >,
            >,
        E: aws_sdk_ssm::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.send_with(scope, operation, |c| c.ssm.clone(), call)
            .await
    }

    pub(super) async fn ssm_read(
        &self,
        scope: &Scope,
        ids: &[String],
    ) -> Result<BTreeMap<String, Secret>, CloudError> {
        let mut out = BTreeMap::new();
        let ids: Vec<&String> = ids.iter().filter(|id| storable(id)).collect();
        for chunk in ids.chunks(NAMES_PER_REQUEST) {
            let names: Vec<String> = chunk.iter().map(|id| stored_name(id)).collect();
            let output = self
                .send_ssm(scope, "GetParameters", |client| {
                    client
                        .get_parameters()
                        .set_names(Some(names.clone()))
                        .with_decryption(true)
                        .send()
                })
                .await?;
            for parameter in output.parameters() {
                let id = parameter.name().and_then(|n| n.strip_prefix(STORE_PATH));
                if let (Some(id), Some(value)) = (id, held_key(parameter)) {
                    out.insert(id.to_owned(), value);
                }
            }
        }
        Ok(out)
    }

    pub(super) async fn ssm_list(
        &self,
        scope: &Scope,
        project: &str,
    ) -> Result<BTreeSet<String>, CloudError> {
        let filters: Vec<ParameterStringFilter> = [
            ParameterStringFilter::builder()
                .key("Path")
                .option("OneLevel")
                .values(STORE_PATH.trim_end_matches('/'))
                .build(),
            ParameterStringFilter::builder()
                .key(format!("tag:{}", crate::desired::PROJECT_TAG))
                .option("Equals")
                .values(project)
                .build(),
        ]
        .into_iter()
        .filter_map(Result::ok)
        .collect();
        let mut out = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let output = self
                .send_ssm(scope, "DescribeParameters", |client| {
                    client
                        .describe_parameters()
                        .set_parameter_filters(Some(filters.clone()))
                        .max_results(50)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            for parameter in output.parameters() {
                if let Some(id) = parameter.name().and_then(|n| n.strip_prefix(STORE_PATH)) {
                    out.insert(id.to_owned());
                }
            }
            token = output.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    pub(super) async fn ssm_is_tagged(&self, scope: &Scope, id: &str) -> Result<bool, CloudError> {
        let name = stored_name(id);
        let output = self
            .send_ssm(scope, "ListTagsForResource", |client| {
                client
                    .list_tags_for_resource()
                    .resource_type(ResourceTypeForTagging::Parameter)
                    .resource_id(&name)
                    .send()
            })
            .await?;
        Ok(output
            .tag_list()
            .iter()
            .any(|t| t.key() == crate::desired::PROJECT_TAG))
    }

    pub(super) async fn ssm_get(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<Option<Secret>, CloudError> {
        let name = stored_name(id);
        let result = self
            .send_ssm(scope, "GetParameter", |client| {
                client
                    .get_parameter()
                    .name(&name)
                    .with_decryption(true)
                    .send()
            })
            .await;
        match result {
            Ok(output) => Ok(output.parameter().and_then(held_key)),
            Err(err) if err.kind == CloudErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub(super) async fn ssm_put(
        &self,
        scope: &Scope,
        id: &str,
        secret: &Secret,
        kms_key_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        let name = stored_name(id);
        let tags = ssm_tags(tags);
        self.send_ssm(scope, "PutParameter", |client| {
            client
                .put_parameter()
                .name(&name)
                .description(format!("The private key of EC2 key pair {id} (labctl)"))
                .value(secret.expose())
                .r#type(ParameterType::SecureString)
                .set_key_id(kms_key_id.map(str::to_owned))
                .overwrite(false)
                .set_tags(tags.clone())
                .send()
        })
        .await
        .map(|_| ())
    }

    pub(super) async fn ssm_tag(
        &self,
        scope: &Scope,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        let name = stored_name(id);
        let tags = ssm_tags(tags);
        self.send_ssm(scope, "AddTagsToResource", |client| {
            client
                .add_tags_to_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(&name)
                .set_tags(tags.clone())
                .send()
        })
        .await
        .map(|_| ())
    }

    pub(super) async fn ssm_delete(&self, scope: &Scope, id: &str) -> Result<(), CloudError> {
        let name = stored_name(id);
        let result = self
            .send_ssm(scope, "DeleteParameter", |client| {
                client.delete_parameter().name(&name).send()
            })
            .await;
        match result {
            Err(err) if err.kind != CloudErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// What an entry holds for labctl: its value when it is a SecureString, as labctl and
/// CloudFormation write them; a plain `String` (a private key readable by whoever may read the
/// parameter, in plain text wherever it is shown) holds no usable key, so it is never restored
/// or handed out and the plan says `store-mismatch`.
fn held_key(parameter: &aws_sdk_ssm::types::Parameter) -> Option<Secret> {
    let value = parameter.value()?;
    Some(
        if parameter.r#type() == Some(&ParameterType::SecureString) {
            Secret::new(value.to_owned())
        } else {
            Secret::new(String::new())
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_ec2_key_pair_ids_name_store_entries() {
        assert!(super::storable("key-0123456789abcdef0"));
        for id in ["", "key-", "../x", "key-a/b", "key-a b", "abc"] {
            assert!(!super::storable(id), "{id}");
        }
        assert_eq!(super::stored_name("key-01"), "/ec2/keypair/key-01");
    }
}
