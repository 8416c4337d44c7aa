//! Carrying out a [`Plan`]: apply interprets the plan and decides nothing of its own.
//!
//! Tag changes go first, batched: one `CreateTags`/`DeleteTags` per region and identical
//! change, for many key pairs. Then per manifest entry (one key), in order: make sure the
//! key file can be written, create the key (EC2 or locally) and save the private key, then
//! import its public key into the other regions. Entries run concurrently, at most
//! `concurrency` at once. When a key EC2 created cannot be saved, the key pair is deleted
//! again, so EC2 never keeps a key whose private half is lost; a locally generated key is
//! saved before EC2 hears of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cloud::{Cloud, CloudError, CloudErrorKind};
use crate::desired::APPLY_TAG;
use crate::journal::{Event, Journal};
use crate::keys::{KeyStore, PublicKey, generate, public_key_of_private};
use crate::ownership;
use crate::plan::{Action, AfterDelete, Generator, ImportSource, KeyPairAction, KeyPairOp, Plan};

/// What happened to one action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Unchanged => "unchanged",
            Status::Conflict => "conflict",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// What went wrong with an action, and what to do about it (never key material): kept apart
/// so that `render` formats them once, for people and for JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            hint: None,
        }
    }

    #[must_use]
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// One action and what became of it.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub action: Action,
    pub status: Status,
    /// What went wrong, when something did.
    pub error: Option<Problem>,
}

/// Everything apply did, in plan order.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// True when every action succeeded or needed nothing (orphans left alone included).
    pub(crate) fn succeeded(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| matches!(o.status, Status::Done | Status::Unchanged))
    }
}

/// Progress messages (status lines on stderr); the apply itself never prints.
pub(crate) trait Progress: Send + Sync + 'static {
    /// What is being done now (for a progress display, or a log line with -v).
    fn step(&self, message: &str);
    /// Something the user must know afterwards (where an old key file went).
    fn note(&self, message: &str) {
        self.step(message);
    }
    /// One change is finished (whatever its outcome), in this region.
    fn finished(&self, _region: &str) {}
}

/// Settings for one apply.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// At most this many entries worked on at once.
    pub concurrency: usize,
    /// Seconds since the Unix epoch, for `<file>.replaced-<timestamp>`.
    pub now: u64,
    /// This apply's id, tagged on the key pairs EC2 creates (see [`APPLY_TAG`]).
    pub apply_id: String,
    /// Keys the journal says EC2 was asked to create and whose private keys were never
    /// saved: `(apply id, name)`.
    pub unsaved: std::collections::BTreeSet<(String, String)>,
    /// Where each `CreateKeyPair` is recorded before it is sent, and each save after it.
    pub journal: Option<Arc<Journal>>,
    /// Nothing new starts after this moment (`--timeout`).
    pub deadline: tokio::time::Instant,
    /// Nothing new starts once this is requested (Ctrl-C, SIGTERM).
    pub stop: Stop,
    /// Regions where a failure concerned the whole region, with its message: nothing more
    /// starts there (a dead endpoint is reported once, not once per key pair).
    pub broken: Arc<std::sync::Mutex<BTreeMap<String, String>>>,
    /// How long EC2's listing may lag behind a write: how long a look for what a write did
    /// waits ([`crate::cloud::LISTING_LAG`]; shorter in tests).
    pub listing_lag: std::time::Duration,
}

impl Settings {
    /// Remember a region-wide failure so nothing more starts in that region.
    fn note_region_failure<T>(&self, action: &KeyPairAction, result: &Result<T, Failure>) {
        if let Err(failure) = result
            && failure.region_wide
        {
            self.broken
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(action.region.to_string())
                .or_insert_with(|| {
                    let message = &failure.problem.message;
                    message.lines().next().unwrap_or(message).to_owned()
                });
        }
    }
}

/// A request to start nothing new, shared by the signal handler and the workers.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stop(Arc<std::sync::atomic::AtomicBool>);

