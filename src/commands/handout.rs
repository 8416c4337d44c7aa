//! `labctl handout`: the command line of the handout capability (`src/handout/`): which key
//! pairs, where, and the result for people or as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use crate::cli::HandoutArgs;
use crate::desired::Desired;
use crate::error::{Error, Exit};
use crate::handout::{self, Handout, Options};

use super::{Terminal, load_manifest, write_json, write_stdout};

pub(super) fn handout_command(args: &HandoutArgs, term: Terminal) -> Result<Exit, Error> {
    let (desired, warnings) =
        load_manifest(&args.manifest, &args.vars, args.json, args.quiet, term)?;
    let selected = handout::select(&desired.keypairs, &args.selectors).map_err(Error::Usage)?;
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => args
            .manifest
            .parent()
            .unwrap_or(Path::new(""))
            .join("handout"),
    };
    if let Some(seat) = &args.show_passphrase {
        return show_passphrase(&desired, &out, seat);
    }
    if let Some(why) = handout::refuse_out(&desired, &selected, &out, args.zip) {
        return Err(Error::Usage(why));
    }
    let options = Options {
        zip: args.zip,
        passphrase: args.passphrase,
        force: args.force,
    };
    let others: Vec<&crate::desired::KeyPairSpec> = desired
        .keypairs
        .iter()
        .filter(|k| !selected.iter().any(|s| std::ptr::eq(*s, *k)))
        .collect();
    let done = handout::hand_out(
        &desired.project,
        &selected,
        &others,
        &out,
        options,
        super::now(),
    )
    .map_err(Error::Usage)?;
    report(args, &desired.project, &out, &done, &warnings)
}

/// One seat's passphrase, printed again: only to a terminal (never into a pipe, a file or a
/// CI log), from the newest list that has it, and only for a bundle that is still current
/// (one whose key or seat changed since is named, not its old passphrase).
fn show_passphrase(desired: &Desired, out: &Path, seat: &str) -> Result<Exit, Error> {
    use std::io::IsTerminal as _;
    if !std::io::stdout().is_terminal() {
        return Err(Error::Usage(format!(
            "--show-passphrase prints a passphrase only on a terminal; the owner-only lists are {}/passphrases-*.csv",
            out.display()
        )));
    }
    let found = handout::show_passphrase(&desired.project, &desired.keypairs, out, seat)
        .map_err(Error::Usage)?;
    if found.is_empty() {
        let seats: Vec<&str> = desired
            .keypairs
            .iter()
            .map(|k| k.seat.as_str())
            .take(8)
            .collect();
        return Err(Error::Usage(format!(
            "no passphrase list in {} has seat `{seat}`; the manifest's seats are {}{}",
            out.display(),
            seats.join(", "),
            if desired.keypairs.len() > seats.len() {
                ", …"
            } else {
                ""
            }
        )));
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    let mut stale = Vec::new();
    for shown in &found {
        let bundle = shown.bundle.as_deref().unwrap_or_default();
        if !shown.current {
            stale.push(if bundle.is_empty() {
                shown.name.clone()
            } else {
                bundle.to_owned()
            });
            continue;
        }
        let _ = writeln!(
            text,
            "Seat {} (key pair {}, bundle {bundle}): {}",
            shown.seat,
            shown.name,
            shown.passphrase.as_str()
        );
    }
    if text.is_empty() {
        return Err(Error::Usage(format!(
            "seat `{seat}`: {} changed since its passphrase was listed (a new key or seat); run `labctl handout --passphrase --force` with the flags it was made with to write it again",
            stale.join(", ")
        )));
    }
    let _ = writeln!(
        text,
        "From {} (type it as shown, dashes included).",
        found[0].list.display()
    );
    for bundle in &stale {
        let _ = writeln!(
            text,
            "Not shown: {bundle} changed since (run handout --force)."
        );
    }
    write_stdout(&text)?;
    Ok(Exit::Success)
}

/// The result, for people or as one JSON document; the exit code.
fn report(
    args: &HandoutArgs,
    project: &str,
    out: &Path,
    done: &Handout,
    warnings: &[serde_json::Value],
) -> Result<Exit, Error> {
    let csv = done.passphrases.as_deref();
    if args.json {
        let bundles: Vec<serde_json::Value> = done
            .outcomes
            .iter()
            .map(|o| {
                json!({
                    "name": o.name,
                    "seat": o.seat,
                    "status": o.status.as_str(),
                    "path": o.path.as_ref().map(|p| p.display().to_string()),
                    "reason": o.reason,
                    "places": o.places.iter().map(|(region, account, name)| json!({
                        "region": region,
                        "account": account,
                        "account_name": name,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = json!({
            "project": project,
            "out": out.display().to_string(),
            "bundles": bundles,
            "passphrases": csv.map(|p| p.display().to_string()),
        });
        write_json(doc, warnings)?;
    } else {
        write_stdout(&handout::human(
            project,
            out,
            &done.outcomes,
            csv,
            args.quiet,
        ))?;
    }
    Ok(if done.outcomes.iter().any(handout::Outcome::is_problem) {
        Exit::Failure
    } else {
        Exit::Success
    })
}
