//! How labctl's SDK clients are set up: the caller's shared configuration (credentials,
//! timeouts, the SDK's retries off, the endpoint), the interceptor that counts requests, and
//! the host a request goes to (named in errors).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::Ec2Options;

/// Counts requests per operation as they are sent (each attempt).
#[derive(Clone, Debug, Default)]
pub(super) struct CallCounter(pub(super) Arc<Mutex<BTreeMap<String, u64>>>);

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

/// The host a region's requests go to: the endpoint's, or EC2's regional one.
pub(super) fn host_of(endpoint_url: Option<&str>, region: &crate::desired::Region) -> String {
    match endpoint_url {
        Some(url) => {
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            rest.split('/').next().unwrap_or(rest).to_owned()
        }
        None => format!("ec2.{region}.amazonaws.com"),
    }
}

/// The caller's configuration: credentials from aws-config's standard chain (or the
/// profile), labctl's timeouts, the SDK's retries off, and the endpoint. `--endpoint-url`
/// points every service at one URL; `AWS_ENDPOINT_URL` (which the flag also reads) is left
/// to aws-config, so that `AWS_ENDPOINT_URL_EC2` and `AWS_ENDPOINT_URL_STS` can still point
/// one service elsewhere, as the AWS tools document.
pub(super) async fn shared_config(options: &Ec2Options) -> aws_config::SdkConfig {
    // Regions come from the manifest, one client each: a placeholder region keeps
    // aws-config from probing the environment (or the instance metadata service) for one.
    let mut loader = aws_config::defaults(BehaviorVersion::v2026_01_12())
        .region(aws_sdk_ec2::config::Region::from_static("us-east-1"))
        // labctl retries itself (see the module's documentation): the SDK's standard mode
        // counts throttling against the attempts, and its adaptive mode drops a client to
        // 0.5 requests per second after a single throttling answer.
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(options.attempt_timeout)
                .build(),
        );
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    let from_environment = std::env::var("AWS_ENDPOINT_URL").ok();
    if let Some(url) = &options.endpoint_url
        && from_environment.as_ref() != Some(url)
    {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}
