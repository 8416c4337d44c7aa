//! The [`Cloud`] trait over the real `aws-sdk-ec2` client.
//!
//! Credentials and settings come from aws-config's standard chain. Every request is counted
//! by an interceptor (once per attempt, so retries count). SDK errors are turned into
//! [`CloudError`]s here and go no further.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{KeyFormat, ResourceType, Tag, TagSpecification};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::{Cloud, CloudError, CloudErrorKind, CreatedKeyPair, Pacer, RemoteKeyPair};
use crate::desired::{KeyName, KeyType, Region, TagSet};
use crate::keys::{PublicKey, Secret};

/// How to reach EC2.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ec2Options {
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    /// Attempts per request, the first included (the SDK retries with backoff).
    pub max_attempts: u32,
    /// The longest one attempt may take.
    pub attempt_timeout: Duration,
    /// Pace requests at EC2's published rates.
    pub pace: bool,
}

/// Counts requests per operation as they are sent (each attempt).
#[derive(Clone, Debug, Default)]
struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "labctl-call-counter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map_or_else(|| "Unknown".to_owned(), |m| m.name().to_owned());
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.entry(name).or_default() += 1;
        Ok(())
    }
}

/// EC2 through `aws-sdk-ec2`, one client per region.
#[derive(Debug)]
pub(crate) struct Ec2 {
    clients: HashMap<Region, Client>,
    counter: CallCounter,
    pacer: Pacer,
}

impl Ec2 {
    /// Load the AWS configuration and make a client for each region.
    pub(crate) async fn new(options: &Ec2Options, regions: &[Region]) -> Self {
        // Regions come from the manifest, one client each: a placeholder region keeps
        // aws-config from probing the environment (or the instance metadata service) for one.
        let mut loader = aws_config::defaults(BehaviorVersion::v2026_01_12())
            .region(aws_sdk_ec2::config::Region::from_static("us-east-1"))
            // Standard (exponential backoff) retries, not the SDK's adaptive mode: labctl paces
            // itself at EC2's rates, and adaptive mode drops a client to 0.5 requests per
            // second after a single throttling answer.
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(options.max_attempts.max(1))
                    .with_initial_backoff(Duration::from_millis(200)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(options.attempt_timeout)
                    .build(),
            );
        if let Some(profile) = &options.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let shared = loader.load().await;
        let counter = CallCounter::default();
        let clients = regions
            .iter()
            .map(|region| {
                let config = aws_sdk_ec2::config::Builder::from(&shared)
                    .region(aws_sdk_ec2::config::Region::new(region.as_str().to_owned()))
                    .interceptor(counter.clone())
                    .build();
                (region.clone(), Client::from_conf(config))
            })
            .collect();
        let pacer = if options.pace {
            Pacer::ec2()
        } else {
            Pacer::none()
        };
        Ec2 {
            clients,
            counter,
            pacer,
        }
    }

    /// The region's client, once the pacer lets this request go.
    async fn client(
        &self,
        region: &Region,
        operation: &'static str,
    ) -> Result<&Client, CloudError> {
        self.pacer.wait(region.as_str(), operation).await;
        self.clients.get(region).ok_or_else(|| CloudError {
            kind: CloudErrorKind::Other,
            operation,
            region: region.to_string(),
            message: "no client for this region".to_owned(),
        })
    }
}

fn tag_specification(tags: &TagSet) -> TagSpecification {
    let tags = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    TagSpecification::builder()
        .resource_type(ResourceType::KeyPair)
        .set_tags(Some(tags))
        .build()
}

fn sdk_key_type(key_type: KeyType) -> aws_sdk_ec2::types::KeyType {
    match key_type {
        KeyType::Rsa => aws_sdk_ec2::types::KeyType::Rsa,
        KeyType::Ed25519 => aws_sdk_ec2::types::KeyType::Ed25519,
    }
}

