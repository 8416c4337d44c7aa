//! `labctl handout`: the command line of the handout capability (`src/handout/`): which key
//! pairs, where, and the result for people or as JSON; with `--from-store`, the keys read
//! from the team store first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use crate::cli::{CloudArgs, HandoutArgs, Pace};
use crate::cloud::Cloud;
use crate::desired::{Desired, KeyPairSpec};
use crate::error::{Error, Exit};
use crate::handout::{self, Handout, Keys, Options};
use crate::keys::{PublicKey, Secret, public_key_of_stored};
use crate::observe::Observed;

use super::session::{Aws, session};
use super::{Terminal, load_manifest, write_json, write_stdout};

pub(super) fn handout_command(args: &HandoutArgs, term: Terminal) -> Result<Exit, Error> {
    if !args.from_store {
        let (desired, warnings) =
            load_manifest(&args.manifest, &args.vars, args.json, args.quiet, term)?;
        return hand_out(args, &desired, &Keys::Files, &warnings, term);
    }
    // What can be refused without AWS is refused here, once, before anything is sent: a
    // manifest without a store, selectors that match nothing, an --out bundles cannot go to.
    // (An invalid manifest is reported by the session, before any request too.)
    if let (_, Some(desired), _) = super::check(&args.manifest, &args.vars) {
        refuse_before_reading(args, &desired)?;
    }
    let cloud_args = CloudArgs {
        manifest_arg: None,
        manifest: args.manifest.clone(),
        vars: args.vars.clone(),
        endpoint_url: args.endpoint_url.clone(),
        profile: args.profile.clone(),
        json: args.json,
        pace: Pace::Ec2,
        pace_scale: 1.0,
        timeout: 300,
        max_attempts: 4,
        quiet: args.quiet,
        verbose: 0,
    };
    session(
        &Aws,
        &cloud_args,
        term,
        None,
        async |cloud, desired, observed, run| {
            let selected =
                handout::select(&desired.keypairs, &args.selectors).map_err(Error::Usage)?;
            // With --passphrase, the list holds the other bundles too: their keys are needed
            // to tell which are unchanged.
            let wanted: Vec<&KeyPairSpec> = if args.passphrase {
                desired.keypairs.iter().collect()
            } else {
                selected
            };
            let keys = from_store(cloud, &desired, &observed, &wanted).await;
            hand_out(args, &desired, &Keys::Fetched(keys), &run.warnings, term)
        },
    )
}

/// `--from-store` without a store, selectors that match nothing, an `--out` refused.
fn refuse_before_reading(args: &HandoutArgs, desired: &Desired) -> Result<(), Error> {
    if desired.store.is_none() {
        return Err(Error::Usage(format!(
            "--from-store reads the team store, and {} has no `store: ssm`; without it, handout takes the key files",
            args.manifest.display()
        )));
    }
    let selected = handout::select(&desired.keypairs, &args.selectors).map_err(Error::Usage)?;
    match handout::refuse_out(desired, &selected, &out_of(args), args.zip) {
        Some(why) => Err(Error::Usage(why)),
        None => Ok(()),
    }
}

/// Where the bundles go: `--out`, or `handout/` beside the manifest.
fn out_of(args: &HandoutArgs) -> std::path::PathBuf {
    match &args.out {
        Some(dir) => dir.clone(),
        None => args
            .manifest
            .parent()
            .unwrap_or(Path::new(""))
            .join("handout"),
    }
}

/// The key of each of `specs` from the team store, read side by side: the entry of the
/// first scope whose key pair has an entry holding that key pair's key (as `restore` reads
/// it), checked again once read. Why not, for a key pair without one.
async fn from_store<C: Cloud + 'static>(
    cloud: &Arc<C>,
    desired: &Desired,
    observed: &Observed,
    specs: &[&KeyPairSpec],
) -> BTreeMap<String, Result<(PublicKey, Secret), String>> {
    let mut found = BTreeMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for spec in specs {
        let name = spec.name.as_str().to_owned();
        let pairs: Vec<_> = spec
            .scopes
            .iter()
            .filter_map(|s| observed.pair(s, &spec.name).map(|p| (s, p)))
            .collect();
        let Some((index, restore)) = crate::plan::stored_key(desired, spec, observed) else {
            let why = if pairs.is_empty() {
                "its key pair does not exist; run `labctl apply` first"
            } else {
                "no entry of the team store holds its key pair's key; run `labctl plan` to see why"
            };
            found.insert(name, Err(why.to_owned()));
            continue;
        };
        // One bundle opens every place of the entry: each key pair there holds this key (and
        // is not another project's), or the bundle would say what is not true.
        if let Some((scope, _)) = pairs.iter().find(|(_, pair)| {
            pair.public_key.as_ref() != Some(&restore.public)
                || matches!(
                    crate::ownership::owner(&pair.tags, &desired.project),
                    crate::ownership::Owner::Other(_)
                )
        }) {
            found.insert(
                name,
                Err(format!(
                    "the key pair in {scope} does not hold the key its store entry holds; run `labctl plan` to see why"
                )),
            );
            continue;
        }
        let (cloud, scope) = (Arc::clone(cloud), spec.scopes[index].clone());
        tasks.spawn(async move {
            let read = match cloud.get_stored(&scope, &restore.id).await {
                Ok(Some(secret))
                    if public_key_of_stored(&secret).ok().as_ref() == Some(&restore.public) =>
                {
                    Ok((restore.public, secret))
                }
                Ok(Some(_)) => {
                    Err("the store's entry no longer holds the key pair's key".to_owned())
                }
                Ok(None) => Err("the store's entry is gone since labctl looked".to_owned()),
                Err(err) => Err(format!("the store could not be read: {err}")),
            };
            (name, read)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((name, read)) = joined {
            found.insert(name, read);
        }
    }
    found
}

/// Select, make the bundles, and report.
fn hand_out(
    args: &HandoutArgs,
    desired: &Desired,
    keys: &Keys,
    warnings: &[serde_json::Value],
    term: Terminal,
) -> Result<Exit, Error> {
    let selected = handout::select(&desired.keypairs, &args.selectors).map_err(Error::Usage)?;
    let out = out_of(args);
    if let Some(seat) = &args.show_passphrase {
        return show_passphrase(desired, &out, seat);
    }
    if let Some(why) = handout::refuse_out(desired, &selected, &out, args.zip) {
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
        keys,
        super::now(),
    )
    .map_err(Error::Usage)?;
    let mut warnings = warnings.to_vec();
    for (name, why) in &done.unlisted {
        let said = super::warn(
            args.json,
            term,
            (
                "passphrase-not-listed",
                &format!("the bundle of `{name}` is not in the new passphrase list: {why}"),
                "its passphrase is in an earlier list (`handout --show-passphrase` reads the newest that has it); run handout --passphrase again once its key can be read",
            ),
            &[("name", json!(name))],
        );
        warnings.extend(said);
    }
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
