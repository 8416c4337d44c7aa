//! Opening a key folder, and the trust it must earn first: owned by the user (or root) and
//! changeable by nobody else, as OpenSSH's `StrictModes` checks `~/.ssh`; never reached
//! through a link at its own name. A folder labctl creates is made `0700` with a `.gitignore`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use super::{KeyFolder, effective_uid, mode_bits, sync, to_io};

/// Why a folder with this owner and mode must not hold private keys, if it must not.
fn folder_distrust(path: &Path, stat: &Stat) -> Option<String> {
    let mode = mode_bits(stat);
    let uid = stat.st_uid;
    let me = effective_uid();
    if uid != me && uid != 0 {
        return Some(format!(
            "the folder {} belongs to another user (uid {uid})",
            path.display()
        ));
    }
    // Like OpenSSH's StrictModes: nobody else may add, remove or rename files here. A sticky
    // folder (such as /tmp) stops others from removing or renaming our files.
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        let who = if mode & 0o002 != 0 {
            "other users"
        } else {
            "its group"
        };
        return Some(format!(
            "the folder {} is writable by {who} (mode {mode:04o}); make it 0700 (`chmod 700 {}`)",
            path.display(),
            path.display()
        ));
    }
    None
}

/// How opening or using a key folder failed.
#[derive(Debug)]
pub enum FolderError {
    /// The folder does not exist.
    Missing,
    /// The folder's own name is a symbolic link.
    Symlink,
    /// Something other than a folder is there.
    NotAFolder,
    /// Someone else could change the folder.
    Untrusted(String),
    Io(io::Error),
}

impl std::fmt::Display for FolderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FolderError::Missing => f.write_str("the folder does not exist"),
            FolderError::Symlink => f.write_str(
                "the key folder is a symbolic link; labctl does not follow links for key folders (use the real path)",
            ),
            FolderError::NotAFolder => f.write_str("it is not a folder"),
            FolderError::Untrusted(reason) => f.write_str(reason),
            FolderError::Io(err) => write!(f, "{err}"),
        }
    }
}

fn open_dir_at(dirfd: impl AsFd, name: &OsStr) -> Result<OwnedFd, FolderError> {
    rustix::fs::openat(
        dirfd,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|err| match err {
        rustix::io::Errno::NOENT => FolderError::Missing,
        // ELOOP: the name is a link; ENOTDIR: a file (or a link) where a folder should be.
        rustix::io::Errno::LOOP => FolderError::Symlink,
        rustix::io::Errno::NOTDIR => FolderError::NotAFolder,
        other => FolderError::Io(to_io(other)),
    })
}

/// Split a folder path into the folder that holds it and its own name.
fn split(path: &Path) -> (PathBuf, OsString) {
    match path.file_name() {
        Some(name) => (crate::keys::parent_of(path), name.to_owned()),
        None => (path.to_owned(), OsString::from(".")),
    }
}

fn write_gitignore(dir: &OwnedFd) -> Result<(), FolderError> {
    match rustix::fs::openat(
        dir,
        ".gitignore",
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(fd) => {
            let mut file = File::from(fd);
            file.write_all(b"# Written by labctl (private keys, or its lock and journal): never commit them.\n*\n")
                .and_then(|()| file.sync_all())
                .map_err(FolderError::Io)
        }
        // Someone put one there first; it is theirs to keep.
        Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(err) => Err(FolderError::Io(to_io(err))),
    }
}

impl KeyFolder {
    /// Open an existing key folder and check that only its owner can change it. The folders
    /// above it are resolved as usual; the folder itself must not be a link.
    pub fn open(path: &Path) -> Result<KeyFolder, FolderError> {
        let (parent, name) = split(path);
        let parent_fd = rustix::fs::open(
            &parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| match err {
            rustix::io::Errno::NOENT => FolderError::Missing,
            rustix::io::Errno::NOTDIR => FolderError::NotAFolder,
            other => FolderError::Io(to_io(other)),
        })?;
        let fd = if name == "." || name == ".." {
            rustix::fs::openat(
                &parent_fd,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| FolderError::Io(to_io(e)))?
        } else {
            match open_dir_at(&parent_fd, &name) {
                Err(FolderError::NotAFolder) => {
                    // ENOTDIR also comes for a link to a file; say which.
                    let stat = rustix::fs::statat(&parent_fd, &name, AtFlags::SYMLINK_NOFOLLOW);
                    return Err(match stat {
                        Ok(s) if FileType::from_raw_mode(s.st_mode) == FileType::Symlink => {
                            FolderError::Symlink
                        }
                        _ => FolderError::NotAFolder,
                    });
                }
                other => other?,
            }
        };
        let folder = KeyFolder {
            fd,
            path: path.to_owned(),
        };
        folder.check_trust()?;
        Ok(folder)
    }

