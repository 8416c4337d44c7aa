//! Tag changes (`update-tags`, `adopt`), batched: one request per region and identical change.

use std::collections::BTreeMap;

use crate::cloud::Cloud;
use crate::keys::FileCustody;
use crate::plan::{KeyPairOp, Plan};
use crate::resource::Scope;

use super::run::{cloud_failure, finished, outcome};
use super::{Pair, Progress, finish_mode, write_ppk};
use crate::report::{Outcome, Problem, Status};

/// Tag changes (`update-tags`, `adopt`), one request per scope and identical change.
pub(super) async fn apply_tags<C: Cloud>(
    cloud: &C,
    plan: &Plan,
    settled: &[Option<Outcome>],
    store: FileCustody,
    progress: &dyn Progress,
) -> Vec<(usize, Outcome)> {
    type Change = (Scope, BTreeMap<String, String>, Vec<String>);
    let mut batches: BTreeMap<Change, Vec<(usize, Pair<'_>, String)>> = BTreeMap::new();
    let mut out = Vec::new();
    for (index, action) in plan.actions.iter().enumerate() {
        let Some(action) = Pair::of(action).filter(|_| settled[index].is_none()) else {
            continue;
        };
        let (set, remove) = match &action.op {
            KeyPairOp::UpdateTags { set, remove } => (set.clone(), remove.clone()),
            KeyPairOp::Adopt { set } => (set.clone(), Vec::new()),
            _ => continue,
        };
        match action.remote_id.clone() {
            Some(id) => batches
                .entry((action.scope.clone(), set, remove))
                .or_default()
                .push((index, action, id)),
            None => out.push((
                index,
                outcome(
                    action.action,
                    Status::Failed,
                    Some(Problem::new("EC2 gave no key pair id to tag")),
                ),
            )),
        }
    }
    for ((scope, set, remove), members) in batches {
        let ids: Vec<String> = members.iter().map(|(_, _, id)| id.clone()).collect();
        progress.step(&format!(
            "Updating tags of {} key pair(s) in {scope}",
            ids.len()
        ));
        let mut result = Ok(());
        if !set.is_empty() {
            result = cloud.create_tags(&scope, &ids, &set).await;
        }
        if result.is_ok() && !remove.is_empty() {
            result = cloud.delete_tags(&scope, &ids, &remove).await;
        }
        for (index, action, _) in members {
            let done = match &result {
                Ok(()) if action.fix_mode => finish_mode(store, &action).await,
                Ok(()) => Ok(()),
                Err(err) => Err(cloud_failure(err)),
            };
            let done = match done {
                Ok(()) if action.write_ppk => write_ppk(store, &action, progress).await,
                other => other,
            };
            out.push((index, finished(action.action, done)));
        }
    }
    out
}
