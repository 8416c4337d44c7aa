//! What ships: the release workflow lints, the install script installs an archive laid out as
//! a release lays it out (by the same `scripts/package`), and refuses a corrupted one.

use std::path::Path;
use std::process::{Command, Stdio};

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn the_workflows_lint() {
    let workflows: Vec<std::path::PathBuf> = std::fs::read_dir(repo(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    assert!(workflows.len() >= 2, "{workflows:?}");
    let actionlint = Command::new("actionlint")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if actionlint {
        let out = Command::new("actionlint")
            .args(&workflows)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    // Without actionlint: the structure GitHub requires of a workflow.
    crate::support::python_packages();
    let check = r#"
import sys, yaml
for path in sys.argv[1:]:
    doc = yaml.safe_load(open(path))
    on = doc.get("on", doc.get(True))
    assert on, f"{path}: no trigger"
    assert isinstance(doc.get("jobs"), dict) and doc["jobs"], f"{path}: no jobs"
    for name, job in doc["jobs"].items():
        assert "runs-on" in job, f"{path}: job {name} has no runs-on"
        assert job.get("steps"), f"{path}: job {name} has no steps"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{path}: {name}: a step needs uses or run: {step}"
"#;
    let out = Command::new("python3")
        .args(["-c", check])
        .args(&workflows)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The target triple `scripts/install.sh` picks on this machine.
fn host_target() -> String {
    let os = match std::env::consts::OS {
        "linux" => "unknown-linux-musl",
        "macos" => "apple-darwin",
        other => panic!("no release for {other}"),
    };
    format!("{}-{os}", std::env::consts::ARCH)
}

fn package(out: &Path) {
    let status = Command::new("sh")
        .arg(repo("scripts/package"))
        .arg(host_target())
        .arg(crate::support::labctl_bin())
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

fn install(base: &Path, prefix: &Path, args: &[&str]) -> std::process::Output {
    Command::new("sh")
        .arg(repo("scripts/install.sh"))
        .args(["--prefix"])
        .arg(prefix)
        .args(args)
        .env("LABCTL_DOWNLOAD_URL", format!("file://{}", base.display()))
        .env_remove("LABCTL_VERSION")
        .env_remove("LABCTL_PREFIX")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_install_script_installs_a_release_archive_and_refuses_a_corrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("releases");
    let version = env!("CARGO_PKG_VERSION");
    // Laid out as GitHub serves a release: latest/download/… and download/vX.Y.Z/…
    package(&base.join("latest/download"));
    package(&base.join(format!("download/v{version}")));

    for (prefix, args) in [
        (dir.path().join("latest"), vec![]),
        (dir.path().join("pinned"), vec!["--version", version]),
    ] {
        let out = install(&base, &prefix, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let installed = prefix.join("bin/labctl");
        let ran = Command::new(&installed).arg("--version").output().unwrap();
        let shown = String::from_utf8_lossy(&ran.stdout);
        assert!(shown.starts_with(&format!("labctl {version} (")), "{shown}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("installed labctl"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A link planted at the name the script once used for its temporary copy: never
    // followed (the victim is untouched), and no temporary file is left behind.
    let prefix = dir.path().join("latest");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, prefix.join("bin/.labctl.new")).unwrap();
    let out = install(&base, &prefix, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let left: Vec<String> = std::fs::read_dir(prefix.join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".labctl.") && n != ".labctl.new")
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // One byte changed in the archive: the checksum refuses it, nothing is installed.
    let archive = base.join(format!("latest/download/labctl-{}.tar.gz", host_target()));
    let mut bytes = std::fs::read(&archive).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let prefix = dir.path().join("corrupt");
    let out = install(&base, &prefix, &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!prefix.join("bin/labctl").exists());

    // A version that was never released.
    let out = install(&base, &dir.path().join("none"), &["--version", "9.9.9"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot download"));
}

/// Layers import one way: what formats output (render, output, schema) does not import the
/// executor, validation does not import the lock, and the planner does not import the cloud.
#[test]
fn layers_import_one_way() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut check = |file: std::path::PathBuf, forbidden: &[&str]| {
        let text = std::fs::read_to_string(&file).unwrap();
        for f in forbidden {
            if text.contains(f) {
                offenders.push(format!("{} uses {f}", file.display()));
            }
        }
    };
    // A module is a file or a folder of them.
    let files = |module: &str| -> Vec<std::path::PathBuf> {
        let file = src.join(format!("{module}.rs"));
        if file.exists() {
            return vec![file];
        }
        std::fs::read_dir(src.join(module))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect()
    };
    for module in ["render", "output", "schema", "report", "handout"] {
        for file in files(module) {
            check(file, &["crate::apply", "super::apply", "crate::commands"]);
        }
    }
    for file in files("validate") {
        check(file, &["crate::lock", "lock::"]);
    }
    // The planner is a pure function of what is wanted and what is there: it speaks
    // `resource`'s types, never the cloud's client or its errors.
    for file in files("plan") {
        check(file, &["crate::cloud", "cloud::"]);
    }
    // Command files share plumbing through `carry` and `session`, never through each other.
    for file in files("commands") {
        for other in [
            "apply", "destroy", "plan", "handout", "init", "output", "validate",
        ] {
            if !file.ends_with(format!("{other}.rs")) {
                check(file.clone(), &[&format!("super::{other}::")]);
            }
        }
    }
    check(
        src.join("resource.rs"),
        &[
            "crate::cloud",
            "crate::plan",
            "crate::apply",
            "crate::observe",
        ],
    );
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// No source file is over 600 lines before its tests (functions are held to 80 lines by
/// clippy's `too-many-lines-threshold`): a file that grows past it holds two concerns.
#[test]
fn no_source_file_outgrows_one_concern() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let long: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("tests.rs"))
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let lines = text
                .lines()
                .take_while(|l| !l.starts_with("#[cfg(test)]"))
                .count();
            (lines > 600).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}
