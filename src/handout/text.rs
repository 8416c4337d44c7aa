//! The handout's result for people.

use std::fmt::Write as _;
use std::path::Path;

use super::{Outcome, Status};

/// The handout for people: a line per bundle (only problems with `quiet`), a summary, and
/// where the passphrase list is.
pub(crate) fn human(
    project: &str,
    out: &Path,
    outcomes: &[Outcome],
    csv: Option<&Path>,
    quiet: bool,
) -> String {
    let mut text = String::new();
    if !quiet {
        let _ = writeln!(text, "Handout for project {project} in {}:", out.display());
    }
    let width = outcomes
        .iter()
        .map(|o| o.name.chars().count())
        .max()
        .unwrap_or(0);
    for o in outcomes {
        let problem = matches!(o.status, Status::Refused | Status::Failed)
            || (o.status == Status::Skipped && !o.expected_skip);
        if quiet && !problem {
            continue;
        }
        let symbol = match o.status {
            Status::Written => "+",
            Status::Replaced => "±",
            Status::Unchanged => "=",
            Status::Skipped => "-",
            Status::Refused | Status::Failed => "!",
        };
        let what = match (&o.reason, &o.path) {
            (Some(reason), _) => format!("{}: {reason}", o.status.as_str()),
            (None, Some(path)) => format!("{} {}", o.status.as_str(), path.display()),
            (None, None) => o.status.as_str().to_owned(),
        };
        let _ = writeln!(text, "  {symbol} {:<width$}  {what}", o.name);
    }
    let count = |s: Status| outcomes.iter().filter(|o| o.status == s).count();
    if !quiet {
        let _ = writeln!(
            text,
            "Handout: {} written, {} replaced, {} unchanged, {} skipped, {} refused or failed.",
            count(Status::Written),
            count(Status::Replaced),
            count(Status::Unchanged),
            count(Status::Skipped),
            count(Status::Refused) + count(Status::Failed),
        );
    }
    if let Some(csv) = csv {
        let _ = writeln!(
            text,
            "Passphrases: {} (owner-only). Give each attendee theirs over another channel than the bundle.",
            csv.display()
        );
    }
    text
}
