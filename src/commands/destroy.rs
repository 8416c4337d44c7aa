//! `labctl destroy`: delete what the manifest owns (asks first), retire its key files.

use crate::apply;
use crate::cli::DestroyArgs;
use crate::cloud::Cloud;
use crate::error::{Error, Exit};
use crate::plan::{self, Options};
use crate::render::{self, Style};

use super::carry::{Carry, carry_out, complete_only_if_all_reached};
use super::session::{Aws, Connect, session};
use super::{Terminal, confirm, write_json, write_stdout};

/// Say there is nothing to destroy (as a report of unchanged actions with `--json`).
fn nothing_to_destroy(
    plan: &plan::Plan,
    args: &DestroyArgs,
    run: &super::session::Run,
    api_calls: &std::collections::BTreeMap<String, u64>,
) -> Result<(), Error> {
    if args.cloud.json {
        let report = apply::Report {
            outcomes: plan
                .actions
                .iter()
                .map(|a| apply::Outcome {
                    action: a.clone(),
                    status: apply::Status::Unchanged,
                    error: None,
                })
                .collect(),
        };
        write_json(
            render::report_json(&plan.project, &report, api_calls),
            &run.warnings,
        )
    } else {
        write_stdout(&format!(
            "Nothing to destroy: project {} owns no key pair in its regions.\n",
            plan.project
        ))
    }
}

pub(super) fn destroy_command(args: &DestroyArgs, term: Terminal) -> Result<Exit, Error> {
    destroy_in(&Aws, args, term)
}

/// `destroy` through any cloud (EC2 in a run; the in-memory cloud in the commands' tests).
pub(super) fn destroy_in<K: Connect>(
    connector: &K,
    args: &DestroyArgs,
    term: Terminal,
) -> Result<Exit, Error> {
    session(
        connector,
        &args.cloud,
        term,
        Some("destroy"),
        async |cloud, desired, observed, run| {
            let options = Options {
                purge_local: args.purge_local,
                keep_local: args.keep_local,
                retired: run.retired.clone(),
                made: run.made.clone(),
                ..Options::default()
            };
            // A key pair labctl made moments ago that EC2 does not list yet was looked for
            // again by `observe` (the one rule for EC2's listing lag).
            let plan = plan::plan_destroy(&desired, &observed, &options);
            let deletions = plan.actions.iter().filter(|a| a.is_change()).count();
            if deletions == 0 {
                nothing_to_destroy(&plan, args, &run, &cloud.api_calls())?;
                return Ok(complete_only_if_all_reached(
                    &run,
                    &args.cloud,
                    "Destroy",
                    Exit::Success,
                ));
            }
            if !args.cloud.json {
                write_stdout(&render::plan_human(
                    &plan,
                    Style {
                        color: term.stdout_color,
                    },
                    args.cloud.verbose > 0,
                ))?;
            }
            if !args.yes
                && !confirm(
                    "destroy",
                    &format!(
                        "Delete {deletions} key pair(s) of project {}?",
                        plan.project
                    ),
                )?
            {
                eprintln!("Cancelled: nothing was deleted (exit 1).");
                return Ok(Exit::Failure);
            }
            let exit = carry_out(
                cloud,
                &plan,
                &args.cloud,
                term,
                &run,
                Carry {
                    show_plan: false,
                    noun: "Destroy",
                    work: &args.work,
                },
            )
            .await?;
            Ok(complete_only_if_all_reached(
                &run,
                &args.cloud,
                "Destroy",
                exit,
            ))
        },
    )
}
