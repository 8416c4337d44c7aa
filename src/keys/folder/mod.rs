//! The one layer through which labctl touches a key folder.
//!
//! Every file operation on a folder that holds private keys goes through [`KeyFolder`]: the
//! folder is opened once (never through a symbolic link at its own name), checked the way
//! OpenSSH's `StrictModes` checks `~/.ssh` (owned by you or root, writable by nobody else), and
//! every later step works on names relative to that open handle (`openat`, `linkat`,
//! `unlinkat`, `fstat`, `fchmod`), so a link or folder swapped in between a check and a use
//! is never followed. No path is checked and then used again.
//!
//! Rules kept here: a key file is created `0600` from its first byte (`O_EXCL`, no link
//! followed), written, set to `0400`, fsynced and linked into place with `linkat`, which never
//! replaces a file; a file is read only through `O_NOFOLLOW | O_NONBLOCK` and `fstat`, with a
//! size bound, into a buffer allocated once and wiped; temporary files carry a name no
//! manifest can give a key file (see [`is_reserved_name`]) and are locked while in use, so a
//! cleanup by another labctl never removes one that is being written.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use zeroize::Zeroizing;

mod open;

pub use open::FolderError;

/// Every name labctl gives a temporary file starts with this; manifests may not use it for a
/// key file, so cleaning up leftovers can never remove a real key.
pub const RESERVED_PREFIX: &str = ".labctl-";

/// Whether a file name is reserved for labctl's own temporary and state files.
pub fn is_reserved_name(name: &OsStr) -> bool {
    name.as_bytes().starts_with(RESERVED_PREFIX.as_bytes())
}

const TEMP_PREFIX: &str = ".labctl-tmp-";
const TEMP_SUFFIX: &str = ".tmp";

/// Whether `name` is exactly the form of labctl's temporary files: the prefix, 16 hex
/// digits, `.tmp`. Validation refuses every key file name with the reserved prefix, so no
/// manifest can produce one.
fn is_temporary_name(name: &[u8]) -> bool {
    name.strip_prefix(TEMP_PREFIX.as_bytes())
        .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX.as_bytes()))
        .is_some_and(|hex| hex.len() == 16 && hex.iter().all(u8::is_ascii_hexdigit))
}

/// What is at a name in a folder, as `fstat`/`lstat` says (never following a link).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Absent,
    Symlink,
    NotAFile,
    File {
        uid: u32,
        mode: u32,
        len: u64,
        id: FileId,
    },
}

/// Which file this is, whatever path reached it: the device and inode `fstat` reports. Two
/// spellings of one path (relative and absolute, `..`, a linked folder), or two hard links,
/// are one file; custody rules compare these, never path text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    fn of(stat: &rustix::fs::Stat) -> Self {
        FileId {
            dev: stat.st_dev,
            ino: stat.st_ino,
        }
    }
}

/// A folder opened for key files.
#[derive(Debug)]
pub struct KeyFolder {
    fd: OwnedFd,
    path: PathBuf,
}

fn to_io(err: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(err.raw_os_error())
}

/// This process's effective user id (no `/proc` needed: works on Linux and macOS).
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The permission bits of a `stat` (`st_mode` is `u16` on macOS, `u32` on Linux).
#[allow(clippy::useless_conversion)]
fn mode_bits(stat: &Stat) -> u32 {
    u32::from(stat.st_mode) & 0o7777
}

