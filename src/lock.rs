//! One `apply` (or `destroy`) per manifest at a time: an advisory lock next to the manifest.
//!
//! The lock file `.<manifest file name>.lock` sits beside the manifest and names its holder
//! (process id, host, command, start time), so a second run fails fast with a message saying
//! who holds it. The operating system drops the lock when the holder exits, however it exits
//! (a `kill -9` included), so a crash never leaves a stale lock behind.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Lock {
    _file: File,
    pub path: PathBuf,
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
pub fn acquire(manifest: &Path, command: &str) -> Result<Lock, LockError> {
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
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "holder unknown".to_owned()
            } else {
                holder.to_owned()
            };
            return Err(LockError::Held { holder, path });
        }
        Err(TryLockError::Error(err)) => return Err(io(err)),
    }
    let host = fs::read_to_string("/etc/hostname").unwrap_or_default();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let record = format!(
        "pid {} on {}, `labctl {command}`, since unix time {since}\n",
        std::process::id(),
        host.trim()
    );
    let written = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(record.as_bytes()))
        .and_then(|()| file.flush());
    written.map_err(io)?;
    Ok(Lock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::{LockError, acquire, lock_path};

    #[test]
    fn a_second_lock_fails_fast_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("labctl.yaml");
        let first = acquire(&manifest, "apply").unwrap();
        assert_eq!(first.path, dir.path().join(".labctl.yaml.lock"));
        match acquire(&manifest, "apply") {
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
        assert!(acquire(&manifest, "apply").is_ok());
        assert_eq!(
            lock_path(std::path::Path::new("x.yaml")),
            std::path::PathBuf::from("./.x.yaml.lock")
        );
    }
}