/// Turn an SDK error into a [`CloudError`], classifying it for the hint.
fn convert<E, R>(operation: &'static str, region: &Region, err: &SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    // Never log the SDK error itself: its debug form carries the raw response, and the
    // answer to `CreateKeyPair` is the private key. Only the classified words below are shown.
    let (kind, message) = match err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().unwrap_or("Unknown");
            let kind = match code {
                "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
                    CloudErrorKind::AccessDenied
                }
                "RequestExpired" | "ExpiredToken" | "ExpiredTokenException" => {
                    CloudErrorKind::ExpiredCredentials
                }
                "AuthFailure"
                | "OptInRequired"
                | "InvalidClientTokenId"
                | "UnrecognizedClientException" => CloudErrorKind::RegionNotEnabled,
                "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => {
                    CloudErrorKind::Throttled
                }
                "InvalidKeyPair.Duplicate" => CloudErrorKind::Duplicate,
                "InvalidKeyPair.Format" | "InvalidKey.Format" => CloudErrorKind::InvalidKey,
                _ => CloudErrorKind::Other,
            };
            let text = inner.message().unwrap_or("no message");
            (kind, format!("{code}: {text}"))
        }
        SdkError::TimeoutError(_) => (
            CloudErrorKind::Unreachable,
            "the request timed out".to_owned(),
        ),
        SdkError::ResponseError(_) => (
            CloudErrorKind::Other,
            "the service sent a response labctl could not read (is the endpoint an EC2 API?)"
                .to_owned(),
        ),
        other => {
            let text = DisplayErrorContext(other).to_string();
            let lowered = text.to_lowercase();
            if lowered.contains("credential") && lowered.contains("expired") {
                (
                    CloudErrorKind::ExpiredCredentials,
                    "the AWS credentials have expired".to_owned(),
                )
            } else if lowered.contains("credential") {
                (
                    CloudErrorKind::NoCredentials,
                    "no AWS credentials were found".to_owned(),
                )
            } else if let SdkError::DispatchFailure(failure) = other
                && (failure.is_io() || failure.is_timeout())
            {
                (
                    CloudErrorKind::Unreachable,
                    format!("cannot connect to the endpoint ({})", short(&text)),
                )
            } else {
                (CloudErrorKind::Other, short(&text))
            }
        }
    };
    tracing::debug!(operation, region = %region, ?kind, %message, "request failed");
    CloudError {
        kind,
        operation,
        region: region.to_string(),
        message,
    }
}

/// The SDK's error chains end in debug dumps; keep the readable causes before the first
/// dump, e.g. "io error: client error: tcp connect error: Connection refused".
fn short(text: &str) -> String {
    let readable = text.split(" (").next().unwrap_or(text);
    let mut out = String::new();
    for part in readable.split(": ") {
        let part = part.trim();
        if part.is_empty() || part.contains(['{', '}', '(', ')']) || out.contains(part) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(part);
    }
    if out.is_empty() {
        "the request failed".to_owned()
    } else {
        out
    }
}