impl KeyFolder {
    /// What is at `name`, without following a link.
    pub fn entry(&self, name: &OsStr) -> io::Result<Entry> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(rustix::io::Errno::NOENT) => Ok(Entry::Absent),
            Err(err) => Err(to_io(err)),
            Ok(stat) => Ok(match FileType::from_raw_mode(stat.st_mode) {
                FileType::Symlink => Entry::Symlink,
                FileType::RegularFile => Entry::File {
                    uid: stat.st_uid,
                    mode: mode_bits(&stat),
                    len: u64::try_from(stat.st_size).unwrap_or(0),
                    id: FileId::of(&stat),
                },
                _ => Entry::NotAFile,
            }),
        }
    }

    /// Open `name` for reading: never through a link, never blocking on a FIFO, and only
    /// when it is a regular file. Returns the file and what `fstat` said of it.
    fn open_file(&self, name: &OsStr) -> io::Result<(File, Entry)> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|err| match err {
            rustix::io::Errno::LOOP => {
                io::Error::new(io::ErrorKind::InvalidInput, "it is a symbolic link")
            }
            other => to_io(other),
        })?;
        let stat = rustix::fs::fstat(&fd).map_err(to_io)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is not a regular file",
            ));
        }
        let entry = Entry::File {
            uid: stat.st_uid,
            mode: mode_bits(&stat),
            len: u64::try_from(stat.st_size).unwrap_or(0),
            id: FileId::of(&stat),
        };
        Ok((File::from(fd), entry))
    }

    /// Read at most `max` bytes of the regular file `name` into a buffer allocated once (no
    /// reallocation leaves an unwiped copy) and wiped when dropped. `Ok(None)` when the file
    /// is larger than `max`.
    pub fn read(
        &self,
        name: &OsStr,
        max: usize,
    ) -> io::Result<(Entry, Option<Zeroizing<Vec<u8>>>)> {
        let (file, entry) = self.open_file(name)?;
        // The buffer is sized by what `fstat` said (a file that grew since reads as too
        // large): wiping a maximum-sized buffer for every small key file costs more than
        // reading it.
        let limit = match entry {
            Entry::File { len, .. } => match usize::try_from(len) {
                Ok(len) if len <= max => len,
                _ => return Ok((entry, None)),
            },
            Entry::Absent | Entry::Symlink | Entry::NotAFile => max,
        };
        let bytes = read_bounded(file, limit)?;
        Ok((entry, bytes))
    }

    /// Create `name` holding `parts` (written one after another): `0600` from its first byte,
    /// then `0400`, fsynced, linked into place without ever replacing a file, the folder
    /// fsynced. On error nothing is left at `name`.
    pub fn write_new(&self, name: &OsStr, parts: &[&[u8]]) -> io::Result<()> {
        let (temp_name, mut file) = self.temporary()?;
        let result = (|| {
            for part in parts {
                file.write_all(part)?;
            }
            rustix::fs::fchmod(&file, Mode::from_raw_mode(0o400)).map_err(to_io)?;
            file.sync_all()?;
            rustix::fs::linkat(&self.fd, &temp_name, &self.fd, name, AtFlags::empty())
                .map_err(to_io)
        })();
        let _ = rustix::fs::unlinkat(&self.fd, &temp_name, AtFlags::empty());
        drop(file);
        result?;
        sync(&self.fd)
    }

    /// Prove the folder takes a new file (before asking EC2 for a key that must be saved).
    pub fn check_writable(&self) -> io::Result<()> {
        let (temp_name, file) = self.temporary()?;
        let removed = rustix::fs::unlinkat(&self.fd, &temp_name, AtFlags::empty()).map_err(to_io);
        drop(file);
        removed
    }

    /// A new, locked, owner-only temporary file with a reserved name.
    fn temporary(&self) -> io::Result<(OsString, File)> {
        for _ in 0..16 {
            let mut random = [0u8; 8];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
            let suffix: String = random.iter().fold(String::with_capacity(16), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            });
            let name = OsString::from(format!("{TEMP_PREFIX}{suffix}{TEMP_SUFFIX}"));
            match rustix::fs::openat(
                &self.fd,
                &name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => {
                    let file = File::from(fd);
                    // Held until the file is gone: a cleanup skips files that are locked.
                    file.lock()?;
                    return Ok((name, file));
                }
                Err(rustix::io::Errno::EXIST) => {}
                Err(err) => return Err(to_io(err)),
            }
        }
        Err(io::Error::other(
            "could not find a free temporary file name",
        ))
    }

    /// Open (or create, `0600`) one of labctl's own state files for reading and writing:
    /// never through a link, never blocking on a FIFO, and only a regular file.
    pub fn open_state_file(&self, name: &OsStr, create: bool) -> io::Result<File> {
        let mut flags =
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        if create {
            flags |= OFlags::CREATE;
        }
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o600)).map_err(
            |err| match err {
                rustix::io::Errno::LOOP => {
                    io::Error::new(io::ErrorKind::InvalidInput, "it is a symbolic link")
                }
                other => to_io(other),
            },
        )?;
        let stat = rustix::fs::fstat(&fd).map_err(to_io)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is not a regular file",
            ));
        }
        if stat.st_uid != effective_uid() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("it belongs to another user (uid {})", stat.st_uid),
            ));
        }
        Ok(File::from(fd))
    }

    /// Replace labctl's state file `name` with `bytes` at once: written to a temporary file,
    /// fsynced, renamed over it, the folder fsynced (a kill leaves the old content or the new,
    /// never a part of either). Returns the new file, opened for reading and writing.
    pub fn replace_state_file(&self, name: &OsStr, bytes: &[u8]) -> io::Result<File> {
        let (temp_name, mut file) = self.temporary()?;
        let result = (|| {
            file.write_all(bytes)?;
            file.sync_all()?;
            rustix::fs::renameat(&self.fd, &temp_name, &self.fd, name).map_err(to_io)
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, &temp_name, AtFlags::empty());
        }
        drop(file);
        result?;
        sync(&self.fd)?;
        self.open_state_file(name, false)
    }

    /// Where the folder is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Set the regular file `name` to `0400`, on the file opened (never through a link).
    pub fn set_key_mode(&self, name: &OsStr) -> io::Result<()> {
        let (file, _) = self.open_file(name)?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(0o400)).map_err(to_io)
    }

    /// Give the file `name` a new name `name<suffix>` (with `-2`, `-3`… when taken) without
    /// replacing anything, then drop the old name. Returns the new name, or `None` when
    /// nothing was at `name`.
    pub fn move_aside(&self, name: &OsStr, suffix: &str) -> io::Result<Option<OsString>> {
        match self.entry(name)? {
            Entry::Absent => return Ok(None),
            Entry::Symlink => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "it is a symbolic link",
                ));
            }
            Entry::NotAFile | Entry::File { .. } => {}
        }
        let is_dir = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        for n in 1..100 {
            let mut aside = name.to_owned();
            aside.push(suffix);
            if n > 1 {
                aside.push(format!("-{n}"));
            }
            if is_dir {
                // A folder (a handout bundle) cannot be linked: renamed, only to a free name
                // (the folder is the user's own, 0700: nobody else can take that name).
                match self.entry(&aside)? {
                    Entry::Absent => {
                        rustix::fs::renameat(&self.fd, name, &self.fd, &aside).map_err(to_io)?;
                        sync(&self.fd)?;
                        return Ok(Some(aside));
                    }
                    Entry::Symlink | Entry::NotAFile | Entry::File { .. } => continue,
                }
            }
            match rustix::fs::linkat(&self.fd, name, &self.fd, &aside, AtFlags::empty()) {
                Ok(()) => {
                    rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(to_io)?;
                    sync(&self.fd)?;
                    return Ok(Some(aside));
                }
                Err(rustix::io::Errno::EXIST) => {}
                Err(err) => return Err(to_io(err)),
            }
        }
        Err(io::Error::other("no free name to move the file aside to"))
    }

    /// Give the file moved aside to `aside` its name `name` back, never replacing a file that
    /// took that name since (a step of an operation that failed is undone).
    pub fn move_back(&self, aside: &OsStr, name: &OsStr) -> io::Result<()> {
        match rustix::fs::linkat(&self.fd, aside, &self.fd, name, AtFlags::empty()) {
            Ok(()) => {
                rustix::fs::unlinkat(&self.fd, aside, AtFlags::empty()).map_err(to_io)?;
                sync(&self.fd)
            }
            Err(err) => Err(to_io(err)),
        }
    }

    /// Remove the file `name` (never a link or folder).
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        match self.entry(name)? {
            Entry::File { .. } => {}
            Entry::Absent => return Ok(()),
            Entry::Symlink | Entry::NotAFile => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "it is not a regular file",
                ));
            }
        }
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(to_io)?;
        sync(&self.fd)
    }

    /// The names in the opened folder (`.` and `..` aside), read through its handle.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let dir = rustix::fs::Dir::read_from(&self.fd).map_err(to_io)?;
        Ok(dir
            .flatten()
            .map(|entry| OsStr::from_bytes(entry.file_name().to_bytes()).to_owned())
            .filter(|name| name != "." && name != "..")
            .collect())
    }

    /// Remove temporary files that no running labctl holds (left by a killed run: never
    /// linked into place, they hold at most part of a key that was never used). A file that
    /// another labctl is writing right now is locked, and is left alone. Returns how many.
    pub fn clean_temporary(&self) -> usize {
        let Ok(names) = self.names() else {
            return 0;
        };
        let mut removed = 0;
        for name in names {
            if !is_temporary_name(name.as_bytes()) {
                continue;
            }
            let Ok(fd) = rustix::fs::openat(
                &self.fd,
                &name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            let file = File::from(fd);
            let regular = file.metadata().is_ok_and(|m| m.is_file());
            if regular
                && file.try_lock().is_ok()
                && rustix::fs::unlinkat(&self.fd, &name, AtFlags::empty()).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }
}

/// The first buffer of a bounded read; it doubles as the content needs, up to the bound.
const FIRST_READ: usize = 8 * 1024;

/// Read at most `max` bytes from `file`; `None` when there is more. Memory follows the
/// content, not the bound: the buffer starts at 8 KiB (or `max + 1` when smaller) and doubles
/// as needed, each outgrown buffer wiped as it is dropped. (It once allocated `max + 1` bytes
/// up front: a 16 MiB journal bound made every run 16 MiB larger, wiped page by page.)
pub fn read_bounded(mut file: impl Read, max: usize) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    let mut buffer = Zeroizing::new(vec![0u8; (max + 1).min(FIRST_READ)]);
    let mut filled = 0;
    loop {
        if filled == buffer.len() {
            if buffer.len() > max {
                return Ok(None);
            }
            let mut bigger = Zeroizing::new(vec![0u8; (buffer.len() * 2).min(max + 1)]);
            bigger[..filled].copy_from_slice(&buffer[..filled]);
            buffer = bigger;
        }
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) => return Err(err),
        }
    }
    // Truncating keeps the allocation: the whole buffer is still wiped on drop.
    buffer.truncate(filled);
    Ok(Some(buffer))
}

