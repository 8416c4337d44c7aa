//! The one check for secrets against git: would git take a file that holds a key (not
//! ignored by its rules, or tracked by its index)? Asked for key files, moved-aside copies,
//! bundles and passphrase lists alike.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::store::parent_of;

/// Why git could take a file that holds a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exposure {
    /// In a git work tree and not ignored: `git add .` takes it.
    NotIgnored,
    /// Tracked by git's index, whatever `.gitignore` says: the next commit takes it.
    Tracked,
    /// In a git work tree, but git could not answer (a repository git itself refuses, for
    /// one): nothing says it is safe.
    Unchecked,
}

/// The files (by index in `paths`) that hold or will hold secrets and that git could take,
/// each with its work tree's root and why: not ignored by the rules, or tracked by the index
/// (`.gitignore` does not untrack a file). The one check for secrets against git.
///
/// Reads only; asks git twice per work tree (however many files it holds) when git is
/// installed. A folder that does not exist yet is created by labctl with a `.gitignore`, so
/// it is never exposed.
pub fn git_exposure(paths: &[&Path]) -> Vec<(usize, PathBuf, Exposure)> {
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
        let tracked = tracked_by_git(&root, files.iter().map(|(_, f)| f.as_path()));
        let Some(ignored) = ignored_by_git(&root, files.iter().map(|(_, f)| f.as_path())) else {
            exposed.extend(
                files
                    .into_iter()
                    .map(|(index, _)| (index, root.clone(), Exposure::Unchecked)),
            );
            continue;
        };
        for (index, file) in files {
            if tracked.contains(&file) {
                exposed.push((index, root.clone(), Exposure::Tracked));
            } else if !ignored.contains(&file) {
                exposed.push((index, root.clone(), Exposure::NotIgnored));
            }
        }
    }
    exposed.sort_by_key(|(index, _, _)| *index);
    exposed
}

/// Which of `files` git's index tracks (a folder: any file in it) in the work tree at
/// `root` (empty when git cannot tell). Asks once for every folder the files are in.
fn tracked_by_git<'a>(
    root: &Path,
    files: impl Iterator<Item = &'a Path>,
) -> std::collections::BTreeSet<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let files: std::collections::BTreeSet<&Path> = files.collect();
    let dirs: std::collections::BTreeSet<PathBuf> = files.iter().map(|f| parent_of(f)).collect();
    let Ok(output) = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z", "--cached", "--full-name", "--"])
        .args(&dirs)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return std::collections::BTreeSet::new();
    };
    if !output.status.success() {
        return std::collections::BTreeSet::new();
    }
    let listed: Vec<PathBuf> = output
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| root.join(PathBuf::from(std::ffi::OsString::from_vec(p.to_vec()))))
        .collect();
    // A file, or a folder (a bundle) with a tracked file inside.
    files
        .into_iter()
        .filter(|f| listed.iter().any(|l| l.starts_with(f)))
        .map(Path::to_path_buf)
        .collect()
}

/// Which of `files` git ignores in the work tree at `root`; `None` when git cannot tell (git
/// missing is "ignored": there is no git to commit anything).
fn ignored_by_git<'a>(
    root: &Path,
    files: impl Iterator<Item = &'a Path>,
) -> Option<std::collections::BTreeSet<PathBuf>> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let files: Vec<&Path> = files.collect();
    let mut input = Vec::new();
    for file in &files {
        input.extend_from_slice(file.as_os_str().as_bytes());
        input.push(0);
    }
    let Ok(mut child) = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["check-ignore", "--no-index", "-z", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        // No git: nothing here can commit a file.
        return Some(files.into_iter().map(Path::to_path_buf).collect());
    };
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
