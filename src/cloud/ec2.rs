//! The [`Cloud`] trait over the real `aws-sdk-ec2` client.
//!
//! Credentials and settings come from aws-config's standard chain. Every request is counted
//! by an interceptor (once per attempt, so retries count). SDK errors are turned into
//! [`CloudError`]s here and go no further.
//!
//! Retrying is labctl's, not the SDK's (whose retries are off): a throttling answer slows
//! the pacer for that region and action and is retried until the run's deadline, never
//! counting as an attempt; a real error that may pass (a timeout, a cut connection, HTTP 5xx)
//! is retried with jittered exponential backoff up to `--max-attempts`; anything else is
//! returned at once. So a throttled burst never costs a key, and a dead endpoint fails fast.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use aws_sdk_ec2::Client;

use aws_sdk_ec2::types::{KeyFormat, ResourceType, Tag, TagSpecification};

use super::config::{CallCounter, host_of, shared_config};
use super::sts::{Role, RoleCredentials};
use super::{Cloud, CloudError, CloudErrorKind, CreatedKeyPair, Pacer};
use crate::desired::{KeyName, KeyType, Reach, TagSet};
use crate::keys::{PublicKey, Secret};
use crate::resource::{Account, RemoteKeyPair, Scope};

/// What a member account that is the caller's own is said to be (and how the session knows
/// a former record of it can be forgotten: the caller's own scopes are read directly).
pub(crate) const OWN_ACCOUNT: &str = "is the caller's own account";

/// How to reach EC2.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ec2Options {
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    /// Attempts per request, the first included (the SDK retries with backoff).
    pub max_attempts: u32,
    /// The longest one attempt may take.
    pub attempt_timeout: Duration,
    /// Pace requests at EC2's published rates times this factor; `None` does not pace.
    pub pace: Option<f64>,
    /// Nothing is retried after this moment (the run's `--timeout`).
    pub deadline: Option<tokio::time::Instant>,
    /// Once requested (Ctrl-C, SIGTERM), no request that changes anything is sent any more,
    /// however long it has waited for its turn.
    pub stop: crate::stop::Stop,
}

/// One scope's clients: EC2, and SSM (the team store) with the same credentials.
#[derive(Clone, Debug)]
pub(super) struct ScopeClients {
    pub ec2: Client,
    pub ssm: aws_sdk_ssm::Client,
    /// The host they talk to (named in errors).
    pub host: String,
}

/// EC2 through `aws-sdk-ec2`, one client per scope.
#[derive(Debug)]
pub(crate) struct Ec2 {
    /// Each scope's clients and the host they talk to (named in errors).
    pub(super) clients: HashMap<Scope, ScopeClients>,
    /// Each member account's role (its clients' credentials).
    pub(super) roles: Vec<Arc<Role>>,
    /// STS with the caller's own credentials, when the caller's account is used too.
    pub(super) caller: Option<aws_sdk_sts::Client>,
    pub(super) counter: CallCounter,
    pub(super) pacer: Pacer,
    pub(super) max_attempts: u32,
    pub(super) deadline: Option<tokio::time::Instant>,
    /// Ctrl-C or SIGTERM: nothing that changes anything is sent any more.
    pub(super) stop: crate::stop::Stop,
    /// Throttling answers so far (for the progress display).
    pub(super) throttled: std::sync::atomic::AtomicU64,
    /// Retries after real errors so far (for the progress display).
    pub(super) retried: std::sync::atomic::AtomicU64,
    /// The `--profile` asked for (named in credential errors).
    pub(super) profile: Option<String>,
}