fn sync(fd: &OwnedFd) -> io::Result<()> {
    rustix::fs::fsync(fd).map_err(to_io)
}

/// The folder and file name of a key file path, or `None` when the path names no file.
pub fn split_file(path: &Path) -> Option<(PathBuf, OsString)> {
    let name = match path.components().next_back()? {
        Component::Normal(name) => name.to_owned(),
        _ => return None,
    };
    Some((super::parent_of(path), name))
}

#[cfg(test)]
mod tests {

    /// A bounded read takes memory for what is there, not for the bound; what is over the
    /// bound is refused; what fits exactly is read whole.
    #[test]
    fn a_bounded_read_allocates_for_the_content_not_the_bound() {
        let small = super::read_bounded(&b"ten bytes!"[..], 16 * 1024 * 1024)
            .unwrap()
            .unwrap();
        assert_eq!(&small[..], b"ten bytes!");
        assert!(
            small.capacity() <= super::FIRST_READ,
            "{}",
            small.capacity()
        );
        let big = vec![7u8; 100_000];
        let read = super::read_bounded(&big[..], 100_000).unwrap().unwrap();
        assert_eq!(read.len(), 100_000);
        assert!(read.capacity() <= 100_001);
        assert!(super::read_bounded(&big[..], 99_999).unwrap().is_none());
    }
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Arc, Barrier};

    use super::KeyFolder;

    /// A key folder replaced by a link after labctl opened it (the classic check-then-use
    /// race): writing, moving aside and removing all act in the folder that was opened, by
    /// its descriptor, never through the link that now stands at its path.
    #[test]
    fn a_folder_swapped_for_a_link_after_it_was_opened_is_never_written_through() {
        let root = tempfile::tempdir().unwrap();
        let keys = root.path().join("keys");
        let (folder, _) = KeyFolder::create(&keys).unwrap();
        let elsewhere = root.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::rename(&keys, root.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &keys).unwrap();

        folder.write_new("a.pem".as_ref(), &[b"key"]).unwrap();
        folder.write_new("b.pem".as_ref(), &[b"key"]).unwrap();
        let aside = folder
            .move_aside("a.pem".as_ref(), ".old")
            .unwrap()
            .unwrap();
        folder.remove("b.pem".as_ref()).unwrap();

        let names = |dir: &std::path::Path| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            names(&elsewhere),
            Vec::<String>::new(),
            "written through the link"
        );
        assert_eq!(
            names(&root.path().join("moved")),
            [
                ".gitignore".to_owned(),
                aside.to_string_lossy().into_owned()
            ]
        );
    }

    /// Entries whose key files share a new folder create it at once: every call succeeds, each
    /// folder is made once, 0700, and only the outermost one gets a `.gitignore`.
    #[test]
    fn entries_creating_one_new_folder_at_once_make_it_once() {
        const THREADS: usize = 8;
        for round in 0..40 {
            let root = tempfile::tempdir().unwrap();
            let target = root.path().join("a/b/keys");
            let barrier = Arc::new(Barrier::new(THREADS));
            let made: Vec<Vec<std::path::PathBuf>> = (0..THREADS)
                .map(|_| {
                    let (barrier, target) = (Arc::clone(&barrier), target.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        KeyFolder::create(&target).map(|(_, created)| created)
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap().expect("every call succeeds"))
                .collect();
            let mut all: Vec<_> = made.into_iter().flatten().collect();
            all.sort();
            let folders = ["a", "a/b", "a/b/keys"].map(|f| root.path().join(f));
            assert_eq!(all, folders, "round {round}: each folder is made once");
            for folder in &folders {
                let bits = std::fs::metadata(folder).unwrap().permissions().mode() & 0o777;
                assert_eq!(bits, 0o700, "round {round}: {}", folder.display());
            }
            let ignores: Vec<_> = folders
                .iter()
                .filter(|f| f.join(".gitignore").exists())
                .collect();
            assert_eq!(
                ignores,
                [&folders[0]],
                "round {round}: one .gitignore, outermost"
            );
        }
    }
}
