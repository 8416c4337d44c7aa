//! Carrying out a [`Plan`]: apply interprets the plan and decides nothing of its own.
//!
//! Tag changes go first, batched: one `CreateTags`/`DeleteTags` per region and identical
//! change, for many key pairs. Then per manifest entry (one key), in order: make sure the
//! key file can be written, create the key (EC2 or locally) and save the private key, then
//! import its public key into the other regions. Entries run concurrently, at most
//! `concurrency` at once. When a key EC2 created cannot be saved, the key pair is deleted
//! again, so EC2 never keeps a key whose private half is lost; a locally generated key is
//! saved before EC2 hears of it.

mod create;
mod delete;
mod files;
mod run;
mod store;
mod tags;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cloud::Cloud;
use crate::desired::KeyName;
use crate::keys::{FileCustody, PublicKey};
use crate::plan::{Action, ImportSource, KeyPairAction, KeyPairOp, Plan};
use crate::resource::{Kind, Scope};

pub(crate) use crate::report::{Outcome, Problem, Report, Status};
pub(crate) use run::{Settings, Stop};

use create::{create, import};
use delete::delete;
use files::{after_delete, finish_mode, move_aside_for_replace, undo_moves, write_ppk};
use run::{Done, Failure, finished, settled, skipped};
use tags::apply_tags;

/// Progress messages (status lines on stderr); the apply itself never prints.
pub(crate) trait Progress: Send + Sync + 'static {
    /// What is being done now (for a progress display, or a log line with -v).
    fn step(&self, message: &str);
    /// Something the user must know afterwards (where an old key file went).
    fn note(&self, message: &str) {
        self.step(message);
    }
    /// One change is finished (whatever its outcome), in this scope.
    fn finished(&self, _scope: &Scope) {}
}

/// One manifest entry's actions, each with its place in the plan.
type Group = Vec<(usize, Action)>;

/// A key pair action as apply's key pair steps take it: the action (for its outcome), its
/// address's name and scope, and its key pair operation's fields (through `Deref`).
#[derive(Clone, Copy)]
pub(super) struct Pair<'a> {
    pub action: &'a Action,
    pub name: &'a KeyName,
    pub scope: &'a Scope,
    operation: &'a KeyPairAction,
}

impl<'a> Pair<'a> {
    /// The key pair steps' view of `action`, when it is on a key pair.
    pub(super) fn of(action: &'a Action) -> Option<Self> {
        Some(Pair {
            operation: action.key_pair()?,
            action,
            name: &action.address.name,
            scope: &action.address.scope,
        })
    }
}

impl std::ops::Deref for Pair<'_> {
    type Target = KeyPairAction;

    fn deref(&self) -> &KeyPairAction {
        self.operation
    }
}

