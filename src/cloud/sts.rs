//! Credentials for member accounts: the caller's own credentials (profile, SSO, environment,
//! instance role) assume each account's role with STS `AssumeRole`, once per run; the answer
//! is kept in memory for the run and renewed before it expires. Never written anywhere.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::config::{Credentials, ProvideCredentials};
use aws_sdk_sts::Client;
use aws_sdk_sts::error::ProvideErrorMetadata;

use super::CloudError;
use super::classify::{backoff, convert, transient};
use crate::desired::Reach;
use crate::resource::Scope;

/// Attempts at an STS request, the first included, when failures may pass.
const ATTEMPTS: u32 = 5;

/// Credentials with less than this left are renewed (a long run outlives an hour's session).
const RENEW_BEFORE: Duration = Duration::from_mins(5);

/// The account of the caller's own credentials (`GetCallerIdentity`, which needs no
/// permission), asked again like `AssumeRole` when the failure may pass.
pub(super) async fn caller_account(
    client: &Client,
    scope: &Scope,
    profile: Option<&str>,
) -> Result<String, CloudError> {
    let me = retried(|| client.get_caller_identity().send())
        .await
        .map_err(|err| convert("GetCallerIdentity", scope, "sts", profile, &err))?;
    me.account().map(str::to_owned).ok_or_else(|| CloudError {
        kind: super::CloudErrorKind::Other,
        operation: "GetCallerIdentity",
        scope: scope.to_string(),
        message: "STS did not say the caller's account".to_owned(),
    })
}

/// Send an STS request, again after a failure that may pass (a server error, a cut
/// connection) or throttling, up to [`ATTEMPTS`] times with backoff (longer after
/// throttling).
async fn retried<T, E, F, Fut>(
    mut call: F,
) -> Result<
    T,
    aws_sdk_sts::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<
            Output = Result<
                T,
                aws_sdk_sts::error::SdkError<
                    E,
                    aws_smithy_runtime_api::client::orchestrator::HttpResponse,
                >,
            >,
        >,
    E: ProvideErrorMetadata,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        match call().await {
            Err(err) if attempts < ATTEMPTS && throttled(&err) => {
                tokio::time::sleep(backoff(attempts + 2)).await;
            }
            Err(err) if attempts < ATTEMPTS && transient(&err) => {
                tokio::time::sleep(backoff(attempts)).await;
            }
            other => return other,
        }
    }
}

/// Whether STS answered that it is throttling (sent again after a pause, like a failure
/// that may pass).
fn throttled<E: ProvideErrorMetadata>(err: &E) -> bool {
    matches!(
        err.code(),
        Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded")
    )
}

/// Whether credentials expiring at `expiry` serve a run at `now` without renewal: at least
/// [`RENEW_BEFORE`] left (a long run renews them before any request can meet an expired
/// session).
fn still_good(expiry: Option<SystemTime>, now: SystemTime) -> bool {
    expiry.is_none_or(|at| at > now + RENEW_BEFORE)
}

/// One member account's role, and its credentials once assumed.
#[derive(Debug)]
pub(super) struct Role {
    client: Client,
    reach: Reach,
    /// The scope it is assumed for (its first region): named in errors.
    scope: Scope,
    host: String,
    /// The `--profile` whose credentials assume the role (named in credential errors).
    profile: Option<String>,
    held: tokio::sync::Mutex<Option<Credentials>>,
}

impl Role {
    /// The role of `reach`, assumed through STS in `scope`'s region with the caller's
    /// credentials from `shared` (its endpoint: `--endpoint-url`, `AWS_ENDPOINT_URL`,
    /// `AWS_ENDPOINT_URL_STS`).
    pub(super) fn new(
        shared: &aws_config::SdkConfig,
        reach: Reach,
        scope: Scope,
        host: String,
        profile: Option<String>,
    ) -> Arc<Self> {
        let config = aws_sdk_sts::config::Builder::from(shared)
            .region(aws_sdk_sts::config::Region::new(
                scope.region.as_str().to_owned(),
            ))
            .build();
        Arc::new(Role {
            client: Client::from_conf(config),
            reach,
            scope,
            host,
            profile,
            held: tokio::sync::Mutex::new(None),
        })
    }

