//! Getting each attendee their key: PuTTY keys beside the `.pem` files, and `labctl handout`
//! bundles, read back with the tools attendees use (`puttygen`, `ssh-keygen`, `unzip`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{
    Manifest, Test, cannot_run, mutating_calls, on_terminal, server, ssh_public_key_of, unique,
};

/// Whether `puttygen` (Debian's putty-tools) is here; installed when missing and possible,
/// as `.ci/run` does.
fn puttygen() -> bool {
    let present = || {
        Command::new("puttygen")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if present() {
        return true;
    }
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-q", "putty-tools"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if present() {
        return true;
    }
    cannot_run("this test needs puttygen (Debian: apt-get install putty-tools)");
    false
}

/// The OpenSSH public key (no comment) of a PPK file, as PuTTY reads it: converted to an
/// unencrypted OpenSSH key by `puttygen` (which checks the MAC and, with a passphrase,
/// decrypts), then read by `ssh-keygen -y`.
fn ppk_public_key(ppk: &Path, passphrase: Option<&str>) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, format!("{}\n", passphrase.unwrap_or(""))).unwrap();
    let converted = dir.path().join("converted");
    let out = Command::new("puttygen")
        .arg(ppk)
        .arg("--old-passphrase")
        .arg(&pass)
        .arg("--new-passphrase")
        .arg(&empty)
        .args(["-O", "private-openssh", "-o"])
        .arg(&converted)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    std::fs::set_permissions(&converted, std::fs::Permissions::from_mode(0o600)).unwrap();
    Ok(ssh_public_key_of(&converted))
}

