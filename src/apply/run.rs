//! Run control: an apply's settings (deadline, stop, broken regions, the journal), why an
//! action did not succeed, and the journal and blocking-pool helpers every step uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cloud::{CloudError, CloudErrorKind};
use crate::journal::{Event, Journal};
use crate::plan::{Action, KeyPairOp};
use crate::resource::Scope;

use crate::report::{Outcome, Problem, Status};

/// Settings for one apply.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// At most this many entries worked on at once.
    pub concurrency: usize,
    /// Seconds since the Unix epoch, for `<file>.replaced-<timestamp>`.
    pub now: u64,
    /// This apply's id, tagged on the key pairs EC2 creates (see [`APPLY_TAG`]).
    pub apply_id: String,
    /// Keys the journal says EC2 was asked to create and whose private keys were never
    /// saved: `(apply id, name)`.
    pub unsaved: std::collections::BTreeSet<(String, String)>,
    /// Where each `CreateKeyPair` is recorded before it is sent, and each save after it.
    pub journal: Option<Arc<Journal>>,
    /// Nothing new starts after this moment (`--timeout`).
    pub deadline: tokio::time::Instant,
    /// Nothing new starts once this is requested (Ctrl-C, SIGTERM).
    pub stop: Stop,
    /// Scopes where a failure concerned the whole scope (its region, its account's
    /// credentials), with its message: nothing more starts there (a dead endpoint is reported
    /// once, not once per key pair).
    pub broken: Arc<std::sync::Mutex<BTreeMap<Scope, String>>>,
    /// How long EC2's listing may lag behind a write: how long a look for what a write did
    /// waits ([`crate::cloud::LISTING_LAG`]; shorter in tests).
    pub listing_lag: std::time::Duration,
    /// The KMS key the team store's entries are encrypted with (`None`: `alias/aws/ssm`).
    pub kms_key_id: Option<String>,
}

impl Settings {
    /// Remember a region-wide failure so nothing more starts in that scope.
    pub(super) fn note_region_failure<T>(
        &self,
        action: &super::Pair<'_>,
        result: &Result<T, Failure>,
    ) {
        if let Err(failure) = result
            && failure.region_wide
        {
            self.broken
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(action.scope.clone())
                .or_insert_with(|| {
                    let message = &failure.problem.message;
                    message.lines().next().unwrap_or(message).to_owned()
                });
        }
    }
}

pub(crate) use crate::stop::Stop;

impl Settings {
    /// Why the next action (in `scope`) must not start, if it must not.
    pub(super) fn stopped(&self, scope: &Scope) -> Option<Failure> {
        let broken = self
            .broken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(scope)
            .cloned();
        if let Some(message) = broken {
            Some(skipped(format!(
                "not started: {scope} failed for another key pair ({message})"
            )))
        } else if self.stop.requested() {
            Some(skipped(
                "not started: interrupted (Ctrl-C); run the same command again",
            ))
        } else if tokio::time::Instant::now() >= self.deadline {
            Some(skipped(
                "not started: the --timeout was reached; run the same command again",
            ))
        } else {
            None
        }
    }
}

/// Why an action did not succeed: its status and the problem.
#[derive(Clone, Debug)]
pub(super) struct Failure {
    pub(super) status: Status,
    pub(super) problem: Problem,
    /// The failure concerns the whole region (unreachable, no credentials, not enabled):
    /// nothing more is started there.
    pub(super) region_wide: bool,
}

pub(super) fn failed(message: impl Into<String>) -> Failure {
    Failure {
        status: Status::Failed,
        problem: Problem::new(message),
        region_wide: false,
    }
}

impl Failure {
    #[must_use]
    pub(super) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.problem = self.problem.hint(hint);
        self
    }
}

pub(super) fn skipped(message: impl Into<String>) -> Failure {
    Failure {
        status: Status::Skipped,
        problem: Problem::new(message),
        region_wide: false,
    }
}

