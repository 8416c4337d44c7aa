//! The cloud behind one small trait: read a scope's key pairs, create, import, delete.
//!
//! The trait speaks labctl's domain types. SDK types and errors stop at this border (only
//! `ec2.rs` imports `aws-sdk-ec2`), converted into [`CloudError`]s that say which scope and
//! key pair failed and what to do about it.

mod classify;
mod config;
mod ec2;
#[cfg(test)]
pub(crate) mod memory;
mod offline;
mod pacer;
mod profile;
mod s3;
mod send;
mod ssm;
mod sts;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

pub(crate) use ec2::{Ec2, Ec2Options, OWN_ACCOUNT};
pub(crate) use offline::Offline;
pub(crate) use pacer::Pacer;
pub(crate) use profile::undefined_profile;
pub(crate) use s3::{Bucket, Etag};
pub(crate) use ssm::stored_name;

use crate::desired::{KeyName, KeyType, TagSet};
use crate::keys::{PublicKey, Secret};
use crate::resource::{RemoteKeyPair, Scope};

/// How long EC2's `DescribeKeyPairs` may lag behind a create, import or delete (eventual
/// consistency): every look for what a write did waits at most this long. The one window.
pub(crate) const LISTING_LAG: std::time::Duration = std::time::Duration::from_secs(10);

/// The pauses between looks while EC2's listing catches up with a write: 0.25 s, 0.5 s, 1 s,
/// then every 2 s (a few requests per [`LISTING_LAG`] window), never past `until`.
pub(crate) struct LagLooks {
    pause: std::time::Duration,
    until: tokio::time::Instant,
}

impl LagLooks {
    /// Looks for `window` from now.
    pub(crate) fn for_window(window: std::time::Duration) -> Self {
        LagLooks {
            pause: std::time::Duration::from_millis(250),
            until: tokio::time::Instant::now() + window,
        }
    }

    /// Whether the window has passed.
    pub(crate) fn over(&self) -> bool {
        tokio::time::Instant::now() >= self.until
    }

    /// Wait before the next look.
    pub(crate) async fn pause(&mut self) {
        let left = self
            .until
            .saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(self.pause.min(left)).await;
        self.pause = (self.pause * 2).min(std::time::Duration::from_secs(2));
    }
}

/// What `CreateKeyPair` returns: the only moment EC2 hands out the private key.
#[derive(Debug)]
pub(crate) struct CreatedKeyPair {
    pub id: Option<String>,
    /// The fingerprint EC2 gave in the same answer: with the material's own, proof that the
    /// material arrived whole (see `apply`'s `prove_created`).
    pub fingerprint: Option<String>,
    pub material: Secret,
}

/// A cloud without a team store (no network).
fn no_store(scope: &Scope, operation: &'static str) -> CloudError {
    CloudError {
        kind: CloudErrorKind::Other,
        operation,
        scope: scope.to_string(),
        message: "no team store here".to_owned(),
    }
}

/// What kind of failure, for the hint and for the caller's decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloudErrorKind {
    NoCredentials,
    ExpiredCredentials,
    AccessDenied,
    Unreachable,
    RegionNotEnabled,
    Throttled,
    /// The key pair exists already (someone created it since labctl looked).
    Duplicate,
    /// EC2 refused the public key.
    InvalidKey,
    /// What the request names does not exist (a store entry, a state object).
    NotFound,
    /// The key pair is not the one labctl looked at (another one now has its name).
    Changed,
    /// Not sent: the run was stopped (Ctrl-C, SIGTERM) or its `--timeout` passed before it
    /// could be; EC2 never heard of it.
    NotSent,
    Other,
}

impl CloudErrorKind {
    /// The failure concerns the whole scope (its endpoint, its credentials, its region):
    /// nothing more is started there.
    pub(crate) fn is_scope_wide(self) -> bool {
        matches!(
            self,
            CloudErrorKind::Unreachable
                | CloudErrorKind::NoCredentials
                | CloudErrorKind::ExpiredCredentials
                | CloudErrorKind::RegionNotEnabled
        )
    }

