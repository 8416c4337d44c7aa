//! What a failed EC2 request means: the one classification of SDK errors into labctl's
//! [`CloudErrorKind`]s (with words a person can act on), whether a request may be sent again,
//! and how long to wait first. The SDK error itself is never formatted: its debug form carries
//! the raw response, and the answer to `CreateKeyPair` is the private key.

use std::time::Duration;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::{CloudError, CloudErrorKind};
use crate::resource::Scope;

/// Whether a failed request may succeed when sent again: a timeout, a cut or refused
/// connection, an answer that could not be read, a server error.
pub(super) fn transient<E>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        // Every failure to get the request to EC2 and its answer back that is not the request's
        // own fault (refused, reset, a pooled connection the other end closed: hyper's "client
        // error") is the network's: retried, as `convert` calls it `Unreachable`. One rule.
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        SdkError::ServiceError(service) => service.raw().status().as_u16() >= 500,
        _ => false,
    }
}

/// Jittered exponential backoff before attempt `attempts + 1`: about 0.2, 0.4, 0.8 … s, at
/// most 5 s, each between half and all of that.
pub(super) fn backoff(attempts: u32) -> Duration {
    let base = Duration::from_millis(200)
        .saturating_mul(1 << attempts.saturating_sub(1).min(5))
        .min(Duration::from_secs(5));
    let jitter =
        0.5 + f64::from(rand_core::RngCore::next_u32(&mut rand_core::OsRng) % 500) / 1000.0;
    base.mul_f64(jitter)
}

/// Turn an SDK error into a [`CloudError`], classifying it for the hint.
pub(super) fn convert<E>(
    operation: &'static str,
    scope: &Scope,
    host: &str,
    profile: Option<&str>,
    err: &SdkError<E, HttpResponse>,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    // STS's operations (a member account's role) are named as STS's; the rest are EC2's.
    let api = match operation {
        "AssumeRole" | "GetCallerIdentity" => "STS",
        op if super::ssm::OPERATIONS.contains(&op) => "SSM",
        "HeadBucket" | "GetObject" | "PutObject" | "DeleteObject" => "S3",
        _ => "EC2",
    };
    // Never log the SDK error itself: its debug form carries the raw response, and the
    // answer to `CreateKeyPair` is the private key. Only the classified words below are shown.
    let (kind, message) = match err {
        SdkError::ServiceError(service) if service.err().code().is_none() => {
            // Not an EC2 error document: a proxy's or web server's answer (404, 502, …).
            let status = service.raw().status().as_u16();
            (
                if status >= 500 {
                    CloudErrorKind::Other
                } else {
                    CloudErrorKind::Unreachable
                },
                format!(
                    "{host} answered HTTP {status} without an {api} error: is it an {api} API endpoint?"
                ),
            )
        }
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().unwrap_or("Unknown");
            // A refused PutParameter's words may quote the value it carried (a private
            // key): only its code is shown.
            let text = if operation == "PutParameter" {
                "the service's message is not shown (it may quote the value)"
            } else {
                inner.message().unwrap_or("no message")
            };
            (kind_of_code(code), format!("{code}: {text}"))
        }
        SdkError::TimeoutError(_) => (
            CloudErrorKind::Unreachable,
            format!("{host} did not answer in time"),
        ),
        SdkError::ResponseError(_) => (
            CloudErrorKind::Other,
            format!(
                "the service sent a response labctl could not read (is the endpoint an {api} API?)"
            ),
        ),
        other => not_answered(other, host, profile),
    };
    tracing::debug!(operation, scope = %scope, ?kind, %message, "request failed");
    CloudError {
        kind,
        operation,
        scope: scope.to_string(),
        message,
    }
}

/// What an EC2 error code means for labctl: the one classification of service errors.
fn kind_of_code(code: &str) -> CloudErrorKind {
    match code {
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
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => CloudErrorKind::Throttled,
        "InvalidKeyPair.Duplicate" | "ParameterAlreadyExists" | "PreconditionFailed" => {
            CloudErrorKind::Duplicate
        }
        "InvalidKeyPair.Format" | "InvalidKey.Format" => CloudErrorKind::InvalidKey,
        "ParameterNotFound" | "NoSuchKey" | "NotFound" | "NoSuchBucket" => CloudErrorKind::NotFound,
        _ => CloudErrorKind::Other,
    }
}