/// The outcome of an action that is not carried out: a conflict, nothing to do, or (for a
/// change) skipped.
pub(super) fn settled(action: &Action) -> Outcome {
    let (status, error) = match action.key_pair().map(|a| (a, &a.op)) {
        Some((a, KeyPairOp::Conflict(conflict))) => (
            Status::Conflict,
            Some(Problem::new(conflict.as_str()).hint(conflict.hint_for(&action.address, a))),
        ),
        _ if action.is_change() => (Status::Skipped, None),
        _ => (Status::Unchanged, None),
    };
    outcome(action, status, error)
}

pub(super) fn outcome(action: &Action, status: Status, error: Option<Problem>) -> Outcome {
    Outcome {
        action: action.clone(),
        status,
        error,
    }
}

pub(super) fn cloud_failure(err: &CloudError) -> Failure {
    let status = match err.kind {
        CloudErrorKind::Duplicate => Status::Conflict,
        // Never sent (the run was stopped or out of time): not started, as for actions that
        // had not begun.
        CloudErrorKind::NotSent => Status::Skipped,
        _ => Status::Failed,
    };
    Failure {
        status,
        problem: Problem::new(err.to_string()).hint(err.hint()),
        region_wide: err.kind.is_scope_wide(),
    }
}

/// How a step that went well ended: it changed what it was to change, or found it already so
/// (a key pair EC2 had, listed late): then the outcome is `unchanged`, and the reason says why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Done {
    Changed,
    AlreadyThere(String),
}

impl From<()> for Done {
    fn from((): ()) -> Self {
        Done::Changed
    }
}

pub(super) fn finished(action: &Action, result: Result<impl Into<Done>, Failure>) -> Outcome {
    match result.map(Into::into) {
        Ok(Done::Changed) => outcome(action, Status::Done, None),
        Ok(Done::AlreadyThere(why)) => {
            let mut outcome = outcome(action, Status::Unchanged, None);
            outcome.action.reason = why;
            outcome
        }
        Err(Failure {
            status, problem, ..
        }) => outcome(action, status, Some(problem)),
    }
}

/// Run key store work on tokio's blocking pool: file work (an fsync above all) must not stall
/// the runtime's workers, which drive every request in flight.
pub(super) async fn file_work<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| failed(format!("the file work stopped: {e}")))
}

/// Record that labctl made the key `public` and wrote it to `path` (the project's keys):
/// durable before success is reported. Only a key labctl made is ever retired or removed.
pub(super) fn journal_made(
    settings: &Settings,
    public: &crate::keys::PublicKey,
    path: &std::path::Path,
) -> std::io::Result<()> {
    let Some(journal) = &settings.journal else {
        return Ok(());
    };
    let path = std::path::absolute(path)?;
    journal.record(
        Event::Made,
        &settings.apply_id,
        &crate::journal::made_name(&public.sha256_fingerprint(), &path),
    )
}

/// Record that a key EC2 created is saved (made, then saved): durable before success is
/// reported.
pub(super) fn journal_saved(
    settings: &Settings,
    name: &crate::desired::KeyName,
    public: &crate::keys::PublicKey,
    path: &std::path::Path,
) -> std::io::Result<()> {
    journal_made(settings, public, path)?;
    match &settings.journal {
        Some(journal) => journal.record(Event::Saved, &settings.apply_id, name.as_str()),
        None => Ok(()),
    }
}

/// Append to the journal, when there is one; a failure to record anything but a create or a
/// save is only logged (the create itself is refused without its record).
pub(super) fn record(settings: &Settings, event: Event, name: &crate::desired::KeyName) {
    record_id(settings, event, name.as_str());
}

pub(super) fn record_id(settings: &Settings, event: Event, name: &str) {
    if let Some(journal) = &settings.journal
        && let Err(err) = journal.record(event, &settings.apply_id, name)
    {
        tracing::debug!(error = %err, key = %name, "could not write the journal");
    }
}
