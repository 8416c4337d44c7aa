//! One `apply` (or `destroy`) per manifest at a time: an advisory lock in the state folder.
//!
//! labctl keeps its own files for a manifest in the state folder `.labctl/` beside it,
//! created `0700` with a `.gitignore` of `*` (so a workshop repository never tracks them) and
//! opened like a key folder (never through a link, only when nobody else can change it). The
//! lock file `.labctl/<manifest file name>.lock` names its holder (process id, host, command,
//! start time), so a second run fails fast saying who holds it. The operating system drops the
//! lock when the holder exits, however it exits (a `kill -9` included), so a crash never
//! leaves a stale lock behind. Beside it, the [`Journal`] records each key EC2 is asked to
//! create until its private key is saved.
//!
//! The lock file is opened without following a link and without blocking, only when it is a
//! regular file, and read with a size bound.

use std::ffi::{OsStr, OsString};
use std::fs::{File, TryLockError};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::journal::{Journal, State};
use crate::keys::folder::{FolderError, KeyFolder, read_bounded};

use crate::desired::STATE_DIR;

/// The most of a lock file labctl reads.
const MAX_RECORD: usize = 4096;

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
    /// The journal of key creations, appended to while the lock is held.
    pub journal: std::sync::Arc<Journal>,
}

impl Lock {
    /// Mark this run as finished: the journal keeps only keys still unsaved.
    pub(crate) fn finish(&mut self) {
        if let Err(err) = self.journal.compact() {
            tracing::debug!(error = %err, "could not compact the journal");
        }
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another labctl is working on this manifest ({holder}); lock file {path}")]
    Held { holder: String, path: PathBuf },
    #[error("cannot use the lock file {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    /// State labctl did not write on this machine: never acted on.
    #[error(
        "labctl does not use {path}: git tracks files in it, so its journal came from another machine (someone ran `git add -f`), and acting on it could replace a teammate's key pairs"
    )]
    Tracked { path: PathBuf },
    /// Another machine holds the shared lock (`state: s3://…`).
    #[error("another labctl holds the shared lock {url}: {holder}")]
    SharedHeld {
        holder: String,
        url: String,
        /// The command that releases a lock left by a run that crashed.
        release: String,
    },
    /// The shared state cannot be used (a missing bucket, access denied, S3 unreachable).
    #[error("cannot use the shared state {url}: {reason}")]
    Shared {
        url: String,
        reason: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// State written on another machine (copied along with the workshop folder).
    #[error(
        "labctl does not use {path}: it was written on another machine ({origin}), and acting on its journal could replace key pairs someone else saved"
    )]
    Foreign { path: PathBuf, origin: String },
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long ago, for people: `45 s ago`, `2 minutes ago`, `3 hours ago`, `2 days ago`.
pub(crate) fn ago(age: u64) -> String {
    match age {
        0..60 => format!("{age} s ago"),
        60..120 => "1 minute ago".to_owned(),
        120..7200 => format!("{} minutes ago", age / 60),
        7200..172_800 => format!("{} hours ago", age / 3600),
        _ => format!("{} days ago", age / 86_400),
    }
}

/// The lock record's `since unix time N` for people: `since 14:03 UTC, 2 minutes ago`.
fn readable_since(record: &str, now: u64) -> String {
    let Some((before, after)) = record.split_once("since unix time ") else {
        return record.to_owned();
    };
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    let Ok(since) = digits.parse::<u64>() else {
        return record.to_owned();
    };
    let ago = ago(now.saturating_sub(since));
    let day = since % 86_400;
    format!(
        "{before}since {:02}:{:02} UTC, {ago}{}",
        day / 3600,
        day % 3600 / 60,
        &after[digits.len()..]
    )
}

/// The file in the state folder that names the machine that wrote it.
const ORIGIN_FILE: &str = "origin";

/// This machine, as the state folder's origin records it: its machine id (or host name).
fn this_machine() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty() && t.len() <= 128)
    };
    let id = read("/etc/machine-id")
        .or_else(|| read("/etc/hostname"))
        .unwrap_or_else(|| "unknown".to_owned());
    format!("machine {id}")
}

