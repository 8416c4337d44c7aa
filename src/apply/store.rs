//! The team store's part of apply (`store: ssm`), as the plan decided it: key files restored
//! from the store before anything else; after the key pairs' work, each key kept in the store
//! (read back from its key file, proven to be the key pair's key), entries another tool wrote
//! taken over, entries of deleted key pairs deleted. Requests are paced with SSM's bucket.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::task::JoinSet;

use super::run::{
    Failure, Settings, cloud_failure, failed, file_work, finished, journal_made, skipped,
};
use super::{Pair, Progress};
use crate::cloud::{Cloud, CloudErrorKind, LagLooks};
use crate::keys::{FileCustody, KeyCustody as _, KeyRef, public_key_of_stored};
use crate::plan::{Plan, StoreStep};
use crate::report::{Outcome, Problem, Status};
use crate::resource::Scope;

/// Write a key file from the store: the entry must still hold the planned key.
async fn restore_one<C: Cloud>(
    cloud: &C,
    action: &Pair<'_>,
    store: FileCustody,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<(), Failure> {
    let (Some(restore), Some(path)) = (&action.restore, action.output.clone()) else {
        return Ok(());
    };
    if let Some(why) = settings.stopped(action.scope) {
        return Err(why);
    }
    progress.step(&format!(
        "Restoring {} from SSM {}",
        action.output_display,
        crate::cloud::stored_name(&restore.id)
    ));
    let secret = cloud
        .get_stored(action.scope, &restore.id)
        .await
        .map_err(|e| cloud_failure(&e))?
        .ok_or_else(|| {
            failed("the store's entry is gone since labctl looked; nothing was written")
        })?;
    if public_key_of_stored(&secret).ok().as_ref() != Some(&restore.public) {
        return Err(failed(
            "the store's entry no longer holds the key pair's key; nothing was written",
        ));
    }
    let written = path.clone();
    file_work(move || store.save_new(KeyRef::Pem(&written), &secret))
        .await?
        .map_err(|e| failed(e.to_string()))?;
    journal_made(settings, &restore.public, &path)
        .map_err(|e| failed(format!("the key file was written, but not recorded: {e}")))
}

/// Restore every key file the plan restores (before anything else). Returns the failures,
/// by action index, and every other action of a failed entry as skipped (they would use the
/// key file).
pub(super) async fn restore_all<C: Cloud>(
    cloud: &Arc<C>,
    plan: &Plan,
    store: FileCustody,
    settings: &Settings,
    progress: &Arc<dyn Progress>,
) -> BTreeMap<usize, Outcome> {
    let mut tasks = JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
    for (index, action) in plan.actions.iter().enumerate() {
        if Pair::of(action).is_none_or(|a| a.restore.is_none()) {
            continue;
        }
        let (cloud, action, settings, progress, limit) = (
            Arc::clone(cloud),
            action.clone(),
            settings.clone(),
            Arc::clone(progress),
            Arc::clone(&limit),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let result = match Pair::of(&action) {
                Some(pair) => restore_one(&*cloud, &pair, store, &settings, &*progress).await,
                None => Ok(()),
            };
            (index, result.err())
        });
    }
    let mut out = BTreeMap::new();
    let mut failed_entries = BTreeSet::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((index, Some(failure))) = joined else {
            continue;
        };
        let action = &plan.actions[index];
        failed_entries.extend(action.key_pair().and_then(|a| a.entry));
        out.insert(index, finished(action, Err::<(), _>(failure)));
    }
    for (index, action) in plan.actions.iter().enumerate() {
        let entry = action.key_pair().and_then(|a| a.entry);
        if !out.contains_key(&index)
            && action.is_change()
            && entry.is_some_and(|e| failed_entries.contains(&e))
        {
            let failure = skipped("its key file could not be restored from the store");
            out.insert(index, finished(action, Err::<(), _>(failure)));
        }
    }
    out
}

/// The ids of key pairs this apply made, by scope and name, read once per scope (EC2's
/// listing may lag behind the writes: looked for again within its window).
async fn learn_ids<C: Cloud>(
    cloud: &C,
    wanted: &BTreeMap<Scope, BTreeSet<String>>,
    settings: &Settings,
) -> BTreeMap<(Scope, String), (String, Option<crate::keys::PublicKey>)> {
    let mut found = BTreeMap::new();
    for (scope, names) in wanted {
        let mut missing = names.clone();
        let mut looks = LagLooks::for_window(settings.listing_lag);
        loop {
            if let Ok(pairs) = cloud.describe_key_pairs(scope).await {
                for pair in pairs {
                    if missing.remove(&pair.name)
                        && let Some(id) = pair.id
                    {
                        found.insert((scope.clone(), pair.name), (id, pair.public_key));
                    }
                }
            }
            if missing.is_empty() || looks.over() {
                break;
            }
            looks.pause().await;
        }
    }
    found
}

