//! What every command that talks to AWS does first: validate the manifest, take the lock
//! (for commands that change things), connect, and read the regions and key files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{CloudArgs, Pace};
use crate::cloud::{Cloud, Ec2, Ec2Options};
use crate::desired::Desired;
use crate::error::Error;
use crate::keys::FileCustody;
use crate::lock;
use crate::observe::{Observed, observe};
use crate::resource::Scope;

use super::{Terminal, git_exposure, load, report_git_exposure};

pub(super) fn init_logging(verbose: u8) {
    // Never trace the SDK: its trace level prints requests and responses.
    let filter = match verbose {
        0 => return,
        1 => "labctl=debug",
        _ => "labctl=trace,aws_config=debug,aws_smithy_runtime=debug,aws_sdk_ec2=debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(true)
        .try_init();
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

/// The cloud a session reached, and the former accounts (no longer in the manifest) it
/// could not reach.
pub(super) struct Connected<C> {
    pub(super) cloud: Arc<C>,
    pub(super) unreached: Vec<(crate::desired::Reach, crate::cloud::CloudError)>,
}

/// How a session reaches the cloud: EC2 through its SDK in a run ([`Aws`]), the in-memory
/// cloud in the commands' own tests. Everything else a command does is the same for both.
pub(super) trait Connect {
    type Cloud: Cloud;

    /// The cloud for the manifest's scopes, bounded by the run's deadline and stop. Every
    /// member account is reached first: one of the manifest's that cannot be is an error
    /// before anything is read.
    async fn connect(
        &self,
        args: &CloudArgs,
        desired: &Desired,
        deadline: Instant,
        stop: &crate::apply::Stop,
    ) -> Result<Connected<Self::Cloud>, Error>;

    /// Whether reading the cloud is worth a status line (not when nothing is asked).
    fn reads_the_cloud(&self) -> bool {
        true
    }
}

/// EC2 through `aws-sdk-ec2`, as `--profile`, `--endpoint-url` and the pacing flags say.
pub(super) struct Aws;

impl Connect for Aws {
    type Cloud = Ec2;

    async fn connect(
        &self,
        args: &CloudArgs,
        desired: &Desired,
        deadline: Instant,
        stop: &crate::apply::Stop,
    ) -> Result<Connected<Ec2>, Error> {
        let options = Ec2Options {
            endpoint_url: args.endpoint_url.clone(),
            profile: args.profile.clone(),
            max_attempts: args.max_attempts,
            // EC2 answers in well under a second; ten seconds of silence is a dead endpoint.
            attempt_timeout: Duration::from_secs(args.timeout.min(10)),
            pace: match args.pace {
                Pace::Ec2 => Some(args.pace_scale),
                Pace::None => None,
            },
            deadline: Some(deadline.into()),
            stop: stop.clone(),
        };
        let scopes = desired.scopes();
        let accounts: std::collections::BTreeSet<&str> =
            scopes.iter().filter_map(|s| s.account.id()).collect();
        if !accounts.is_empty() {
            status(
                args,
                &format!("Assuming a role in {} account(s)", accounts.len()),
            );
        }
        // In the manifest's order, its places before remembered ones: each account's role is
        // assumed in the first region the manifest gives it (never in a region it no longer
        // names, which may be one disabled since).
        let mut ordered: Vec<Scope> = Vec::with_capacity(scopes.len());
        for scope in desired
            .keypairs
            .iter()
            .flat_map(|k| k.scopes.iter())
            .chain(desired.former_scopes.iter())
        {
            if !ordered.contains(scope) {
                ordered.push(scope.clone());
            }
        }
        // A remembered member account may turn out to be the caller's own: its regions are
        // then read as the caller's (`reach::leave_unreached`), with these clients.
        let spare: Vec<Scope> = desired
            .former_scopes
            .iter()
            .map(|s| Scope::caller(s.region.clone()))
            .filter(|s| !ordered.contains(s))
            .collect();
        let ec2 = Ec2::new(&options, &ordered, &spare, &desired.accounts).await;
        // Assuming roles changes nothing: a Ctrl-C ends it at once.
        let failed = tokio::select! {
            failed = tokio::time::timeout_at(deadline.into(), ec2.reach_accounts()) => {
                failed.map_err(|_| Error::Timeout(args.timeout))?
            }
            () = stop.wait() => return Err(Error::Interrupted),
        };
        let (unreached, failed): (Vec<_>, Vec<_>) =
            failed.into_iter().partition(|(reach, _)| reach.former);
        if !failed.is_empty() {
            return Err(Error::Accounts(failed));
        }
        Ok(Connected {
            cloud: Arc::new(ec2),
            unreached,
        })
    }
}

/// No network at all (`output --offline`): what the manifest and the key files know.
pub(super) struct NoNetwork;

impl Connect for NoNetwork {
    type Cloud = crate::cloud::Offline;

    async fn connect(
        &self,
        _args: &CloudArgs,
        _desired: &Desired,
        _deadline: Instant,
        _stop: &crate::apply::Stop,
    ) -> Result<Connected<crate::cloud::Offline>, Error> {
        Ok(Connected {
            cloud: Arc::new(crate::cloud::Offline),
            unreached: Vec::new(),
        })
    }

    fn reads_the_cloud(&self) -> bool {
        false
    }
}

pub(super) fn status(args: &CloudArgs, message: &str) {
    if args.says_status() {
        eprintln!("{message}");
    }
}

/// What a command's work needs besides the cloud, the desired and the observed state.
pub(super) struct Run {
    /// Nothing new starts after this (`--timeout`).
    pub(super) deadline: Instant,
    /// This run's id, tagged on key pairs EC2 creates.
    pub(super) apply_id: String,
    /// Keys earlier runs asked EC2 to create and never saved (from the journal).
    pub(super) unsaved: std::collections::BTreeSet<(String, String)>,
    /// Fingerprints of keys destroy or prune retired (from the journal).
    pub(super) retired: std::collections::BTreeSet<String>,
    /// The keys labctl made for this project and the files it wrote them to (the journal's
    /// `made`).
    pub(super) made:
        std::collections::BTreeMap<String, std::collections::BTreeSet<std::path::PathBuf>>,
    /// The journal, held with the lock by commands that change things.
    pub(super) journal: Option<Arc<crate::journal::Journal>>,
    /// Warnings for the JSON document (`--json`; otherwise they went to stderr).
    pub(super) warnings: Vec<serde_json::Value>,
    /// Places the manifest no longer names that this run could not reach (`team-b
    /// (222222222222)`, `team-b/ap-east-1`): what labctl placed there is left as it is, so a
    /// destroy or prune of this run is not complete.
    pub(super) left: Vec<String>,
    /// Set by Ctrl-C or SIGTERM: start nothing new.
    pub(super) stop: crate::apply::Stop,
    /// The KMS key of the team store's entries (`store: { ssm: { kms_key_id } }`).
    pub(super) kms_key_id: Option<String>,
}

/// Validate the manifest, then (for commands that change things) take the manifest's lock,
/// then read the cloud and the key files: the start of every command that talks to AWS.
/// Nothing is sent and nothing written when the manifest has an error. A run that returns
/// (even with an error) marks the lock's record finished; only a killed run leaves it running.
pub(super) fn session<K: Connect, T>(
    connector: &K,
    args: &CloudArgs,
    term: Terminal,
    lock_for: Option<&str>,
    work: impl AsyncFnOnce(&Arc<K::Cloud>, Desired, Observed, Run) -> Result<T, Error>,
) -> Result<T, Error> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    init_logging(args.verbose);
    let (mut desired, mut warnings) = prepare(args, term)?;
    let folders = desired.key_folders();
    let project = desired.project.clone();
    let rt = runtime()?;
    let (mut lock, state, shared) = open_state(
        args,
        &desired,
        &folders,
        (lock_for, connector.reads_the_cloud()),
        &rt,
    )?;
    let reached = state.journal.reached.clone();
    super::reach::add_former(&mut desired, &reached);
    let result = rt.block_on(async {
        // Signals are watched before the first request: a Ctrl-C while the regions are read
        // ends the command with its report (one JSON document with --json), not by the signal.
        let stop = crate::apply::Stop::default();
        watch_signals(stop.clone(), args.quiet, args.json);
        let connected = connector.connect(args, &desired, deadline, &stop).await?;
        let cloud = connected.cloud;
        let unreached = super::reach::leave_unreached(
            &mut desired,
            connected.unreached,
            &reached,
            args.json,
            term,
        );
        warnings.extend(unreached.warnings);
        let (observed, run) = look(
            &cloud,
            args,
            &mut desired,
            state,
            Begun {
                deadline,
                reads: connector.reads_the_cloud(),
                term,
                warnings,
                left: unreached.left,
                stop,
            },
        )
        .await?;
        if let Some(journal) = run.journal.as_deref() {
            super::reach::remember(journal, &desired, &observed, &run.apply_id, &unreached.own)?;
        }
        // What a destroy or prune empties, it forgets (see `reach::forget_emptied`).
        let seen = super::reach::seen(&desired, &observed, &reached);
        let (journal, apply_id) = (run.journal.clone(), run.apply_id.clone());
        let done = work(&cloud, desired, observed, run).await;
        if let Some(journal) = journal.as_deref() {
            super::reach::forget_emptied(journal, &seen, lock_for == Some("destroy"), &apply_id)?;
        }
        done
    });
    if let Some(lock) = lock.as_mut() {
        // Folders this run wrote keys to are the project's now.
        let made = lock::journal_state(&args.manifest, &project)
            .map(|state| state.made)
            .unwrap_or_default();
        let _ = claim_key_folders(&folders_with_keys(&folders, &made), &project, true);
        lock.finish();
    }
    if let Some(shared) = shared {
        for problem in rt.block_on(shared.release()) {
            let hint =
                "run labctl again with the lock (apply or destroy): it writes the journal back";
            super::warn(false, term, ("shared-state", &problem, hint), &[]);
        }
    }
    result
}

/// What the journal says, and the journal itself when the run holds the lock.
struct State {
    journal: crate::journal::State,
    held: Option<Arc<crate::journal::Journal>>,
    /// Why the shared state's journal could not be read (a command without the lock).
    unread: Option<String>,
}

/// Claim the key folders, take the lock (for commands that change things) and read the
/// journal; a run that writes also cleans its temporary files.
fn open_state(
    args: &CloudArgs,
    desired: &Desired,
    folders: &[std::path::PathBuf],
    (lock_for, reads): (Option<&str>, bool),
    rt: &tokio::runtime::Runtime,
) -> Result<(Option<lock::Lock>, State, Option<crate::shared::Shared>), Error> {
    let project = &desired.project;
    let mut unread = None;
    claim_key_folders(folders, project, false)?;
    let mut lock = match lock_for {
        Some(command) => Some(lock::acquire(&args.manifest, project, command)?),
        None => None,
    };
    let journal = if let Some(lock) = &lock {
        lock.journal.state.clone()
    } else {
        let mut journal = lock::journal_state(&args.manifest, project)?;
        if reads {
            unread = super::shared_state::add_shared_retired(args, desired, &mut journal, rt);
        }
        journal
    };
    if lock.is_some() {
        claim_key_folders(&folders_with_keys(folders, &journal.made), project, true)?;
        clean_temporary(desired);
    }
    let shared = super::shared_state::take(args, desired, lock.as_mut(), lock_for, rt)?;
    let journal = match (&lock, &shared) {
        (Some(lock), Some(_)) => lock.journal.state.clone(),
        _ => journal,
    };
    if !journal.unsaved.is_empty() {
        tracing::debug!(
            unsaved = ?journal.unsaved,
            "keys an earlier run asked EC2 for were never saved"
        );
    }
    let held = lock.as_ref().map(|l| Arc::clone(&l.journal));
    let state = State {
        journal,
        held,
        unread,
    };
    Ok((lock, state, shared))
}

/// What a run started with: its deadline, the warnings so far, its stop request, and whether
/// it reads the cloud.
struct Begun {
    deadline: Instant,
    reads: bool,
    term: Terminal,
    warnings: Vec<serde_json::Value>,
    /// Former places already left out (accounts that could not be reached).
    left: Vec<String>,
    stop: crate::apply::Stop,
}

/// Read every scope and key file (bounded by the deadline, ended by Ctrl-C), settle what the
/// journal left open, and gather what the command's work needs. Any [`Cloud`]: EC2's
/// client in a run, the in-memory cloud in tests.
async fn look<C: Cloud>(
    cloud: &Arc<C>,
    args: &CloudArgs,
    desired: &mut Desired,
    state: State,
    begun: Begun,
) -> Result<(Observed, Run), Error> {
    let Begun {
        deadline,
        reads,
        term,
        mut warnings,
        mut left,
        stop,
    } = begun;
    let deleted: std::collections::BTreeSet<String> = state.journal.deleted.into_iter().collect();
    let made = state.journal.made;
    if reads {
        status(
            args,
            &format!("Reading key pairs in {}", places(&desired.scopes())),
        );
    }
    let observed = loop {
        let waiting = (reads && args.says_status()).then(say_while_waiting);
        let observed = tokio::select! {
            observed = tokio::time::timeout_at(
                deadline.into(),
                observe(cloud, desired, FileCustody, &deleted, &made),
            ) => Some(observed),
            () = stop.wait() => None,
        };
        if let Some(waiting) = waiting {
            waiting.abort();
        }
        match observed
            .ok_or(Error::Interrupted)?
            .map_err(|_| Error::Timeout(args.timeout))?
        {
            Ok(observed) => break observed,
            // Only places of accounts the manifest no longer names could not be read: said,
            // left out, and the rest read again.
            Err(errors) => match super::reach::leave_unread(desired, &errors, args.json, term) {
                Some((said, places)) => {
                    warnings.extend(said);
                    left.extend(places);
                }
                None => return Err(Error::Observe(errors)),
            },
        }
    };
    warnings.extend(super::shared_state::team_warnings(
        state.unread.as_deref(),
        &observed,
        (args.json, term),
    ));
    let unsaved = settle_saved(
        state.held.as_deref(),
        desired,
        &observed,
        state.journal.unsaved,
    )?;
    let run = Run {
        deadline,
        apply_id: format!(
            "{:016x}",
            rand_core::RngCore::next_u64(&mut rand_core::OsRng)
        ),
        unsaved,
        retired: state.journal.retired.into_iter().collect(),
        made,
        journal: state.held,
        warnings,
        left,
        stop,
        kms_key_id: desired.store.as_ref().and_then(|s| s.kms_key_id.clone()),
    };
    Ok((observed, run))
}

/// Where a run reads, for its status line: `3 region(s)`, or `1 region(s) of 3 account(s)`
/// when member accounts are read too (the caller's own counts as one).
fn places(scopes: &[Scope]) -> String {
    match crate::resource::count_places(scopes) {
        (regions, None) => format!("{regions} region(s)"),
        (regions, Some(accounts)) => format!("{regions} region(s) of {accounts} account(s)"),
    }
}

/// The key folders that hold a file labctl wrote a key to: only those are claimed for the
/// project (a folder it merely reads a key from, such as `~/.ssh` with the user's own key,
/// stays everyone's).
fn folders_with_keys(
    folders: &[std::path::PathBuf],
    made: &std::collections::BTreeMap<String, std::collections::BTreeSet<std::path::PathBuf>>,
) -> Vec<std::path::PathBuf> {
    let written: std::collections::BTreeSet<std::path::PathBuf> = made
        .values()
        .flatten()
        .map(|file| crate::keys::path_identity(&crate::keys::parent_of(file)))
        .collect();
    folders
        .iter()
        .filter(|dir| written.contains(&crate::keys::path_identity(dir)))
        .cloned()
        .collect()
}

/// The manifest loaded and checked, with the warnings to report (key files git would take),
/// and the AWS profile named known, before anything else.
fn prepare(args: &CloudArgs, term: Terminal) -> Result<(Desired, Vec<serde_json::Value>), Error> {
    let (desired, mut warnings) = load(args, term)?;
    if !args.quiet || args.json {
        warnings.extend(report_git_exposure(
            &git_exposure(&desired, false),
            args.json,
            term,
        ));
    }
    if let Some(why) = args
        .profile
        .as_deref()
        .and_then(crate::cloud::undefined_profile)
    {
        return Err(Error::Usage(why));
    }
    Ok((desired, warnings))
}

/// A slow endpoint is said to be slow: every 5 s without an answer, a line on stderr (until
/// the task is aborted).
fn say_while_waiting() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let started = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            eprintln!(
                "Still waiting for EC2's answer ({} s)…",
                started.elapsed().as_secs()
            );
        }
    })
}

