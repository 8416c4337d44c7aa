//! One key folder, one project: a key folder names the project whose keys it holds.
//!
//! Two manifests with different `project`s that share a key folder (the default `keys/`
//! beside both) would take each other's files for their own: the second imports the first's
//! keys into its regions, and its `destroy --purge-local` removes files the first's key pairs
//! still use. So the first project that keeps keys in a folder claims it with a
//! `.labctl-project` file (the project's name), and every other project is refused there,
//! before any request, with the folder and the project that holds it named. A folder without
//! the file is claimed by the first run that changes things; commands that only read (`plan`)
//! claim nothing.

use std::ffi::OsStr;
use std::path::PathBuf;

use super::folder::KeyFolder;

/// The claim's file name in a key folder (under labctl's reserved prefix: no manifest can
/// name a key file so).
pub const CLAIM_FILE: &str = ".labctl-project";

/// The most of a claim file labctl reads.
const MAX_CLAIM: usize = 1024;

/// A key folder another project holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub folder: PathBuf,
    pub project: String,
}

/// The project that holds the folder `dir`, when it is claimed (and readable).
fn holder(folder: &KeyFolder) -> Option<String> {
    let (_, bytes) = folder.read(OsStr::new(CLAIM_FILE), MAX_CLAIM).ok()?;
    let bytes = bytes?;
    let text = String::from_utf8_lossy(&bytes);
    let project = text.lines().next().unwrap_or_default().trim().to_owned();
    (!project.is_empty()).then_some(project)
}

/// Check (and, with `claim`, take) every key folder in `dirs` for `project`. Folders that do
/// not exist yet are skipped (call again once they do). Returns the folders another project
/// holds.
pub fn check_folders(dirs: &[PathBuf], project: &str, claim: bool) -> Vec<Claimed> {
    let mut refused = Vec::new();
    for dir in dirs {
        // A missing folder is claimed once it exists; an untrusted one is refused where its
        // files are looked at.
        let Ok(folder) = KeyFolder::open(dir) else {
            continue;
        };
        match holder(&folder) {
            Some(other) if other != project => refused.push(Claimed {
                folder: dir.clone(),
                project: other,
            }),
            None if claim => {
                let text = format!("{project}\n");
                // Another run may claim it at the same moment: whoever links first holds it.
                if folder
                    .write_new(OsStr::new(CLAIM_FILE), &[text.as_bytes()])
                    .is_err()
                    && let Some(other) = holder(&folder).filter(|p| p != project)
                {
                    refused.push(Claimed {
                        folder: dir.clone(),
                        project: other,
                    });
                }
            }
            Some(_) | None => {}
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::{CLAIM_FILE, check_folders};

    #[test]
    fn the_first_project_claims_a_folder_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let dirs = [keys.clone(), dir.path().join("missing")];
        // Reading claims nothing.
        assert!(check_folders(&dirs, "a", false).is_empty());
        assert!(!keys.join(CLAIM_FILE).exists());
        assert!(check_folders(&dirs, "a", true).is_empty());
        assert_eq!(
            std::fs::read_to_string(keys.join(CLAIM_FILE)).unwrap(),
            "a\n"
        );
        assert!(check_folders(&dirs, "a", true).is_empty());
        let refused = check_folders(&dirs, "b", false);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].project, "a");
        assert_eq!(refused[0].folder, keys);
    }
}
