//! `labctl destroy`: delete what the manifest owns (asks first), retire its key files.

use crate::apply;
use crate::cli::DestroyArgs;
use crate::cloud::Cloud;
use crate::error::{Error, Exit};
use crate::keys::{FileState, KeyStore};
use crate::observe::{Observed, observe};
use crate::plan::{self, Options};
use crate::render::{self, Style};

use super::carry::{Carry, carry_out};

/// How long to wait for EC2's listing to catch up before deciding a key pair is absent.
const LISTING_LAG: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether some entry's key file exists while EC2 lists no key pair for it in a region.
fn unlisted_with_key_file(plan: &plan::Plan, observed: &Observed) -> bool {
    plan.actions.iter().any(|action| {
        let Some(a) = action.key_pair() else {
            return false;
        };
        a.entry.is_some()
            && a.op == plan::KeyPairOp::Noop
            && !observed.has(action.scope(), action.name().as_str())
            && a.output
                .as_ref()
                .is_some_and(|p| matches!(observed.local.get(p), Some(FileState::Key { .. })))
    })
}
use super::session::session;
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
            &render::report_json(&plan.project, &report, api_calls),
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
    session(
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
            let mut plan = plan::plan_destroy(&desired, &observed, &options);
            // A key file whose key pair EC2 does not list: it may have been made seconds ago
            // (EC2's listing lags behind). Look once more before leaving it behind.
            if unlisted_with_key_file(&plan, &observed) {
                if !args.cloud.quiet && !args.cloud.json {
                    eprintln!(
                        "Some key files have no key pair listed in EC2 yet; looking again in {} s (EC2's listing can lag behind a create)",
                        LISTING_LAG.as_secs()
                    );
                }
                tokio::time::sleep(LISTING_LAG).await;
                let again = observe(cloud, &desired, KeyStore, &run.deleted, &run.made)
                    .await
                    .map_err(Error::Observe)?;
                plan = plan::plan_destroy(&desired, &again, &options);
            }
            let deletions = plan.actions.iter().filter(|a| a.is_change()).count();
            if deletions == 0 {
                nothing_to_destroy(&plan, args, &run, &cloud.api_calls())?;
                return Ok(Exit::Success);
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
            carry_out(
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
            .await
        },
    )
}
