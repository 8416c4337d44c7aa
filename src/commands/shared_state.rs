//! The team's shared state (`state: s3://…`) for a command that takes the lock: taken after
//! the folder's own lock, before anything is read, and released when the run ends.

use std::time::Duration;

use super::Error;
use crate::cli::CloudArgs;
use crate::desired::Desired;
use crate::lock;

/// The team's lock and journal (`state: s3://…`), taken after this folder's own lock, the
/// journal read again with the bucket's records in it. A lock taken is released again when
/// the journal cannot be read.
pub(super) fn take(
    args: &CloudArgs,
    desired: &Desired,
    lock: Option<&mut lock::Lock>,
    lock_for: Option<&str>,
    rt: &tokio::runtime::Runtime,
) -> Result<Option<crate::shared::Shared>, Error> {
    let (Some(held), Some(state), Some(command)) = (lock, &desired.state, lock_for) else {
        return Ok(None);
    };
    let project = &desired.project;
    let fallback = desired
        .scopes()
        .first()
        .map_or_else(crate::desired::Region::us_east_1, |s| s.region.clone());
    let options = crate::cloud::Ec2Options {
        endpoint_url: args.endpoint_url.clone(),
        profile: args.profile.clone(),
        max_attempts: args.max_attempts,
        attempt_timeout: Duration::from_secs(args.timeout.min(10)),
        ..crate::cloud::Ec2Options::default()
    };
    let shared = rt.block_on(crate::shared::Shared::take(
        &options,
        state,
        &args.manifest,
        project,
        command,
        &fallback,
    ))?;
    if let Err(err) = held.reopen_journal(&args.manifest, project) {
        rt.block_on(shared.release());
        return Err(err.into());
    }
    Ok(Some(shared))
}
