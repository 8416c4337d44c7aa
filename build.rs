//! The commit labctl is built from, for `labctl --version`: `LABCTL_COMMIT` when the release
//! build sets it, else `git rev-parse` in a checkout, else `unknown` (a crate from crates.io).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LABCTL_COMMIT");
    let commit = std::env::var("LABCTL_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.trim().chars().take(12).collect::<String>())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=LABCTL_COMMIT={commit}");
}

fn git_commit() -> Option<String> {
    let git = Path::new(".git");
    if !git.exists() {
        return None;
    }
    // Build again when HEAD moves (a commit, a checkout).
    println!("cargo:rerun-if-changed=.git/HEAD");
    // (Only files that exist: a missing one would make cargo run this on every build.)
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
        && let Some(reference) = head.trim().strip_prefix("ref: ")
    {
        for file in [git.join(reference), git.join("packed-refs")] {
            if file.exists() {
                println!("cargo:rerun-if-changed={}", file.display());
            }
        }
    }
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}
