//! The errors that end a command, and the one place that maps outcomes to exit codes.
//!
//! Problems inside a manifest are diagnostics (see `diagnostic`), rendered before the command
//! returns; this type carries what remains: usage, cloud and file failures.

use crate::cloud::CloudError;

/// How a command ended, as the process's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success (and, with `plan --detailed-exitcode`, nothing to change).
    Success,
    /// Errors were found or something failed; they have been reported.
    Failure,
    /// `plan --detailed-exitcode`: success, and there are changes to apply.
    Changes,
    /// Stopped by Ctrl-C or SIGTERM (what was done is reported).
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Changes => 2,
            Exit::Interrupted => 130,
        }
    }
}

/// A failure that ends a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest had errors; they were already shown.
    #[error("the manifest has errors")]
    InvalidManifest,
    /// The command line asks for something the manifest cannot do.
    #[error("{0}")]
    Usage(String),
    /// Reading the regions failed.
    #[error("{}", observe_message(.0))]
    Observe(Vec<CloudError>),
    /// Member accounts whose roles could not be assumed (before anything was read).
    #[error("{}", accounts_message(.0))]
    Accounts(Vec<(crate::desired::Reach, CloudError)>),
    /// No manifest named and none found.
    #[error("no labctl.yaml or labctl.yml in {0}")]
    NoManifest(String),
    /// Another labctl holds the manifest's lock.
    #[error(transparent)]
    Locked(#[from] crate::lock::LockError),
    /// `--timeout` passed before the regions were read.
    #[error("gave up after {0} s (--timeout) while reading the key pairs")]
    Timeout(u64),
    #[error("cannot write to the terminal: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Ctrl-C or SIGTERM before there was anything to report (while the regions were read).
    #[error("interrupted (Ctrl-C or SIGTERM) before anything was changed")]
    Interrupted,
    /// Key folders another project holds (one key folder, one project).
    #[error("{}", claimed_message(.0))]
    Claimed(Vec<crate::keys::claim::Claimed>),
    /// The journal could not record what labctl must remember (nothing was changed).
    #[error("cannot write labctl's journal: {0}; nothing was changed")]
    Journal(std::io::Error),
}

fn observe_message(errors: &[CloudError]) -> String {
    let mut text = String::from("cannot read the current key pairs");
    for err in errors {
        text.push_str("\n  ");
        text.push_str(&err.to_string());
    }
    text
}

fn accounts_message(failed: &[(crate::desired::Reach, CloudError)]) -> String {
    use std::fmt::Write as _;
    let mut text = format!(
        "cannot reach {} of the manifest's accounts; nothing was read or changed in any account",
        failed.len()
    );
    for (reach, err) in failed {
        let _ = write!(
            text,
            "\n  {} ({}) through {}: {}: {}",
            reach.account.name, reach.account.id, reach.role_arn, err.operation, err.message
        );
    }
    text
}

/// What to do about an account whose role could not be assumed.
pub(crate) fn account_hint(err: &CloudError) -> &'static str {
    match err.kind {
        crate::cloud::CloudErrorKind::AccessDenied => {
            "the role's trust policy must let your identity assume it (sts:AssumeRole), with the external id when one is set; check the role ARN and `aws sts get-caller-identity`"
        }
        crate::cloud::CloudErrorKind::Throttled => {
            "STS is throttling requests (it was asked again a few times); run again in a minute"
        }
        crate::cloud::CloudErrorKind::Other if err.operation == "GetCallerIdentity" => {
            "give every entry an account, or take the caller's own account out of `accounts:`"
        }
        _ => err.hint(),
    }
}

fn claimed_message(claimed: &[crate::keys::claim::Claimed]) -> String {
    use std::fmt::Write as _;
    let mut text = String::from(
        "a key folder of this manifest holds another project's keys; nothing was changed",
    );
    for c in claimed {
        let _ = write!(
            text,
            "\n  {} belongs to project `{}` ({}/{})",
            c.folder.display(),
            c.project,
            c.folder.display(),
            crate::keys::claim::CLAIM_FILE
        );
    }
    text
}

impl Error {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Accounts(failed) => {
                let mut hints: Vec<&str> = failed.iter().map(|(_, e)| account_hint(e)).collect();
                hints.dedup();
                Some(hints.join("\nhint: "))
            }
            Error::Observe(errors) => {
                let mut hints: Vec<&str> = errors.iter().map(CloudError::hint).collect();
                hints.dedup();
                Some(hints.join("\nhint: "))
            }
            Error::Locked(crate::lock::LockError::Held { .. }) => Some(
                "wait for it to finish; labctl never runs two applies of one manifest at once"
                    .to_owned(),
            ),
            Error::Locked(crate::lock::LockError::Shared { hint, .. }) => Some((*hint).to_owned()),
            Error::Locked(crate::lock::LockError::SharedHeld { release, .. }) => Some(format!(
                "wait for it to finish. If that run crashed and nothing runs there any more, release the lock: {release}"
            )),
            Error::Locked(crate::lock::LockError::Foreign { path, .. }) => Some(format!(
                "if this workshop folder moved here on purpose and nobody works on it from the other machine, remove {} and run again",
                path.join("origin").display()
            )),
            Error::Locked(crate::lock::LockError::Tracked { .. }) => Some(
                "untrack it and commit (`git rm -r --cached .labctl`); labctl's own `.labctl/.gitignore` keeps it out of git from then on"
                    .to_owned(),
            ),
            Error::Interrupted => Some("run the command again".to_owned()),
            Error::Claimed(_) => Some(
                "one key folder, one project: give this manifest its own folder (`output_dir`, or `output` per key pair); if the project was renamed, put the new name in the folder's .labctl-project".to_owned(),
            ),
            Error::Timeout(_) => Some("check the network, or raise --timeout".to_owned()),
            Error::NoManifest(_) => Some(
                "run `labctl init` to write one, or name it: labctl -f FILE COMMAND".to_owned(),
            ),
            Error::InvalidManifest
            | Error::Usage(_)
            | Error::Locked(_)
            | Error::Output(_)
            | Error::Runtime(_)
            | Error::Journal(_) => None,
        }
    }

    pub fn exit(&self) -> Exit {
        match self {
            Error::Interrupted => Exit::Interrupted,
            _ => Exit::Failure,
        }
    }

    /// The error's kind in JSON documents (`{"error": {"kind": …}}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidManifest => "invalid-manifest",
            Error::Usage(_) => "usage",
            Error::NoManifest(_) => "no-manifest",
            Error::Observe(_) => "cloud",
            Error::Accounts(_) => "account",
            Error::Locked(crate::lock::LockError::Shared { .. }) => "state",
            Error::Locked(_) => "locked",
            Error::Claimed(_) => "key-folder",
            Error::Interrupted => "interrupted",
            Error::Timeout(_) => "timeout",
            Error::Output(_) | Error::Runtime(_) | Error::Journal(_) => "io",
        }
    }
}
