//! `labctl apply`: carry the plan out; `--prune` lists what it deletes and asks.

use std::sync::Arc;

use crate::apply::{self, Progress, Settings};
use crate::cli::{ApplyArgs, CloudArgs, ReplaceTarget};
use crate::cloud::Cloud;
use crate::desired::{Desired, KeyName};
use crate::error::{Error, Exit};
use crate::keys::KeyStore;
use crate::plan::{self, Action, KeyPairOp, Options, Plan};
use crate::render::{self, Style};

use super::session::{Run, StderrProgress, session};
use super::{Terminal, confirm, now, write_stdout};

/// Resolve `--replace` targets against the manifest.
pub(super) fn replace_targets(
    desired: &Desired,
    targets: &[ReplaceTarget],
) -> Result<std::collections::BTreeSet<KeyName>, Error> {
    let mut out = std::collections::BTreeSet::new();
    for target in targets {
        let Some(spec) = desired
            .keypairs
            .iter()
            .find(|k| k.name.as_str() == target.name)
        else {
            return Err(Error::Usage(format!(
                "--replace {}: the manifest has no key pair of that name",
                target.name
            )));
        };
        if let Some(region) = &target.region {
            if !spec.regions.iter().any(|r| r.as_str() == region) {
                return Err(Error::Usage(format!(
                    "--replace {}@{region}: that key pair is not in {region}",
                    target.name
                )));
            }
            if spec.regions.len() > 1 {
                return Err(Error::Usage(format!(
                    "--replace {}@{region}: the key of `{}` is shared by {} regions; replacing it in one would break the others. Use --replace {}",
                    target.name,
                    target.name,
                    spec.regions.len(),
                    target.name
                )));
            }
        }
        out.insert(spec.name.clone());
    }
    Ok(out)
}

/// Print the plan (unless JSON), carry it out, print the report; exit 1 unless all went well.
pub(super) async fn carry_out<C: Cloud>(
    cloud: &Arc<C>,
    plan: &Plan,
    args: &CloudArgs,
    term: Terminal,
    show_plan: bool,
    run: &Run,
) -> Result<Exit, Error> {
    let style = Style {
        color: term.stdout_color,
    };
    if show_plan && !args.json && (plan.has_changes() || plan.has_conflicts()) {
        write_stdout(&render::plan_human(plan, style))?;
    }
    let progress: Arc<dyn Progress> = Arc::new(StderrProgress { quiet: args.quiet });
    let settings = Settings {
        concurrency: usize::from(args.concurrency),
        now: now(),
        apply_id: run.apply_id.clone(),
        unsaved: run.unsaved.clone(),
        journal: run.journal.clone(),
        deadline: run.deadline.into(),
    };
    let report = apply::apply(cloud, plan, KeyStore, settings, progress).await;
    let calls = cloud.api_calls();
    tracing::debug!(api_calls = ?calls, "applied");
    if args.json {
        write_stdout(&render::report_json(&plan.project, &report, &calls))?;
    } else {
        write_stdout(&render::report_human(&report, style))?;
    }
    let created_somewhere = report.outcomes.iter().any(|o| {
        let Action::KeyPair(a) = &o.action;
        matches!(a.op, KeyPairOp::Create { .. } | KeyPairOp::Replace { .. })
            && o.status == apply::Status::Done
    });
    if created_somewhere && !args.quiet && !args.json {
        eprintln!(
            "Private keys are saved with mode 0400 and never printed; keep them out of version control."
        );
    }
    Ok(if report.succeeded() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

pub(super) fn apply_command(args: &ApplyArgs, term: Terminal) -> Result<Exit, Error> {
    session(
        &args.cloud,
        term,
        Some("apply"),
        async |cloud, desired, observed, run| {
            let options = Options {
                prune: args.prune,
                purge_local: args.purge_local,
                keep_local: false,
                replace: replace_targets(&desired, &args.replace)?,
                unsaved: run.unsaved.clone(),
            };
            let plan = plan::plan(&desired, &observed, &options);
            // Pruning deletes key pairs: list exactly what goes, and ask (or need --yes).
            let pruned: Vec<String> = plan
                .actions
                .iter()
                .filter(|Action::KeyPair(a)| {
                    a.entry.is_none() && matches!(a.op, KeyPairOp::Delete { .. })
                })
                .map(|Action::KeyPair(a)| format!("  {} in {}", a.name, a.region))
                .collect();
            if !pruned.is_empty() && !args.yes {
                eprintln!(
                    "--prune deletes {} key pair(s) of project {} that the manifest no longer lists:\n{}",
                    pruned.len(),
                    plan.project,
                    pruned.join("\n")
                );
                if !confirm("apply --prune", "Delete them?")? {
                    eprintln!("Cancelled; nothing was changed.");
                    return Ok(Exit::Failure);
                }
            }
            carry_out(cloud, &plan, &args.cloud, term, true, &run).await
        },
    )
}
