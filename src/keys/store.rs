//! The private key files: inspecting them, and writing new ones safely.
//!
//! Rules this file keeps: a key file is created with owner-only permissions before its first
//! byte, fsynced, moved into place without replacing anything, and left at 0400; an existing
//! file is never overwritten; a symlink at the target is refused; folders labctl creates are
//! 0700 and, when it creates the output folder, get a `.gitignore` of `*`. Every file
//! operation goes through [`KeyFolder`](super::folder::KeyFolder), relative to an opened folder.

use std::io;
use std::path::{Path, PathBuf};

use super::folder::{Entry, FileId, FolderError, KeyFolder, effective_uid, split_file};
use super::{PublicKey, Secret, public_key_of_private};

/// The mode key files end with.
pub const KEY_MODE: u32 = 0o400;
/// Key files larger than this are not private keys (an RSA 4096 PEM is about 3.3 KB).
const MAX_KEY_FILE: usize = 64 * 1024;

/// What is at a key file's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    /// Nothing there.
    Absent,
    /// A readable private key, and which file holds it.
    Key {
        public: PublicKey,
        mode: u32,
        id: FileId,
    },
    /// A file that is not a usable private key (the reason never quotes it).
    Unreadable { reason: String },
    /// A symbolic link: refused, labctl never follows links for key files.
    Symlink,
    /// A folder, device or other non-file.
    NotAFile,
    /// A key file another user owns, or in a folder others may change (or a key folder that
    /// is a link): someone else could read or swap the key, so labctl does not trust or touch it.
    Unsafe { reason: String },
}

/// Why a file is not used as a key: the one trust verdict that plan (a conflict) and handout
/// (a bundle not made) both show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Symlink,
    NotAFile,
    Unsafe,
    Unreadable,
}

impl FileState {
    /// Why the file at `shown` cannot be used as a `what` ("private key", "PuTTY key"), when
    /// it is there and cannot; `None` for a usable key or no file.
    pub fn refusal(&self, shown: &str, what: &str) -> Option<(Refusal, String)> {
        match self {
            FileState::Symlink => Some((Refusal::Symlink, format!("{shown} is a symbolic link"))),
            FileState::NotAFile => {
                Some((Refusal::NotAFile, format!("{shown} is not a regular file")))
            }
            FileState::Unsafe { reason } => {
                Some((Refusal::Unsafe, format!("{shown} is not trusted: {reason}")))
            }
            FileState::Unreadable { reason } => Some((
                Refusal::Unreadable,
                format!("{shown} is not a usable {what}: {reason}"),
            )),
            FileState::Absent | FileState::Key { .. } => None,
        }
    }
}