/// Keep one key in the store: read from its key file, proven to be the key pair's key, put
/// without overwriting; a put whose answer was lost finds its own entry.
async fn put_one<C: Cloud>(
    cloud: &C,
    outcome: &Outcome,
    id: &str,
    expected: Option<&crate::keys::PublicKey>,
    store: FileCustody,
    settings: &Settings,
    project: &str,
) -> Result<(), Failure> {
    let action = Pair::of(&outcome.action).ok_or_else(|| failed("not a key pair"))?;
    let path = action
        .output
        .clone()
        .ok_or_else(|| failed("the key pair has no key file to keep"))?;
    let secret = file_work(move || store.read(KeyRef::Pem(&path)))
        .await?
        .ok_or_else(|| failed(format!("{} could not be read", action.output_display)))?;
    let public = match public_key_of_stored(&secret) {
        Ok(public) => Some(public),
        Err(why) => {
            return Err(failed(format!(
                "{}: {why}; nothing was kept in the store (an entry is one key alone)",
                action.output_display
            )));
        }
    };
    if public.as_ref() != expected {
        return Err(failed(format!(
            "{} does not hold the key pair's key; nothing was kept in the store",
            action.output_display
        )));
    }
    let tags = BTreeMap::from([(crate::desired::PROJECT_TAG.to_owned(), project.to_owned())]);
    match cloud
        .put_stored(
            action.scope,
            id,
            &secret,
            settings.kms_key_id.as_deref(),
            &tags,
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(err) if err.kind == CloudErrorKind::Duplicate => {
            let there = cloud
                .get_stored(action.scope, id)
                .await
                .map_err(|e| cloud_failure(&e))?;
            if there.as_ref().and_then(|s| public_key_of_stored(s).ok()) == public {
                Ok(())
            } else {
                Err(failed(format!(
                    "{} appeared since labctl looked, holding another key; it was left as it is",
                    crate::cloud::stored_name(id)
                ))
                .hint(crate::plan::Conflict::StoreMismatch.hint()))
            }
        }
        Err(err) => Err(cloud_failure(&err)),
    }
}

/// The store's work of one action whose key pair work went well.
async fn keep_one<C: Cloud>(
    cloud: &C,
    outcome: &Outcome,
    learned: Option<&(String, Option<crate::keys::PublicKey>)>,
    store: FileCustody,
    settings: &Settings,
    project: &str,
) -> Result<(), Failure> {
    let Some(action) = Pair::of(&outcome.action) else {
        return Ok(());
    };
    if let Some(id) = &action.unstore {
        cloud
            .delete_stored(action.scope, id)
            .await
            .map_err(|e| cloud_failure(&e))?;
    }
    match action.store {
        StoreStep::None => Ok(()),
        StoreStep::Adopt => {
            let id = action
                .remote_id
                .as_deref()
                .ok_or_else(|| failed("no key pair id"))?;
            let tags =
                BTreeMap::from([(crate::desired::PROJECT_TAG.to_owned(), project.to_owned())]);
            cloud
                .tag_stored(action.scope, id, &tags)
                .await
                .map_err(|e| cloud_failure(&e))
        }
        StoreStep::Put => {
            let (id, public) = learned.ok_or_else(|| {
                failed("EC2 did not list the key pair in time; run apply again to keep its key in the store")
            })?;
            put_one(
                cloud,
                outcome,
                id,
                public.as_ref(),
                store,
                settings,
                project,
            )
            .await
        }
    }
}

/// After the key pairs' work: keep, take over or delete store entries, for every action whose
/// key pair work went well. A failure turns its outcome failed (the key pair's own work
/// stays done, and the next apply finishes the store's part).
pub(super) async fn keep_all<C: Cloud>(
    cloud: &Arc<C>,
    plan: &Plan,
    outcomes: &mut [Outcome],
    store: FileCustody,
    settings: &Settings,
) {
    let needs = |o: &Outcome| {
        matches!(o.status, Status::Done | Status::Unchanged)
            && o.action
                .key_pair()
                .is_some_and(|a| a.store != StoreStep::None || a.unstore.is_some())
    };
    let mut wanted: BTreeMap<Scope, BTreeSet<String>> = BTreeMap::new();
    for outcome in outcomes.iter().filter(|o| needs(o)) {
        if outcome
            .action
            .key_pair()
            .is_some_and(|a| a.store == StoreStep::Put)
        {
            wanted
                .entry(outcome.action.scope().clone())
                .or_default()
                .insert(outcome.action.name().to_string());
        }
    }
    let learned = Arc::new(learn_ids(&**cloud, &wanted, settings).await);
    let limit = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for (index, outcome) in outcomes.iter().enumerate().filter(|(_, o)| needs(o)) {
        let (cloud, outcome, settings, learned, limit) = (
            Arc::clone(cloud),
            outcome.clone(),
            settings.clone(),
            Arc::clone(&learned),
            Arc::clone(&limit),
        );
        let project = plan.project.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let key = (
                outcome.action.scope().clone(),
                outcome.action.name().to_string(),
            );
            let result = keep_one(
                &*cloud,
                &outcome,
                learned.get(&key),
                store,
                &settings,
                &project,
            )
            .await;
            (index, result.err())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, Some(failure))) = joined {
            let outcome = &mut outcomes[index];
            let done = if outcome.status == Status::Done {
                "the key pair's work was done, but "
            } else {
                ""
            };
            outcome.status = Status::Failed;
            let mut problem = Problem::new(format!(
                "{done}the team store's part failed: {}",
                failure.problem.message
            ));
            problem.hint = failure.problem.hint;
            outcome.error = Some(problem);
        }
    }
}