    /// EC2 refused the request itself (who sent it, where, or what it carried): the last
    /// answer says nothing of what an earlier attempt did.
    pub(crate) fn is_refusal(self) -> bool {
        matches!(
            self,
            CloudErrorKind::NoCredentials
                | CloudErrorKind::ExpiredCredentials
                | CloudErrorKind::AccessDenied
                | CloudErrorKind::RegionNotEnabled
                | CloudErrorKind::InvalidKey
        )
    }

    /// EC2 may have carried the request out though labctl never saw the answer (a cut
    /// connection, a timeout, throttling or a server error after an earlier attempt).
    pub(crate) fn may_have_acted(self) -> bool {
        matches!(
            self,
            CloudErrorKind::Unreachable | CloudErrorKind::Throttled | CloudErrorKind::Other
        )
    }
}

/// A failed call to the cloud, naming the operation and the scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudError {
    pub kind: CloudErrorKind,
    pub operation: &'static str,
    /// The scope it concerned, as people read it (its region, in the caller's account).
    pub scope: String,
    /// The service's own words (never key material: requests and responses are not quoted).
    pub message: String,
}

impl CloudError {
    /// A request's task ended without an answer (it panicked or was cancelled).
    pub(crate) fn task_failed(operation: &'static str, err: &tokio::task::JoinError) -> Self {
        CloudError {
            kind: CloudErrorKind::Other,
            operation,
            scope: String::new(),
            message: format!("the request task failed: {err}"),
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        match self.kind {
            CloudErrorKind::NoCredentials => {
                "configure AWS credentials: `aws configure`, `aws sso login --profile NAME` with --profile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            }
            CloudErrorKind::ExpiredCredentials => {
                "the credentials have expired: log in again (`aws sso login`) or refresh the session token"
            }
            CloudErrorKind::AccessDenied => {
                "the identity lacks permission: labctl needs ec2:DescribeKeyPairs, ec2:CreateKeyPair, ec2:ImportKeyPair, ec2:DeleteKeyPair, ec2:CreateTags and ec2:DeleteTags"
            }
            CloudErrorKind::Unreachable => {
                "check the network, or --endpoint-url / AWS_ENDPOINT_URL if you set one"
            }
            CloudErrorKind::RegionNotEnabled => {
                "enable the region for the account (AWS console: Account > AWS Regions), or remove it from the manifest"
            }
            CloudErrorKind::Throttled => {
                "EC2 is throttling requests; run again in a minute, or lower --concurrency"
            }
            CloudErrorKind::Duplicate => {
                "another process created this key pair since labctl looked; run `labctl plan` to see the new state"
            }
            CloudErrorKind::InvalidKey => "EC2 refused the public key; check the key file",
            CloudErrorKind::NotFound => {
                "it does not exist (any more); run `labctl plan` to see the new state"
            }
            CloudErrorKind::Changed => {
                "the key pair was replaced since labctl looked, and the new one was left alone; run `labctl plan` to see the new state"
            }
            CloudErrorKind::NotSent => "run the command again: it picks up where this one stopped",
            CloudErrorKind::Other => "run again with -v for more detail",
        }
    }
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in {} failed: {}",
            self.operation, self.scope, self.message
        )
    }
}

impl std::error::Error for CloudError {}