/// `ssh-keygen -y -P PASSPHRASE`: the public key of an encrypted OpenSSH key.
fn encrypted_pem_public_key(pem: &Path, passphrase: &str) -> Result<String, String> {
    let out = Command::new("ssh-keygen")
        .args(["-y", "-P", passphrase, "-f"])
        .arg(pem)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(crate::support::strip_comment(&String::from_utf8_lossy(
            &out.stdout,
        )))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// No private key text in what labctl printed: no PEM armour, no 40-character piece of any
/// key file under `dir`.
fn assert_no_key_text(output: &str, dir: &Path) {
    assert!(!output.contains("PRIVATE KEY"), "{output}");
    assert!(!output.contains("PuTTY-User-Key-File"), "{output}");
    for entry in walk(dir) {
        let Ok(text) = std::fs::read_to_string(&entry) else {
            continue;
        };
        if !(text.contains("PRIVATE KEY") || text.contains("PuTTY-User-Key-File")) {
            continue;
        }
        for line in text.lines().filter(|l| l.len() >= 40 && !l.contains(' ')) {
            assert!(
                !output.contains(&line[..40]),
                "a piece of {} was printed",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn ppk_files_are_written_beside_every_key_and_read_by_puttygen() {
    if !puttygen() {
        return;
    }
    let test = Test::new();
    let project = unique("ppk");
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults:\n  regions: [us-east-1, eu-west-1]\n  formats: [pem, ppk]\nkeypairs:\n  - name: {project}-rsa\n  - name: {project}-ed\n    key_type: ed25519\n  - name: {project}-local\n    source: local\n    key_type: rsa\n    bits: 3072\n"
        ),
    );
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    for kind in ["rsa", "ed", "local"] {
        let pem = test.path(&format!("keys/{project}-{kind}.pem"));
        let ppk = test.path(&format!("keys/{project}-{kind}.ppk"));
        assert_eq!(mode(&ppk), 0o400, "{kind}");
        let expected = ssh_public_key_of(&pem);
        assert_eq!(ppk_public_key(&ppk, None).unwrap(), expected, "{kind}");
        let remote = server()
            .key_pair("eu-west-1", &format!("{project}-{kind}"))
            .unwrap();
        assert_eq!(crate::support::strip_comment(&remote.public_key), expected);
    }
    assert_no_key_text(&format!("{}{}", run.stdout, run.stderr), &test.path("keys"));

    // Idempotent: nothing to do, nothing sent.
    let again = test.cloud(&["apply", "--json"]);
    again.assert_code(0);
    assert_eq!(mutating_calls(&again.json()), 0, "{}", again.stdout);

    // A lost .ppk is a `write` from the key file, with no request to EC2.
    let ed_ppk = test.path(&format!("keys/{project}-ed.ppk"));
    std::fs::remove_file(&ed_ppk).unwrap();
    let plan = test.cloud(&["plan", "--json"]).json();
    let writes: Vec<&serde_json::Value> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "write")
        .collect();
    assert_eq!(writes.len(), 1, "{plan:#}");
    assert_eq!(writes[0]["name"], format!("{project}-ed"));
    let fixed = test.cloud(&["apply", "--json"]);
    fixed.assert_code(0);
    assert_eq!(mutating_calls(&fixed.json()), 0, "{}", fixed.stdout);
    assert_eq!(mode(&ed_ppk), 0o400);
    assert_eq!(
        ppk_public_key(&ed_ppk, None).unwrap(),
        ssh_public_key_of(&test.path(&format!("keys/{project}-ed.pem")))
    );

    // A .ppk of another key is a conflict for that entry; nothing is overwritten.
    let rsa_ppk = test.path(&format!("keys/{project}-rsa.ppk"));
    std::fs::remove_file(&rsa_ppk).unwrap();
    std::fs::copy(test.path(&format!("keys/{project}-local.ppk")), &rsa_ppk).unwrap();
    let before = std::fs::read(&rsa_ppk).unwrap();
    let conflict = test.cloud(&["apply", "--json"]);
    conflict.assert_code(1);
    let json = conflict.json();
    let kinds: Vec<&str> = json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == format!("{project}-rsa"))
        .map(|a| a["conflict"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["ppk-mismatch", "ppk-mismatch"], "{json:#}");
    assert_eq!(mutating_calls(&json), 0);
    assert_eq!(std::fs::read(&rsa_ppk).unwrap(), before);

    // destroy retires each .ppk with its .pem.
    std::fs::remove_file(&rsa_ppk).unwrap();
    test.cloud(&["destroy", "--yes"]).assert_code(0);
    let left: Vec<String> = std::fs::read_dir(test.path("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".ppk") || n.contains(".pem"))
        .collect();
    assert_eq!(left.len(), 5, "{left:?}");
    assert!(left.iter().all(|n| n.contains(".retired-")), "{left:?}");
}

/// A 12-seat workshop with two instructors' keys (one imported from a public key).
fn workshop(test: &Test, project: &str) {
    let public = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys/ed25519-b.pub"),
    )
    .unwrap();
    test.write(
        "labctl.yaml",
        &Manifest::new(project)
            .defaults("\n  region: us-east-1\n  formats: [pem, ppk]")
            .key(
                &format!("{project}-seat-${{index}}"),
                &[
                    ("count", "12"),
                    ("key_type", "ed25519"),
                    ("seat", "\"${index}\""),
                ],
            )
            .key(&format!("{project}-instructor-ana"), &[("key_type", "rsa")])
            .key(
                &format!("{project}-instructor-bo"),
                &[("public_key", &format!("\"{}\"", public.trim()))],
            )
            .text(),
    );
}

#[test]
#[allow(clippy::too_many_lines)] // the instructor's morning, read from top to bottom
fn handout_zips_with_passphrases_open_with_the_attendees_tools() {
    if !puttygen() {
        return;
    }
    let test = Test::new();
    let project = unique("hand");
    workshop(&test, &project);
    test.cloud(&["apply", "-q"]).assert_code(0);

    let run = test.run(&["handout", "--zip", "--passphrase", "--json"]);
    run.assert_code(0);
    assert_no_key_text(&format!("{}{}", run.stdout, run.stderr), test.dir.path());
    let json = run.json();
    let bundles = json["bundles"].as_array().unwrap();
    assert_eq!(bundles.len(), 14);
    let written = bundles.iter().filter(|b| b["status"] == "written").count();
    assert_eq!(written, 13, "{json:#}");
    let skipped: Vec<&serde_json::Value> = bundles
        .iter()
        .filter(|b| b["status"] == "skipped")
        .collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["name"], format!("{project}-instructor-bo"));

    // The passphrase list: owner-only, one row per bundle written, seats numbered.
    let csv_path = Path::new(json["passphrases"].as_str().unwrap()).to_owned();
    let csv_path = test.dir.path().join(csv_path);
    assert_eq!(mode(&csv_path), 0o400);
    assert_eq!(mode(&test.path("handout")), 0o700);
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 13, "{csv}");
    let seat_7 = rows
        .iter()
        .find(|r| r[1] == format!("{project}-seat-7"))
        .unwrap();
    assert_eq!(seat_7[0], "7");
    let passphrase = seat_7[2];
    assert_eq!(passphrase.len(), 29, "six groups of four");
    let mut all: Vec<&str> = rows.iter().map(|r| r[2]).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 13, "every bundle has its own passphrase");

    // One bundle opened by hand, as an attendee would.
    let zip = test.path(&format!("handout/{project}-seat-7.zip"));
    assert_eq!(mode(&zip), 0o400);
    let opened = tempfile::tempdir().unwrap();
    let unzip = Command::new("unzip")
        .arg("-q")
        .arg(&zip)
        .arg("-d")
        .arg(opened.path())
        .status()
        .unwrap();
    assert!(unzip.success());
    let inside = opened.path().join(format!("{project}-seat-7"));
    let mut names: Vec<String> = std::fs::read_dir(&inside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "README.txt".to_owned(),
            format!("{project}-seat-7.pem"),
            format!("{project}-seat-7.ppk"),
            "ssh_config".to_owned()
        ]
    );
    let expected = ssh_public_key_of(&test.path(&format!("keys/{project}-seat-7.pem")));
    let pem = inside.join(format!("{project}-seat-7.pem"));
    let ppk = inside.join(format!("{project}-seat-7.ppk"));
    assert_eq!(mode(&pem), 0o600, "unzip restores owner-only keys");
    assert_eq!(
        encrypted_pem_public_key(&pem, passphrase).unwrap(),
        expected
    );
    assert!(encrypted_pem_public_key(&pem, "not-the-passphrase").is_err());
    // The dashes are part of it, and the README says so.
    assert!(encrypted_pem_public_key(&pem, &passphrase.replace('-', "")).is_err());
    let readme = std::fs::read_to_string(inside.join("README.txt")).unwrap();
    assert!(readme.contains("dashes included"), "{readme}");
    assert_eq!(ppk_public_key(&ppk, Some(passphrase)).unwrap(), expected);
    assert!(ppk_public_key(&ppk, Some("not-the-passphrase")).is_err());
    let readme = std::fs::read_to_string(inside.join("README.txt")).unwrap();
    assert!(
        readme.contains(&format!("Public key:  {expected}")),
        "{readme}"
    );
    assert!(readme.contains("Seat:        7"), "{readme}");
    assert!(readme.contains("us-east-1"), "{readme}");
    assert!(readme.contains("Passphrase:  yes"), "{readme}");
    // The fingerprint EC2 shows for an ed25519 key it created: base64 SHA-256 of the key.
    let listed = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(test.path(&format!("keys/{project}-seat-7.pem")))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let sha = listed
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_start_matches("SHA256:");
    assert!(readme.contains(sha), "{readme}\n{listed}");
    let config = std::fs::read_to_string(inside.join("ssh_config")).unwrap();
    assert!(config.contains(&format!("IdentityFile ~/.ssh/{project}-seat-7.pem")));
    assert!(config.contains("IdentitiesOnly yes"));

    // Again: nothing changed, nothing rewritten, no new passphrase list.
    let before = std::fs::read(&zip).unwrap();
    let again = test.run(&["handout", "--zip", "--passphrase", "--json"]);
    again.assert_code(0);
    let json = again.json();
    assert!(
        json["bundles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["status"] == "unchanged" || b["status"] == "skipped"),
        "{json:#}"
    );
    assert!(json["passphrases"].is_null());
    assert_eq!(std::fs::read(&zip).unwrap(), before);

    // Seat 3's key is replaced: its bundle is refused until --force, which keeps the old one.
    test.cloud(&[
        "apply",
        "-q",
        "--yes",
        "--replace",
        &format!("{project}-seat-3"),
    ])
    .assert_code(0);
    let refused = test.run(&[
        "handout",
        "--zip",
        "--passphrase",
        &format!("{project}-seat-3"),
    ]);
    refused.assert_code(1);
    assert!(refused.stdout.contains("--force"), "{refused:?}");
    let forced = test.run(&[
        "handout",
        "--zip",
        "--passphrase",
        "--force",
        "--json",
        &format!("{project}-seat-*3"),
    ]);
    forced.assert_code(0);
    let json = forced.json();
    assert_eq!(json["bundles"].as_array().unwrap().len(), 1, "{json:#}");
    assert_eq!(json["bundles"][0]["status"], "replaced");
    let aside = std::fs::read_dir(test.path("handout"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{project}-seat-3.zip.replaced-")))
        .count();
    assert_eq!(aside, 1);
}

#[test]
fn handout_folders_are_owner_only_and_refuse_what_they_cannot_do() {
    let test = Test::new();
    let project = unique("handdir");
    workshop(&test, &project);
    test.cloud(&["apply", "-q"]).assert_code(0);
    // A lost key file: that seat is listed with the reason, the others are handed out.
    std::fs::remove_file(test.path(&format!("keys/{project}-seat-2.pem"))).unwrap();
    let run = test.run(&["handout", &format!("{project}-seat-*")]);
    run.assert_code(1);
    assert!(
        run.stdout.contains(&format!("{project}-seat-2")) && run.stdout.contains("is missing"),
        "{run:?}"
    );
    assert_no_key_text(&format!("{}{}", run.stdout, run.stderr), test.dir.path());
    let bundle = test.path(&format!("handout/{project}-seat-1"));
    assert_eq!(mode(&bundle), 0o700);
    for file in walk(&bundle) {
        assert_eq!(mode(&file), 0o400, "{}", file.display());
    }
    assert_eq!(walk(&bundle).len(), 4);
    assert!(test.path("handout/.gitignore").exists());
    assert!(!test.path(&format!("handout/{project}-seat-2")).exists());

    // A key folder others may change: its keys could have been swapped; none is handed out.
    let keys = test.path("keys");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o775)).unwrap();
    let unsafe_run = test.run(&[
        "handout",
        "--out",
        "elsewhere",
        &format!("{project}-seat-1"),
    ]);
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    unsafe_run.assert_code(1);
    assert!(unsafe_run.stdout.contains("not trusted"), "{unsafe_run:?}");
    assert!(!test.path(&format!("elsewhere/{project}-seat-1")).exists());

    // A selector that matches nothing changes nothing.
    let none = test.run(&["handout", "nobody-*"]);
    none.assert_code(1);
    assert!(none.stderr.contains("matches `nobody-*`"), "{none:?}");

    // A bundle folder inside a git work tree that does not ignore it: refused, nothing written.
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(test.dir.path())
        .status();
    if !git.is_ok_and(|s| s.success()) {
        cannot_run("this test needs git");
        return;
    }
    std::fs::create_dir(test.path("shared")).unwrap();
    let exposed = test.run(&["handout", "--out", "shared"]);
    exposed.assert_code(1);
    assert!(exposed.stderr.contains("not ignored"), "{exposed:?}");
    assert_eq!(std::fs::read_dir(test.path("shared")).unwrap().count(), 0);
}

