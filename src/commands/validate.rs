//! `labctl validate`: every mistake of every manifest named, at once; nothing sent.

use crate::cli::ValidateArgs;
use crate::diagnostic::{self, JsonDiagnostic};
use crate::error::{Error, Exit};
use crate::render;

use super::{Terminal, check, print_diagnostics, write_json};

/// Key files of `desired` that exist and that git would commit: (shown path, work tree).
fn exposed_key_files(desired: &crate::desired::Desired) -> Vec<(String, std::path::PathBuf)> {
    let specs: Vec<&crate::desired::KeyPairSpec> = desired
        .keypairs
        .iter()
        .filter(|k| k.output.is_some())
        .collect();
    let paths: Vec<&std::path::Path> = specs.iter().filter_map(|k| k.output.as_deref()).collect();
    crate::keys::git_exposure(&paths)
        .into_iter()
        .filter(|(index, _)| paths[*index].exists())
        .map(|(index, root)| (specs[index].output_display.clone(), root))
        .collect()
}

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
            let exposed = exposed_key_files(desired);
            for (file, root) in &exposed {
                let message = format!(
                    "{file} is inside the git work tree {} and not ignored: a private key could be committed",
                    root.display()
                );
                let hint =
                    "add the key folder to .gitignore, or set `output_dir` outside the repository";
                if args.json {
                    warnings.push(serde_json::json!({
                        "kind": "key-file-in-git", "message": message, "hint": hint, "file": file,
                    }));
                } else {
                    eprintln!("{} {message}\nhint: {hint}", term.warning_prefix());
                }
            }
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
                let pairs = desired.keypairs.len();
                let regions = desired.regions().len();
                println!(
                    "{}: valid ({pairs} key pair{} in {regions} region{})",
                    source.name(),
                    if pairs == 1 { "" } else { "s" },
                    if regions == 1 { "" } else { "s" },
                );
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
        write_json(&render::json_document(&doc), &warnings)?;
    }
    Ok(if all_valid {
        Exit::Success
    } else {
        Exit::Failure
    })
}