/// The cloud labctl manages key pairs in.
pub(crate) trait Cloud: Send + Sync + 'static {
    /// Every key pair of a scope (an account's region), with public keys: one request.
    fn describe_key_pairs(
        &self,
        scope: &Scope,
    ) -> impl Future<Output = Result<Vec<RemoteKeyPair>, CloudError>> + Send;

    /// Have EC2 generate a key pair; the private key is in the answer.
    fn create_key_pair(
        &self,
        scope: &Scope,
        name: &KeyName,
        key_type: KeyType,
        tags: &TagSet,
    ) -> impl Future<Output = Result<CreatedKeyPair, CloudError>> + Send;

    /// Import a public key as a key pair.
    fn import_key_pair(
        &self,
        scope: &Scope,
        name: &KeyName,
        public_key: &PublicKey,
        tags: &TagSet,
    ) -> impl Future<Output = Result<RemoteKeyPair, CloudError>> + Send;

    /// One key pair by name, or `None` (used to learn what a request whose answer was lost did).
    fn find_key_pair(
        &self,
        scope: &Scope,
        name: &KeyName,
    ) -> impl Future<Output = Result<Option<RemoteKeyPair>, CloudError>> + Send;

    /// Delete the key pair `name`, but only the one labctl saw: when `expected_id` is given
    /// and the key pair of that name now has another id (it was deleted and made again since
    /// labctl looked), nothing is deleted and the error is [`CloudErrorKind::Changed`]. A key
    /// pair already gone is not an error.
    fn delete_key_pair(
        &self,
        scope: &Scope,
        name: &KeyName,
        expected_id: Option<&str>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Set tags on key pairs (by id): one request for many key pairs.
    fn create_tags(
        &self,
        scope: &Scope,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Remove tags (by key) from key pairs (by id): one request for many key pairs.
    fn delete_tags(
        &self,
        scope: &Scope,
        ids: &[String],
        keys: &[String],
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The private keys the team store's entries (SSM parameters `/ec2/keypair/<id>`) of the
    /// key pairs `ids` hold (at most 10: one request), decrypted; an id with no entry is left
    /// out.
    fn read_stored(
        &self,
        scope: &Scope,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Secret>, CloudError>> + Send {
        let _ = ids;
        std::future::ready(Err(no_store(scope, "GetParameters")))
    }

    /// The key pair ids of every entry of the scope's team store that carries `project`'s
    /// `labctl:project` tag.
    fn list_stored(
        &self,
        scope: &Scope,
        project: &str,
    ) -> impl Future<Output = Result<std::collections::BTreeSet<String>, CloudError>> + Send {
        let _ = project;
        std::future::ready(Err(no_store(scope, "DescribeParameters")))
    }

    /// Whether the key pair `id`'s entry carries a `labctl:project` tag (any project's).
    fn stored_is_tagged(
        &self,
        scope: &Scope,
        id: &str,
    ) -> impl Future<Output = Result<bool, CloudError>> + Send {
        let _ = id;
        std::future::ready(Err(no_store(scope, "ListTagsForResource")))
    }

    /// The private key the team store holds for the key pair `id`, when it holds one.
    fn get_stored(
        &self,
        scope: &Scope,
        id: &str,
    ) -> impl Future<Output = Result<Option<Secret>, CloudError>> + Send {
        let _ = id;
        std::future::ready(Err(no_store(scope, "GetParameter")))
    }

    /// Keep `secret` as the key pair `id`'s entry: a SecureString (with `kms_key_id`, or
    /// the account's `alias/aws/ssm`), tagged `tags`, never over an existing entry
    /// ([`CloudErrorKind::Duplicate`] then).
    fn put_stored(
        &self,
        scope: &Scope,
        id: &str,
        secret: &Secret,
        kms_key_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send {
        let _ = (id, secret, kms_key_id, tags);
        std::future::ready(Err(no_store(scope, "PutParameter")))
    }

    /// Tag the key pair `id`'s entry (taking over an entry another tool wrote).
    fn tag_stored(
        &self,
        scope: &Scope,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send {
        let _ = (id, tags);
        std::future::ready(Err(no_store(scope, "AddTagsToResource")))
    }

    /// Delete the key pair `id`'s entry; one already gone is not an error.
    fn delete_stored(
        &self,
        scope: &Scope,
        id: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send {
        let _ = id;
        std::future::ready(Err(no_store(scope, "DeleteParameter")))
    }

    /// Requests sent so far, per operation, retries included.
    fn api_calls(&self) -> BTreeMap<String, u64>;

    /// Throttling answers so far (each was retried after slowing down).
    fn throttled(&self) -> u64 {
        0
    }

    /// Requests retried after a real error so far (a timeout, a cut connection, HTTP 5xx).
    fn retried(&self) -> u64 {
        0
    }
}
