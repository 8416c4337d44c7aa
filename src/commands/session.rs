//! What every command that talks to AWS does first: validate the manifest, take the lock
//! (for commands that change things), connect, and read the regions and key files.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::apply::Progress;
use crate::cli::{CloudArgs, Pace};
use crate::cloud::{Ec2, Ec2Options};
use crate::desired::Desired;
use crate::error::Error;
use crate::keys::{KeyStore, git_exposure};
use crate::lock;
use crate::observe::{Observed, observe};

use super::{Terminal, load};

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

pub(super) struct StderrProgress {
    pub(super) quiet: bool,
}

impl Progress for StderrProgress {
    fn step(&self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }
}

/// Warn about key files that would land, not ignored, inside a git work tree.
pub(super) fn warn_git_exposure(desired: &Desired, quiet: bool, term: Terminal) {
    if quiet {
        return;
    }
    let with_files: Vec<&crate::desired::KeyPairSpec> = desired
        .keypairs
        .iter()
        .filter(|k| k.output.is_some())
        .collect();
    let paths: Vec<&Path> = with_files
        .iter()
        .filter_map(|k| k.output.as_deref())
        .collect();
    for (index, root) in git_exposure(&paths) {
        eprintln!(
            "{} {} is inside the git work tree {} and not ignored: a private key could be committed",
            term.warning_prefix(),
            with_files[index].output_display,
            root.display()
        );
        eprintln!(
            "hint: add the key folder to .gitignore, or set `output_dir` outside the repository"
        );
    }
}

pub(super) async fn connect(args: &CloudArgs, desired: &Desired, deadline: Instant) -> Arc<Ec2> {
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
    };
    Arc::new(Ec2::new(&options, &desired.regions()).await)
}

pub(super) fn status(args: &CloudArgs, message: &str) {
    if !args.quiet {
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
    /// The journal, held with the lock by commands that change things.
    pub(super) journal: Option<Arc<crate::journal::Journal>>,
    /// Ids of key pairs labctl deleted (EC2's listing may still show them).
    pub(super) deleted: std::collections::BTreeSet<String>,
}

/// Validate the manifest, then (for commands that change things) take the manifest's lock,
/// then read the cloud and the key files: the start of every command that talks to AWS.
/// Nothing is sent and nothing written when the manifest has an error. A run that returns
/// (even with an error) marks the lock's record finished; only a killed run leaves it running.
pub(super) fn session<T>(
    args: &CloudArgs,
    term: Terminal,
    lock_for: Option<&str>,
    work: impl AsyncFnOnce(&Arc<Ec2>, Desired, Observed, Run) -> Result<T, Error>,
) -> Result<T, Error> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    init_logging(args.verbose);
    let desired = load(args, term)?;
    warn_git_exposure(&desired, args.quiet || args.json, term);
    let apply_id = format!(
        "{:016x}",
        rand_core::RngCore::next_u64(&mut rand_core::OsRng)
    );
    let mut lock = match lock_for {
        Some(command) => {
            let lock = lock::acquire(&args.manifest, command)?;
            clean_temporary(&desired);
            Some(lock)
        }
        None => None,
    };
    let journal_state = match &lock {
        Some(lock) => lock.journal.state.clone(),
        None => lock::journal_state(&args.manifest),
    };
    let unsaved = journal_state.unsaved;
    let deleted: std::collections::BTreeSet<String> = journal_state.deleted.into_iter().collect();
    if !unsaved.is_empty() {
        tracing::debug!(
            ?unsaved,
            "keys an earlier run asked EC2 for were never saved"
        );
    }
    let journal = lock.as_ref().map(|l| Arc::clone(&l.journal));
    let rt = runtime()?;
    let result = rt.block_on(async {
        let cloud = connect(args, &desired, deadline).await;
        let regions = desired.regions();
        status(
            args,
            &format!("Reading key pairs in {} region(s)", regions.len()),
        );
        let observed = tokio::time::timeout_at(
            deadline.into(),
            observe(&cloud, &desired, KeyStore, &deleted),
        )
        .await
        .map_err(|_| Error::Timeout(args.timeout))?
        .map_err(Error::Observe)?;
        let run = Run {
            deadline,
            apply_id,
            unsaved,
            journal,
            deleted,
        };
        work(&cloud, desired, observed, run).await
    });
    if let Some(lock) = lock.as_mut() {
        lock.finish();
    }
    result
}

/// Remove temporary files a killed run left in the key folders (under the lock).
pub(super) fn clean_temporary(desired: &Desired) {
    let mut dirs: Vec<std::path::PathBuf> = desired
        .keypairs
        .iter()
        .filter_map(|k| k.output.as_deref())
        .map(crate::keys::parent_of)
        .collect();
    dirs.push(desired.orphan_dir.clone());
    dirs.sort();
    dirs.dedup();
    let removed: usize = dirs.iter().map(|d| KeyStore.clean_temporary(d)).sum();
    if removed > 0 {
        tracing::debug!(
            removed,
            "removed temporary files left by an interrupted run"
        );
    }
}