/// The machine the state folder's journal was written on, when it says (`None`: no origin
/// yet, a folder from before labctl recorded one).
fn recorded_origin(folder: &KeyFolder) -> Option<String> {
    let mut file = folder
        .open_state_file(std::ffi::OsStr::new(ORIGIN_FILE), false)
        .ok()?;
    let bytes = read_bounded(&mut file, MAX_RECORD).ok()??;
    let text = String::from_utf8_lossy(&bytes);
    Some(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// Refuse a state folder written on another machine; record this machine in one that says
/// nothing yet (with `record`, by a run that changes things).
fn check_origin(folder: &KeyFolder, dir: &Path, record: bool) -> Result<(), LockError> {
    let here = this_machine();
    match recorded_origin(folder) {
        Some(origin) if origin == here => Ok(()),
        Some(origin) => Err(LockError::Foreign {
            path: dir.to_owned(),
            origin,
        }),
        None if record => {
            let failed = |e: std::io::Error| LockError::Io {
                path: dir.join(ORIGIN_FILE),
                reason: e.to_string(),
            };
            let mut file = folder
                .open_state_file(std::ffi::OsStr::new(ORIGIN_FILE), true)
                .map_err(failed)?;
            (|| {
                file.set_len(0)?;
                file.write_all(format!("{here}\n").as_bytes())?;
                file.sync_all()
            })()
            .map_err(failed)
        }
        None => Ok(()),
    }
}

/// Refuse a state folder git tracks, or one in a repository git cannot read.
fn trusted_state(manifest: &Path) -> Result<(), LockError> {
    // The one git check (`keys::git_exposure`): tracked files in it, or a repository git
    // cannot read; that git does not ignore the folder itself (only its contents) is fine.
    let dir = state_dir(manifest);
    if !dir.is_dir() {
        return Ok(());
    }
    match crate::keys::git_exposure(&[dir.as_path()]).first() {
        Some((_, _, crate::keys::Exposure::Tracked)) => Err(LockError::Tracked { path: dir }),
        Some((_, root, crate::keys::Exposure::Unchecked)) => Err(LockError::Io {
            reason: format!(
                "git cannot read the repository it is in ({}), so labctl cannot tell whether git tracks it",
                root.display()
            ),
            path: dir,
        }),
        Some((_, _, crate::keys::Exposure::NotIgnored)) | None => Ok(()),
    }
}

/// The state folder of a manifest.
pub(crate) fn state_dir(manifest: &Path) -> PathBuf {
    crate::keys::parent_of(manifest).join(STATE_DIR)
}

fn file_name(manifest: &Path, suffix: &str) -> OsString {
    let mut name = manifest
        .file_name()
        .map_or_else(|| OsString::from("labctl.yaml"), ToOwned::to_owned);
    name.push(suffix);
    name
}

/// The project's keys (what labctl made, what left) in the state folder: one file per
/// project, whatever the manifest's file is called (a project name is a file name).
fn keys_name(project: &str) -> OsString {
    OsString::from(format!("{project}.keys"))
}

/// The lock file of a manifest.
pub(crate) fn lock_path(manifest: &Path) -> PathBuf {
    state_dir(manifest).join(file_name(manifest, ".lock"))
}

/// Without taking the lock: what the journal holds (for `plan` and `output`, which only
/// read). Empty when nothing was ever recorded.
///
/// # Errors
/// [`LockError::Tracked`] when git tracks the state folder.
pub(crate) fn journal_state(manifest: &Path, project: &str) -> Result<State, LockError> {
    trusted_state(manifest)?;
    let Ok(folder) = KeyFolder::open(&state_dir(manifest)) else {
        return Ok(State::default());
    };
    check_origin(&folder, &state_dir(manifest), false)?;
    // Read whether or not a lock file exists or a run holds it: a plan must know what the
    // journal knows (retired keys, unsaved creates), or it previews something else than apply
    // does. The journal is append-only between compactions; a plan beside a running apply may
    // be a moment stale, as any plan is.
    Ok(Journal::read(
        &folder,
        &file_name(manifest, ".journal"),
        &keys_name(project),
    ))
}

/// The journal's two files in the state folder: the manifest's journal and the project's
/// keys (what the shared state keeps beside its lock, under the same names).
pub(crate) fn journal_files(manifest: &Path, project: &str) -> [OsString; 2] {
    [file_name(manifest, ".journal"), keys_name(project)]
}

/// The shared lock's object name: the manifest's lock file's.
pub(crate) fn lock_name(manifest: &Path) -> OsString {
    file_name(manifest, ".lock")
}

/// A state file's whole content (empty when there is none); call with the lock held.
///
/// # Errors
/// Why it could not be read.
pub(crate) fn read_state(manifest: &Path, name: &OsStr) -> std::io::Result<Vec<u8>> {
    let folder =
        KeyFolder::open(&state_dir(manifest)).map_err(|e| std::io::Error::other(e.to_string()))?;
    let Ok(mut file) = folder.open_state_file(name, false) else {
        return Ok(Vec::new());
    };
    read_bounded(&mut file, 16 * 1024 * 1024)?
        .map(|bytes| bytes.to_vec())
        .ok_or_else(|| std::io::Error::other("the state file is too large to be labctl's"))
}

/// Replace a state file's content at once, durably; call with the lock held.
///
/// # Errors
/// Why it could not be written.
pub(crate) fn write_state(manifest: &Path, name: &OsStr, bytes: &[u8]) -> std::io::Result<()> {
    let folder =
        KeyFolder::open(&state_dir(manifest)).map_err(|e| std::io::Error::other(e.to_string()))?;
    folder.replace_state_file(name, bytes).map(drop)
}

impl Lock {
    /// Read the journal again (after the shared state's records were brought into its files).
    ///
    /// # Errors
    /// Why it could not be read.
    pub(crate) fn reopen_journal(
        &mut self,
        manifest: &Path,
        project: &str,
    ) -> Result<(), LockError> {
        let io = |reason: String| LockError::Io {
            path: lock_path(manifest),
            reason,
        };
        let folder = KeyFolder::open(&state_dir(manifest)).map_err(|e| io(e.to_string()))?;
        let [journal, keys] = journal_files(manifest, project);
        let journal = Journal::open(&folder, &journal, &keys)
            .map_err(|e| io(format!("the journal beside it: {e}")))?;
        self.journal = std::sync::Arc::new(journal);
        Ok(())
    }
}

/// Take the manifest's lock without waiting.
///
/// # Errors
/// [`LockError::Held`] naming the holder when another labctl has it; [`LockError::Io`] when
/// the state folder or the lock file is not safe to use; [`LockError::Tracked`] when git
/// tracks the state folder.
pub(crate) fn acquire(manifest: &Path, project: &str, command: &str) -> Result<Lock, LockError> {
    trusted_state(manifest)?;
    let path = lock_path(manifest);
    let io = |reason: String| LockError::Io {
        path: path.clone(),
        reason,
    };
    let (folder, _) = KeyFolder::create(&state_dir(manifest)).map_err(|e| match e {
        FolderError::Missing => io("its folder does not exist".to_owned()),
        other => io(other.to_string()),
    })?;
    check_origin(&folder, &state_dir(manifest), true)?;
    let mut file = folder
        .open_state_file(&file_name(manifest, ".lock"), true)
        .map_err(|e| io(e.to_string()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let record = read_bounded(&mut file, MAX_RECORD).ok().flatten();
            let text = record
                .as_ref()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .unwrap_or_default();
            let holder = text.lines().next().unwrap_or_default().trim();
            let holder = if holder.is_empty() || holder.len() > 300 {
                "holder unknown".to_owned()
            } else {
                readable_since(&crate::render::printable(holder), now_unix())
            };
            return Err(LockError::Held { holder, path });
        }
        Err(TryLockError::Error(err)) => return Err(io(err.to_string())),
    }
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let record = format!(
        "pid {} on {}, `labctl {command}`, since unix time {since}\n",
        std::process::id(),
        host.trim()
    );
    (|| {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(record.as_bytes())?;
        file.flush()
    })()
    .map_err(|e| io(e.to_string()))?;
    let journal = Journal::open(
        &folder,
        &file_name(manifest, ".journal"),
        &keys_name(project),
    )
    .map_err(|e| io(format!("the journal beside it: {e}")))?;
    Ok(Lock {
        _file: file,
        journal: std::sync::Arc::new(journal),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    #[test]
    fn the_holders_time_reads_as_a_clock_time_and_an_age() {
        let record = "pid 7 on lab, `labctl apply`, since unix time 1796513315";
        assert_eq!(
            super::readable_since(record, 1_796_513_315 + 150),
            "pid 7 on lab, `labctl apply`, since 23:28 UTC, 2 minutes ago"
        );
        assert_eq!(super::readable_since("pid 7", 5), "pid 7");
    }

    use super::{LockError, acquire, lock_path};

    #[test]
    fn a_second_lock_fails_fast_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("labctl.yaml");
        let first = acquire(&manifest, "lab", "apply").unwrap();
        assert_eq!(
            lock_path(&manifest),
            dir.path().join(".labctl/labctl.yaml.lock")
        );
        assert!(lock_path(&manifest).exists());
        match acquire(&manifest, "lab", "apply") {
            Err(LockError::Held { holder, .. }) => {
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                );
                assert!(holder.contains("`labctl apply`"), "{holder}");
                assert!(
                    holder.contains("UTC, 0 s ago") || holder.contains("UTC, 1 s ago"),
                    "{holder}"
                );
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(acquire(&manifest, "lab", "apply").is_ok());
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".labctl/.gitignore"))
                .unwrap()
                .lines()
                .last(),
            Some("*")
        );
        assert_eq!(
            lock_path(std::path::Path::new("x.yaml")),
            std::path::PathBuf::from("./.labctl/x.yaml.lock")
        );
    }

    #[test]
    fn never_follows_a_link_at_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("labctl.yaml");
        std::fs::create_dir(dir.path().join(".labctl")).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        symlink(&victim, dir.path().join(".labctl/labctl.yaml.lock")).unwrap();
        assert!(matches!(
            acquire(&manifest, "lab", "apply"),
            Err(LockError::Io { .. })
        ));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
