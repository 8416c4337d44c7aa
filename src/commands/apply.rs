//! `labctl apply`: carry the plan out; `--prune` lists what it deletes and asks.

use crate::cli::ApplyArgs;
use crate::error::{Error, Exit};
use crate::plan::{self, KeyPairOp, Plan};
use crate::render;

use super::carry::{Carry, carry_out, change_options, complete_only_if_all_reached, style};
use super::session::{Aws, Connect, session};
use super::{Terminal, confirm, write_stdout};

pub(super) fn apply_command(args: &ApplyArgs, term: Terminal) -> Result<Exit, Error> {
    apply_in(&Aws, args, term)
}

/// `apply` through any cloud (EC2 in a run; the in-memory cloud in the commands' tests).
pub(super) fn apply_in<K: Connect>(
    connector: &K,
    args: &ApplyArgs,
    term: Terminal,
) -> Result<Exit, Error> {
    session(
        connector,
        &args.cloud,
        term,
        Some("apply"),
        async |cloud, desired, observed, run| {
            let options = change_options(&desired, &args.changes, &run)?;
            let plan = plan::plan(&desired, &observed, &options);
            // Deleting key pairs (--prune, --replace): list exactly what goes, and ask (or
            // need --yes). Creating, importing and fixing never ask.
            let deleted = deletions(&plan, &options.replace);
            let ask = !deleted.is_empty() && !args.yes;
            if ask {
                if !args.cloud.json {
                    write_stdout(&render::plan_human(
                        &plan,
                        style(term),
                        args.cloud.verbose > 0,
                    ))?;
                    eprintln!(
                        "This apply deletes {} key pair(s) of project {}:\n{}",
                        deleted.len(),
                        plan.project,
                        deleted.join("\n")
                    );
                }
                if !confirm("apply --prune/--replace", "Delete them?")? {
                    eprintln!("Cancelled: nothing was changed (exit 1).");
                    return Ok(Exit::Failure);
                }
            }
            // The plan was shown before the question.
            let exit = carry_out(
                cloud,
                &plan,
                &args.cloud,
                term,
                &run,
                Carry {
                    show_plan: !ask,
                    noun: "Apply",
                    work: &args.work,
                },
            )
            .await?;
            Ok(if args.changes.prune {
                complete_only_if_all_reached(&run, &args.cloud, "The prune", exit)
            } else {
                exit
            })
        },
    )
}

/// The key pairs a plan deletes because the user asked (pruned orphans, `--replace`), as
/// lines for the question. A key pair the journal proves nobody ever had the private key of
/// is replaced without asking: it is labctl's own unusable leftover.
fn deletions(plan: &Plan, asked: &std::collections::BTreeSet<usize>) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|action| {
            let (name, scope) = (action.name(), action.scope());
            match &action.key_pair()?.op {
                KeyPairOp::Delete { .. } => Some(format!("  {name} in {scope} (no longer listed)")),
                KeyPairOp::Replace { exists: true, .. }
                    if action
                        .key_pair()
                        .and_then(|a| a.entry)
                        .is_some_and(|e| asked.contains(&e)) =>
                {
                    Some(format!("  {name} in {scope} (to be replaced by a new key)"))
                }
                _ => None,
            }
        })
        .collect()
}