    pub(super) fn reach(&self) -> &Reach {
        &self.reach
    }

    /// The role's credentials: the ones held while they have [`RENEW_BEFORE`] left, else
    /// assumed again (one request at a time per account).
    pub(super) async fn credentials(&self) -> Result<Credentials, CloudError> {
        let mut held = self.held.lock().await;
        if let Some(credentials) = held.as_ref()
            && still_good(credentials.expiry(), SystemTime::now())
        {
            return Ok(credentials.clone());
        }
        let fresh = self.assume().await?;
        *held = Some(fresh.clone());
        Ok(fresh)
    }

    /// `AssumeRole`, sent again after a failure that may pass (a timeout, a cut
    /// connection, a server error) a few times with backoff.
    async fn assume(&self) -> Result<Credentials, CloudError> {
        let answer = retried(|| {
            let mut request = self
                .client
                .assume_role()
                .role_arn(&self.reach.role_arn)
                .role_session_name(&self.reach.session_name);
            if let Some(external_id) = &self.reach.external_id {
                request = request.external_id(external_id);
            }
            request.send()
        })
        .await
        .map_err(|err| {
            convert(
                "AssumeRole",
                &self.scope,
                &self.host,
                self.profile.as_deref(),
                &err,
            )
        })?;
        self.credentials_of(&answer)
    }

    /// The credentials of an `AssumeRole` answer, only when they are the account's: the
    /// session STS made must be in the account this role stands for (a role ARN from a
    /// hand-edited state file that leads into another account would make every key pair
    /// there look like an orphan of this one).
    fn credentials_of(
        &self,
        answer: &aws_sdk_sts::operation::assume_role::AssumeRoleOutput,
    ) -> Result<Credentials, CloudError> {
        let refused = |message: String| CloudError {
            kind: super::CloudErrorKind::Other,
            operation: "AssumeRole",
            scope: self.scope.to_string(),
            message,
        };
        let session_account = answer
            .assumed_role_user()
            .and_then(|user| user.arn().split(':').nth(4).map(str::to_owned));
        if session_account.as_deref() != Some(self.reach.account.id.as_str()) {
            return Err(refused(format!(
                "the role {} gave a session in account {}, not in {}: labctl does not use it",
                self.reach.role_arn,
                session_account.as_deref().unwrap_or("(not said)"),
                self.reach.account.id
            )));
        }
        let Some(given) = answer.credentials() else {
            return Err(refused("STS answered without credentials".to_owned()));
        };
        tracing::debug!(account = %self.reach.account.id, role = %self.reach.role_arn, "assumed the account's role");
        Ok(Credentials::new(
            given.access_key_id(),
            given.secret_access_key(),
            Some(given.session_token().to_owned()),
            SystemTime::try_from(*given.expiration()).ok(),
            "labctl-assume-role",
        ))
    }
}

/// A member account's role as the credentials of its EC2 clients.
#[derive(Debug)]
pub(super) struct RoleCredentials(pub(super) Arc<Role>);

impl ProvideCredentials for RoleCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            self.0.credentials().await.map_err(|err| {
                aws_credential_types::provider::error::CredentialsError::provider_error(format!(
                    "assuming the role of account {}: {}",
                    self.0.reach.account.name, err.message
                ))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::still_good;

    #[test]
    fn credentials_are_renewed_before_they_expire() {
        let now = SystemTime::now();
        assert!(still_good(Some(now + Duration::from_hours(1)), now));
        assert!(still_good(None, now));
        // Six minutes left: still used; four: renewed before a request meets the expiry.
        assert!(still_good(Some(now + Duration::from_mins(6)), now));
        assert!(!still_good(Some(now + Duration::from_mins(4)), now));
        assert!(!still_good(Some(now - Duration::from_secs(1)), now));
    }
}