/// Whether another project holds one of the folders `dirs`
/// (see `keys::claim`): refused before any request. With `claim`, unclaimed ones become
/// this project's.
fn claim_key_folders(dirs: &[std::path::PathBuf], project: &str, claim: bool) -> Result<(), Error> {
    let refused = crate::keys::claim::check_folders(dirs, project, claim);
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Error::Claimed(refused))
    }
}

/// Record `saved` for journal creates whose key file is in place and holds the key of the
/// key pair that create made (a run killed between saving the file and writing the journal),
/// so that recovery never treats them as lost. Returns the keys still unsaved.
fn settle_saved(
    journal: Option<&crate::journal::Journal>,
    desired: &Desired,
    observed: &Observed,
    mut unsaved: std::collections::BTreeSet<(String, String)>,
) -> Result<std::collections::BTreeSet<(String, String)>, Error> {
    let Some(journal) = journal else {
        return Ok(unsaved);
    };
    for (id, name, path, public) in crate::plan::saved_after_all(desired, observed, &unsaved) {
        // labctl made it: recorded as made (its file is the project's), then saved.
        journal
            .record(
                crate::journal::Event::Made,
                &id,
                &crate::journal::made_name(&public.sha256_fingerprint(), &path),
            )
            .and_then(|()| journal.record(crate::journal::Event::Saved, &id, &name))
            .map_err(Error::Journal)?;
        unsaved.remove(&(id, name));
    }
    Ok(unsaved)
}

