//! Paths: `~/` and the manifest's folder, and what a key file's path may be.

use super::{Component, Diagnostic, MAX_FILE_NAME, MAX_PATH, Path, PathBuf, Pos, Validator, keys};

impl Validator<'_> {
    /// Resolve a path from the manifest: `~/` against home, relative against the manifest's folder.
    pub(super) fn resolve(&self, written: &str) -> PathBuf {
        let path = match (written.strip_prefix("~/"), &self.context.home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => self.context.base_dir.join(written),
        };
        normalize(&path)
    }

    /// Resolve an output path, refusing empty ones and existing folders.
    pub(super) fn output_path(
        &mut self,
        field: &str,
        pos: Pos,
        written: &str,
    ) -> Option<(PathBuf, String)> {
        if written.trim().is_empty() {
            self.push(
                Diagnostic::error(field, pos, "the output path is empty")
                    .with_help("name a file such as `keys/lab.pem`"),
            );
            return None;
        }
        if written.starts_with("~/") && self.context.home.is_none() {
            self.push(
                Diagnostic::error(
                    field,
                    pos,
                    "the output path starts with `~/` but HOME is not set",
                )
                .with_help("set HOME, or write the path out in full"),
            );
            return None;
        }
        let resolved = self.resolve(written);
        let display = resolved.display().to_string();
        if let Some(problem) = path_problem(field, pos, &resolved, &display) {
            self.push(problem);
            return None;
        }
        if written.ends_with('/') || resolved.is_dir() {
            self.push(
                Diagnostic::error(
                    field,
                    pos,
                    format!("the output {display} is a folder, not a file"),
                )
                .with_label("a folder")
                .with_help("name the private key file itself, e.g. `keys/lab.pem`"),
            );
            return None;
        }
        Some((resolved, display))
    }
}

/// Why a resolved key file path cannot be used, if it cannot: a name labctl keeps for its
/// own files, a file name or a path longer than file systems take.
fn path_problem(field: &str, pos: Pos, resolved: &Path, display: &str) -> Option<Diagnostic> {
    if let Some(reserved) = resolved
        .components()
        .map(Component::as_os_str)
        .find(|c| *c == crate::desired::STATE_DIR || keys::is_reserved_name(c))
    {
        return Some(
            Diagnostic::error(
                field,
                pos,
                format!(
                    "the output {display} uses `{}`, a name labctl keeps for its own files",
                    reserved.to_string_lossy()
                ),
            )
            .with_label("reserved")
            .with_help(format!(
                "names starting with `{}` and the folder `{}` hold labctl's temporary and state files; pick another name",
                keys::RESERVED_PREFIX,
                crate::desired::STATE_DIR
            )),
        );
    }
    if let Some(long) = resolved
        .components()
        .map(Component::as_os_str)
        .find(|c| c.len() > MAX_FILE_NAME)
    {
        return Some(
            Diagnostic::error(
                field,
                pos,
                format!(
                    "the file name `{}…` is {} bytes long; file systems allow {MAX_FILE_NAME}",
                    long.to_string_lossy().chars().take(24).collect::<String>(),
                    long.len()
                ),
            )
            .with_label("too long for a file name")
            .with_help("shorten the key pair name, or give `output` a shorter file name"),
        );
    }
    if resolved.as_os_str().len() > MAX_PATH {
        return Some(
            Diagnostic::error(
                field,
                pos,
                format!(
                    "the output path is {} bytes long; file systems allow {MAX_PATH}",
                    resolved.as_os_str().len()
                ),
            )
            .with_help("use a shorter `output_dir` or `output`"),
        );
    }
    None
}

/// Lexically clean a path: drop `.`, fold `a/..`; never touches the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let last_is_normal =
                    matches!(out.components().next_back(), Some(Component::Normal(_)));
                if last_is_normal {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::table;

    #[test]
    fn key_file_paths() {
        table(&[
            (
                "keypairs:\n  - name: ../lab\n",
                "keypairs[0].name",
                "cannot name a key file",
            ),
            (
                "keypairs:\n  - name: a\n    output: keys/.labctl-tmp-1.pem\n",
                "keypairs[0].output",
                "labctl keeps for its own files",
            ),
            (
                "keypairs:\n  - name: a\n    output: .labctl/a.pem\n",
                "keypairs[0].output",
                "labctl keeps for its own files",
            ),
            (
                "keypairs:\n  - name: a\n    output: keys/\n",
                "keypairs[0].output",
                "is a folder",
            ),
            (
                "keypairs:\n  - name: a\n    output: \"\"\n",
                "keypairs[0].output",
                "empty",
            ),
        ]);
        let long = "k".repeat(252);
        table(&[(
            &format!("keypairs:\n  - name: {long}\n"),
            "keypairs[0].output",
            "256 bytes long",
        )]);
    }
}