impl Ec2 {
    /// Load the AWS configuration and make a client for each scope: the caller's own
    /// credentials in the caller's account, each member account's role (`accounts`) in its.
    /// `spare`: scopes of the caller's own account to have clients for without reading them
    /// unless asked (the regions of a member account that may turn out to be the caller's).
    pub(crate) async fn new(
        options: &Ec2Options,
        scopes: &[Scope],
        spare: &[Scope],
        accounts: &[Reach],
    ) -> Self {
        let shared = shared_config(options).await;
        let counter = CallCounter::default();
        let mut roles: HashMap<String, Arc<Role>> = HashMap::new();
        let clients = scopes
            .iter()
            .chain(spare)
            .filter_map(|scope| {
                let mut config = aws_sdk_ec2::config::Builder::from(&shared)
                    .region(aws_sdk_ec2::config::Region::new(
                        scope.region.as_str().to_owned(),
                    ))
                    .interceptor(counter.clone());
                let mut ssm = aws_sdk_ssm::config::Builder::from(&shared)
                    .region(aws_sdk_ssm::config::Region::new(
                        scope.region.as_str().to_owned(),
                    ))
                    .interceptor(counter.clone());
                let host = host_of(options.endpoint_url.as_deref(), &scope.region);
                if let Account::Member(member) = &scope.account {
                    // A member account's scope without its role has no client at all (never
                    // the caller's credentials): its requests fail as unreachable.
                    let reach = accounts.iter().find(|r| r.account == *member)?;
                    // STS in the account's first region (a regional endpoint).
                    let role = roles.entry(member.id.clone()).or_insert_with(|| {
                        let sts_host = options.endpoint_url.as_deref().map_or_else(
                            || format!("sts.{}.amazonaws.com", scope.region),
                            |url| host_of(Some(url), &scope.region),
                        );
                        Role::new(
                            &shared,
                            reach.clone(),
                            scope.clone(),
                            sts_host,
                            options.profile.clone(),
                        )
                    });
                    let credentials = aws_sdk_ec2::config::SharedCredentialsProvider::new(
                        RoleCredentials(Arc::clone(role)),
                    );
                    config = config.credentials_provider(credentials.clone());
                    ssm = ssm.credentials_provider(credentials);
                }
                let clients = ScopeClients {
                    ec2: Client::from_conf(config.build()),
                    ssm: aws_sdk_ssm::Client::from_conf(ssm.build()),
                    host,
                };
                Some((scope.clone(), clients))
            })
            .collect();
        let pacer = match options.pace {
            Some(scale) => Pacer::scaled(scale),
            None => Pacer::none(),
        };
        let caller = scopes
            .iter()
            .any(|s| s.account == Account::Caller)
            .then(|| aws_sdk_sts::Client::new(&shared));
        Ec2 {
            clients,
            roles: roles.into_values().collect(),
            caller,
            counter,
            pacer,
            max_attempts: options.max_attempts.max(1),
            deadline: options.deadline,
            stop: options.stop.clone(),
            throttled: std::sync::atomic::AtomicU64::new(0),
            retried: std::sync::atomic::AtomicU64::new(0),
            profile: options.profile.clone(),
        }
    }