fn tags_of(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn remote_of(k: &aws_sdk_ec2::types::KeyPairInfo) -> Option<RemoteKeyPair> {
    Some(RemoteKeyPair {
        name: k.key_name()?.to_owned(),
        id: k.key_pair_id().map(str::to_owned),
        fingerprint: k.key_fingerprint().map(str::to_owned),
        key_type: k.key_type().and_then(|t| KeyType::parse(t.as_str())),
        public_key: k.public_key().and_then(PublicKey::from_openssh),
        tags: tags_of(k.tags()),
    })
}

impl Cloud for Ec2 {
    async fn find_key_pair(
        &self,
        region: &Region,
        name: &KeyName,
    ) -> Result<Option<RemoteKeyPair>, CloudError> {
        const OP: &str = "DescribeKeyPairs";
        // A filter, not KeyNames: a missing name is an empty answer, not an error.
        let output = self
            .client(region, OP)
            .await?
            .describe_key_pairs()
            .include_public_key(true)
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("key-name")
                    .values(name.as_str())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| convert(OP, region, &e))?;
        Ok(output
            .key_pairs()
            .iter()
            .filter_map(remote_of)
            .find(|k| k.name == name.as_str()))
    }

    async fn describe_key_pairs(&self, region: &Region) -> Result<Vec<RemoteKeyPair>, CloudError> {
        const OP: &str = "DescribeKeyPairs";
        let output = self
            .client(region, OP)
            .await?
            .describe_key_pairs()
            .include_public_key(true)
            .send()
            .await
            .map_err(|e| convert(OP, region, &e))?;
        Ok(output.key_pairs().iter().filter_map(remote_of).collect())
    }

    async fn create_key_pair(
        &self,
        region: &Region,
        name: &KeyName,
        key_type: KeyType,
        tags: &TagSet,
    ) -> Result<CreatedKeyPair, CloudError> {
        const OP: &str = "CreateKeyPair";
        let output = self
            .client(region, OP)
            .await?
            .create_key_pair()
            .key_name(name.as_str())
            .key_type(sdk_key_type(key_type))
            .key_format(KeyFormat::Pem)
            .tag_specifications(tag_specification(tags))
            .send()
            .await
            .map_err(|e| convert(OP, region, &e))?;
        let id = output.key_pair_id().map(str::to_owned);
        let material = output
            .key_material
            .map(Secret::new)
            .ok_or_else(|| CloudError {
                kind: CloudErrorKind::Other,
                operation: OP,
                region: region.to_string(),
                message: "EC2 returned no private key".to_owned(),
            })?;
        Ok(CreatedKeyPair { id, material })
    }

    async fn import_key_pair(
        &self,
        region: &Region,
        name: &KeyName,
        public_key: &PublicKey,
        tags: &TagSet,
    ) -> Result<RemoteKeyPair, CloudError> {
        const OP: &str = "ImportKeyPair";
        let output = self
            .client(region, OP)
            .await?
            .import_key_pair()
            .key_name(name.as_str())
            .public_key_material(aws_smithy_types::Blob::new(
                public_key.to_openssh().into_bytes(),
            ))
            .tag_specifications(tag_specification(tags))
            .send()
            .await
            .map_err(|e| convert(OP, region, &e))?;
        Ok(RemoteKeyPair {
            name: name.to_string(),
            id: output.key_pair_id().map(str::to_owned),
            fingerprint: output.key_fingerprint().map(str::to_owned),
            key_type: KeyType::parse(public_key.key_type()),
            public_key: Some(public_key.clone()),
            tags: tags_of(output.tags()),
        })
    }

    async fn delete_key_pair(
        &self,
        region: &Region,
        name: &KeyName,
        expected_id: Option<&str>,
    ) -> Result<(), CloudError> {
        const OP: &str = "DeleteKeyPair";
        // Delete by name (the local EC2 server ignores `KeyPairId` on delete), after making
        // sure the name still stands for the key pair labctl saw.
        if let Some(expected) = expected_id {
            match self.find_key_pair(region, name).await? {
                None => return Ok(()),
                Some(found) if found.id.as_deref() == Some(expected) => {}
                Some(found) => {
                    return Err(CloudError {
                        kind: CloudErrorKind::Changed,
                        operation: OP,
                        region: region.to_string(),
                        message: format!(
                            "key pair `{name}` is now {}, not {expected} as labctl saw it; nothing was deleted",
                            found.id.as_deref().unwrap_or("without an id")
                        ),
                    });
                }
            }
        }
        self.client(region, OP)
            .await?
            .delete_key_pair()
            .key_name(name.as_str())
            .send()
            .await
            .map_err(|e| convert(OP, region, &e))?;
        Ok(())
    }

    async fn create_tags(
        &self,
        region: &Region,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        const OP: &str = "CreateTags";
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        self.client(region, OP)
            .await?
            .create_tags()
            .set_resources(Some(ids.to_vec()))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| convert(OP, region, &e))?;
        Ok(())
    }

    async fn delete_tags(
        &self,
        region: &Region,
        ids: &[String],
        keys: &[String],
    ) -> Result<(), CloudError> {
        const OP: &str = "DeleteTags";
        let tags = keys.iter().map(|k| Tag::builder().key(k).build()).collect();
        self.client(region, OP)
            .await?
            .delete_tags()
            .set_resources(Some(ids.to_vec()))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| convert(OP, region, &e))?;
        Ok(())
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.counter
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
