//! `labctl plan`: what apply would do, changing nothing.

use crate::cli::PlanArgs;
use crate::cloud::Cloud;
use crate::error::{Error, Exit};
use crate::plan;
use crate::render::{self, Style};

use super::carry::change_options;
use super::session::{Aws, Connect, session};
use super::{Terminal, write_json, write_stdout};

pub(super) fn plan_command(args: &PlanArgs, term: Terminal) -> Result<Exit, Error> {
    plan_in(&Aws, args, term)
}

/// `plan` through any cloud (EC2 in a run; the in-memory cloud in the commands' tests).
pub(super) fn plan_in<K: Connect>(
    connector: &K,
    args: &PlanArgs,
    term: Terminal,
) -> Result<Exit, Error> {
    let cloud_args = &args.cloud;
    session(
        connector,
        cloud_args,
        term,
        None,
        async |cloud, desired, observed, run| {
            let options = change_options(&desired, &args.changes, &run)?;
            let plan = plan::plan(&desired, &observed, &options);
            tracing::debug!(api_calls = ?cloud.api_calls(), "planned");
            if cloud_args.json {
                write_json(render::plan_json(&plan, &cloud.api_calls()), &run.warnings)?;
            } else {
                write_stdout(&render::plan_human(
                    &plan,
                    Style {
                        color: term.stdout_color,
                    },
                    cloud_args.verbose > 0,
                ))?;
            }
            Ok(if plan.has_conflicts() {
                Exit::Failure
            } else if args.detailed_exitcode && plan.has_changes() {
                Exit::Changes
            } else {
                Exit::Success
            })
        },
    )
}
