//! Carrying out a [`Plan`]: apply interprets the plan and decides nothing of its own.
//!
//! Per manifest entry (one private key), in order: make sure the key file can be written,
//! create the key pair in the first region, save the private key, then import its public key
//! into the other regions. Entries run concurrently, at most `concurrency` at once. When a
//! created key cannot be saved, the key pair is deleted again, so EC2 never keeps a key
//! whose private half is lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cloud::{Cloud, CloudError, CloudErrorKind};
use crate::keys::{KeyStore, PublicKey, public_key_of_private};
use crate::plan::{Action, ImportSource, KeyPairAction, KeyPairOp, Plan};

/// What happened to one action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The change was made.
    Done,
    /// Nothing needed doing.
    Unchanged,
    /// A conflict in the plan, or found while applying; nothing was done.
    Conflict,
    /// The change was tried and failed.
    Failed,
    /// Not tried because an action it depends on did not succeed.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Unchanged => "unchanged",
            Status::Conflict => "conflict",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One action and what became of it.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub action: Action,
    pub status: Status,
    /// What went wrong, with the hint (never key material).
    pub error: Option<String>,
}

/// Everything apply did, in plan order.
#[derive(Clone, Debug)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// True when every action succeeded or needed nothing.
    pub fn succeeded(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| matches!(o.status, Status::Done | Status::Unchanged))
    }
}

/// Progress messages (status lines on stderr); the apply itself never prints.
pub trait Progress: Send + Sync + 'static {
    fn step(&self, message: &str);
}