/// A failure to write or change a key file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path} already exists; labctl never overwrites a key file")]
    Exists { path: PathBuf },
    #[error("{path} is a symbolic link; labctl does not write key files through links")]
    Symlink { path: PathBuf },
    #[error("{path} is not a safe place for a private key: {reason}")]
    Unsafe { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What writing a key file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Folders labctl created on the way (outermost first).
    pub created_dirs: Vec<PathBuf>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn not_a_file_path(path: &Path) -> StoreError {
    io_err(path)(io::Error::new(
        io::ErrorKind::InvalidInput,
        "the path names no file",
    ))
}

fn folder_err(path: &Path, err: FolderError) -> StoreError {
    match err {
        FolderError::Io(source) => io_err(path)(source),
        FolderError::Missing | FolderError::NotAFolder => io_err(path)(io::Error::new(
            io::ErrorKind::NotADirectory,
            "its folder is not a folder",
        )),
        FolderError::Symlink | FolderError::Untrusted(_) => StoreError::Unsafe {
            path: path.to_owned(),
            reason: err.to_string(),
        },
    }
}

/// Key files: reads and writes private key files, each through [`KeyFolder`] (the custody of
/// [`KeyCustody`], and what only files have: modes, `.ppk` beside a key, moving aside).
#[derive(Clone, Copy, Debug, Default)]
pub struct FileCustody;

impl FileCustody {
    /// What is at `path`, without following a symlink and without ever printing the key.
    pub(super) fn inspect_pem(path: &Path) -> FileState {
        Self::inspect_as(path, public_key_of_private)
    }

    /// What is at `path`, a PuTTY private key file: a key only when the file is whole and its
    /// MAC right (its public key is stored in clear, so the public lines alone prove nothing).
    pub(super) fn inspect_ppk(path: &Path) -> FileState {
        Self::inspect_as(path, |secret| {
            super::ppk::verified_public_key_of_ppk(secret.expose()).ok_or_else(|| {
                "it is not a whole, unencrypted PuTTY private key (cut short, changed or encrypted)"
                    .to_owned()
            })
        })
    }

    fn inspect_as(path: &Path, read: fn(&Secret) -> Result<PublicKey, String>) -> FileState {
        let Some((dir, name)) = split_file(path) else {
            return FileState::NotAFile;
        };
        let folder = match KeyFolder::open(&dir) {
            Ok(folder) => folder,
            // A missing folder, or a file where a folder should be: there is no key file;
            // writing one will fail before EC2 is asked for a key.
            Err(FolderError::Missing | FolderError::NotAFolder) => return FileState::Absent,
            Err(err @ (FolderError::Symlink | FolderError::Untrusted(_))) => {
                return FileState::Unsafe {
                    reason: err.to_string(),
                };
            }
            Err(FolderError::Io(err)) => {
                return FileState::Unreadable {
                    reason: format!("cannot open its folder: {err}"),
                };
            }
        };
        match folder.entry(&name) {
            Ok(Entry::Absent) => return FileState::Absent,
            Ok(Entry::Symlink) => return FileState::Symlink,
            Ok(Entry::NotAFile) => return FileState::NotAFile,
            Ok(Entry::File { .. }) => {}
            Err(err) => {
                return FileState::Unreadable {
                    reason: format!("cannot read it: {err}"),
                };
            }
        }
        // What counts is what `fstat` says of the file opened, not the look above.
        match folder.read(&name, MAX_KEY_FILE) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => FileState::Absent,
            Err(err) => FileState::Unreadable {
                reason: format!("cannot read it: {err}"),
            },
            Ok((Entry::File { uid, .. }, _)) if uid != effective_uid() => FileState::Unsafe {
                reason: format!("it belongs to another user (uid {uid})"),
            },
            Ok((_, None)) => FileState::Unreadable {
                reason: format!(
                    "it is larger than {MAX_KEY_FILE} bytes, too large for a private key"
                ),
            },
            Ok((entry, Some(bytes))) => {
                let (mode, id) = match entry {
                    Entry::File { mode, id, .. } => (mode, id),
                    Entry::Absent | Entry::Symlink | Entry::NotAFile => {
                        return FileState::NotAFile;
                    }
                };
                match secret_of(bytes) {
                    None => FileState::Unreadable {
                        reason: "it is not a text file".to_owned(),
                    },
                    Some(secret) => match read(&secret) {
                        Ok(public) => FileState::Key { public, mode, id },
                        Err(reason) => FileState::Unreadable { reason },
                    },
                }
            }
        }
    }

    /// The private key text of a key file (never through a symlink), for fingerprints.
    pub(super) fn read_file(path: &Path) -> Option<Secret> {
        let (dir, name) = split_file(path)?;
        let folder = KeyFolder::open(&dir).ok()?;
        let (_, bytes) = folder.read(&name, MAX_KEY_FILE).ok()?;
        secret_of(bytes?)
    }

    /// Open (creating if needed) the folder of `path` and check the file is not there yet.
    fn folder_for_new(
        path: &Path,
    ) -> Result<(KeyFolder, std::ffi::OsString, Vec<PathBuf>), StoreError> {
        let (dir, name) = split_file(path).ok_or_else(|| not_a_file_path(path))?;
        let (folder, created_dirs) = KeyFolder::create(&dir).map_err(|e| folder_err(path, e))?;
        match folder.entry(&name).map_err(io_err(path))? {
            Entry::Absent => Ok((folder, name, created_dirs)),
            Entry::Symlink => Err(StoreError::Symlink {
                path: path.to_owned(),
            }),
            Entry::File { .. } | Entry::NotAFile => Err(StoreError::Exists {
                path: path.to_owned(),
            }),
        }
    }

    /// Make sure a new key file can be written at `path` before asking EC2 for the key: the
    /// folder exists (created 0700 if needed), is safe, and takes a new file, and the target
    /// is absent.
    ///
    /// # Errors
    /// Why the file could not be written.
    pub fn prepare(self, path: &Path) -> Result<WriteOutcome, StoreError> {
        let (folder, _, created_dirs) = Self::folder_for_new(path)?;
        folder.check_writable().map_err(io_err(path))?;
        Ok(WriteOutcome { created_dirs })
    }

    /// Write a new private key file: owner-only from the first byte, fsynced, moved into
    /// place without replacing anything, left at 0400, and the folder fsynced.
    ///
    /// # Errors
    /// Why the file could not be written; on error no file is left at `path`.
    pub(super) fn write_file(path: &Path, secret: &Secret) -> Result<WriteOutcome, StoreError> {
        let (folder, name, created_dirs) = Self::folder_for_new(path)?;
        let text = secret.expose().as_bytes();
        let newline: &[u8] = if text.ends_with(b"\n") { b"" } else { b"\n" };
        folder.write_new(&name, &[text, newline]).map_err(|err| {
            if err.kind() == io::ErrorKind::AlreadyExists {
                StoreError::Exists {
                    path: path.to_owned(),
                }
            } else {
                io_err(path)(err)
            }
        })?;
        Ok(WriteOutcome { created_dirs })
    }

    /// Move an existing key file aside to `<file>.<label>-<now>` (never replacing anything),
    /// before its key pair is replaced or after it was destroyed. Returns where it went, or
    /// `None` when there was no file.
    ///
    /// # Errors
    /// Why the file could not be moved.
    pub fn move_aside(
        self,
        path: &Path,
        label: &str,
        now: u64,
    ) -> Result<Option<PathBuf>, StoreError> {
        let (dir, name) = split_file(path).ok_or_else(|| not_a_file_path(path))?;
        let folder = match KeyFolder::open(&dir) {
            Err(FolderError::Missing) => return Ok(None),
            other => other.map_err(|e| folder_err(path, e))?,
        };
        if folder.entry(&name).map_err(io_err(path))? == Entry::Symlink {
            return Err(StoreError::Symlink {
                path: path.to_owned(),
            });
        }
        let aside = folder
            .move_aside(&name, &format!(".{label}-{now}"))
            .map_err(io_err(path))?;
        Ok(aside.map(|aside| dir.join(aside)))
    }

    /// Undo [`move_aside`](Self::move_aside): the file at `aside` gets its name `path` back
    /// (same folder), unless a file took that name since.
    ///
    /// # Errors
    /// Why it could not be moved back (it then stays at `aside`).
    pub fn move_back(self, aside: &Path, path: &Path) -> Result<(), StoreError> {
        let (dir, name) = split_file(path).ok_or_else(|| not_a_file_path(path))?;
        let (aside_dir, aside_name) = split_file(aside).ok_or_else(|| not_a_file_path(aside))?;
        if aside_dir != dir {
            return Err(not_a_file_path(aside));
        }
        let folder = KeyFolder::open(&dir).map_err(|e| folder_err(path, e))?;
        folder.move_back(&aside_name, &name).map_err(|err| {
            if err.kind() == io::ErrorKind::AlreadyExists {
                StoreError::Exists {
                    path: path.to_owned(),
                }
            } else {
                io_err(path)(err)
            }
        })
    }

    /// Remove a key file, only when it still holds `expected` (the key of the key pair that
    /// was deleted). Returns whether it was removed.
    ///
    /// # Errors
    /// Why the file could not be checked or removed.
    pub(super) fn remove_key(path: &Path, expected: &PublicKey) -> Result<bool, StoreError> {
        Self::remove_as(path, expected, public_key_of_private)
    }

    /// The PuTTY key beside the key file `pem` (`<name>.ppk`), when it holds `public`.
    pub fn ppk_beside(self, pem: &Path, public: &PublicKey) -> Option<PathBuf> {
        let ppk = ppk_path(pem);
        let holds =
            matches!(Self::inspect_ppk(&ppk), FileState::Key { public: p, .. } if &p == public);
        (ppk != pem && holds).then_some(ppk)
    }

    /// Remove a PuTTY key file, only when it still holds `expected`.
    ///
    /// # Errors
    /// Why it could not be removed.
    pub(super) fn remove_ppk(path: &Path, expected: &PublicKey) -> Result<bool, StoreError> {
        Self::remove_as(path, expected, |secret| {
            super::public_key_of_ppk(secret.expose()).ok_or_else(String::new)
        })
    }

    fn remove_as(
        path: &Path,
        expected: &PublicKey,
        read: fn(&Secret) -> Result<PublicKey, String>,
    ) -> Result<bool, StoreError> {
        let removed = Self::if_holds(path, expected, read, |folder, name| {
            folder.remove(name).map(|()| PathBuf::new())
        })?;
        Ok(removed.is_some())
    }

    /// Retire a key file (move it aside to `<file>.retired-<now>`), only when it still holds
    /// `expected`: a file that holds another key by now (swapped since the plan was made) is
    /// left where it is. Returns where it went.
    ///
    /// # Errors
    /// Why it could not be moved.
    pub(super) fn retire_key(
        path: &Path,
        expected: &PublicKey,
        now: u64,
    ) -> Result<Option<PathBuf>, StoreError> {
        Self::retire_as(path, expected, now, public_key_of_private)
    }

    /// `retire_key` for a PuTTY key file.
    ///
    /// # Errors
    /// Why it could not be moved.
    pub(super) fn retire_ppk(
        path: &Path,
        expected: &PublicKey,
        now: u64,
    ) -> Result<Option<PathBuf>, StoreError> {
        Self::retire_as(path, expected, now, |secret| {
            super::public_key_of_ppk(secret.expose()).ok_or_else(String::new)
        })
    }

    fn retire_as(
        path: &Path,
        expected: &PublicKey,
        now: u64,
        read: fn(&Secret) -> Result<PublicKey, String>,
    ) -> Result<Option<PathBuf>, StoreError> {
        let dir = parent_of(path);
        let aside = Self::if_holds(path, expected, read, |folder, name| {
            folder
                .move_aside(name, &format!(".retired-{now}"))
                .map(Option::unwrap_or_default)
        })?;
        Ok(aside
            .filter(|a| !a.as_os_str().is_empty())
            .map(|a| dir.join(a)))
    }

    /// Act on the file at `path` through its folder, only when it holds `expected` (read
    /// through the same folder handle): `None` when it is absent or holds anything else.
    fn if_holds<T>(
        path: &Path,
        expected: &PublicKey,
        read: fn(&Secret) -> Result<PublicKey, String>,
        act: impl FnOnce(&KeyFolder, &std::ffi::OsStr) -> io::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        let (dir, name) = split_file(path).ok_or_else(|| not_a_file_path(path))?;
        let folder = match KeyFolder::open(&dir) {
            Err(FolderError::Missing) => return Ok(None),
            other => other.map_err(|e| folder_err(path, e))?,
        };
        let holds = match folder.read(&name, MAX_KEY_FILE) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_err(path)(err)),
            Ok((_, bytes)) => bytes
                .and_then(secret_of)
                .and_then(|secret| read(&secret).ok())
                .is_some_and(|public| &public == expected),
        };
        if !holds {
            return Ok(None);
        }
        act(&folder, &name).map(Some).map_err(io_err(path))
    }

    /// Remove labctl's own temporary files left in `dir` by a run that was killed, except
    /// those another labctl is writing now (they are locked). Returns how many.
    pub fn clean_temporary(self, dir: &Path) -> usize {
        KeyFolder::open(dir).map_or(0, |folder| folder.clean_temporary())
    }

    /// Set an existing key file's mode to 0400 (on the file opened, never through a link).
    ///
    /// # Errors
    /// Why the mode could not be changed.
    pub fn fix_mode(self, path: &Path) -> Result<(), StoreError> {
        let (dir, name) = split_file(path).ok_or_else(|| not_a_file_path(path))?;
        let folder = KeyFolder::open(&dir).map_err(|e| folder_err(path, e))?;
        if folder.entry(&name).map_err(io_err(path))? == Entry::Symlink {
            return Err(StoreError::Symlink {
                path: path.to_owned(),
            });
        }
        folder.set_key_mode(&name).map_err(io_err(path))
    }
}