/// A request that got no EC2 answer: credentials (the profile's, expired, none), the network,
/// or something else, in the SDK's own readable words.
fn not_answered<E>(
    other: &SdkError<E, HttpResponse>,
    host: &str,
    profile: Option<&str>,
) -> (CloudErrorKind, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = DisplayErrorContext(other).to_string();
    let lowered = text.to_lowercase();
    if let Some(profile) = profile
        && lowered.contains("profile")
        && (lowered.contains("not defined")
            || lowered.contains("not found")
            || lowered.contains("no profile")
            || lowered.contains("missing"))
    {
        (
            CloudErrorKind::NoCredentials,
            super::profile::not_defined(profile),
        )
    } else if let Some(profile) = profile
        && lowered.contains("credential")
        && !lowered.contains("expired")
    {
        (
            CloudErrorKind::NoCredentials,
            format!("no AWS credentials from the profile `{profile}`"),
        )
    } else if lowered.contains("credential") && lowered.contains("expired") {
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
        && !failure.is_user()
    {
        // Connection refused, reset, closed before an answer, timed out: the network
        // or the endpoint, not this request.
        (
            CloudErrorKind::Unreachable,
            format!("cannot connect to the endpoint {host} ({})", short(&text)),
        )
    } else {
        (CloudErrorKind::Other, short(&text))
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

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::error::SdkError;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::ConnectorError;

    fn dispatch(failure: ConnectorError) -> SdkError<std::io::Error, HttpResponse> {
        SdkError::dispatch_failure(failure)
    }

    /// A connection the other end closed ("client error", neither io nor timeout) is retried
    /// like a reset; a request labctl built wrong is not.
    #[test]
    fn network_failures_are_retried_and_the_requests_own_are_not() {
        let cause = || {
            Box::new(std::io::Error::other(
                "connection closed before message completed",
            ))
        };
        assert!(super::transient(&dispatch(ConnectorError::other(
            cause(),
            None
        ))));
        assert!(super::transient(&dispatch(ConnectorError::io(cause()))));
        assert!(super::transient(&dispatch(
            ConnectorError::timeout(cause())
        )));
        assert!(!super::transient(&dispatch(ConnectorError::user(cause()))));
    }

    /// Each EC2 error code labctl knows, and one it does not.
    #[test]
    fn error_codes_are_classified_once() {
        use super::kind_of_code;
        use crate::cloud::CloudErrorKind::*;
        for (code, kind) in [
            ("UnauthorizedOperation", AccessDenied),
            ("ExpiredToken", ExpiredCredentials),
            ("OptInRequired", RegionNotEnabled),
            ("RequestLimitExceeded", Throttled),
            ("InvalidKeyPair.Duplicate", Duplicate),
            ("InvalidKey.Format", InvalidKey),
            ("InternalError", Other),
        ] {
            assert_eq!(kind_of_code(code), kind, "{code}");
        }
    }

    /// What each kind means for the executor: stop the scope, look again, or neither.
    #[test]
    fn kinds_say_what_the_executor_does_next() {
        use crate::cloud::CloudErrorKind::*;
        for kind in [
            Unreachable,
            NoCredentials,
            ExpiredCredentials,
            RegionNotEnabled,
        ] {
            assert!(kind.is_scope_wide(), "{kind:?}");
        }
        for kind in [
            AccessDenied,
            Throttled,
            Duplicate,
            InvalidKey,
            Changed,
            NotSent,
            Other,
        ] {
            assert!(!kind.is_scope_wide(), "{kind:?}");
        }
        for kind in [Unreachable, Throttled, Other] {
            assert!(kind.may_have_acted() && !kind.is_refusal(), "{kind:?}");
        }
        for kind in [NoCredentials, AccessDenied, InvalidKey] {
            assert!(kind.is_refusal() && !kind.may_have_acted(), "{kind:?}");
        }
        assert!(!NotSent.may_have_acted());
    }
}
