//! What apply did: a status and, when something went wrong, the problem, per action. Its own
//! module, beside the executor (`apply`), so that `render` formats reports without importing
//! the executor.

use crate::plan::Action;

/// What happened to one action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// The change was made.
    Done,
    /// Nothing needed doing.
    Unchanged,
    /// A conflict in the plan, or found while applying; nothing was done.
    Conflict,
    /// The change was tried and failed.
    Failed,
    /// Not tried because an action it depends on did not succeed.
    Skipped,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Unchanged => "unchanged",
            Status::Conflict => "conflict",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// What went wrong with an action, and what to do about it (never key material): kept apart
/// so that `render` formats them once, for people and for JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            hint: None,
        }
    }

    #[must_use]
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// One action and what became of it.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub action: Action,
    pub status: Status,
    /// What went wrong, when something did.
    pub error: Option<Problem>,
}

/// Everything apply did, in plan order.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// True when every action succeeded or needed nothing (orphans left alone included).
    pub(crate) fn succeeded(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| matches!(o.status, Status::Done | Status::Unchanged))
    }
}
