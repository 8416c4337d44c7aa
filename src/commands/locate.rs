//! Which manifest a command works on: the one named (`MANIFEST` or `-f`), or `labctl.yaml` /
//! `labctl.yml` in the current folder or the nearest parent, stopping at the git repository's
//! root (the folder holding `.git`), as git and cargo look for theirs.
//!
//! A manifest runs with the caller's AWS credentials, so one found (not named) is taken only
//! from the caller's own folders: the search stops below a folder another user owns and at the
//! caller's home folder, and a manifest (or its folder) that belongs to another user is refused
//! with how to name it if it is trusted, as git refuses a repository another user owns.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// The names looked for, in this order.
pub(super) const NAMES: [&str; 2] = ["labctl.yaml", "labctl.yml"];

/// The manifest named on the command line: `MANIFEST` and `-f` may both be given only if
/// they agree; neither means "look for one".
pub(super) fn resolve(positional: Option<&Path>, file: Option<&Path>) -> Result<PathBuf, Error> {
    match (positional, file) {
        (Some(a), Some(b)) if a != b => Err(Error::Usage(format!(
            "two manifests named: {} and -f {}; give one",
            a.display(),
            b.display()
        ))),
        (Some(path), _) | (None, Some(path)) => Ok(path.to_owned()),
        (None, None) => find(Path::new(".")),
    }
}

/// Look in `start` and its parents. The path returned is relative to `start` (`labctl.yaml`,
/// `../labctl.yaml`), so messages name it as the user would.
pub(super) fn find(start: &Path) -> Result<PathBuf, Error> {
    let absolute = std::path::absolute(start).map_err(Error::Output)?;
    let mut relative = PathBuf::new();
    let mut dir: &Path = &absolute;
    loop {
        let found: Vec<&str> = NAMES
            .iter()
            .copied()
            .filter(|name| dir.join(name).is_file())
            .collect();
        match found.as_slice() {
            [name] => {
                let file = dir.join(name);
                let foreign = foreign_owner(dir, true)
                    .map(|owner| (dir.to_owned(), owner))
                    .or_else(|| foreign_owner(&file, false).map(|owner| (file.clone(), owner)));
                if let Some((whose, owner)) = foreign {
                    return Err(Error::Usage(format!(
                        "{} belongs to another user (uid {owner}); labctl does not take a manifest from someone else's folder with your credentials. If you trust it, name it: labctl -f {} COMMAND",
                        whose.display(),
                        file.display()
                    )));
                }
                return Ok(relative.join(name));
            }
            [a, b, ..] => {
                return Err(Error::Usage(format!(
                    "both {a} and {b} are in {}; remove one, or name it with -f",
                    dir.display()
                )));
            }
            [] => {}
        }
        let at_root = dir.join(".git").exists();
        let at_home = std::env::var_os("HOME").is_some_and(|home| Path::new(&home) == dir);
        let boundary = |parent: &Path| at_home || foreign_owner(parent, true).is_some();
        match dir.parent() {
            Some(parent) if !at_root && boundary(parent) => {
                return Err(Error::NoManifest(format!(
                    "{} or its parents up to {} (labctl does not look above your home folder or in folders another user owns)",
                    absolute.display(),
                    dir.display()
                )));
            }
            Some(parent) if !at_root => {
                dir = parent;
                relative.push("..");
            }
            _ => {
                let where_ = if at_root {
                    format!(
                        "{} or its parents up to the repository's root {}",
                        absolute.display(),
                        dir.display()
                    )
                } else {
                    format!("{} or any parent folder", absolute.display())
                };
                return Err(Error::NoManifest(where_));
            }
        }
    }
}

/// The owner of `path` when it is another user than the caller (root counting as the caller
/// with `root_too`: root's folders, `/` and `/home`, are everyone's way up); `None` when it
/// is the caller's, or cannot be looked at.
fn foreign_owner(path: &Path, root_too: bool) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(path).ok()?.uid();
    (uid != crate::keys::effective_uid() && !(root_too && uid == 0)).then_some(uid)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{find, resolve};

    #[test]
    fn finds_the_manifest_here_or_in_a_parent_up_to_the_repository_root() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("repo");
        let deep = repo.join("workshops/k8s/day1");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir(repo.join(".git")).unwrap();

        // Above the repository: never looked at.
        std::fs::write(root.path().join("labctl.yaml"), "").unwrap();
        let err = find(&deep).unwrap_err().to_string();
        assert!(err.contains("repository's root"), "{err}");

        std::fs::write(repo.join("workshops/labctl.yml"), "").unwrap();
        assert_eq!(find(&deep).unwrap(), PathBuf::from("../../labctl.yml"));
        std::fs::write(deep.join("labctl.yaml"), "").unwrap();
        assert_eq!(find(&deep).unwrap(), PathBuf::from("labctl.yaml"));

        std::fs::write(deep.join("labctl.yml"), "").unwrap();
        let err = find(&deep).unwrap_err().to_string();
        assert!(err.contains("both labctl.yaml and labctl.yml"), "{err}");
    }

    #[test]
    fn a_named_manifest_wins_and_two_different_names_are_an_error() {
        let a = Path::new("a.yaml");
        assert_eq!(resolve(Some(a), None).unwrap(), a);
        assert_eq!(resolve(None, Some(a)).unwrap(), a);
        assert_eq!(resolve(Some(a), Some(a)).unwrap(), a);
        assert!(resolve(Some(a), Some(Path::new("b.yaml"))).is_err());
    }
}