#[test]
fn a_folder_bundle_is_replaced_with_force_and_bundles_never_go_into_a_key_folder() {
    let test = Test::new();
    let project = unique("folderforce");
    let name = format!("{project}-seat-1");
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-seat-${{index}}\n    count: 1\n"
        ),
    );
    test.cloud(&["apply"]).assert_code(0);
    test.run(&["handout"]).assert_code(0);
    let readme = test.path(&format!("handout/{name}/README.txt"));
    let first = std::fs::read_to_string(&readme).unwrap();
    test.cloud(&["apply", "--replace", &name, "--yes"])
        .assert_code(0);
    let refused = test.run(&["handout"]);
    refused.assert_code(1);
    let forced = test.run(&["handout", "--force"]);
    forced.assert_code(0);
    let second = std::fs::read_to_string(&readme).unwrap();
    assert_ne!(first, second, "the bundle was not replaced");
    let aside: Vec<String> = std::fs::read_dir(test.path("handout"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{name}.replaced-")))
        .collect();
    assert_eq!(aside.len(), 1, "the old bundle is kept aside");
    assert_eq!(
        std::fs::read_to_string(test.path(&format!("handout/{}/README.txt", aside[0]))).unwrap(),
        first
    );
    // --out naming the key folder: refused before anything is written.
    let key = std::fs::read(test.path(&format!("keys/{name}.pem"))).unwrap();
    let into_keys = test.run(&["handout", "--out", "keys", "--force"]);
    into_keys.assert_code(1);
    assert!(
        into_keys.stderr.contains("is a key folder"),
        "{}",
        into_keys.stderr
    );
    assert_eq!(
        std::fs::read(test.path(&format!("keys/{name}.pem"))).unwrap(),
        key
    );
    assert!(!test.path(&format!("keys/{name}")).exists());
}

#[test]
fn a_folder_of_someone_elses_files_is_never_moved_aside() {
    let test = Test::new();
    let project = unique("foreignbundle");
    let name = format!("{project}-seat-1");
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-seat-${{index}}\n    count: 1\n"
        ),
    );
    test.cloud(&["apply"]).assert_code(0);
    test.write(&format!("handout/{name}/notes.txt"), "the room plan\n");
    for args in [&["handout"][..], &["handout", "--force"]] {
        let run = test.run(args);
        run.assert_code(1);
        assert!(run.stdout.contains("left alone"), "{run:?}");
        assert_eq!(
            std::fs::read_to_string(test.path(&format!("handout/{name}/notes.txt"))).unwrap(),
            "the room plan\n"
        );
    }
}

