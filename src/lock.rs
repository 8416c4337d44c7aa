//! One `apply` (or `destroy`) per manifest at a time: an advisory lock next to the manifest.
//!
//! The lock file `.<manifest file name>.lock` sits beside the manifest and names its holder
//! (process id, host, command, start time), so a second run fails fast with a message saying
//! who holds it. The operating system drops the lock when the holder exits, however it exits
//! (a `kill -9` included), so a crash never leaves a stale lock behind.
//!
//! The file is also a one-line journal: it records the holder's apply id and whether the run
//! finished. A run killed midway leaves `state: running`; the next run learns that apply's id
//! and can recognise the key pairs EC2 created for it whose private keys died with it.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Lock {
    file: File,
    pub path: PathBuf,
    record: String,
    /// The apply ids of earlier runs that did not finish (killed), and were not yet recovered.
    pub interrupted: Vec<String>,
}

impl Lock {
    /// Mark this run as finished: the next run has nothing to recover from it.
    pub fn finish(&mut self) {
        let record = self.record.replace("state: running", "state: finished");
        let _ = write_record(&mut self.file, &record);
    }
}

fn write_record(file: &mut File, record: &str) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(record.as_bytes())?;
    file.flush()
}

/// The apply ids a record leaves to recover: its own and those it carried, when it never
/// finished. At most a few are kept.
fn interrupted_apply(record: &str) -> Vec<String> {
    if !record.lines().any(|l| l.trim() == "state: running") {
        return Vec::new();
    }
    record
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("apply-id: ")
                .or_else(|| l.strip_prefix("carried-apply-id: "))
        })
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_hexdigit()))
        .take(8)
        .collect()
}

/// Without taking it: the apply ids of interrupted runs of this manifest (for `plan`, which
/// only reads). Empty when a run holds the lock now.
pub fn interrupted(manifest: &Path) -> Vec<String> {
    let Ok(mut file) = OpenOptions::new().read(true).open(lock_path(manifest)) else {
        return Vec::new();
    };
    if file.try_lock_shared().is_err() {
        return Vec::new();
    }
    let mut record = String::new();
    if file.read_to_string(&mut record).is_err() {
        return Vec::new();
    }
    interrupted_apply(&record)
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another labctl is working on this manifest ({holder}); lock file {path}")]
    Held { holder: String, path: PathBuf },
    #[error("cannot create the lock file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The lock file of a manifest.
pub fn lock_path(manifest: &Path) -> PathBuf {
    let name = manifest.file_name().map_or_else(
        || "labctl.yaml".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let dir = match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    dir.join(format!(".{name}.lock"))
}

/// Take the manifest's lock without waiting.
///
/// # Errors
/// [`LockError::Held`] naming the holder when another labctl has it.
pub fn acquire(manifest: &Path, command: &str, apply_id: &str) -> Result<Lock, LockError> {
    let path = lock_path(manifest);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.lines().next().unwrap_or_default().trim();
            let holder = if holder.is_empty() {
                "holder unknown".to_owned()
            } else {
                holder.to_owned()
            };
            return Err(LockError::Held { holder, path });
        }
        Err(TryLockError::Error(err)) => return Err(io(err)),
    }
    let mut previous = String::new();
    let _ = file.read_to_string(&mut previous);
    let interrupted = interrupted_apply(&previous);
    let host = fs::read_to_string("/etc/hostname").unwrap_or_default();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // An interrupted run's id is carried until a run finishes, so a second crash in a row
    // does not forget the first.
    let carried: String = interrupted.iter().fold(String::new(), |mut out, id| {
        out.push_str("carried-apply-id: ");
        out.push_str(id);
        out.push('\n');
        out
    });
    let record = format!(
        "pid {} on {}, `labctl {command}`, since unix time {since}\napply-id: {apply_id}\n{carried}state: running\n",
        std::process::id(),
        host.trim()
    );
    write_record(&mut file, &record).map_err(io)?;
    Ok(Lock {
        file,
        path,
        record,
        interrupted,
    })
}

#[cfg(test)]
mod tests {
    use super::{LockError, acquire, interrupted, lock_path};

    #[test]
    fn a_second_lock_fails_fast_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("labctl.yaml");
        let first = acquire(&manifest, "apply", "00aa").unwrap();
        assert_eq!(first.path, dir.path().join(".labctl.yaml.lock"));
        match acquire(&manifest, "apply", "00bb") {
            Err(LockError::Held { holder, .. }) => {
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                );
                assert!(holder.contains("`labctl apply`"), "{holder}");
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        // The first run was never marked finished: the next one learns its apply id.
        let second = acquire(&manifest, "apply", "00cc").unwrap();
        assert_eq!(second.interrupted, ["00aa"]);
        drop(second);
        // Killed again: both ids are still to recover.
        assert_eq!(interrupted(&manifest), ["00cc", "00aa"]);
        let mut third = acquire(&manifest, "apply", "00dd").unwrap();
        assert_eq!(third.interrupted, ["00cc", "00aa"]);
        third.finish();
        drop(third);
        assert!(interrupted(&manifest).is_empty());
        assert!(
            acquire(&manifest, "apply", "00ee")
                .unwrap()
                .interrupted
                .is_empty()
        );
        assert_eq!(
            lock_path(std::path::Path::new("x.yaml")),
            std::path::PathBuf::from("./.x.yaml.lock")
        );
    }
}
