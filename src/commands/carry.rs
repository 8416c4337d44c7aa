//! What every command that changes things shares: the plan's options from the command line,
//! and carrying a plan out with its progress display and report (`apply` and `destroy` both
//! use it; command files do not import each other).

use std::sync::Arc;

use crate::apply::{self, Progress, Settings};
use crate::cli::{ChangeArgs, CloudArgs, ReplaceTarget, WorkArgs};
use crate::cloud::Cloud;
use crate::desired::Desired;
use crate::error::{Error, Exit};
use crate::keys::FileCustody;
use crate::plan::{Change, Options, Plan};
use crate::render::{self, Style};
use crate::resource::Scope;

use super::display::Display;
use super::session::Run;
use super::{Terminal, now, write_json, write_stdout};

/// The plan's options from `--prune`, `--purge-local` and `--replace`, the same for `plan`
/// and `apply` (so that a plan previews exactly what apply would do).
pub(super) fn change_options(
    desired: &Desired,
    changes: &ChangeArgs,
    run: &Run,
) -> Result<Options, Error> {
    Ok(Options {
        prune: changes.prune,
        purge_local: changes.purge_local,
        keep_local: false,
        replace: replace_targets(desired, &changes.replace)?,
        unsaved: run.unsaved.clone(),
        retired: run.retired.clone(),
        made: run.made.clone(),
    })
}

/// Resolve `--replace` targets against the manifest: each names exactly one entry (the
/// one of that name in that region; a name several entries share needs its region).
pub(super) fn replace_targets(
    desired: &Desired,
    targets: &[ReplaceTarget],
) -> Result<std::collections::BTreeSet<usize>, Error> {
    let mut out = std::collections::BTreeSet::new();
    for target in targets {
        let named: Vec<(usize, &crate::desired::KeyPairSpec)> = desired
            .keypairs
            .iter()
            .enumerate()
            .filter(|(_, k)| k.name.as_str() == target.name)
            .collect();
        if named.is_empty() {
            return Err(Error::Usage(format!(
                "--replace {}: the manifest has no key pair of that name",
                target.name
            )));
        }
        let Some(region) = &target.region else {
            if let [(entry, _)] = named[..] {
                out.insert(entry);
                continue;
            }
            let regions: Vec<String> = named
                .iter()
                .flat_map(|(_, k)| k.scopes.iter().map(ToString::to_string))
                .collect();
            return Err(Error::Usage(format!(
                "--replace {}: {} entries have that name (in {}); say which with --replace {}@REGION",
                target.name,
                named.len(),
                regions.join(", "),
                target.name
            )));
        };
        out.insert(entry_at(&named, &target.name, region)?);
    }
    Ok(out)
}

/// The one entry of `named` (the entries named `name`) at `place`: `@REGION`,
/// `@ACCOUNT/REGION` or `@ACCOUNT` (a name or an id). More than one is said, not guessed; an
/// entry whose key is shared by several places cannot be replaced in one.
fn entry_at(
    named: &[(usize, &crate::desired::KeyPairSpec)],
    name: &str,
    region: &str,
) -> Result<usize, Error> {
    let found: Vec<&(usize, &crate::desired::KeyPairSpec)> = named
        .iter()
        .filter(|(_, k)| k.scopes.iter().any(|s| s.is_named_by(region)))
        .collect();
    // A region alone is the caller's own account's when that settles it.
    let found = if found.len() > 1 {
        let own: Vec<&(usize, &crate::desired::KeyPairSpec)> = found
            .iter()
            .copied()
            .filter(|(_, k)| {
                k.scopes
                    .iter()
                    .any(|s| s.account == crate::resource::Account::Caller && s.is_named_by(region))
            })
            .collect();
        if own.len() == 1 { own } else { found }
    } else {
        found
    };
    let (entry, spec) = match found[..] {
        [] => {
            let places: Vec<String> = named
                .iter()
                .flat_map(|(_, k)| k.scopes.iter().map(ToString::to_string))
                .collect();
            return Err(Error::Usage(format!(
                "--replace {name}@{region}: that key pair is not in {region}; it is in {}",
                places.join(", ")
            )));
        }
        [(entry, spec)] => (entry, spec),
        _ => {
            let places: Vec<String> = found
                .iter()
                .flat_map(|(_, k)| k.scopes.iter().filter(|s| s.is_named_by(region)))
                .map(ToString::to_string)
                .collect();
            return Err(Error::Usage(format!(
                "--replace {}@{region}: {} entries have that name there ({}); say which with --replace {}@ACCOUNT/REGION",
                name,
                found.len(),
                places.join(", "),
                name
            )));
        }
    };
    if spec.scopes.len() > 1 {
        let places = if spec.scopes.iter().all(|s| s.account.id().is_none()) {
            "regions"
        } else {
            "places"
        };
        return Err(Error::Usage(format!(
            "--replace {}@{region}: the key of `{}` is shared by {} {places} ({}); replacing it in one would break the others. Use --replace {}",
            name,
            name,
            spec.scopes.len(),
            spec.scopes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            name
        )));
    }
    Ok(*entry)
}