impl Stop {
    pub(crate) fn request(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn requested(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Wait until a stop is requested.
    pub(crate) async fn wait(&self) {
        while !self.requested() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Settings {
    /// Why the next action (in `region`) must not start, if it must not.
    fn stopped(&self, region: &crate::desired::Region) -> Option<Failure> {
        let broken = self
            .broken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(region.as_str())
            .cloned();
        if let Some(message) = broken {
            Some(skipped(format!(
                "not started: {region} failed for another key pair ({message})"
            )))
        } else if self.stop.requested() {
            Some(skipped(
                "not started: interrupted (Ctrl-C); run apply again",
            ))
        } else if tokio::time::Instant::now() >= self.deadline {
            Some(skipped(
                "not started: the --timeout was reached; run apply again",
            ))
        } else {
            None
        }
    }
}

/// Why an action did not succeed: its status and the problem.
#[derive(Clone, Debug)]
struct Failure {
    status: Status,
    problem: Problem,
    /// The failure concerns the whole region (unreachable, no credentials, not enabled):
    /// nothing more is started there.
    region_wide: bool,
}

fn failed(message: impl Into<String>) -> Failure {
    Failure {
        status: Status::Failed,
        problem: Problem::new(message),
        region_wide: false,
    }
}

impl Failure {
    #[must_use]
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.problem = self.problem.hint(hint);
        self
    }
}

fn skipped(message: impl Into<String>) -> Failure {
    Failure {
        status: Status::Skipped,
        problem: Problem::new(message),
        region_wide: false,
    }
}

/// One manifest entry's actions, each with its place in the plan.
type Group = Vec<(usize, KeyPairAction)>;

/// Carry out `plan`.
pub(crate) async fn apply<C: Cloud>(
    cloud: &Arc<C>,
    plan: &Plan,
    store: KeyStore,
    settings: Settings,
    progress: Arc<dyn Progress>,
) -> Report {
    let mut results: Vec<Option<Outcome>> = vec![None; plan.actions.len()];

    // Tags first, batched per (region, change).
    let tag_changes = apply_tags(&**cloud, plan, store, &*progress).await;
    for (index, outcome) in tag_changes {
        let Action::KeyPair(action) = &outcome.action;
        progress.finished(action.region.as_str());
        results[index] = Some(outcome);
    }

    // Then the rest, grouped per entry (orphans per name, so that a file goes only after
    // every region's key pair of that name), keeping each action's place.
    let mut groups: BTreeMap<(usize, usize), Vec<(usize, KeyPairAction)>> = BTreeMap::new();
    let mut orphan_groups: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, Action::KeyPair(action)) in plan.actions.iter().enumerate() {
        if results[index].is_some() {
            continue;
        }
        let key = match action.entry {
            Some(e) => (0, e),
            None => (
                1,
                *orphan_groups.entry(action.name.as_str()).or_insert(index),
            ),
        };
        groups.entry(key).or_default().push((index, action.clone()));
    }
    let semaphore = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for group in interleave_regions(groups.into_values().collect()) {
        if !group.iter().any(|(_, a)| a.is_change()) {
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
        let settings = settings.clone();
        tasks.spawn(async move {
            let outcomes = apply_entry(&*cloud, group, store, &settings, &*progress).await;
            drop(permit);
            for (_, outcome) in &outcomes {
                let Action::KeyPair(action) = &outcome.action;
                if action.is_change() {
                    progress.finished(action.region.as_str());
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
    let outcomes = results
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
    Report { outcomes }
}

/// Order entries so that every region makes progress at once: the first entry of each
/// region, then the second of each, and so on. A worker waiting for its region's pace holds a
/// place in the pool; in manifest order, one region's waiting workers would fill the pool and
/// the regions would run one after another instead of side by side.
fn interleave_regions(groups: Vec<Group>) -> Vec<Group> {
    let mut seen: BTreeMap<crate::desired::Region, usize> = BTreeMap::new();
    let mut keyed: Vec<(usize, usize, Group)> = groups
        .into_iter()
        .enumerate()
        .map(|(position, group)| {
            let region = group.first().map(|(_, a)| a.region.clone());
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

/// The outcome of an action that is not carried out: a conflict, nothing to do, or (for a
/// change) skipped.
fn settled(action: KeyPairAction) -> Outcome {
    let (status, error) = match &action.op {
        KeyPairOp::Conflict(conflict) => (
            Status::Conflict,
            Some(Problem::new(conflict.as_str()).hint(conflict.hint())),
        ),
        _ if action.is_change() => (Status::Skipped, None),
        _ => (Status::Unchanged, None),
    };
    outcome(action, status, error)
}

fn outcome(action: KeyPairAction, status: Status, error: Option<Problem>) -> Outcome {
    Outcome {
        action: Action::KeyPair(action),
        status,
        error,
    }
}

fn cloud_failure(err: &CloudError) -> Failure {
    let status = if err.kind == CloudErrorKind::Duplicate {
        Status::Conflict
    } else {
        Status::Failed
    };
    Failure {
        status,
        problem: Problem::new(err.to_string()).hint(err.hint()),
        region_wide: matches!(
            err.kind,
            CloudErrorKind::Unreachable
                | CloudErrorKind::NoCredentials
                | CloudErrorKind::ExpiredCredentials
                | CloudErrorKind::RegionNotEnabled
        ),
    }
}

/// Tag changes (`update-tags`, `adopt`), one request per region and identical change.
async fn apply_tags<C: Cloud>(
    cloud: &C,
    plan: &Plan,
    store: KeyStore,
    progress: &dyn Progress,
) -> Vec<(usize, Outcome)> {
    type Change = (
        crate::desired::Region,
        BTreeMap<String, String>,
        Vec<String>,
    );
    let mut batches: BTreeMap<Change, Vec<(usize, KeyPairAction, String)>> = BTreeMap::new();
    let mut out = Vec::new();
    for (index, Action::KeyPair(action)) in plan.actions.iter().enumerate() {
        let (set, remove) = match &action.op {
            KeyPairOp::UpdateTags { set, remove } => (set.clone(), remove.clone()),
            KeyPairOp::Adopt { set } => (set.clone(), Vec::new()),
            _ => continue,
        };
        match action.remote_id.clone() {
            Some(id) => batches
                .entry((action.region.clone(), set, remove))
                .or_default()
                .push((index, action.clone(), id)),
            None => out.push((
                index,
                outcome(
                    action.clone(),
                    Status::Failed,
                    Some(Problem::new("EC2 gave no key pair id to tag")),
                ),
            )),
        }
    }
    for ((region, set, remove), members) in batches {
        let ids: Vec<String> = members.iter().map(|(_, _, id)| id.clone()).collect();
        progress.step(&format!(
            "Updating tags of {} key pair(s) in {region}",
            ids.len()
        ));
        let mut result = Ok(());
        if !set.is_empty() {
            result = cloud.create_tags(&region, &ids, &set).await;
        }
        if result.is_ok() && !remove.is_empty() {
            result = cloud.delete_tags(&region, &ids, &remove).await;
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
            out.push((index, finished(action, done)));
        }
    }
    out
}

fn finished(action: KeyPairAction, result: Result<(), Failure>) -> Outcome {
    match result {
        Ok(()) => outcome(action, Status::Done, None),
        Err(Failure {
            status, problem, ..
        }) => outcome(action, status, Some(problem)),
    }
}

/// Run key store work on tokio's blocking pool: file work (an fsync above all) must not stall
/// the runtime's workers, which drive every request in flight.
async fn file_work<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| failed(format!("the file work stopped: {e}")))
}

/// Write the PuTTY key of the entry's key file beside it (derived from the file as it is
/// now, so the two always hold one key): owner-only, atomic, never over another file.
async fn write_ppk(
    store: KeyStore,
    action: &KeyPairAction,
    progress: &dyn Progress,
) -> Result<(), Failure> {
    let (Some(pem), Some(ppk)) = (action.output.clone(), action.ppk.clone()) else {
        return Ok(());
    };
    progress.step(&format!("Writing {}", ppk.display()));
    let name = action.name.as_str().to_owned();
    let shown = ppk.display().to_string();
    file_work(move || -> Result<(), String> {
        let secret = store
            .read_private(&pem)
            .ok_or_else(|| "the key file could not be read".to_owned())?;
        let text = crate::keys::to_ppk(&secret, &name, None)?;
        store.write_new(&ppk, &text).map_err(|e| e.to_string())?;
        Ok(())
    })
    .await?
    .map_err(|e| failed(format!("the PuTTY key {shown} was not written: {e}")))
}

async fn finish_mode(store: KeyStore, action: &KeyPairAction) -> Result<(), Failure> {
    let Some(path) = action.output.clone() else {
        return Ok(());
    };
    file_work(move || store.fix_mode(&path))
        .await?
        .map_err(|e| failed(e.to_string()))
}

/// One entry: the key's creation (or replacement) first, then imports, deletions, mode fixes.
async fn apply_entry<C: Cloud>(
    cloud: &C,
    group: Vec<(usize, KeyPairAction)>,
    store: KeyStore,
    settings: &Settings,
    progress: &dyn Progress,
) -> Vec<(usize, Outcome)> {
    let mut out = Vec::with_capacity(group.len());
    // The public key created in this apply, or why there is none.
    let mut created: Option<Result<PublicKey, String>> = None;
    let (first, others): (Vec<_>, Vec<_>) = group.into_iter().partition(|(_, a)| creates_key(a));
    for (index, action) in first {
        let result = if let Some(why) = settings.stopped(&action.region) {
            Err(why)
        } else {
            create(cloud, &action, store, settings, progress).await
        };
        settings.note_region_failure(&action, &result);
        created = Some(
            result
                .clone()
                .map_err(|_| format!("the key was not created in {}", action.region)),
        );
        // The PuTTY key of the new key (the other regions import the key either way).
        let result = match result {
            Ok(_) if action.ppk.is_some() => write_ppk(store, &action, progress).await,
            other => other.map(|_| ()),
        };
        out.push((index, finished(action, result)));
    }
    for (index, action) in others {
        if !action.is_change() {
            out.push((index, settled(action)));
            continue;
        }
        // A file goes only when every key pair before it in this entry is gone.
        let all_done = out
            .iter()
            .all(|(_, o): &(usize, Outcome)| matches!(o.status, Status::Done | Status::Unchanged));
        let result = if let Some(why) = settings.stopped(&action.region) {
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
        let result = match result {
            Ok(()) if action.fix_mode => finish_mode(store, &action).await,
            other => other,
        };
        let result = match result {
            Ok(()) if action.write_ppk => write_ppk(store, &action, progress).await,
            other => other,
        };
        out.push((index, finished(action, result)));
    }
    out
}

/// Whether this action makes the entry's new key (which the others then import).
fn creates_key(action: &KeyPairAction) -> bool {
    match &action.op {
        KeyPairOp::Create { .. } => true,
        KeyPairOp::Replace { created_in, .. } => *created_in == action.region,
        _ => false,
    }
}

/// An action that does not create the entry's key. `all_done`: every action before it in
/// the entry succeeded (a key file goes only then).
async fn step<C: Cloud>(
    cloud: &C,
    action: &KeyPairAction,
    store: KeyStore,
    created: Option<&Result<PublicKey, String>>,
    all_done: bool,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<(), Failure> {
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
            finish_mode(store, action).await
        }
        KeyPairOp::WritePpk => write_ppk(store, action, progress).await,
        KeyPairOp::Delete { file } => {
            record_retired(store, file, settings).await?;
            delete(cloud, action, settings, progress).await?;
            after_delete(store, file, all_done, settings.now, progress).await
        }
        KeyPairOp::RetireFile { file } => {
            after_delete(store, file, all_done, settings.now, progress).await
        }
        KeyPairOp::Create { .. }
        | KeyPairOp::UpdateTags { .. }
        | KeyPairOp::Adopt { .. }
        | KeyPairOp::Noop
        | KeyPairOp::Orphan
        | KeyPairOp::Conflict(_) => Ok(()),
    }
}

/// The key file of a deleted key pair: kept, retired or removed, and only when every key
/// pair that used it is gone.
async fn after_delete(
    store: KeyStore,
    file: &AfterDelete,
    all_done: bool,
    now: u64,
    progress: &dyn Progress,
) -> Result<(), Failure> {
    let path = match file {
        AfterDelete::Keep => return Ok(()),
        AfterDelete::Retire(path) | AfterDelete::Purge(path, _) => path,
    };
    if !all_done {
        return Err(failed(format!(
            "the key pair was deleted here, but {} stays: a key pair of this entry in another region was not deleted",
            path.display()
        )));
    }
    let (path, file) = (path.clone(), file.clone());
    match file {
        AfterDelete::Keep => Ok(()),
        AfterDelete::Retire(_) => {
            // Its PuTTY form (when it holds the same key) is retired with it.
            let moved = file_work(move || {
                let ppk = match store.inspect(&path) {
                    crate::keys::FileState::Key { public, .. } => store.ppk_beside(&path, &public),
                    _ => None,
                };
                let moved = store.move_aside(&path, "retired", now)?;
                if let Some(ppk) = ppk {
                    store.move_aside(&ppk, "retired", now)?;
                }
                Ok::<_, crate::keys::StoreError>(moved)
            })
            .await?;
            match moved {
                Ok(Some(aside)) => {
                    progress.note(&format!("Retired a key file to {}", aside.display()));
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(failed(format!("the key pair was deleted, but {e}"))),
            }
        }
        AfterDelete::Purge(_, public) => {
            let shown = path.display().to_string();
            let removed = file_work(move || {
                let ppk = store.ppk_beside(&path, &public);
                let removed = store.remove_key(&path, &public)?;
                if let Some(ppk) = ppk.filter(|_| removed) {
                    store.remove_ppk(&ppk, &public)?;
                }
                Ok::<_, crate::keys::StoreError>(removed)
            })
            .await?;
            match removed {
                Ok(true) => {
                    progress.note(&format!("Removed {shown}"));
                    Ok(())
                }
                Ok(false) => Ok(()),
                Err(e) => Err(failed(format!(
                    "the key pair was deleted, but not {shown}: {e}"
                ))),
            }
        }
    }
}

async fn import<C: Cloud>(
    cloud: &C,
    action: &KeyPairAction,
    public: &PublicKey,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<(), Failure> {
    progress.step(&format!(
        "Importing key pair `{}` into {}",
        action.name, action.region
    ));
    match cloud
        .import_key_pair(&action.region, &action.name, public, &action.tags)
        .await
    {
        Ok(_) => Ok(()),
        // The key pair is there already: a retry after a lost answer found its own import, or
        // EC2's listing had not caught up with an earlier write. Fine if it holds this key.
        Err(err) if err.kind == CloudErrorKind::Duplicate => {
            match look_until_listed(cloud, &action.region, &action.name, settings.listing_lag).await
            {
                Some(found) if found.public_key.as_ref() == Some(public) => Ok(()),
                _ => Err(cloud_failure(&err)),
            }
        }
        Err(err) => Err(cloud_failure(&err)),
    }
}

/// `CreateKeyPair` failed. Whatever the error (a lost answer whose retries then ended in
/// throttling or an auth error included), look: a key pair tagged with this apply's id was
/// created by this very request, and its private key is gone with the answer. Delete it, so
/// EC2 keeps no key whose private half nobody has. When it cannot be looked at or deleted now,
/// the journal still says the key was never saved, and the next run replaces it.
async fn recover_create<C: Cloud>(
    cloud: &C,
    action: &KeyPairAction,
    settings: &Settings,
    err: &CloudError,
) -> Failure {
    let failure = cloud_failure(err);
    // A last answer that EC2 refused the request (no credentials, denied, a refused key) says
    // nothing of earlier attempts: look once for a key pair this apply made. Any other
    // failure may have come after EC2 acted (a retry's `Duplicate` among them), and its
    // listing may lag behind: look until it catches up.
    let refused = matches!(
        err.kind,
        CloudErrorKind::NoCredentials
            | CloudErrorKind::ExpiredCredentials
            | CloudErrorKind::AccessDenied
            | CloudErrorKind::RegionNotEnabled
            | CloudErrorKind::InvalidKey
    );
    let lag = if refused {
        std::time::Duration::ZERO
    } else {
        settings.listing_lag
    };
    let found = look_until_listed(cloud, &action.region, &action.name, lag).await;
    if found
        .as_ref()
        .is_some_and(|pair| !ownership::made_by_this_apply(&pair.tags, &settings.apply_id))
    {
        // Another key pair of that name (another machine's): nothing of this apply's.
        return failure;
    }
    let Some(pair) = found else {
        // The key is named (in the hint), so that a report never folds it into another key's
        // line; a failure of the whole region still stops the region.
        return failure.hint(format!(
            "EC2 may have made `{}` before its answer was lost (it is not listed yet): the next apply finds it by this apply's id and recreates it; run apply again",
            action.name
        ));
    };
    match cloud
        .delete_key_pair(&action.region, &action.name, pair.id.as_deref())
        .await
    {
        Ok(()) => {
            record(settings, Event::Resolved, &action.name);
            failed(format!(
                "{}\nEC2 created the key pair but its answer, with the private key, was lost; the key pair was deleted again, so nothing is lost",
                failure.problem.message
            ))
            .hint("run apply again")
        }
        Err(delete_err) => failed(format!(
            "{}\nEC2 created `{}` but its answer, with the private key, was lost, and deleting it failed too ({delete_err})",
            failure.problem.message, action.name
        ))
        .hint("run apply again: the journal shows the key was never saved, and it is recreated"),
    }
}

/// Record that a new key's private key is saved: durable before success is reported.
fn journal_saved(settings: &Settings, name: &crate::desired::KeyName) -> std::io::Result<()> {
    match &settings.journal {
        Some(journal) => journal.record(Event::Saved, &settings.apply_id, name.as_str()),
        None => Ok(()),
    }
}

/// Append to the journal, when there is one; a failure to record anything but a create or a
/// save is only logged (the create itself is refused without its record).
fn record(settings: &Settings, event: Event, name: &crate::desired::KeyName) {
    record_id(settings, event, name.as_str());
}

fn record_id(settings: &Settings, event: Event, name: &str) {
    if let Some(journal) = &settings.journal
        && let Err(err) = journal.record(event, &settings.apply_id, name)
    {
        tracing::debug!(error = %err, key = %name, "could not write the journal");
    }
}

async fn delete<C: Cloud>(
    cloud: &C,
    action: &KeyPairAction,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<(), Failure> {
    progress.step(&format!(
        "Deleting key pair `{}` from {}",
        action.name, action.region
    ));
    let deleted = cloud
        .delete_key_pair(&action.region, &action.name, action.remote_id.as_deref())
        .await;
    if let Err(err) = deleted {
        // The answer may be lost after EC2 acted (a reset, an empty answer): what counts is
        // whether the key pair is gone.
        let failure = cloud_failure(&err);
        let maybe_acted = matches!(
            err.kind,
            CloudErrorKind::Unreachable | CloudErrorKind::Throttled | CloudErrorKind::Other
        );
        if !maybe_acted || !gone_after_all(cloud, action).await {
            return Err(failure);
        }
        tracing::debug!(key = %action.name, region = %action.region, "the delete's answer was lost, but the key pair is gone");
    }
    // EC2 may list it for a while yet; the journal says it is gone.
    if let Some(id) = &action.remote_id {
        record_id(settings, Event::Deleted, id);
    }
    Ok(())
}

/// After a delete that failed: whether EC2 no longer has the key pair the action meant (none
/// of that name, or one with another id, made since).
async fn gone_after_all<C: Cloud>(cloud: &C, action: &KeyPairAction) -> bool {
    match cloud.find_key_pair(&action.region, &action.name).await {
        Ok(None) => true,
        Ok(Some(found)) => {
            action.remote_id.is_some() && found.id.is_some() && found.id != action.remote_id
        }
        Err(_) => false,
    }
}

/// Before a delete whose file is retired or removed afterwards: record in the journal that
/// the file's key is retired, so that it stays retired whatever becomes of the delete's answer
/// (the next `destroy` retires a file left behind; `apply` never imports it again).
async fn record_retired(
    store: KeyStore,
    file: &AfterDelete,
    settings: &Settings,
) -> Result<(), Failure> {
    let public = match file {
        AfterDelete::Keep => return Ok(()),
        AfterDelete::Purge(_, public) => public.clone(),
        AfterDelete::Retire(path) => {
            let path = path.clone();
            match file_work(move || store.inspect(&path)).await? {
                crate::keys::FileState::Key { public, .. } => public,
                _ => return Ok(()),
            }
        }
    };
    if let Some(journal) = &settings.journal {
        journal
            .record(
                Event::Retired,
                &settings.apply_id,
                &public.sha256_fingerprint(),
            )
            .map_err(|e| {
                failed(format!(
                    "cannot record the retired key in labctl's journal ({e}); the key pair was not deleted"
                ))
            })?;
    }
    Ok(())
}

/// The key pair `name`, looking again for a while when EC2 does not list it yet (a write
/// that EC2 answered with `InvalidKeyPair.Duplicate` proves it exists).
async fn look_until_listed<C: Cloud>(
    cloud: &C,
    region: &crate::desired::Region,
    name: &crate::desired::KeyName,
    lag: std::time::Duration,
) -> Option<crate::cloud::RemoteKeyPair> {
    let until = tokio::time::Instant::now() + lag;
    // Looks back off (0.25 s, 0.5 s, 1 s, then every 2 s): a few requests per window.
    let mut pause = std::time::Duration::from_millis(250);
    loop {
        match cloud.find_key_pair(region, name).await {
            Ok(Some(found)) => return Some(found),
            Ok(None) | Err(_) if tokio::time::Instant::now() >= until => return None,
            Ok(None) | Err(_) => {
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(pause.min(left)).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
            }
        }
    }
}

/// Create the entry's key and save its private key; returns the public key.
async fn create<C: Cloud>(
    cloud: &C,
    action: &KeyPairAction,
    store: KeyStore,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<PublicKey, Failure> {
    let (generator, replace_existing) = match &action.op {
        KeyPairOp::Create { generator } => (*generator, false),
        KeyPairOp::Replace {
            generator, exists, ..
        } => (*generator, *exists),
        _ => return Err(failed("internal: not a create")),
    };
    let Some(path) = action.output.as_deref() else {
        return Err(failed(
            "internal: a new key needs an output file".to_owned(),
        ));
    };
    let moved = if matches!(action.op, KeyPairOp::Replace { .. }) {
        move_aside_for_replace(store, action, path, settings.now, progress).await?
    } else {
        Vec::new()
    };
    let made = make_key(
        cloud,
        action,
        generator,
        replace_existing,
        path,
        store,
        settings,
        progress,
    )
    .await;
    if made.is_err() {
        // A replace that did not make its new key leaves every file where it was.
        undo_moves(store, &moved, progress).await;
    }
    made
}

/// `--replace`: move the key file aside (and its `.ppk`, only when it is that key's PuTTY
/// form). Returns what was moved, `(original, aside)`, so that a failure can undo it.
async fn move_aside_for_replace(
    store: KeyStore,
    action: &KeyPairAction,
    path: &std::path::Path,
    now: u64,
    progress: &dyn Progress,
) -> Result<Vec<(std::path::PathBuf, std::path::PathBuf)>, Failure> {
    let (pem, ppk) = (path.to_owned(), action.ppk.clone());
    let checked = file_work(move || {
        let Some(ppk) = ppk else { return Ok(None) };
        match (store.inspect(&pem), store.inspect_ppk(&ppk)) {
            (_, crate::keys::FileState::Absent) => Ok(None),
            (
                crate::keys::FileState::Key { public: a, .. },
                crate::keys::FileState::Key { public: b, .. },
            ) if a == b => Ok(Some(ppk)),
            _ => Err(ppk),
        }
    })
    .await?;
    let ppk = checked.map_err(|ppk| {
        failed(format!(
            "{} is not the PuTTY form of {}: labctl does not move another key; nothing was replaced",
            ppk.display(),
            action.output_display
        ))
        .hint("move the .ppk away (or put back the key it belongs to), then run apply --replace again")
    })?;
    let mut moved = Vec::new();
    for file in std::iter::once(path.to_owned()).chain(ppk) {
        let owned = file.clone();
        let result = file_work(move || store.move_aside(&owned, "replaced", now)).await;
        match result {
            Ok(Ok(Some(aside))) => {
                progress.note(&format!(
                    "Moved {} aside to {}",
                    file.display(),
                    aside.display()
                ));
                moved.push((file, aside));
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                undo_moves(store, &moved, progress).await;
                return Err(failed(format!("{e}; nothing was replaced")));
            }
            Err(f) => {
                undo_moves(store, &moved, progress).await;
                return Err(f);
            }
        }
    }
    Ok(moved)
}

/// Give files moved aside their names back, newest first, saying where each one is.
async fn undo_moves(
    store: KeyStore,
    moved: &[(std::path::PathBuf, std::path::PathBuf)],
    progress: &dyn Progress,
) {
    for (original, aside) in moved.iter().rev() {
        let (o, a) = (original.clone(), aside.clone());
        match file_work(move || store.move_back(&a, &o)).await {
            Ok(Ok(())) => progress.note(&format!(
                "Moved {} back: the replacement was not made",
                original.display()
            )),
            _ => progress.note(&format!(
                "{} stays at {}: the replacement was not made",
                original.display(),
                aside.display()
            )),
        }
    }
}

/// Make the new key: check its file can be written, delete the key pair it replaces, then
/// create it (EC2) or generate, save and import it (locally).
#[allow(clippy::too_many_arguments)]
async fn make_key<C: Cloud>(
    cloud: &C,
    action: &KeyPairAction,
    generator: Generator,
    replace_existing: bool,
    path: &std::path::Path,
    store: KeyStore,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<PublicKey, Failure> {
    let owned = path.to_owned();
    file_work(move || store.prepare(&owned))
        .await?
        .map_err(|e| failed(format!("{e}; the key pair was not created")))?;
    if replace_existing {
        delete(cloud, action, settings, progress).await?;
    }
    match generator {
        Generator::Ec2 { key_type } => {
            create_by_ec2(cloud, action, key_type, path, store, settings, progress).await
        }
        Generator::Local { key_type, bits } => {
            progress.step(&format!(
                "Generating a {key_type} key for `{}`",
                action.name
            ));
            let (secret, public) = tokio::task::spawn_blocking(move || generate(key_type, bits))
                .await
                .map_err(|e| failed(format!("key generation stopped: {e}")))?
                .map_err(failed)?;
            let owned = path.to_owned();
            file_work(move || store.write_new(&owned, &secret))
                .await?
                .map_err(|e| failed(e.to_string()))?;
            import(cloud, action, &public, settings, progress).await?;
            Ok(public)
        }
    }
}

async fn create_by_ec2<C: Cloud>(
    cloud: &C,
    action: &KeyPairAction,
    key_type: crate::desired::KeyType,
    path: &std::path::Path,
    store: KeyStore,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<PublicKey, Failure> {
    if let Some(journal) = &settings.journal {
        journal
            .record(Event::Create, &settings.apply_id, action.name.as_str())
            .map_err(|e| {
                failed(format!(
                    "cannot record the new key in labctl's journal ({e}); the key pair was not created"
                ))
            })?;
    }
    progress.step(&format!(
        "Creating key pair `{}` in {}",
        action.name, action.region
    ));
    let tags = action.tags.with(APPLY_TAG, &settings.apply_id);
    let mut created = cloud
        .create_key_pair(&action.region, &action.name, key_type, &tags)
        .await;
    // An earlier run's request may land after this run looked: its key pair, whose private
    // key the journal proves was never saved, takes the name. Delete it and try again.
    if let Err(err) = &created
        && err.kind == CloudErrorKind::Duplicate
        && let Some(found) =
            look_until_listed(cloud, &action.region, &action.name, settings.listing_lag).await
        && ownership::made_by_unsaved_create(&found.tags, action.name.as_str(), &settings.unsaved)
        && cloud
            .delete_key_pair(&action.region, &action.name, found.id.as_deref())
            .await
            .is_ok()
    {
        created = cloud
            .create_key_pair(&action.region, &action.name, key_type, &tags)
            .await;
    }
    let created = match created {
        Ok(created) => created,
        Err(err) => return Err(recover_create(cloud, action, settings, &err).await),
    };
    match save_created(cloud, action, path, store, created, settings).await {
        Ok(public) => match journal_saved(settings, &action.name) {
            Ok(()) => Ok(public),
            Err(err) => Err(failed(format!(
                "the private key was saved to {}, but labctl's journal could not record it ({err})",
                action.output_display
            ))
            .hint("fix what stops labctl writing its state folder .labctl/ (a full disk, permissions) and run apply again: the key file stays, and the next run records it as saved")),
        },
        Err((failure, undone)) => {
            if undone {
                record(settings, Event::Resolved, &action.name);
            }
            Err(failure)
        }
    }
}

/// Save a key EC2 created; if it cannot be saved, delete the key pair again (then the error
/// comes with `true`).
async fn save_created<C: Cloud>(
    cloud: &C,
    action: &KeyPairAction,
    path: &std::path::Path,
    store: KeyStore,
    created: crate::cloud::CreatedKeyPair,
    settings: &Settings,
) -> Result<PublicKey, (Failure, bool)> {
    let crate::cloud::CreatedKeyPair {
        id,
        fingerprint,
        material,
    } = created;
    // The key is saved only when it is proven to be the key EC2 keeps: an answer cut inside
    // the key (which HTTP may take as complete) must never become a `.pem`.
    let public = match prove_created(
        cloud,
        action,
        id.as_deref(),
        &material,
        fingerprint,
        settings,
    )
    .await
    {
        Ok(public) => public,
        Err(reason) => {
            let why = format!(
                "EC2's answer did not hold the whole private key of `{}` ({reason}); nothing was saved",
                action.name
            );
            return Err(undo_create(cloud, action, id.as_deref(), why).await);
        }
    };
    let owned = path.to_owned();
    let saved = file_work(move || store.write_new(&owned, &material))
        .await
        .map_err(|failure| (failure, false))?;
    match saved {
        Ok(_) => Ok(public),
        Err(err) => Err(undo_create(cloud, action, id.as_deref(), err.to_string()).await),
    }
}

/// The public key of the private key EC2 returned, once it is proven to be the key of the
/// key pair EC2 made: the answer's own fingerprint matches it, or (a fingerprint in another
/// form, or none) the public key EC2 lists for that key pair is the same.
async fn prove_created<C: Cloud>(
    cloud: &C,
    action: &KeyPairAction,
    id: Option<&str>,
    material: &crate::keys::Secret,
    fingerprint: Option<String>,
    settings: &Settings,
) -> Result<PublicKey, String> {
    let material = material.clone();
    let (public, proven) = tokio::task::spawn_blocking(move || {
        let public = public_key_of_private(&material)?;
        let proven = fingerprint
            .is_some_and(|f| crate::keys::fingerprint::proves_created(&f, &material, &public));
        Ok::<_, String>((public, proven))
    })
    .await
    .map_err(|e| format!("the check stopped: {e}"))??;
    if proven {
        return Ok(public);
    }
    match look_until_listed(cloud, &action.region, &action.name, settings.listing_lag).await {
        Some(found) if id.is_some() && found.id.as_deref() != id => {
            Err("EC2 lists another key pair under that name".to_owned())
        }
        Some(found) if found.public_key.as_ref() == Some(&public) => Ok(public),
        Some(found) if found.public_key.is_some() => {
            Err("it is not the key of the key pair EC2 made".to_owned())
        }
        _ => Err("EC2 did not show the key pair's public key to compare with".to_owned()),
    }
}

/// Delete again a key pair this apply created whose private key was not saved. Returns the
/// failure to report, and whether the key pair is gone (the journal then marks it resolved).
async fn undo_create<C: Cloud>(
    cloud: &C,
    action: &KeyPairAction,
    id: Option<&str>,
    why: String,
) -> (Failure, bool) {
    let undo = cloud
        .delete_key_pair(&action.region, &action.name, id)
        .await;
    let (undone, message) = match undo {
        Ok(()) => (
            true,
            "the key pair was deleted again, so nothing is lost; fix the cause and run apply again"
                .to_owned(),
        ),
        Err(e) => (
            false,
            format!(
                "deleting the key pair again also failed ({e}); run apply again: the journal shows its key was never saved, and it is recreated"
            ),
        ),
    };
    (failed(format!("{why}; {message}")), undone)
}

#[cfg(test)]
mod tests {
    //! Apply's own logic as a table, against an in-memory cloud: what it sends in which
    //! order, and what it does when a step fails. The CLI is tested against the EC2 server.

    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::sync::Arc;

    use super::{Outcome, Progress, Settings, Status, apply};
    use crate::cloud::memory::{Fault, MemoryCloud};
    use crate::cloud::{CloudErrorKind, RemoteKeyPair};
    use crate::desired::{
        APPLY_TAG, Desired, KeyName, KeyPairSpec, KeySource, KeyType, PROJECT_TAG, Region, TagSet,
    };
    use crate::keys::{KeyStore, Secret, public_key_of_private};
    use crate::observe::observe;
    use crate::plan::{Action, Options, plan};

    struct Quiet;
    impl Progress for Quiet {
        fn step(&self, _: &str) {}
    }

    fn desired(dir: &Path, regions: &[&str]) -> Desired {
        Desired {
            project: "lab".into(),
            keypairs: vec![KeyPairSpec {
                name: KeyName::parse("lab").unwrap(),
                regions: regions.iter().map(|r| Region::parse(r).unwrap()).collect(),
                key_type: KeyType::Ed25519,
                source: KeySource::Aws,
                tags: TagSet::from_checked([(PROJECT_TAG.to_owned(), "lab".to_owned())].into()),
                purge_tags: false,
                ppk: None,
                seat: None,
                output: Some(dir.join("keys/lab.pem")),
                output_display: "keys/lab.pem".into(),
            }],
            orphan_dir: dir.join("keys"),
        }
    }

    fn settings(unsaved: &[(&str, &str)]) -> Settings {
        Settings {
            concurrency: 4,
            now: 7,
            apply_id: "00new".into(),
            unsaved: unsaved
                .iter()
                .map(|(id, name)| ((*id).to_owned(), (*name).to_owned()))
                .collect(),
            journal: None,
            deadline: tokio::time::Instant::now() + std::time::Duration::from_mins(1),
            stop: super::Stop::default(),
            broken: Arc::default(),
            listing_lag: std::time::Duration::from_secs(1),
        }
    }

    /// Observe, plan and apply once; the outcomes in plan order.
    async fn run(cloud: &Arc<MemoryCloud>, d: &Desired, settings: Settings) -> Vec<Outcome> {
        let observed = observe(cloud, d, KeyStore, &std::collections::BTreeSet::new())
            .await
            .unwrap();
        let options = Options {
            unsaved: settings.unsaved.clone(),
            ..Options::default()
        };
        let p = plan(d, &observed, &options);
        apply(cloud, &p, KeyStore, settings, Arc::new(Quiet))
            .await
            .outcomes
    }

    fn statuses(outcomes: &[Outcome]) -> Vec<Status> {
        outcomes.iter().map(|o| o.status).collect()
    }

    fn file_key(path: &Path) -> String {
        let text = std::fs::read_to_string(path).unwrap();
        public_key_of_private(&Secret::new(text))
            .unwrap()
            .to_openssh()
    }

    #[tokio::test]
    async fn the_key_is_created_and_saved_before_it_is_imported_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let d = desired(dir.path(), &["us-east-1", "eu-west-1"]);
        let cloud = Arc::new(MemoryCloud::default());
        let outcomes = run(&cloud, &d, settings(&[])).await;
        assert_eq!(statuses(&outcomes), [Status::Done, Status::Done]);
        assert_eq!(
            cloud.log(),
            [
                "DescribeKeyPairs eu-west-1 ",
                "DescribeKeyPairs us-east-1 ",
                "CreateKeyPair us-east-1 lab",
                "ImportKeyPair eu-west-1 lab",
            ]
        );
        let path = dir.path().join("keys/lab.pem");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o400);
        for region in ["us-east-1", "eu-west-1"] {
            let pair = cloud.get(region, "lab").unwrap();
            assert_eq!(pair.public_key.unwrap().to_openssh(), file_key(&path));
        }
        assert_eq!(
            cloud
                .get("us-east-1", "lab")
                .unwrap()
                .tags
                .get(APPLY_TAG)
                .map(String::as_str),
            Some("00new")
        );
    }

    #[tokio::test]
    async fn a_created_key_that_cannot_be_saved_is_deleted_again_and_nothing_is_imported() {
        let dir = tempfile::tempdir().unwrap();
        let d = desired(dir.path(), &["us-east-1", "eu-west-1"]);
        let cloud = Arc::new(MemoryCloud::default());
        // Someone writes the key file while EC2 makes the key: labctl must not overwrite it.
        let path = dir.path().join("keys/lab.pem");
        let racer = path.clone();
        cloud.after_create(move || std::fs::write(&racer, "someone else's").unwrap());
        let outcomes = run(&cloud, &d, settings(&[])).await;
        assert_eq!(statuses(&outcomes), [Status::Failed, Status::Skipped]);
        let error = &outcomes[0].error.as_ref().unwrap().message;
        assert!(error.contains("deleted again"), "{error}");
        assert!(
            cloud
                .log()
                .contains(&"DeleteKeyPair us-east-1 lab".to_owned())
        );
        assert!(cloud.get("us-east-1", "lab").is_none());
        assert!(cloud.get("eu-west-1", "lab").is_none());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "someone else's");
    }

    #[tokio::test]
    async fn a_private_key_cut_short_in_the_answer_is_never_saved_and_the_key_pair_goes() {
        let dir = tempfile::tempdir().unwrap();
        let d = desired(dir.path(), &["us-east-1", "eu-west-1"]);
        let cloud = Arc::new(MemoryCloud::default());
        cloud.fault("CreateKeyPair", Fault::CutMaterial);
        let outcomes = run(&cloud, &d, settings(&[])).await;
        assert_eq!(statuses(&outcomes), [Status::Failed, Status::Skipped]);
        let error = &outcomes[0].error.as_ref().unwrap().message;
        assert!(
            error.contains("did not hold the whole private key") && error.contains("deleted again"),
            "{error}"
        );
        assert!(!dir.path().join("keys/lab.pem").exists());
        assert!(cloud.get("us-east-1", "lab").is_none());
        assert!(cloud.get("eu-west-1", "lab").is_none());
        // Whole again, the next apply creates and saves the key.
        let outcomes = run(&cloud, &d, settings(&[])).await;
        assert_eq!(statuses(&outcomes), [Status::Done, Status::Done]);
        let path = dir.path().join("keys/lab.pem");
        let pair = cloud.get("us-east-1", "lab").unwrap();
        assert_eq!(pair.public_key.unwrap().to_openssh(), file_key(&path));
    }

    #[tokio::test]
    async fn a_lost_create_answer_is_cleaned_up_when_it_can_be_and_left_to_the_journal_when_not() {
        let dir = tempfile::tempdir().unwrap();
        let d = desired(dir.path(), &["us-east-1"]);
        let cloud = Arc::new(MemoryCloud::default());
        cloud.fault(
            "CreateKeyPair",
            Fault::LoseAnswer(CloudErrorKind::Unreachable),
        );
        let outcomes = run(&cloud, &d, settings(&[])).await;
        assert_eq!(statuses(&outcomes), [Status::Failed]);
        assert!(
            outcomes[0]
                .error
                .as_ref()
                .map(|p| p.message.as_str())
                .unwrap()
                .contains("nothing is lost")
        );
        assert!(cloud.get("us-east-1", "lab").is_none());

        // The retries ended in throttling, and every look that would clean up fails too,
        // for as long as the listing may lag.
        let cloud = Arc::new(MemoryCloud::default());
        cloud.fault(
            "CreateKeyPair",
            Fault::LoseAnswer(CloudErrorKind::Throttled),
        );
        let observed = observe(&cloud, &d, KeyStore, &std::collections::BTreeSet::new())
            .await
            .unwrap();
        let p = plan(&d, &observed, &Options::default());
        for _ in 0..10 {
            cloud.fault("DescribeKeyPairs", Fault::Fail(CloudErrorKind::Other));
        }
        let report = apply(&cloud, &p, KeyStore, settings(&[]), Arc::new(Quiet)).await;
        assert_eq!(statuses(&report.outcomes), [Status::Failed]);
        assert!(
            cloud.get("us-east-1", "lab").is_some(),
            "left for the next run"
        );
        let hint = report.outcomes[0].error.as_ref().unwrap().hint.clone();
        assert!(
            hint.as_deref().unwrap_or_default().contains("`lab`"),
            "the key is named: {hint:?}"
        );
        cloud.clear_faults();
        assert!(!dir.path().join("keys/lab.pem").exists());

        // The next run knows from the journal that nobody saved it: replaced.
        let outcomes = run(&cloud, &d, settings(&[("00new", "lab")])).await;
        assert_eq!(statuses(&outcomes), [Status::Done]);
        let Action::KeyPair(a) = &outcomes[0].action;
        assert_eq!(a.op.name(), "replace");
    }

    /// A create whose answer was lost while the listing lags: the look waits the lag out,
    /// finds the key pair this apply made and deletes it again in the same run.
    #[tokio::test]
    async fn a_lost_create_is_looked_for_until_the_listing_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let d = desired(dir.path(), &["us-east-1"]);
        let cloud = Arc::new(MemoryCloud::default());
        let observed = observe(&cloud, &d, KeyStore, &std::collections::BTreeSet::new())
            .await
            .unwrap();
        let p = plan(&d, &observed, &Options::default());
        cloud.fault(
            "CreateKeyPair",
            Fault::LoseAnswer(CloudErrorKind::Unreachable),
        );
        // The first look finds nothing listed yet (the lag), the next one finds it.
        cloud.fault("DescribeKeyPairs", Fault::Hide);
        let report = apply(&cloud, &p, KeyStore, settings(&[]), Arc::new(Quiet)).await;
        assert_eq!(statuses(&report.outcomes), [Status::Failed]);
        let message = &report.outcomes[0].error.as_ref().unwrap().message;
        assert!(message.contains("nothing is lost"), "{message}");
        assert!(cloud.get("us-east-1", "lab").is_none());
    }

    #[tokio::test]
    async fn a_late_create_of_an_unsaved_key_is_replaced_but_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let d = desired(dir.path(), &["us-east-1"]);
        let late = |apply_id: &str| RemoteKeyPair {
            name: "lab".into(),
            id: Some("key-late".into()),
            fingerprint: None,
            key_type: Some(KeyType::Ed25519),
            public_key: None,
            tags: [
                (PROJECT_TAG.to_owned(), "lab".to_owned()),
                (APPLY_TAG.to_owned(), apply_id.to_owned()),
            ]
            .into(),
        };
        for (tag, unsaved, expected) in [
            ("00old", true, Status::Done),
            ("00old", false, Status::Conflict),
            ("00other", true, Status::Conflict),
        ] {
            let cloud = Arc::new(MemoryCloud::default());
            let observed = observe(&cloud, &d, KeyStore, &std::collections::BTreeSet::new())
                .await
                .unwrap();
            let p = plan(&d, &observed, &Options::default());
            // An earlier run's request lands after this run looked.
            cloud.put("us-east-1", late(tag));
            let journal: &[(&str, &str)] = if unsaved { &[("00old", "lab")] } else { &[] };
            let report = apply(&cloud, &p, KeyStore, settings(journal), Arc::new(Quiet)).await;
            assert_eq!(statuses(&report.outcomes), [expected], "{tag} {unsaved}");
            let now = cloud.get("us-east-1", "lab").unwrap();
            assert_eq!(
                now.id.as_deref() == Some("key-late"),
                expected != Status::Done
            );
        }
    }
}
