//! `labctl validate`: every mistake of every manifest named, at once; nothing sent.

use crate::cli::ValidateArgs;
use crate::diagnostic::{self, JsonDiagnostic};
use crate::error::{Error, Exit};

use super::{Terminal, check, git_exposure, print_diagnostics, report_git_exposure, write_json};

pub(super) fn validate_command(args: &ValidateArgs, term: Terminal) -> Result<Exit, Error> {
    let mut all_valid = true;
    let mut warnings = Vec::new();
    let mut json_diagnostics = Vec::new();
    let mut checked = Vec::new();
    for path in &args.manifests {
        let (source, desired, diagnostics) = check(path, &args.vars);
        let valid = !diagnostic::has_errors(&diagnostics) && desired.is_some();
        all_valid &= valid;
        // A key file git would commit: a warning, an error with --strict.
        let mut strict_failed = false;
        if let Some(desired) = &desired {
            // One key folder, one project: a folder another project holds is an error here
            // too, before anyone runs plan or apply.
            let claimed =
                crate::keys::claim::check_folders(&desired.key_folders(), &desired.project, false);
            if !claimed.is_empty() {
                all_valid = false;
                strict_failed = true;
                let err = Error::Claimed(claimed);
                if args.json {
                    warnings.push(super::problem_json(
                        "key-folder",
                        &err.to_string(),
                        err.hint().as_deref(),
                    ));
                } else {
                    eprintln!("{} {err}", term.error_prefix());
                    if let Some(hint) = err.hint() {
                        eprintln!("hint: {hint}");
                    }
                }
            }
            let exposed = git_exposure(desired, true);
            warnings.extend(report_git_exposure(&exposed, args.json, term));
            if args.strict
                && (!exposed.is_empty()
                    || diagnostics
                        .iter()
                        .any(|d| d.severity == diagnostic::Severity::Warning))
            {
                all_valid = false;
                strict_failed = true;
                if !args.json {
                    eprintln!(
                        "{} {}: warnings fail with --strict",
                        term.error_prefix(),
                        source.name()
                    );
                }
            }
        }
        if !args.json {
            print_diagnostics(&source, &diagnostics, term);
            if let Some(desired) = desired.as_ref().filter(|_| !strict_failed) {
                println!("{}: valid ({})", source.name(), what_it_places(desired));
            }
        }
        checked.push((source, diagnostics));
    }
    if args.json {
        for (source, diagnostics) in &checked {
            json_diagnostics.extend(diagnostics.iter().map(|d| (source.name(), d)));
        }
        let list: Vec<JsonDiagnostic<'_>> = json_diagnostics
            .iter()
            .map(|(file, d)| JsonDiagnostic::new(file, d))
            .collect();
        let doc = serde_json::json!({ "valid": all_valid, "diagnostics": list });
        write_json(doc, &warnings)?;
    }
    Ok(if all_valid {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// What a valid manifest places: `4 key pairs in 1 region of 3 accounts` (accounts said only
/// when member accounts are used; the caller's own counts as one).
fn what_it_places(desired: &crate::desired::Desired) -> String {
    let pairs = desired.keypairs.len();
    let (regions, accounts) = crate::resource::count_places(&desired.scopes());
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let of_accounts = accounts
        .map(|n| format!(" of {n} account{}", plural(n)))
        .unwrap_or_default();
    format!(
        "{pairs} key pair{} in {regions} region{}{of_accounts}",
        plural(pairs),
        plural(regions)
    )
}