/// Private key text from bytes read (wiped either way), when it is UTF-8.
fn secret_of(mut bytes: zeroize::Zeroizing<Vec<u8>>) -> Option<Secret> {
    // Take the buffer itself: no copy of the key is made.
    let vec = std::mem::take(&mut *bytes);
    match String::from_utf8(vec) {
        Ok(text) => Some(Secret::new(text)),
        Err(err) => {
            let mut vec = err.into_bytes();
            zeroize::Zeroize::zeroize(&mut vec);
            None
        }
    }
}

/// What a path stands for, so that two spellings of one file or folder compare equal: a file's
/// device and inode when it exists, else the path with its nearest existing folder resolved
/// (links and `..` followed, as the kernel would). Reads metadata only. For files labctl has
/// open, `FileId` (from `fstat`) is the identity; this is for paths not opened yet.
pub fn path_identity(path: &Path) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.is_file()
    {
        return PathBuf::from(format!("//inode/{}/{}", meta.dev(), meta.ino()));
    }
    let mut rest = Vec::new();
    let mut folder = path;
    loop {
        let here = if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        };
        if let Ok(real) = std::fs::canonicalize(here) {
            let mut out = real;
            out.extend(rest.iter().rev());
            return out;
        }
        match (folder.parent(), folder.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                folder = parent;
            }
            _ => return path.to_owned(),
        }
    }
}