/// A destroy or prune that could not reach every place labctl placed key pairs in is not
/// complete, whatever it did: said (off JSON; the JSON document has the warnings), exit 1.
pub(super) fn complete_only_if_all_reached(
    run: &Run,
    args: &crate::cli::CloudArgs,
    noun: &str,
    exit: Exit,
) -> Exit {
    if run.left.is_empty() {
        return exit;
    }
    if !args.json {
        eprintln!(
            "{noun} is not complete: {} could not be reached, and what labctl placed there is left as it is; run the same command again once it can be (exit 1).",
            run.left.join(", ")
        );
    }
    Exit::Failure
}

/// How `carry_out` presents and paces the work.
pub(super) struct Carry<'a> {
    /// Print the plan first (unless JSON).
    pub(super) show_plan: bool,
    /// "Apply" or "Destroy", for the summary line.
    pub(super) noun: &'a str,
    pub(super) work: &'a WorkArgs,
}

/// Print the plan (unless JSON), carry it out, print the report; exit 1 unless all went well.
pub(super) async fn carry_out<C: Cloud>(
    cloud: &Arc<C>,
    plan: &Plan,
    args: &CloudArgs,
    term: Terminal,
    run: &Run,
    how: Carry<'_>,
) -> Result<Exit, Error> {
    let Carry {
        show_plan,
        noun,
        work,
    } = how;
    let style = style(term);
    if show_plan && !args.json && (plan.has_changes() || plan.has_conflicts()) {
        write_stdout(&render::plan_human(plan, style, args.verbose > 0))?;
    }
    let (display, ticker) = live_display(cloud, plan, args, term);
    let progress: Arc<dyn Progress> = Arc::clone(&display) as Arc<dyn Progress>;
    let settings = Settings {
        concurrency: usize::from(work.concurrency),
        now: now(),
        apply_id: run.apply_id.clone(),
        unsaved: run.unsaved.clone(),
        journal: run.journal.clone(),
        deadline: run.deadline.into(),
        stop: run.stop.clone(),
        broken: Arc::default(),
        listing_lag: crate::cloud::LISTING_LAG,
        kms_key_id: run.kms_key_id.clone(),
    };
    let report = apply::apply(cloud, plan, FileCustody, settings, progress).await;
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    display.finish();
    let calls = cloud.api_calls();
    tracing::debug!(api_calls = ?calls, "applied");
    if args.json {
        write_json(
            render::report_json(&plan.project, &report, &calls),
            &run.warnings,
        )?;
    } else {
        write_stdout(&render::report_human(
            &report,
            style,
            noun,
            args.verbose > 0,
        ))?;
    }
    Ok(exit_of(&report, args, run))
}

/// The live display of a run's changes per scope, and the task that shows EC2's throttling
/// and the retries on it while it is live.
fn live_display<C: Cloud>(
    cloud: &Arc<C>,
    plan: &Plan,
    args: &CloudArgs,
    term: Terminal,
) -> (Arc<Display>, Option<tokio::task::JoinHandle<()>>) {
    let mut totals: Vec<(Scope, usize)> = Vec::new();
    for a in &plan.actions {
        if !a.is_change() {
            continue;
        }
        match totals.iter_mut().find(|(r, _)| r == a.scope()) {
            Some(entry) => entry.1 += 1,
            None => totals.push((a.scope().clone(), 1)),
        }
    }
    let display = Arc::new(Display::new(args, term, totals));
    // Throttling and retries, shown while the display is live.
    let ticker = display.is_live().then(|| {
        let (display, cloud) = (Arc::clone(&display), Arc::clone(cloud));
        tokio::spawn(async move {
            loop {
                display.set_waits(cloud.throttled(), cloud.retried());
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        })
    });
    (display, ticker)
}

/// The words after the report (where new keys are, what an interrupted run left), and the
/// exit code.
fn exit_of(report: &apply::Report, args: &CloudArgs, run: &Run) -> Exit {
    let created_somewhere = report.outcomes.iter().any(|o| {
        matches!(o.action.change(), Change::Create | Change::Replace)
            && o.status == apply::Status::Done
    });
    if created_somewhere && args.says_status() {
        eprintln!(
            "Private keys are saved with mode 0400 and never printed; keep them out of version control."
        );
    }
    if run.stop.requested() {
        let not_started = report
            .outcomes
            .iter()
            .filter(|o| o.status == apply::Status::Skipped)
            .count();
        if !args.json {
            eprintln!(
                "Interrupted: {not_started} change(s) not started; what was done is listed above. Run the command again to finish."
            );
        }
        return Exit::Interrupted;
    }
    if report.succeeded() {
        Exit::Success
    } else {
        Exit::Failure
    }
}

pub(super) fn style(term: Terminal) -> Style {
    Style {
        color: term.stdout_color,
    }
}
