//! `labctl destroy`: delete what the manifest owns (asks first), retire its key files.

use crate::apply;
use crate::cli::DestroyArgs;
use crate::cloud::Cloud;
use crate::error::{Error, Exit};
use crate::plan::{self, Action, Options};
use crate::render::{self, Style};

use super::apply::carry_out;
use super::session::session;
use super::{Terminal, confirm, write_stdout};

pub(super) fn destroy_command(args: &DestroyArgs, term: Terminal) -> Result<Exit, Error> {
    session(
        &args.cloud,
        term,
        Some("destroy"),
        async |cloud, desired, observed, run| {
            let options = Options {
                purge_local: args.purge_local,
                keep_local: args.keep_local,
                ..Options::default()
            };
            let plan = plan::plan_destroy(&desired, &observed, &options);
            let deletions = plan
                .actions
                .iter()
                .filter(|Action::KeyPair(a)| a.op.is_change())
                .count();
            if deletions == 0 {
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
                    write_stdout(&render::report_json(
                        &plan.project,
                        &report,
                        &cloud.api_calls(),
                    ))?;
                } else {
                    write_stdout(&format!(
                        "Nothing to destroy: project {} owns no key pair in its regions.\n",
                        plan.project
                    ))?;
                }
                return Ok(Exit::Success);
            }
            if !args.cloud.json {
                write_stdout(&render::plan_human(
                    &plan,
                    Style {
                        color: term.stdout_color,
                    },
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
                eprintln!("Cancelled; nothing was deleted.");
                return Ok(Exit::Failure);
            }
            carry_out(cloud, &plan, &args.cloud, term, false, &run).await
        },
    )
}