/// Where the PuTTY form of the key file `pem` goes: beside it, `<name>.ppk`. The one place of
/// this convention (validation, the plan's words, and custody's look for it).
pub fn ppk_path(pem: &Path) -> PathBuf {
    pem.with_extension("ppk")
}

/// The folder a key file lives in (`.` for a bare file name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The names key material takes in its folder besides `path` itself: where destroy and prune
/// retire it (`<file>.retired-<time>`) and `--replace` moves it (`<file>.replaced-<time>`),
/// each stood for by one name of that form. The git check asks about all of them.
pub fn aside_names(path: &Path) -> [PathBuf; 2] {
    let named = |label: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{label}-0"));
        PathBuf::from(name)
    };
    [named("retired"), named("replaced")]
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, symlink};

    use super::{FileCustody, FileState, Secret, StoreError};
    use crate::keys::{KeyCustody as _, KeyRef};

    const ED25519: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACC0rCTnj5QY39NcJUHD2mWywDjYbHUOg/MvwJySIkJ1+QAAAJiz+gBus/oA
bgAAAAtzc2gtZWQyNTUxOQAAACC0rCTnj5QY39NcJUHD2mWywDjYbHUOg/MvwJySIkJ1+Q
AAAEBwbvkXSa/s1H4Oef8vQD5/tITSpNiHBoHsLpXhByV7t7SsJOePlBjf01wlQcPaZbLA
ONhsdQ6D8y/AnJIiQnX5AAAAE3Rlc3RAbGFiY3RsLmV4YW1wbGUBAg==
-----END OPENSSH PRIVATE KEY-----
";

    #[test]
    fn writes_owner_only_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/lab.pem");
        let store = FileCustody;
        let outcome = store
            .save_new(KeyRef::Pem(&path), &Secret::new(ED25519.to_owned()))
            .unwrap();
        assert_eq!(outcome.created_dirs, vec![dir.path().join("keys")]);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o400);
        assert_eq!(
            std::fs::metadata(dir.path().join("keys")).unwrap().mode() & 0o777,
            0o700
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keys/.gitignore"))
                .unwrap()
                .lines()
                .last(),
            Some("*")
        );
        assert!(matches!(
            store.inspect(KeyRef::Pem(&path)),
            FileState::Key { mode: 0o400, .. }
        ));
        let again = store.save_new(KeyRef::Pem(&path), &Secret::new("other".to_owned()));
        assert!(matches!(again, Err(StoreError::Exists { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), ED25519);
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        let link = dir.path().join("lab.pem");
        symlink(&target, &link).unwrap();
        let store = FileCustody;
        assert_eq!(store.inspect(KeyRef::Pem(&link)), FileState::Symlink);
        assert!(matches!(
            store.prepare(&link),
            Err(StoreError::Symlink { .. })
        ));
        assert!(matches!(
            store.save_new(KeyRef::Pem(&link), &Secret::new(ED25519.to_owned())),
            Err(StoreError::Symlink { .. })
        ));
        assert!(!target.exists());
    }

    #[test]
    fn a_key_folder_others_can_change_or_that_is_a_link_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        symlink(&real, dir.path().join("link")).unwrap();
        let via_link = dir.path().join("link/lab.pem");
        assert!(matches!(
            FileCustody.inspect(KeyRef::Pem(&via_link)),
            FileState::Unsafe { .. }
        ));
        assert!(matches!(
            FileCustody.save_new(KeyRef::Pem(&via_link), &Secret::new(ED25519.to_owned())),
            Err(StoreError::Unsafe { .. })
        ));
        assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);

        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o770)).unwrap();
        let path = real.join("lab.pem");
        match FileCustody.prepare(&path) {
            Err(StoreError::Unsafe { reason, .. }) => {
                assert!(reason.contains("its group"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Sticky, like /tmp: others cannot remove or rename our files.
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(FileCustody.prepare(&path).is_ok());
    }

    #[test]
    fn moving_aside_and_removing_never_touch_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/lab.pem");
        FileCustody
            .save_new(KeyRef::Pem(&path), &Secret::new(ED25519.to_owned()))
            .unwrap();
        let other =
            crate::keys::PublicKey::from_openssh(&crate::keys::fixture("ed25519-b.pub")).unwrap();
        // Not the key of the key pair deleted: the file stays.
        assert!(
            !FileCustody
                .remove_if_holds(KeyRef::Pem(&path), &other)
                .unwrap()
        );
        assert!(path.exists());
        let aside = FileCustody
            .move_aside(&path, "retired", 7)
            .unwrap()
            .unwrap();
        assert_eq!(aside, dir.path().join("keys/lab.pem.retired-7"));
        assert!(!path.exists());
        FileCustody
            .save_new(KeyRef::Pem(&path), &Secret::new(ED25519.to_owned()))
            .unwrap();
        let again = FileCustody
            .move_aside(&path, "retired", 7)
            .unwrap()
            .unwrap();
        assert_eq!(again, dir.path().join("keys/lab.pem.retired-7-2"));
        assert_eq!(std::fs::read_to_string(&aside).unwrap(), ED25519);
    }

    #[test]
    fn unreadable_files_are_reported_without_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.pem");
        std::fs::write(&path, "not a key at all, secret-looking text").unwrap();
        match FileCustody.inspect(KeyRef::Pem(&path)) {
            FileState::Unreadable { reason } => assert!(!reason.contains("secret-looking")),
            other => panic!("{other:?}"),
        }
    }
}