/// Carry out `plan`.
pub(crate) async fn apply<C: Cloud>(
    cloud: &Arc<C>,
    plan: &Plan,
    store: FileCustody,
    settings: Settings,
    progress: Arc<dyn Progress>,
) -> Report {
    let mut results: Vec<Option<Outcome>> = vec![None; plan.actions.len()];

    // Key files the team store gives back, before anything uses them.
    for (index, outcome) in store::restore_all(cloud, plan, store, &settings, &progress).await {
        progress.finished(outcome.action.scope());
        results[index] = Some(outcome);
    }

    // Tags first, batched per (region, change).
    let tag_changes = apply_tags(&**cloud, plan, &results, store, &*progress).await;
    for (index, outcome) in tag_changes {
        progress.finished(outcome.action.scope());
        results[index] = Some(outcome);
    }

    // Then the rest, grouped per entry (orphans per name, so that a file goes only after
    // every scope's key pair of that name), keeping each action's place.
    let mut groups: BTreeMap<(usize, usize), Group> = BTreeMap::new();
    let mut orphan_groups: BTreeMap<(Kind, &KeyName), usize> = BTreeMap::new();
    for (index, action) in plan.actions.iter().enumerate() {
        if results[index].is_some() {
            continue;
        }
        let key = match action.key_pair().and_then(|a| a.entry) {
            Some(e) => (0, e),
            None => (
                1,
                *orphan_groups
                    .entry((action.address.kind, action.name()))
                    .or_insert(index),
            ),
        };
        groups.entry(key).or_default().push((index, action.clone()));
    }
    let semaphore = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for group in interleave_regions(groups.into_values().collect()) {
        if !group.iter().any(|(_, a)| a.is_change()) {
            for (index, action) in group {
                results[index] = Some(settled(&action));
            }
            continue;
        }
        let Ok(permit) = Arc::clone(&semaphore).acquire_owned().await else {
            break;
        };
        let cloud = Arc::clone(cloud);
        let progress = Arc::clone(&progress);
        let settings = settings.clone();
        tasks.spawn(async move {
            let outcomes = apply_entry(&*cloud, group, store, &settings, &*progress).await;
            drop(permit);
            for (_, outcome) in &outcomes {
                if outcome.action.is_change() {
                    progress.finished(outcome.action.scope());
                }
            }
            outcomes
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok(outcomes) = joined {
            for (index, outcome) in outcomes {
                results[index] = Some(outcome);
            }
        }
    }
    let mut outcomes: Vec<Outcome> = results
        .into_iter()
        .zip(&plan.actions)
        .map(|(outcome, action)| {
            outcome.unwrap_or_else(|| Outcome {
                action: action.clone(),
                status: Status::Failed,
                error: Some(Problem::new(
                    "the task carrying out this action stopped unexpectedly",
                )),
            })
        })
        .collect();
    // The team store's part, once the key pairs' work is done.
    store::keep_all(cloud, plan, &mut outcomes, store, &settings).await;
    Report { outcomes }
}

/// Order entries so that every region makes progress at once: the first entry of each
/// region, then the second of each, and so on. A worker waiting for its region's pace holds a
/// place in the pool; in manifest order, one region's waiting workers would fill the pool and
/// the regions would run one after another instead of side by side.
fn interleave_regions(groups: Vec<Group>) -> Vec<Group> {
    let mut seen: BTreeMap<Scope, usize> = BTreeMap::new();
    let mut keyed: Vec<(usize, usize, Group)> = groups
        .into_iter()
        .enumerate()
        .map(|(position, group)| {
            let region = group.first().map(|(_, a)| a.scope().clone());
            let rank = region.map_or(0, |r| {
                let n = seen.entry(r).or_default();
                *n += 1;
                *n
            });
            (rank, position, group)
        })
        .collect();
    keyed.sort_by_key(|(rank, position, _)| (*rank, *position));
    keyed.into_iter().map(|(_, _, group)| group).collect()
}

/// One entry: the key's creation (or replacement) first, then imports, deletions, mode fixes.
async fn apply_entry<C: Cloud>(
    cloud: &C,
    group: Group,
    store: FileCustody,
    settings: &Settings,
    progress: &dyn Progress,
) -> Vec<(usize, Outcome)> {
    let mut out = Vec::with_capacity(group.len());
    // The public key created in this apply, or why there is none.
    let mut created: Option<Result<PublicKey, String>> = None;
    let (first, others): (Vec<_>, Vec<_>) = group
        .into_iter()
        .partition(|(_, a)| Pair::of(a).is_some_and(|a| creates_key(&a)));
    for (index, action) in &first {
        let Some(action) = Pair::of(action) else {
            continue;
        };
        let result = if let Some(why) = settings.stopped(action.scope) {
            Err(why)
        } else {
            create(cloud, &action, store, settings, progress).await
        };
        settings.note_region_failure(&action, &result);
        created = Some(
            result
                .clone()
                .map_err(|_| format!("the key was not created in {}", action.scope)),
        );
        // The PuTTY key of the new key (the other regions import the key either way).
        let result = match result {
            Ok(_) if action.ppk.is_some() => write_ppk(store, &action, progress).await,
            other => other.map(|_| ()),
        };
        out.push((*index, finished(action.action, result)));
    }
    for (index, action) in &others {
        let index = *index;
        let Some(action) = Pair::of(action).filter(|_| action.is_change()) else {
            out.push((index, settled(action)));
            continue;
        };
        // A file goes only when every key pair before it in this entry is gone.
        let all_done = out
            .iter()
            .all(|(_, o): &(usize, Outcome)| matches!(o.status, Status::Done | Status::Unchanged));
        let result = if let Some(why) = settings.stopped(action.scope) {
            Err(why)
        } else {
            step(
                cloud,
                &action,
                store,
                created.as_ref(),
                all_done,
                settings,
                progress,
            )
            .await
        };
        settings.note_region_failure(&action, &result);
        let result = if action.fix_mode && result.is_ok() {
            finish_mode(store, &action).await.and(result)
        } else {
            result
        };
        let result = if action.write_ppk && result.is_ok() {
            write_ppk(store, &action, progress).await.and(result)
        } else {
            result
        };
        out.push((index, finished(action.action, result)));
    }
    out
}

/// Whether this action makes the entry's new key (which the others then import).
fn creates_key(action: &Pair<'_>) -> bool {
    action.op.makes_key_in(action.scope)
}

/// An action that does not create the entry's key. `all_done`: every action before it in
/// the entry succeeded (a key file goes only then).
async fn step<C: Cloud>(
    cloud: &C,
    action: &Pair<'_>,
    store: FileCustody,
    created: Option<&Result<PublicKey, String>>,
    all_done: bool,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<Done, Failure> {
    let new_key = || match created {
        Some(Ok(public)) => Ok(public.clone()),
        Some(Err(why)) => Err(skipped(why.clone())),
        None => Err(skipped("the key to import was not created".to_owned())),
    };
    match &action.op {
        KeyPairOp::Import { source } => {
            let public = match source {
                ImportSource::File(public) | ImportSource::Given(public) => public.clone(),
                ImportSource::CreatedIn(_) => new_key()?,
            };
            import(cloud, action, &public, settings, progress).await
        }
        KeyPairOp::Replace { exists, .. } => {
            let public = new_key()?;
            if *exists {
                delete(cloud, action, settings, progress).await?;
            }
            import(cloud, action, &public, settings, progress).await
        }
        KeyPairOp::FixMode { .. } => {
            progress.step(&format!("Setting mode 0400 on {}", action.output_display));
            finish_mode(store, action).await.map(Done::from)
        }
        KeyPairOp::WritePpk => write_ppk(store, action, progress).await.map(Done::from),
        KeyPairOp::Delete { file } => {
            delete(cloud, action, settings, progress).await?;
            after_delete(store, file, all_done, settings.now, progress)
                .await
                .map(Done::from)
        }
        KeyPairOp::RetireFile { file } => {
            after_delete(store, file, all_done, settings.now, progress)
                .await
                .map(Done::from)
        }
        KeyPairOp::Create { .. }
        | KeyPairOp::UpdateTags { .. }
        | KeyPairOp::Adopt { .. }
        | KeyPairOp::Noop
        | KeyPairOp::Orphan
        | KeyPairOp::Conflict(_) => Ok(Done::Changed),
    }
}
