//! The private key files: inspecting them, and writing new ones safely.
//!
//! Rules this file keeps: a key file is created with owner-only permissions before its first
//! byte, fsynced, moved into place without replacing anything, and left at 0400; an existing
//! file is never overwritten; a symlink at the target is refused; folders labctl creates are
//! 0700 and, when it creates the output folder, get a `.gitignore` of `*`.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{PublicKey, Secret, public_key_of_private};

/// The mode key files end with.
pub const KEY_MODE: u32 = 0o400;
/// Key files larger than this are not private keys (an RSA 4096 PEM is about 3.3 KB).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// What is at a key file's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    /// Nothing there.
    Absent,
    /// A readable private key.
    Key { public: PublicKey, mode: u32 },
    /// A file that is not a usable private key (the reason never quotes it).
    Unreadable { reason: String },
    /// A symbolic link: refused, labctl never follows links for key files.
    Symlink,
    /// A folder, device or other non-file.
    NotAFile,
    /// A key file another user owns, or in a folder other users may change: someone else
    /// could read or swap the key, so labctl does not trust or touch it.
    Unsafe { reason: String },
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

/// Reads and writes private key files.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyStore;

impl KeyStore {
    /// What is at `path`, without following a symlink and without ever printing the key.
    pub fn inspect(self, path: &Path) -> FileState {
        match fs::symlink_metadata(path) {
            // A missing folder, or a file where a folder should be: there is no key file;
            // writing one will fail before EC2 is asked for a key.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                FileState::Absent
            }
            Err(err) => FileState::Unreadable {
                reason: format!("cannot read it: {err}"),
            },
            Ok(meta) if meta.file_type().is_symlink() => FileState::Symlink,
            Ok(meta) if !meta.is_file() => FileState::NotAFile,
            Ok(meta) if effective_uid().is_some_and(|uid| uid != meta.uid()) => FileState::Unsafe {
                reason: format!("it belongs to another user (uid {})", meta.uid()),
            },
            Ok(_) if unsafe_folder(&parent_of(path)).is_some() => FileState::Unsafe {
                reason: unsafe_folder(&parent_of(path)).unwrap_or_default(),
            },
            Ok(meta) if meta.len() > MAX_KEY_FILE => FileState::Unreadable {
                reason: format!("it is {} bytes, too large for a private key", meta.len()),
            },
            Ok(meta) => match fs::read(path) {
                Err(err) => FileState::Unreadable {
                    reason: format!("cannot read it: {err}"),
                },
                Ok(bytes) => match String::from_utf8(bytes) {
                    Err(err) => {
                        let mut bytes = err.into_bytes();
                        zeroize::Zeroize::zeroize(&mut bytes);
                        FileState::Unreadable {
                            reason: "it is not a text file".to_owned(),
                        }
                    }
                    Ok(text) => {
                        let secret = Secret::new(text);
                        match public_key_of_private(&secret) {
                            Ok(public) => FileState::Key {
                                public,
                                mode: meta.mode() & 0o7777,
                            },
                            Err(reason) => FileState::Unreadable { reason },
                        }
                    }
                },
            },
        }
    }

    /// The private key text of a key file (never through a symlink), for fingerprints.
    pub fn read_private(self, path: &Path) -> Option<Secret> {
        let meta = fs::symlink_metadata(path).ok()?;
        if !meta.is_file() || meta.len() > MAX_KEY_FILE {
            return None;
        }
        fs::read_to_string(path).ok().map(Secret::new)
    }

    /// Make sure a new key file can be written at `path` before asking EC2 for the key: the
    /// folder exists (created 0700 if needed) and takes a new file, and the target is absent.
    ///
    /// # Errors
    /// Why the file could not be written.
    pub fn prepare(self, path: &Path) -> Result<WriteOutcome, StoreError> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(StoreError::Symlink {
                    path: path.to_owned(),
                });
            }
            Ok(_) => {
                return Err(StoreError::Exists {
                    path: path.to_owned(),
                });
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_err(path)(err)),
        }
        let dir = parent_of(path);
        let created_dirs = create_dirs(&dir)?;
        if let Some(reason) = unsafe_folder(&dir) {
            return Err(StoreError::Unsafe {
                path: path.to_owned(),
                reason,
            });
        }
        // Prove the folder takes a new file: an owner-only temporary, removed at once.
        tempfile::Builder::new()
            .prefix(".labctl-check-")
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(&dir)
            .map_err(io_err(path))?;
        Ok(WriteOutcome { created_dirs })
    }

    /// Write a new private key file: owner-only from the first byte, fsynced, moved into
    /// place without replacing anything, left at 0400, and the folder fsynced.
    ///
    /// # Errors
    /// Why the file could not be written; on error no file is left at `path`.
    pub fn write_new(self, path: &Path, secret: &Secret) -> Result<WriteOutcome, StoreError> {
        if let Ok(meta) = fs::symlink_metadata(path) {
            return Err(if meta.file_type().is_symlink() {
                StoreError::Symlink {
                    path: path.to_owned(),
                }
            } else {
                StoreError::Exists {
                    path: path.to_owned(),
                }
            });
        }
        let dir = parent_of(path);
        let created_dirs = create_dirs(&dir)?;
        let mut temp = tempfile::Builder::new()
            .prefix(".labctl-key-")
            .suffix(".tmp")
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(&dir)
            .map_err(io_err(path))?;
        let mut text = secret.expose().as_bytes().to_vec();
        if !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        let written = temp.write_all(&text);
        zeroize::Zeroize::zeroize(&mut text);
        written.map_err(io_err(path))?;
        temp.as_file()
            .set_permissions(fs::Permissions::from_mode(KEY_MODE))
            .map_err(io_err(path))?;
        temp.as_file().sync_all().map_err(io_err(path))?;
        temp.persist_noclobber(path).map_err(|err| {
            if err.error.kind() == io::ErrorKind::AlreadyExists {
                StoreError::Exists {
                    path: path.to_owned(),
                }
            } else {
                io_err(path)(err.error)
            }
        })?;
        sync_dir(&dir).map_err(io_err(path))?;
        Ok(WriteOutcome { created_dirs })
    }

    /// Move an existing key file aside to `<file>.replaced-<now>` (never replacing anything),
    /// before its key pair is replaced. Returns where it went, or `None` when there was no file.
    ///
    /// # Errors
    /// Why the file could not be moved.
    pub fn move_aside(self, path: &Path, now: u64) -> Result<Option<PathBuf>, StoreError> {
        match fs::symlink_metadata(path) {
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(err) => return Err(io_err(path)(err)),
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(StoreError::Symlink {
                    path: path.to_owned(),
                });
            }
            Ok(_) => {}
        }
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".replaced-{now}"));
        let mut aside = PathBuf::from(name);
        let mut n = 1;
        // A hard link never replaces an existing file; then the old name goes.
        loop {
            match fs::hard_link(path, &aside) {
                Ok(()) => break,
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && n < 100 => {
                    n += 1;
                    let mut name = path.as_os_str().to_owned();
                    name.push(format!(".replaced-{now}-{n}"));
                    aside = PathBuf::from(name);
                }
                Err(err) => return Err(io_err(path)(err)),
            }
        }
        fs::remove_file(path).map_err(io_err(path))?;
        sync_dir(&parent_of(path)).map_err(io_err(path))?;
        Ok(Some(aside))
    }

    /// Remove labctl's own temporary files left in `dir` by a run that was killed: never
    /// written into place, they hold at most part of a key that was never used. Call only
    /// while holding the manifest's lock, so no other labctl is writing them. Returns how many.
    pub fn clean_temporary(self, dir: &Path) -> usize {
        let Ok(entries) = fs::read_dir(dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = (name.starts_with(".labctl-key-") && name.ends_with(".tmp"))
                || name.starts_with(".labctl-check-");
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if ours && is_file && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Set an existing key file's mode to 0400 (never through a symlink).
    ///
    /// # Errors
    /// Why the mode could not be changed.
    pub fn fix_mode(self, path: &Path) -> Result<(), StoreError> {
        let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
        if meta.file_type().is_symlink() {
            return Err(StoreError::Symlink {
                path: path.to_owned(),
            });
        }
        fs::set_permissions(path, fs::Permissions::from_mode(KEY_MODE)).map_err(io_err(path))
    }
}

/// This process's effective user id (Linux: from /proc), read once.
fn effective_uid() -> Option<u32> {
    static UID: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UID.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Uid:"))?;
        line.split_whitespace().nth(2)?.parse().ok()
    })
}