/// The rows of a passphrase list: (seat, key pair name, passphrase).
fn csv_rows(path: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (
                cells[0].to_owned(),
                cells[1].to_owned(),
                cells[2].to_owned(),
            )
        })
        .collect()
}

/// Two counted entries number their seats apart (a `seat:` template, or by default the key
/// pair name); `index_start` starts the numbers at 16 and `skip` leaves out a no-show; seats
/// two entries would share are a validation error on the line that makes them.
#[test]
fn seats_are_unique_across_counted_entries_and_can_start_at_any_number() {
    let test = Test::new();
    let project = unique("seats");
    test.write(
        "labctl.yaml",
        &Manifest::new(&project)
            .defaults("{ key_type: ed25519 }")
            .key(
                &format!("{project}-eu-${{index}}"),
                &[
                    ("count", "2"),
                    ("region", "eu-west-1"),
                    ("seat", "eu-${index}"),
                ],
            )
            .key(
                &format!("{project}-us-${{index}}"),
                &[
                    ("count", "3"),
                    ("region", "us-east-1"),
                    ("index_start", "16"),
                    ("skip", "[17]"),
                ],
            )
            .text(),
    );
    let valid = test.run(&["validate"]);
    valid.assert_code(0);
    assert!(valid.stdout.contains("4 key pairs"), "{valid:?}");
    test.cloud(&["apply", "-q"]).assert_code(0);
    assert!(test.path(&format!("keys/{project}-us-16.pem")).exists());
    assert!(test.path(&format!("keys/{project}-us-18.pem")).exists());
    assert!(!test.path(&format!("keys/{project}-us-17.pem")).exists());
    assert!(!test.path(&format!("keys/{project}-us-1.pem")).exists());

    let run = test.run(&["handout", "--passphrase", "--json"]);
    run.assert_code(0);
    let json = run.json();
    let mut seats: Vec<&str> = json["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["seat"].as_str().unwrap())
        .collect();
    seats.sort_unstable();
    let (us16, us18) = (format!("{project}-us-16"), format!("{project}-us-18"));
    assert_eq!(seats, ["eu-1", "eu-2", us16.as_str(), us18.as_str()]);
    let csv = test.dir.path().join(json["passphrases"].as_str().unwrap());
    let mut listed: Vec<String> = csv_rows(&csv).into_iter().map(|r| r.0).collect();
    listed.sort();
    assert_eq!(listed, ["eu-1", "eu-2", us16.as_str(), us18.as_str()]);
    let readme =
        std::fs::read_to_string(test.path(&format!("handout/{project}-eu-2/README.txt"))).unwrap();
    assert!(readme.contains("Seat:        eu-2"), "{readme}");
}

/// Seats two entries would share, and `index_start`/`skip` where they cannot be, are errors
/// naming the file, the line and the field; nothing is asked of EC2.
#[test]
fn seat_numbering_mistakes_are_errors_on_their_lines() {
    let test = Test::new();
    let project = unique("seaterr");
    // The same seat from two entries: an error naming the file, the line and the field.
    test.write(
        "labctl.yaml",
        &Manifest::new(&project)
            .defaults("{ key_type: ed25519 }")
            .key(
                "eu-${index}",
                &[
                    ("count", "2"),
                    ("region", "eu-west-1"),
                    ("seat", "\"${index}\""),
                ],
            )
            .key(
                "us-${index}",
                &[
                    ("count", "2"),
                    ("region", "us-east-1"),
                    ("seat", "\"${index}\""),
                ],
            )
            .text(),
    );
    let dup = test.run(&["validate"]);
    dup.assert_code(1);
    assert!(dup.stderr.contains("labctl.yaml:12"), "{dup:?}");
    assert!(dup.stderr.contains("keypairs[1].seat"), "{dup:?}");
    assert!(dup.stderr.contains("seat `1`"), "{dup:?}");

    // `skip` outside the numbers `count` gives, `index_start` without `count`: errors.
    test.write(
        "labctl.yaml",
        &Manifest::new(&project)
            .defaults("{ region: us-east-1 }")
            .key("a-${index}", &[("count", "3"), ("skip", "[4]")])
            .key("b", &[("index_start", "5")])
            .text(),
    );
    let bad = test.run(&["validate"]);
    bad.assert_code(1);
    assert!(bad.stderr.contains("keypairs[0].skip[0]"), "{bad:?}");
    assert!(bad.stderr.contains("keypairs[1].index_start"), "{bad:?}");

    // A bad item names its own place; skipping every number is an error; so is a seat a
    // spreadsheet would run.
    test.write(
        "labctl.yaml",
        &Manifest::new(&project)
            .defaults("{ region: us-east-1 }")
            .key("a-${index}", &[("count", "3"), ("skip", "[x, 5]")])
            .key("b-${index}", &[("count", "2"), ("skip", "[1, 2]")])
            .key("c", &[("seat", "\"=HYPERLINK(1)\"")])
            .text(),
    );
    let worse = test.run(&["validate"]);
    worse.assert_code(1);
    assert!(worse.stderr.contains("keypairs[0].skip[1]"), "{worse:?}");
    assert!(worse.stderr.contains("keypairs[1].skip"), "{worse:?}");
    assert!(worse.stderr.contains("makes no key pair"), "{worse:?}");
    assert!(worse.stderr.contains("keypairs[2].seat"), "{worse:?}");
}

/// After `--replace`, a plain handout says what changed in the refused bundle; with `--force`
/// the run's passphrase list holds every seat (the unchanged bundles' passphrases carried
/// over), and one seat's passphrase can be shown again on the instructor's terminal only.
#[test]
fn the_newest_passphrase_list_holds_every_seat_and_one_can_be_shown_again() {
    let test = Test::new();
    let project = unique("again");
    test.write(
        "labctl.yaml",
        &Manifest::new(&project)
            .defaults("{ region: us-east-1, key_type: ed25519 }")
            .key(&format!("{project}-seat-${{index}}"), &[("count", "3")])
            .text(),
    );
    test.cloud(&["apply", "-q"]).assert_code(0);
    let first = test.run(&["handout", "--passphrase", "--json"]);
    first.assert_code(0);
    let first_csv = test
        .dir
        .path()
        .join(first.json()["passphrases"].as_str().unwrap());
    let before = csv_rows(&first_csv);
    assert_eq!(before.len(), 3);

    let seat2 = format!("{project}-seat-2");
    test.cloud(&["apply", "-q", "--yes", "--replace", &seat2])
        .assert_code(0);
    let refused = test.run(&["handout", "--passphrase", "--json"]);
    refused.assert_code(1);
    let json = refused.json();
    let bundle = json["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == seat2.as_str())
        .unwrap()
        .clone();
    assert_eq!(bundle["status"], "refused");
    let reason = bundle["reason"].as_str().unwrap();
    assert!(reason.contains("its key changed"), "{reason}");
    assert!(!reason.contains("formats"), "{reason}");

    // The old passphrase of the replaced seat is not shown again: its bundle is out of date.
    let old = before.iter().find(|r| r.1 == seat2).unwrap().2.clone();
    let stale = on_terminal(&test, &format!("handout --show-passphrase {seat2}"), None);
    assert!(!stale.contains(old.as_str()), "{stale}");
    assert!(stale.contains("changed since"), "{stale}");

    // Only that seat written again: the run's list still holds every current seat.
    let forced = test.run(&["handout", "--passphrase", "--force", "--json", &seat2]);
    forced.assert_code(0);
    let newest = test
        .dir
        .path()
        .join(forced.json()["passphrases"].as_str().unwrap());
    assert_ne!(newest, first_csv);
    let after = csv_rows(&newest);
    assert_eq!(after.len(), 3, "every seat, not only the one rewritten");
    for (seat, name, passphrase) in &before {
        let now = after.iter().find(|r| &r.1 == name).unwrap();
        assert_eq!(&now.0, seat);
        if *name == seat2 {
            assert_ne!(&now.2, passphrase, "a new bundle has a new passphrase");
        } else {
            assert_eq!(
                &now.2, passphrase,
                "an unchanged bundle keeps its passphrase"
            );
        }
    }

    // Shown again: on a terminal only (never into a pipe or a log).
    let wanted = &after.iter().find(|r| r.1 == seat2).unwrap().2;
    let shown = on_terminal(&test, &format!("handout --show-passphrase {seat2}"), None);
    assert!(shown.contains(wanted.as_str()), "{shown}");
    let piped = test.run(&["handout", "--show-passphrase", &seat2]);
    piped.assert_code(1);
    assert!(!piped.stdout.contains(wanted.as_str()), "{piped:?}");
    assert!(!piped.stderr.contains(wanted.as_str()), "{piped:?}");
    assert!(piped.stderr.contains("terminal"), "{piped:?}");
    let unknown = test.run(&["handout", "--show-passphrase", "nobody"]);
    unknown.assert_code(1);
}

/// The passphrase of what: a folder bundle and a zip of one key pair have passphrases of their
/// own, and each list carries the right one; a bundle whose passphrase no list holds is not
/// taken for unchanged; a changed seat label is a changed bundle; a seat label is looked up
/// before a key pair name.
#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one instructor's day, read from top to bottom"
)]
fn passphrases_follow_each_bundle_and_seat_changes_are_bundle_changes() {
    let test = Test::new();
    let project = unique("kinds");
    let manifest = |count: &str, seat: Option<&str>| {
        let mut fields = vec![("count", count)];
        if let Some(seat) = seat {
            fields.push(("seat", seat));
        }
        Manifest::new(&project)
            .defaults("{ region: us-east-1, key_type: ed25519 }")
            .key(&format!("{project}-s-${{index}}"), &fields)
            .text()
    };
    test.write("labctl.yaml", &manifest("2", None));
    test.cloud(&["apply", "-q"]).assert_code(0);
    let list = |run: &crate::support::Run| {
        test.dir
            .path()
            .join(run.json()["passphrases"].as_str().unwrap())
    };
    let folders = test.run(&["handout", "--passphrase", "--json"]);
    folders.assert_code(0);
    let folder_rows = csv_rows(&list(&folders));
    let zips = test.run(&["handout", "--passphrase", "--zip", "--json"]);
    zips.assert_code(0);
    let zip_rows = csv_rows(&list(&zips));
    let s1 = format!("{project}-s-1");
    let of = |rows: &[(String, String, String)]| rows.iter().find(|r| r.1 == s1).unwrap().2.clone();
    assert_ne!(of(&folder_rows), of(&zip_rows));

    // A third seat: the folder bundles' list carries the folder bundles' passphrases.
    test.write("labctl.yaml", &manifest("3", None));
    test.cloud(&["apply", "-q"]).assert_code(0);
    let third = test.run(&["handout", "--passphrase", "--json"]);
    third.assert_code(0);
    let third_rows = csv_rows(&list(&third));
    assert_eq!(third_rows.len(), 3, "{third_rows:?}");
    assert_eq!(
        of(&third_rows),
        of(&folder_rows),
        "the folder bundle's, not the zip's"
    );
    let shown = on_terminal(&test, &format!("handout --show-passphrase {s1}"), None);
    assert!(shown.contains(&of(&folder_rows)), "{shown}");
    assert!(
        shown.contains(&of(&zip_rows)),
        "both bundles are shown: {shown}"
    );

    // The lists moved away: no bundle is "unchanged" without its passphrase.
    std::fs::create_dir(test.path("kept")).unwrap();
    for entry in std::fs::read_dir(test.path("handout")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "csv") {
            std::fs::rename(&path, test.path("kept").join(path.file_name().unwrap())).unwrap();
        }
    }
    let lost = test.run(&["handout", "--passphrase", "--json"]);
    lost.assert_code(1);
    let reasons: Vec<String> = lost.json()["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        reasons.iter().all(|r| r.contains("no passphrase list")),
        "{reasons:?}"
    );
    let forced = test.run(&["handout", "--passphrase", "--force", "--json"]);
    forced.assert_code(0);
    assert_eq!(csv_rows(&list(&forced)).len(), 3);

    // A new seat label makes every bundle a changed one, said so, until --force.
    test.write("labctl.yaml", &manifest("3", Some("t-${index}")));
    let relabelled = test.run(&["handout", "--passphrase", "--json"]);
    relabelled.assert_code(1);
    let json = relabelled.json();
    assert!(
        json["bundles"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("its seat changed"),
        "{json:#}"
    );
    test.run(&["handout", "--passphrase", "--force"])
        .assert_code(0);
    let readme = std::fs::read_to_string(test.path(&format!("handout/{s1}/README.txt"))).unwrap();
    assert!(readme.contains("Seat:        t-1"), "{readme}");
    let by_seat = on_terminal(&test, "handout --show-passphrase t-1", None);
    assert!(
        by_seat.contains(&format!("Seat t-1 (key pair {s1}")),
        "{by_seat}"
    );
}

