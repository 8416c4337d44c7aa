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
    let (options, fallback) = options_of(args, desired);
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

/// How the bucket is reached: the caller's own credentials and endpoint, in the manifest's
/// first region unless the environment names one.
fn options_of(
    args: &CloudArgs,
    desired: &Desired,
) -> (crate::cloud::Ec2Options, crate::desired::Region) {
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
    (options, fallback)
}

/// For a command without the lock: the keys the bucket's journal says left, added to the
/// local journal's (a plan shows what an apply with the lock would do). A bucket that cannot
/// be read adds nothing, and why is returned (a warning: the apply that takes the lock stops).
pub(super) fn add_shared_retired(
    args: &CloudArgs,
    desired: &Desired,
    journal: &mut crate::journal::State,
    rt: &tokio::runtime::Runtime,
) -> Option<String> {
    let state = desired.state.as_ref()?;
    let (options, fallback) = options_of(args, desired);
    match rt.block_on(crate::shared::Shared::peek(
        &options,
        state,
        &args.manifest,
        &desired.project,
        &fallback,
    )) {
        Ok(retired) => {
            for fingerprint in retired {
                if !journal.retired.contains(&fingerprint) {
                    journal.retired.push(fingerprint);
                }
            }
            None
        }
        Err(why) => Some(format!(
            "the shared state {state} could not be read ({why}); this plan knows only this machine's journal"
        )),
    }
}

/// What team mode has to say before the plan: the shared state's journal that could not be
/// read (a command without the lock), and entries of the team store that are this project's
/// but whose key pair is gone (deleted outside labctl): a private key that no `destroy`
/// deletes with its key pair. Said, never deleted (labctl deletes an entry only with its key
/// pair).
pub(super) fn team_warnings(
    unread: Option<&str>,
    observed: &crate::observe::Observed,
    (json, term): (bool, super::Terminal),
) -> Vec<serde_json::Value> {
    let mut warnings = Vec::new();
    if let Some(why) = unread {
        let hint = "check `state:` in the manifest and the credentials; `labctl apply` stops before any change while the bucket cannot be used";
        warnings.extend(super::warn(
            json,
            term,
            ("shared-state-unread", why, hint),
            &[],
        ));
    }
    for (scope, ids) in &observed.stranded {
        for id in ids {
            let name = crate::cloud::stored_name(id);
            let message = format!(
                "SSM {name} in {scope} holds this project's copy of a private key whose key pair is gone (deleted outside labctl)"
            );
            let hint = format!(
                "delete it once nobody needs that key: aws ssm delete-parameter --name {name} --region {}",
                scope.region
            );
            warnings.extend(super::warn(
                json,
                term,
                ("store-entry-without-key-pair", &message, &hint),
                &[("parameter", serde_json::Value::from(name.as_str()))],
            ));
        }
    }
    warnings
}