    /// Reach every member account before anything is read or changed: assume each role
    /// (concurrently) and, when the caller's own account is used too, make sure no member
    /// account is the caller's (its key pairs would be seen twice, once as orphans). Returns
    /// each account that failed, with why.
    pub(crate) async fn reach_accounts(&self) -> Vec<(Reach, CloudError)> {
        let mut tasks = tokio::task::JoinSet::new();
        for role in &self.roles {
            let role = Arc::clone(role);
            tasks.spawn(async move {
                let result = role.credentials().await;
                (role.reach().clone(), result.err())
            });
        }
        let mut failed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((reach, Some(err))) = joined {
                failed.push((reach, err));
            }
        }
        if !self.roles.is_empty()
            && let Some(sts) = &self.caller
        {
            self.apart_from_the_caller(sts, &mut failed).await;
        }
        failed.sort_by(|a, b| a.0.account.cmp(&b.0.account));
        failed
    }

    /// Whatever else failed: no member account may be the caller's own when the caller's own
    /// scopes are read too (its key pairs would be seen twice, and each copy would look like
    /// an orphan of the other). When the caller's account cannot be told, every member
    /// account fails with why: the manifest's stop the run, former ones are left out.
    async fn apart_from_the_caller(
        &self,
        sts: &aws_sdk_sts::Client,
        failed: &mut Vec<(Reach, CloudError)>,
    ) {
        let Some(scope) = self.clients.keys().find(|s| s.account == Account::Caller) else {
            return;
        };
        let own = super::sts::caller_account(sts, scope, self.profile.as_deref()).await;
        for role in &self.roles {
            let reach = role.reach();
            let why = match &own {
                Ok(own) if *own == reach.account.id => format!(
                    "account {} {OWN_ACCOUNT}, which entries without an account use too: its key pairs would be seen twice",
                    reach.account.id
                ),
                Ok(_) => continue,
                Err(err) => format!(
                    "the caller's own account could not be told apart from it ({})",
                    err.message
                ),
            };
            failed.retain(|(r, _)| r.account != reach.account);
            failed.push((
                reach.clone(),
                CloudError {
                    kind: CloudErrorKind::Other,
                    operation: "GetCallerIdentity",
                    scope: reach.account.name.clone(),
                    message: why,
                },
            ));
        }
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
        scope: &Scope,
        name: &KeyName,
    ) -> Result<Option<RemoteKeyPair>, CloudError> {
        const OP: &str = "DescribeKeyPairs";
        // A filter, not KeyNames: a missing name is an empty answer, not an error.
        let output = self
            .send(scope, OP, |client| {
                client
                    .describe_key_pairs()
                    .include_public_key(true)
                    .filters(
                        aws_sdk_ec2::types::Filter::builder()
                            .name("key-name")
                            .values(name.as_str())
                            .build(),
                    )
                    .send()
            })
            .await?;
        Ok(output
            .key_pairs()
            .iter()
            .filter_map(remote_of)
            .find(|k| k.name == name.as_str()))
    }

    async fn describe_key_pairs(&self, scope: &Scope) -> Result<Vec<RemoteKeyPair>, CloudError> {
        const OP: &str = "DescribeKeyPairs";
        let output = self
            .send(scope, OP, |client| {
                client.describe_key_pairs().include_public_key(true).send()
            })
            .await?;
        Ok(output.key_pairs().iter().filter_map(remote_of).collect())
    }

    async fn create_key_pair(
        &self,
        scope: &Scope,
        name: &KeyName,
        key_type: KeyType,
        tags: &TagSet,
    ) -> Result<CreatedKeyPair, CloudError> {
        const OP: &str = "CreateKeyPair";
        let output = self
            .send(scope, OP, |client| {
                client
                    .create_key_pair()
                    .key_name(name.as_str())
                    .key_type(sdk_key_type(key_type))
                    .key_format(KeyFormat::Pem)
                    .tag_specifications(tag_specification(tags))
                    .send()
            })
            .await?;
        let id = output.key_pair_id().map(str::to_owned);
        let fingerprint = output.key_fingerprint().map(str::to_owned);
        let material = output
            .key_material
            .map(Secret::new)
            .ok_or_else(|| CloudError {
                kind: CloudErrorKind::Other,
                operation: OP,
                scope: scope.to_string(),
                message: "EC2 returned no private key".to_owned(),
            })?;
        Ok(CreatedKeyPair {
            id,
            fingerprint,
            material,
        })
    }

    async fn import_key_pair(
        &self,
        scope: &Scope,
        name: &KeyName,
        public_key: &PublicKey,
        tags: &TagSet,
    ) -> Result<RemoteKeyPair, CloudError> {
        const OP: &str = "ImportKeyPair";
        let output = self
            .send(scope, OP, |client| {
                client
                    .import_key_pair()
                    .key_name(name.as_str())
                    .public_key_material(aws_smithy_types::Blob::new(
                        public_key.to_openssh().into_bytes(),
                    ))
                    .tag_specifications(tag_specification(tags))
                    .send()
            })
            .await?;
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
        scope: &Scope,
        name: &KeyName,
        expected_id: Option<&str>,
    ) -> Result<(), CloudError> {
        const OP: &str = "DeleteKeyPair";
        // Delete by name (the local EC2 server ignores `KeyPairId` on delete), after making
        // sure the name still stands for the key pair labctl saw.
        if let Some(expected) = expected_id {
            match self.find_key_pair(scope, name).await? {
                // Gone, or not listed yet (EC2's listing lags behind a create): deleting by
                // name is right either way.
                None => {}
                Some(found) if found.id.as_deref() == Some(expected) => {}
                Some(found) => {
                    return Err(CloudError {
                        kind: CloudErrorKind::Changed,
                        operation: OP,
                        scope: scope.to_string(),
                        message: format!(
                            "key pair `{name}` is now {}, not {expected} as labctl saw it; nothing was deleted",
                            found.id.as_deref().unwrap_or("without an id")
                        ),
                    });
                }
            }
        }
        self.send(scope, OP, |client| {
            client.delete_key_pair().key_name(name.as_str()).send()
        })
        .await?;
        Ok(())
    }

    async fn create_tags(
        &self,
        scope: &Scope,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        const OP: &str = "CreateTags";
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        self.send(scope, OP, |client| {
            client
                .create_tags()
                .set_resources(Some(ids.to_vec()))
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await?;
        Ok(())
    }

    async fn delete_tags(
        &self,
        scope: &Scope,
        ids: &[String],
        keys: &[String],
    ) -> Result<(), CloudError> {
        const OP: &str = "DeleteTags";
        let tags: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(k).build()).collect();
        self.send(scope, OP, |client| {
            client
                .delete_tags()
                .set_resources(Some(ids.to_vec()))
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await?;
        Ok(())
    }

    async fn read_stored(
        &self,
        scope: &Scope,
        ids: &[String],
    ) -> Result<BTreeMap<String, Secret>, CloudError> {
        self.ssm_read(scope, ids).await
    }

    async fn list_stored(
        &self,
        scope: &Scope,
        project: &str,
    ) -> Result<std::collections::BTreeSet<String>, CloudError> {
        self.ssm_list(scope, project).await
    }

    async fn stored_is_tagged(&self, scope: &Scope, id: &str) -> Result<bool, CloudError> {
        self.ssm_is_tagged(scope, id).await
    }

    async fn get_stored(&self, scope: &Scope, id: &str) -> Result<Option<Secret>, CloudError> {
        self.ssm_get(scope, id).await
    }

    async fn put_stored(
        &self,
        scope: &Scope,
        id: &str,
        secret: &Secret,
        kms_key_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        self.ssm_put(scope, id, secret, kms_key_id, tags).await
    }

    async fn tag_stored(
        &self,
        scope: &Scope,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        self.ssm_tag(scope, id, tags).await
    }

    async fn delete_stored(&self, scope: &Scope, id: &str) -> Result<(), CloudError> {
        self.ssm_delete(scope, id).await
    }

    fn throttled(&self) -> u64 {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn retried(&self) -> u64 {
        self.retried.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.counter
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
