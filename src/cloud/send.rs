//! How every request to EC2 or SSM is sent: paced per scope, stopped by Ctrl-C or the run's
//! `--timeout`, throttling retried (slowing the pace), real errors that may pass retried with
//! backoff, everything else returned at once (see `ec2.rs`).

use std::time::Duration;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::classify::{backoff, convert, transient};
use super::ec2::{Ec2, ScopeClients};
use super::{CloudError, CloudErrorKind};
use crate::resource::Scope;

/// Without a deadline, throttling is retried this many times at most.
const MAX_THROTTLED_WITHOUT_DEADLINE: u32 = 1000;

impl Ec2 {
    /// Send one request with labctl's retry policy (see the module's documentation). `call`
    /// builds and sends the request on the scope's client; it may be called again.
    pub(super) async fn send<T, E, F, Fut>(
        &self,
        scope: &Scope,
        operation: &'static str,
        call: F,
    ) -> Result<T, CloudError>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.send_with(scope, operation, |c| c.ec2.clone(), call)
            .await
    }

    /// [`send`](Self::send) on the client `pick` chooses of the scope's clients.
    pub(super) async fn send_with<K, T, E, F, Fut>(
        &self,
        scope: &Scope,
        operation: &'static str,
        pick: impl Fn(&ScopeClients) -> K,
        call: F,
    ) -> Result<T, CloudError>
    where
        F: Fn(K) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let Some(clients) = self.clients.get(scope) else {
            return Err(CloudError {
                kind: CloudErrorKind::Other,
                operation,
                scope: scope.to_string(),
                message: "no client for this scope".to_owned(),
            });
        };
        let mut attempts = 0;
        let mut throttled = 0u32;
        let mut last: Option<CloudError> = None;
        loop {
            // Waiting for its turn (the pace, a backoff) ends when the run is stopped or out of
            // time: a request that changes something is then not sent at all.
            tokio::select! {
                () = self.pacer.wait(scope, operation) => {}
                () = self.halted(operation) => {}
            }
            if self.is_halted(operation) {
                return Err(last.unwrap_or_else(|| CloudError {
                    kind: CloudErrorKind::NotSent,
                    operation,
                    scope: scope.to_string(),
                    message:
                        "not sent: the run was stopped (Ctrl-C, SIGTERM) or its --timeout passed"
                            .to_owned(),
                }));
            }
            let err = match call(pick(clients)).await {
                Ok(output) => {
                    self.pacer.succeeded(scope, operation);
                    return Ok(output);
                }
                Err(err) => err,
            };
            let error = convert(
                operation,
                scope,
                &clients.host,
                self.profile.as_deref(),
                &err,
            );
            let wait = if error.kind == CloudErrorKind::Throttled {
                // Throttling is EC2 asking for a slower pace, not a failure: slow down and
                // try again, for as long as the run may take.
                self.pacer.throttled(scope, operation);
                self.throttled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                throttled += 1;
                tracing::debug!(operation, scope = %scope, throttled, "throttled; retrying");
                if self.deadline.is_none() && throttled > MAX_THROTTLED_WITHOUT_DEADLINE {
                    return Err(error);
                }
                Duration::ZERO
            } else {
                attempts += 1;
                if !transient(&err) || attempts >= self.max_attempts {
                    return Err(error);
                }
                let wait = backoff(attempts);
                self.retried
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(operation, scope = %scope, attempts, error = %error, "retrying");
                wait
            };
            if self
                .deadline
                .is_some_and(|deadline| tokio::time::Instant::now() + wait >= deadline)
            {
                return Err(error);
            }
            // A throttled request did not reach EC2's logic: if the run stops now, it is simply
            // not sent again (reported as not sent, not as throttled).
            last = (error.kind != CloudErrorKind::Throttled).then_some(error);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.halted(operation) => {}
            }
        }
    }

    /// Whether `operation` may no longer be sent: the run's `--timeout` passed, or (for a
    /// request that changes something) a stop was requested. Looks (`DescribeKeyPairs`) still
    /// go out after a stop: what they learn keeps the report and the journal right.
    pub(super) fn is_halted(&self, operation: &str) -> bool {
        self.deadline
            .is_some_and(|deadline| tokio::time::Instant::now() >= deadline)
            || (!super::ssm::READS.contains(&operation) && self.stop.requested())
    }

    /// Resolves once [`is_halted`](Self::is_halted) holds (never, while it does not).
    pub(super) async fn halted(&self, operation: &str) {
        while !self.is_halted(operation) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