/// Why a folder is unsafe for key files: any user may write it (without the sticky bit
/// that stops them from removing or renaming our files).
fn unsafe_folder(dir: &Path) -> Option<String> {
    let meta = fs::metadata(dir).ok()?;
    let mode = meta.mode();
    let others_write = mode & 0o002 != 0;
    let sticky = mode & 0o1000 != 0;
    (others_write && !sticky).then(|| {
        format!(
            "the folder {} is writable by other users (mode {:04o})",
            dir.display(),
            mode & 0o7777
        )
    })
}

/// The folder a key file lives in (`.` for a bare file name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Create `dir` and missing parents with mode 0700; the first folder labctl creates gets a
/// `.gitignore` of `*` so a key never lands in a commit.
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        if d.as_os_str().is_empty() || fs::symlink_metadata(d).is_ok() {
            break;
        }
        missing.push(d.to_owned());
        cursor = d.parent();
    }
    missing.reverse();
    // Several key files may share a new folder and be written at once: only the call that
    // actually creates a folder counts it as its own.
    let mut created = Vec::new();
    for d in &missing {
        match fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => created.push(d.clone()),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io_err(d)(err)),
        }
    }
    if let Some(outermost) = created.first() {
        let ignore = outermost.join(".gitignore");
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_0644()
            .open(&ignore)
        {
            Ok(mut file) => {
                file.write_all(b"# Private keys written by labctl: never commit them.\n*\n")
                    .map_err(io_err(&ignore))?;
                file.sync_all().map_err(io_err(&ignore))?;
            }
            // Someone put one there first; it is theirs to keep.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io_err(&ignore)(err)),
        }
        sync_dir(outermost.parent().unwrap_or(Path::new("."))).map_err(io_err(outermost))?;
    }
    if !dir.is_dir() {
        return Err(io_err(dir)(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a folder",
        )));
    }
    Ok(created)
}