/// Ctrl-C or SIGTERM: the first stops new work (requests in flight finish, what they made is
/// saved and journaled); the second exits at once with 130. Files are never half-written
/// either way: a key file appears only by an atomic link of a complete, synced file.
fn watch_signals(stop: crate::apply::Stop, quiet: bool, json: bool) {
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        let mut count = 0;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { return },
                _ = term.recv() => {}
            }
            count += 1;
            if super::PROMPTING.load(std::sync::atomic::Ordering::SeqCst) {
                // Nothing was started: the question is answered "no".
                eprintln!("\nCancelled; nothing was changed.");
                std::process::exit(130);
            }
            if count == 1 {
                stop.request();
                if !quiet && !json {
                    eprintln!(
                        "\nStopping: nothing new starts; requests already sent finish and their keys are saved. Press Ctrl-C again to quit at once."
                    );
                }
            } else {
                super::quit_now(
                    json,
                    "quit at once (a second Ctrl-C or SIGTERM); requests in flight were abandoned",
                    "run the command again: it picks up where this one stopped",
                );
            }
        }
    });
}

/// Remove temporary files a killed run left in the key folders (under the lock).
pub(super) fn clean_temporary(desired: &Desired) {
    let mut dirs = desired.key_folders();
    if !dirs.contains(&desired.orphan_dir) {
        dirs.push(desired.orphan_dir.clone());
    }
    let removed: usize = dirs.iter().map(|d| FileCustody.clean_temporary(d)).sum();
    if removed > 0 {
        tracing::debug!(
            removed,
            "removed temporary files left by an interrupted run"
        );
    }
}