    /// Open a key folder, creating it and any missing parents `0700` on the way (each one
    /// relative to the one above it, never through a link). The outermost folder labctl
    /// creates gets a `.gitignore` of `*`. Returns the folder and the folders created.
    pub fn create(path: &Path) -> Result<(KeyFolder, Vec<PathBuf>), FolderError> {
        // Entries whose files share a new folder ask for it at once. One at a time, the first
        // makes every missing folder (and the one `.gitignore`) and the others find them made;
        // side by side, each would see a different set missing and put its own `.gitignore`
        // into the first folder it made. (Other processes are kept out by the manifest's lock.)
        static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = CREATING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match KeyFolder::open(path) {
            Err(FolderError::Missing) => {}
            other => return other.map(|f| (f, Vec::new())),
        }
        // The deepest existing ancestor, then each missing component below it.
        let mut missing: Vec<OsString> = Vec::new();
        let mut base = path.to_owned();
        while std::fs::symlink_metadata(&base).is_err() {
            let Some(name) = base.file_name() else {
                return Err(FolderError::Missing);
            };
            missing.push(name.to_owned());
            match base.parent() {
                Some(p) if !p.as_os_str().is_empty() => base = p.to_owned(),
                _ => {
                    base = PathBuf::from(".");
                    break;
                }
            }
        }
        missing.reverse();
        let mut fd = rustix::fs::open(
            &base,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| match err {
            rustix::io::Errno::NOTDIR => FolderError::NotAFolder,
            other => FolderError::Io(to_io(other)),
        })?;
        let mut created = Vec::new();
        let mut current = if base == Path::new(".") && !path.starts_with(".") {
            PathBuf::new()
        } else {
            base.clone()
        };
        for (depth, name) in missing.iter().enumerate() {
            current.push(name);
            match rustix::fs::mkdirat(&fd, name.as_os_str(), Mode::from_raw_mode(0o700)) {
                // Several key files may share a new folder and be written at once: only the
                // call that actually creates a folder counts it as its own.
                Ok(()) => created.push(current.clone()),
                Err(rustix::io::Errno::EXIST) => {}
                Err(err) => return Err(FolderError::Io(to_io(err))),
            }
            let next = open_dir_at(&fd, name)?;
            // The `.gitignore` goes into the outermost missing folder, by whichever call made
            // it: a call that lost the race for it must not put another one further down.
            if depth == 0 && created.last() == Some(&current) {
                write_gitignore(&next)?;
                sync(&fd).map_err(FolderError::Io)?;
            }
            fd = next;
        }
        let folder = KeyFolder {
            fd,
            path: path.to_owned(),
        };
        folder.check_trust()?;
        Ok((folder, created))
    }

    /// Make a new folder `name` (0700) inside this one, by this folder's descriptor (never
    /// through a path), and open it. It must not exist yet.
    pub fn create_child(&self, name: &OsStr) -> Result<KeyFolder, FolderError> {
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700))
            .map_err(|err| FolderError::Io(to_io(err)))?;
        let folder = KeyFolder {
            fd: open_dir_at(&self.fd, name)?,
            path: self.path.join(name),
        };
        sync(&self.fd).map_err(FolderError::Io)?;
        folder.check_trust()?;
        Ok(folder)
    }

    fn check_trust(&self) -> Result<(), FolderError> {
        let stat = rustix::fs::fstat(&self.fd).map_err(|e| FolderError::Io(to_io(e)))?;
        match folder_distrust(&self.path, &stat) {
            Some(reason) => Err(FolderError::Untrusted(reason)),
            None => Ok(()),
        }
    }
}