trait Mode0644 {
    fn mode_0644(&mut self) -> &mut Self;
}

impl Mode0644 for fs::OpenOptions {
    fn mode_0644(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o644)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    fs::File::open(dir)?.sync_all()
}

/// The key files (by index in `paths`) that would land inside a git work tree without being
/// ignored, each with its work tree's root.
///
/// Reads only; asks `git check-ignore` once per work tree (however many key files it holds)
/// when git is installed. A folder that does not exist yet is created by labctl with a
/// `.gitignore`, so it is never exposed.
pub fn git_exposure(paths: &[&Path]) -> Vec<(usize, PathBuf)> {
    let mut by_root: std::collections::BTreeMap<PathBuf, Vec<(usize, PathBuf)>> =
        std::collections::BTreeMap::new();
    for (index, path) in paths.iter().enumerate() {
        let dir = parent_of(path);
        let (Some(name), true) = (path.file_name(), dir.is_dir()) else {
            continue;
        };
        let Ok(absolute) = fs::canonicalize(&dir) else {
            continue;
        };
        if let Some(root) = absolute.ancestors().find(|a| a.join(".git").exists()) {
            by_root
                .entry(root.to_owned())
                .or_default()
                .push((index, absolute.join(name)));
        }
    }
    let mut exposed = Vec::new();
    for (root, files) in by_root {
        let Some(ignored) = ignored_by_git(&root, files.iter().map(|(_, f)| f.as_path())) else {
            continue;
        };
        exposed.extend(
            files
                .into_iter()
                .filter(|(_, file)| !ignored.contains(file))
                .map(|(index, _)| (index, root.clone())),
        );
    }
    exposed.sort();
    exposed
}

/// Which of `files` git ignores in the work tree at `root`; `None` when git cannot tell.
fn ignored_by_git<'a>(
    root: &Path,
    files: impl Iterator<Item = &'a Path>,
) -> Option<std::collections::BTreeSet<PathBuf>> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut input = Vec::new();
    for file in files {
        input.extend_from_slice(file.as_os_str().as_bytes());
        input.push(0);
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["check-ignore", "--no-index", "-z", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    // Write from a thread: git answers while it reads, and a full pipe must not stall both.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().ok()?;
    let _ = writer.join();
    // 0: some are ignored; 1: none is; anything else: git could not tell.
    if !matches!(output.status.code(), Some(0 | 1)) {
        return None;
    }
    Some(
        output
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(std::ffi::OsString::from_vec(p.to_vec())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, symlink};

    use super::{FileState, KeyStore, Secret, StoreError};

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
        let store = KeyStore;
        let outcome = store
            .write_new(&path, &Secret::new(ED25519.to_owned()))
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
            store.inspect(&path),
            FileState::Key { mode: 0o400, .. }
        ));
        let again = store.write_new(&path, &Secret::new("other".to_owned()));
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
        let store = KeyStore;
        assert_eq!(store.inspect(&link), FileState::Symlink);
        assert!(matches!(
            store.prepare(&link),
            Err(StoreError::Symlink { .. })
        ));
        assert!(matches!(
            store.write_new(&link, &Secret::new(ED25519.to_owned())),
            Err(StoreError::Symlink { .. })
        ));
        assert!(!target.exists());
    }

    #[test]
    fn unreadable_files_are_reported_without_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.pem");
        std::fs::write(&path, "not a key at all, secret-looking text").unwrap();
        match KeyStore.inspect(&path) {
            FileState::Unreadable { reason } => assert!(!reason.contains("secret-looking")),
            other => panic!("{other:?}"),
        }
    }
}