/// EC2 takes `/` and `..` in a key pair's name; a bundle is named after its key pair, so such
/// a name gets no bundle (nothing is written outside `--out`, no zip entry climbs out).
#[test]
fn a_key_pair_name_that_is_not_a_file_name_gets_no_bundle() {
    let test = Test::new();
    let project = unique("names");
    test.write(
        "labctl.yaml",
        &Manifest::new(&project)
            .defaults("{ region: eu-west-1, key_type: ed25519 }")
            .key(&format!("../{project}-up"), &[("output", "keys/up.pem")])
            .key(&format!("{project}-ok"), &[])
            .text(),
    );
    test.cloud(&["apply", "--yes"]).assert_code(0);
    for zip in [false, true] {
        let mut args = vec!["handout", "--json", "--out", "deep/out"];
        if zip {
            args.push("--zip");
        }
        let run = test.run(&args);
        run.assert_code(1);
        let bundles = run.json()["bundles"].clone();
        let up = bundles
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == format!("../{project}-up"))
            .unwrap()
            .clone();
        assert_eq!(up["status"], "skipped", "{run:#?}");
        assert!(
            up["reason"]
                .as_str()
                .unwrap()
                .contains("cannot name a bundle"),
            "{up}"
        );
        for escaped in [
            format!("deep/{project}-up"),
            format!("deep/{project}-up.pem"),
            format!("deep/{project}-up.zip"),
        ] {
            assert!(!test.path(&escaped).exists(), "{escaped} was written");
        }
    }
    assert!(test.path(&format!("deep/out/{project}-ok")).is_dir());
}