/// Carry out `plan`.
pub async fn apply<C: Cloud>(
    cloud: &Arc<C>,
    plan: &Plan,
    store: KeyStore,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Report {
    // Group the actions by manifest entry, keeping each action's place in the plan.
    let mut groups: BTreeMap<usize, Vec<(usize, KeyPairAction)>> = BTreeMap::new();
    for (index, Action::KeyPair(action)) in plan.actions.iter().enumerate() {
        groups
            .entry(action.entry)
            .or_default()
            .push((index, action.clone()));
    }
    let semaphore = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut results: Vec<Option<Outcome>> = vec![None; plan.actions.len()];
    for (_, group) in groups {
        let needs_work = group.iter().any(|(_, a)| a.op.is_change());
        if !needs_work {
            for (index, action) in group {
                results[index] = Some(settled(action));
            }
            continue;
        }
        let Ok(permit) = Arc::clone(&semaphore).acquire_owned().await else {
            break;
        };
        let cloud = Arc::clone(cloud);
        let progress = Arc::clone(&progress);
        tasks.spawn(async move {
            let outcomes = apply_entry(&*cloud, group, store, &*progress).await;
            drop(permit);
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
    let outcomes = results
        .into_iter()
        .zip(&plan.actions)
        .map(|(outcome, action)| {
            outcome.unwrap_or_else(|| Outcome {
                action: action.clone(),
                status: Status::Failed,
                error: Some("the task carrying out this action stopped unexpectedly".to_owned()),
            })
        })
        .collect();
    Report { outcomes }
}

/// The outcome of an action that needs no work.
fn settled(action: KeyPairAction) -> Outcome {
    let (status, error) = match &action.op {
        KeyPairOp::Noop => (Status::Unchanged, None),
        KeyPairOp::Conflict(conflict) => (
            Status::Conflict,
            Some(format!("{}: {}", conflict.as_str(), conflict.hint())),
        ),
        KeyPairOp::Create | KeyPairOp::Import { .. } | KeyPairOp::FixMode { .. } => {
            (Status::Skipped, None)
        }
    };
    Outcome {
        action: Action::KeyPair(action),
        status,
        error,
    }
}

fn outcome(action: KeyPairAction, status: Status, error: Option<String>) -> Outcome {
    Outcome {
        action: Action::KeyPair(action),
        status,
        error,
    }
}

fn cloud_failure(err: &CloudError) -> (Status, String) {
    let status = if err.kind == CloudErrorKind::Duplicate {
        Status::Conflict
    } else {
        Status::Failed
    };
    (status, format!("{err}\n  hint: {}", err.hint()))
}

/// One entry: create first (if planned), then the imports and mode fixes.
async fn apply_entry<C: Cloud>(
    cloud: &C,
    group: Vec<(usize, KeyPairAction)>,
    store: KeyStore,
    progress: &dyn Progress,
) -> Vec<(usize, Outcome)> {
    let mut out = Vec::with_capacity(group.len());
    // The public key created in this apply, or why there is none.
    let mut created: Option<Result<PublicKey, String>> = None;
    let (to_create, others): (Vec<_>, Vec<_>) = group
        .into_iter()
        .partition(|(_, a)| matches!(a.op, KeyPairOp::Create));
    for (index, action) in to_create {
        let result = create(cloud, &action, store, progress).await;
        match result {
            Ok(public) => {
                created = Some(Ok(public));
                out.push((index, outcome(action, Status::Done, None)));
            }
            Err((status, message)) => {
                created = Some(Err(format!("the key was not created in {}", action.region)));
                out.push((index, outcome(action, status, Some(message))));
            }
        }
    }
    for (index, action) in others {
        let result = match &action.op {
            KeyPairOp::Import { source, fix_mode } => {
                let public = match source {
                    ImportSource::File(public) => Ok(public.clone()),
                    ImportSource::CreatedIn(_) => created
                        .clone()
                        .unwrap_or_else(|| Err("the key to import was not created".to_owned())),
                };
                match public {
                    Err(why) => Err((Status::Skipped, why)),
                    Ok(public) => {
                        progress.step(&format!(
                            "Importing key pair `{}` into {}",
                            action.name, action.region
                        ));
                        match cloud
                            .import_key_pair(&action.region, &action.name, &public, &action.tags)
                            .await
                        {
                            Ok(_) if *fix_mode => store
                                .fix_mode(&action.output)
                                .map_err(|e| (Status::Failed, e.to_string())),
                            Ok(_) => Ok(()),
                            Err(err) => Err(cloud_failure(&err)),
                        }
                    }
                }
            }
            KeyPairOp::FixMode { .. } => {
                progress.step(&format!("Setting mode 0400 on {}", action.output_display));
                store
                    .fix_mode(&action.output)
                    .map_err(|e| (Status::Failed, e.to_string()))
            }
            KeyPairOp::Noop | KeyPairOp::Conflict(_) | KeyPairOp::Create => {
                out.push((index, settled(action)));
                continue;
            }
        };
        out.push(match result {
            Ok(()) => (index, outcome(action, Status::Done, None)),
            Err((status, message)) => (index, outcome(action, status, Some(message))),
        });
    }
    out
}

/// Create a key pair and save its private key; undo the create if the key cannot be saved.
async fn create<C: Cloud>(
    cloud: &C,
    action: &KeyPairAction,
    store: KeyStore,
    progress: &dyn Progress,
) -> Result<PublicKey, (Status, String)> {
    // Never ask EC2 for a key that cannot be saved.
    store
        .prepare(&action.output)
        .map_err(|e| (Status::Failed, format!("{e}; the key pair was not created")))?;
    progress.step(&format!(
        "Creating key pair `{}` in {}",
        action.name, action.region
    ));
    let created = cloud
        .create_key_pair(&action.region, &action.name, action.key_type, &action.tags)
        .await
        .map_err(|e| cloud_failure(&e))?;
    let saved = store.write_new(&action.output, &created.material);
    let public = public_key_of_private(&created.material);
    drop(created);
    match (saved, public) {
        (Ok(_), Ok(public)) => Ok(public),
        (Ok(_), Err(reason)) => Err((
            Status::Failed,
            format!(
                "the private key was saved to {} but could not be read back: {reason}",
                action.output_display
            ),
        )),
        (Err(err), _) => {
            let undo = cloud.delete_key_pair(&action.region, &action.name).await;
            let undone = match undo {
                Ok(()) => "the key pair was deleted again, so nothing is lost; fix the cause and run apply again".to_owned(),
                Err(e) => format!("deleting the key pair again also failed ({e}); delete it by hand"),
            };
            Err((Status::Failed, format!("{err}; {undone}")))
        }
    }
}