/// A passphrase list holds every current bundle; one it cannot hold (its key cannot be read
/// now) is said, never dropped in silence.
#[test]
fn a_bundle_the_new_passphrase_list_leaves_out_is_said() {
    let test = Test::new();
    let project = unique("unlisted");
    test.write(
        "labctl.yaml",
        &Manifest::new(&project)
            .defaults("{ region: eu-west-1, key_type: ed25519 }")
            .key(&format!("{project}-${{index}}"), &[("count", "2")])
            .text(),
    );
    test.cloud(&["apply", "--yes"]).assert_code(0);
    test.run(&["handout", "--zip", "--passphrase"])
        .assert_code(0);
    // The first seat's key file is away for a moment; the second seat's bundle is made again
    // (its zip was lost).
    let first = test.path(&format!("keys/{project}-1.pem"));
    std::fs::rename(&first, test.path("away.pem")).unwrap();
    let second = format!("{project}-2");
    let zip = test.path(&format!("handout/{second}.zip"));
    std::fs::remove_file(&zip).unwrap();
    let run = test.run(&["handout", "--zip", "--passphrase", "--json", &second]);
    run.assert_code(0);
    let warnings = run.json()["warnings"].clone();
    let said = warnings
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "passphrase-not-listed")
        .unwrap_or_else(|| panic!("{run:#?}"))
        .clone();
    assert_eq!(said["name"], format!("{project}-1"));
    std::fs::remove_file(&zip).unwrap();
    let human = test.run(&["handout", "--zip", "--passphrase", &second]);
    assert!(
        human.stderr.contains(&format!(
            "the bundle of `{project}-1` is not in the new passphrase list"
        )),
        "{human:#?}"
    );
}
