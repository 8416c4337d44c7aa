//! Crashes, races, hostile key files and secrets: nothing lost, nothing half-written, nothing
//! world-readable, nothing leaked.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use crate::support::{
    Manifest, Proxy, Test, cannot_run, server, ssh_public_key_of, strip_comment, unique,
};

const R1: &str = "us-east-1";
const R2: &str = "eu-west-1";

/// Where the kill lands: the proxy holds one request, and the test kills labctl while it is
/// held (a moment chosen by what has happened, not by a clock).
#[derive(Clone, Copy, Debug)]
enum Held {
    /// The request is held before it is forwarded: EC2 never hears of it.
    Before,
    /// The request is forwarded and EC2 acts on it; its answer is held.
    After,
}

/// One kill: which request is held, and what must be true of the held entry afterwards.
struct Kill {
    action: &'static str,
    entry: &'static str,
    /// How many of the entry's matching requests go through first.
    skip: usize,
    held: Held,
    /// Regions where the held entry's key pair exists after the kill.
    made_in: &'static [&'static str],
    /// Its private key file exists after the kill.
    saved: bool,
    /// What the rerun's plan says for it, in R1 and R2 (`None`: as for a new entry).
    rerun: [Option<&'static str>; 2],
}

/// Six entries in two regions, one at a time (`--concurrency 1`): four whose key EC2 makes
/// in R1 (then imported into R2), two made locally (imported into both).
const ENTRIES: [&str; 6] = ["aws-1", "aws-2", "aws-3", "aws-4", "local-1", "local-2"];

fn kill_manifest(project: &str) -> String {
    let mut manifest =
        Manifest::new(project).defaults(&format!("{{ regions: [{R1}, {R2}], key_type: ed25519 }}"));
    for entry in ENTRIES {
        let fields: &[(&str, &str)] = if entry.starts_with("local") {
            &[("source", "local")]
        } else {
            &[]
        };
        manifest = manifest.key(&format!("{project}-{entry}"), fields);
    }
    manifest.text()
}

#[test]
fn killed_applies_at_chosen_moments_lose_nothing_and_a_rerun_converges() {
    let kills = [
        // The first create, before EC2 hears of it: nothing made, the journal has the create.
        Kill {
            action: "CreateKeyPair",
            entry: "aws-1",
            skip: 0,
            held: Held::Before,
            made_in: &[],
            saved: false,
            rerun: [None, None],
        },
        // The first create reached EC2, its answer (the private key) never came back.
        Kill {
            action: "CreateKeyPair",
            entry: "aws-1",
            skip: 0,
            held: Held::After,
            made_in: &[R1],
            saved: false,
            rerun: [Some("replace"), Some("replace")],
        },
        // The same in the middle and for the last EC2-made key.
        Kill {
            action: "CreateKeyPair",
            entry: "aws-3",
            skip: 0,
            held: Held::After,
            made_in: &[R1],
            saved: false,
            rerun: [Some("replace"), Some("replace")],
        },
        Kill {
            action: "CreateKeyPair",
            entry: "aws-4",
            skip: 0,
            held: Held::After,
            made_in: &[R1],
            saved: false,
            rerun: [Some("replace"), Some("replace")],
        },
        // After the file was saved: the import into the second region is held.
        Kill {
            action: "ImportKeyPair",
            entry: "aws-3",
            skip: 0,
            held: Held::Before,
            made_in: &[R1],
            saved: true,
            rerun: [Some("noop"), Some("import")],
        },
        // A local key: saved before EC2 hears of it; killed while its first import is answered.
        Kill {
            action: "ImportKeyPair",
            entry: "local-1",
            skip: 0,
            held: Held::After,
            made_in: &[R1],
            saved: true,
            rerun: [Some("noop"), Some("import")],
        },
        // ... and while its second region's import is held.
        Kill {
            action: "ImportKeyPair",
            entry: "local-2",
            skip: 1,
            held: Held::Before,
            made_in: &[R1],
            saved: true,
            rerun: [Some("noop"), Some("import")],
        },
    ];
    for (round, kill) in kills.iter().enumerate() {
        killed_apply(round, kill);
    }
}

#[allow(clippy::too_many_lines)] // one scenario, read from top to bottom
fn killed_apply(round: usize, kill: &Kill) {
    let at = format!(
        "round {round} ({} of {} held {:?})",
        kill.action, kill.entry, kill.held
    );
    let test = Test::new();
    let project = unique(&format!("kill{round}"));
    let name = |entry: &str| format!("{project}-{entry}");
    test.write("labctl.yaml", &kill_manifest(&project));
    let fresh = plan_actions(&test.cloud(&["plan", "--json"]));

    let fault = match kill.held {
        Held::Before => "hang",
        Held::After => "stall",
    };
    let proxy = Proxy::faults(&serde_json::json!([
        {"action": kill.action, "fault": fault, "name": name(kill.entry), "skip": kill.skip, "ms": 120_000},
    ]));
    let mut child = test
        .command(&[
            "apply",
            "-q",
            "--concurrency",
            "1",
            "--endpoint-url",
            &proxy.endpoint(),
        ])
        .spawn()
        .unwrap();
    match kill.held {
        Held::Before => proxy.wait_for_fault("hang", Duration::from_mins(1)),
        Held::After => proxy.wait_until(
            "a stalled request answered by EC2",
            Duration::from_mins(1),
            |s| s["stalled"] == 1,
        ),
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{at}: not killed: {status:?}"
    );
    drop(proxy);

    let held = ENTRIES.iter().position(|e| *e == kill.entry).unwrap();
    let done = &ENTRIES[..held];
    let untouched = &ENTRIES[held + 1..];

    // The journal: one apply id; a create and a save for every EC2-made key before the held
    // one; for the held one a create, saved or not as the kill left it.
    let journal = std::fs::read_to_string(test.path(".labctl/labctl.yaml.journal")).unwrap();
    let lines: Vec<Vec<&str>> = journal.lines().map(|l| l.split('\t').collect()).collect();
    let ids: std::collections::BTreeSet<&str> = lines.iter().map(|l| l[1]).collect();
    assert_eq!(ids.len(), 1, "{at}: {journal}");
    let apply_id = *ids.iter().next().unwrap();
    let has = |event: &str, entry: &str| lines.iter().any(|l| l[0] == event && l[2] == name(entry));
    for entry in ENTRIES.iter().filter(|e| e.starts_with("aws")) {
        let index = ENTRIES.iter().position(|e| e == entry).unwrap();
        let asked = index <= held;
        let saved = index < held || (index == held && kill.saved);
        assert_eq!(
            has("create", entry),
            asked,
            "{at}: create {entry}\n{journal}"
        );
        assert_eq!(has("saved", entry), saved, "{at}: saved {entry}\n{journal}");
    }

    // EC2 holds exactly the key pairs the killed run made.
    for region in [R1, R2] {
        let remote: Vec<_> = server()
            .key_pairs(region)
            .into_iter()
            .filter(|k| k.name.starts_with(&format!("{project}-")))
            .collect();
        let mut names: Vec<String> = remote.iter().map(|k| k.name.clone()).collect();
        names.sort();
        let mut expected: Vec<String> = done.iter().map(|e| name(e)).collect();
        if kill.made_in.contains(&region) {
            expected.push(name(kill.entry));
        }
        expected.sort();
        assert_eq!(names, expected, "{at}: key pairs in {region}");
        // Key pairs EC2 made carry the run's id (imports need none: their key was saved first).
        for key in remote
            .iter()
            .filter(|k| region == R1 && k.name.contains("-aws-"))
        {
            assert_eq!(
                key.tags.get("labctl:apply-id").map(String::as_str),
                Some(apply_id),
                "{at}: {}",
                key.name
            );
        }
    }
    // Files: every finished entry's, the held one's when it was saved; nothing else but
    // temporary files (removed by the next run).
    let mut saved_keys = BTreeMap::new();
    for entry in ENTRIES {
        let file = test.path(&format!("keys/{}.pem", name(entry)));
        let expected = done.contains(&entry) || (entry == kill.entry && kill.saved);
        assert_eq!(file.exists(), expected, "{at}: {}", file.display());
        if expected {
            assert_eq!(
                std::fs::metadata(&file).unwrap().mode() & 0o777,
                0o400,
                "{at}"
            );
            saved_keys.insert(entry, std::fs::read(&file).unwrap());
        }
    }

    // The rerun's plan: nothing for what is done, `replace` for a key pair whose private key
    // never arrived, the rest as for a new manifest.
    let plan = plan_actions(&test.cloud(&["plan", "--json"]));
    for entry in ENTRIES {
        for (r, region) in [R1, R2].into_iter().enumerate() {
            let key = (name(entry), region.to_owned());
            let expected = if done.contains(&entry) {
                "noop"
            } else if entry == kill.entry {
                kill.rerun[r].unwrap_or(&fresh[&key])
            } else {
                assert!(untouched.contains(&entry));
                &fresh[&key]
            };
            assert_eq!(plan[&key], expected, "{at}: {entry} in {region}: {plan:?}");
        }
    }

    // The rerun converges; saved keys are kept; both regions hold exactly the manifest's key
    // pairs, and each file's public key (as ssh-keygen reads it) is the one in both regions.
    let rerun = test.cloud(&["apply", "--json", "--concurrency", "1"]);
    assert_eq!(rerun.code, 0, "{at}: {}", rerun.stdout);
    test.cloud(&["plan", "--detailed-exitcode"]).assert_code(0);
    for (entry, before) in &saved_keys {
        let after = std::fs::read(test.path(&format!("keys/{}.pem", name(entry)))).unwrap();
        assert!(
            after == *before,
            "{at}: the saved key of {entry} was replaced"
        );
    }
    let leftovers: Vec<String> = std::fs::read_dir(test.path("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n != ".gitignore"
                && n != ".labctl-project"
                && std::path::Path::new(n)
                    .extension()
                    .is_none_or(|e| e != "pem")
        })
        .collect();
    assert!(leftovers.is_empty(), "{at}: {leftovers:?}");
    for region in [R1, R2] {
        let remote: BTreeMap<String, String> = server()
            .key_pairs(region)
            .into_iter()
            .filter(|k| k.name.starts_with(&format!("{project}-")))
            .map(|k| (k.name, strip_comment(&k.public_key)))
            .collect();
        let names: Vec<&String> = remote.keys().collect();
        let mut expected: Vec<String> = ENTRIES.iter().map(|e| name(e)).collect();
        expected.sort();
        assert_eq!(names, expected.iter().collect::<Vec<_>>(), "{at}: {region}");
        for entry in ENTRIES {
            let file = test.path(&format!("keys/{}.pem", name(entry)));
            assert_eq!(
                std::fs::metadata(&file).unwrap().mode() & 0o777,
                0o400,
                "{at}"
            );
            assert_eq!(
                ssh_public_key_of(&file),
                remote[&name(entry)],
                "{at}: {entry} in {region}"
            );
        }
    }
}

/// A `--json` plan's action per (key pair, region).
fn plan_actions(run: &crate::support::Run) -> BTreeMap<(String, String), String> {
    assert_eq!(run.code, 0, "{run:?}");
    run.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                (
                    a["name"].as_str().unwrap().to_owned(),
                    a["region"].as_str().unwrap().to_owned(),
                ),
                a["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn an_apply_holds_the_manifest_against_apply_and_destroy_but_not_plan() {
    let test = Test::new();
    let project = unique("lock");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-${{index}}\n    count: 6\n"),
    );
    let proxy = Proxy::start(&["--delay-ms", "1200"]);
    let mut first = test
        .command(&["apply", "-q", "--endpoint-url", &proxy.endpoint()])
        .spawn()
        .unwrap();
    // Wait until the first run holds the lock (its lock file names it).
    let lock = test.path(".labctl/labctl.yaml.lock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("pid")) {
        assert!(
            Instant::now() < deadline,
            "the first apply never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = test.via(&proxy, &["apply"]);
    second.assert_code(1);
    assert!(
        second
            .stderr
            .contains("another labctl is working on this manifest"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        second.stderr
    );
    // With --json: the same refusal as one JSON document, nothing on stderr.
    let json = test.via(&proxy, &["apply", "--json"]);
    json.assert_code(1);
    assert_eq!(json.json()["error"]["kind"], "locked", "{json:?}");
    assert_eq!(json.stderr, "", "{json:?}");
    // `destroy` changes things: refused the same way, nothing deleted.
    let destroy = test.cloud(&["destroy", "--yes"]);
    destroy.assert_code(1);
    assert!(
        destroy
            .stderr
            .contains("another labctl is working on this manifest"),
        "{destroy:?}"
    );
    // `plan` only reads: it runs beside the apply (no lock), and shows what is still to do.
    let plan = test.cloud(&["plan", "--json"]);
    plan.assert_code(0);
    assert_eq!(
        plan.json()["actions"].as_array().unwrap().len(),
        6,
        "{plan:?}"
    );
    assert!(first.wait().unwrap().success());
    let made = server()
        .key_pairs("us-east-1")
        .into_iter()
        .filter(|k| k.name.starts_with(&format!("{project}-")))
        .count();
    assert_eq!(made, 6, "the refused destroy deleted nothing");
    let stats = proxy.stats();
    assert_eq!(
        stats["requests"]["CreateKeyPair"], 6,
        "never two creates of one key: {stats}"
    );
    test.cloud(&["apply"]).assert_code(0);
}

#[test]
fn unsafe_key_files_are_refused_before_any_change() {
    let test = Test::new();
    let project = unique("unsafe");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-open\n    output: open/key.pem\n  - name: {project}-device\n    output: device.pem\n"),
    );
    // A folder anyone may write: someone could swap the key.
    std::fs::create_dir(test.path("open")).unwrap();
    std::fs::set_permissions(test.path("open"), std::fs::Permissions::from_mode(0o777)).unwrap();
    // A pipe where the key file should be.
    let made = std::process::Command::new("mkfifo")
        .arg(test.path("device.pem"))
        .status()
        .unwrap();
    assert!(made.success());
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(1);
    let json = run.json();
    assert_eq!(json["actions"][0]["conflict"], "unsafe-file", "{json:#}");
    assert!(
        json["actions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("writable by other users"),
        "{json:#}"
    );
    assert_eq!(json["actions"][1]["conflict"], "unreadable", "{json:#}");
    assert!(json["api_calls"].get("CreateKeyPair").is_none(), "{json:#}");
    assert!(
        server()
            .key_pair("us-east-1", &format!("{project}-open"))
            .is_none()
    );
}

#[test]
fn a_key_file_owned_by_another_user_is_not_trusted() {
    let test = Test::new();
    let project = unique("owner");
    let name = format!("{project}-k");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\nkeypairs:\n  - name: {name}\n    region: us-east-1\n    key_type: ed25519\n"),
    );
    test.cloud(&["apply"]).assert_code(0);
    let file = test.path(&format!("keys/{name}.pem"));
    let chown = std::process::Command::new("chown")
        .arg("65534")
        .arg(&file)
        .status()
        .unwrap();
    if !chown.success() {
        cannot_run("this test needs to chown a file (run as root)");
        return;
    }
    let run = test.cloud(&["plan", "--json"]);
    run.assert_code(1);
    assert_eq!(
        run.json()["actions"][0]["conflict"],
        "unsafe-file",
        "{}",
        run.stdout
    );
}

#[test]
fn no_command_at_any_verbosity_prints_key_material() {
    let test = Test::new();
    let project = unique("leak");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ regions: [us-east-1, eu-west-1] }}\nkeypairs:\n  - name: {project}-aws\n  - name: {project}-local\n    source: local\n    key_type: ed25519\n"),
    );
    let commands: [&[&str]; 8] = [
        &["validate", "--json"],
        &["plan", "-vv"],
        &["apply", "-vv"],
        &["apply", "-vv", "--json"],
        &["output", "-vv"],
        &["output", "--format", "env", "-vv"],
        &["apply", "-vv", "--replace", ""],
        &["destroy", "--yes", "-vv"],
    ];
    let mut keys: Vec<String> = Vec::new();
    for args in commands {
        let args: Vec<&str> = args.iter().copied().filter(|a| !a.is_empty()).collect();
        let args: Vec<String> = if args.contains(&"--replace") {
            let mut a: Vec<String> = args.iter().map(ToString::to_string).collect();
            a.push(format!("{project}-aws"));
            a
        } else {
            args.iter().map(ToString::to_string).collect()
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut all = args.clone();
        let endpoint = server().endpoint();
        if args[0] != "validate" {
            all.extend(["--endpoint-url", endpoint.as_str()]);
        }
        let mut cmd = test.command(&all);
        cmd.env("RUST_LOG", "trace");
        let run = Test::run_command(cmd);
        for entry in std::fs::read_dir(test.path("keys"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                keys.push(text);
            }
        }
        for output in [&run.stdout, &run.stderr] {
            assert!(!output.contains("PRIVATE KEY"), "{args:?}: {output}");
            for key in &keys {
                let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
                for chunk in body.as_bytes().chunks(40).filter(|c| c.len() == 40) {
                    assert!(
                        !output.contains(std::str::from_utf8(chunk).unwrap()),
                        "{args:?} printed part of a private key"
                    );
                }
            }
        }
    }
    assert!(keys.len() >= 2, "the test saw no keys: {keys:?}");
}

/// A tiny tmpfs, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_loses_no_key() {
    let test = Test::new();
    let project = unique("full");
    let name = format!("{project}-k");
    let disk = test.path("small");
    std::fs::create_dir(&disk).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4k,mode=0700", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        cannot_run("this test needs to mount a small tmpfs (run as root)");
        return;
    }
    let _guard = Tmpfs(disk.clone());
    // Fill the one page the file system has.
    let _ = std::fs::write(disk.join("filler"), vec![b'x'; 4096]);
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\nkeypairs:\n  - name: {name}\n    region: us-east-1\n    key_type: rsa\n    output: small/key.pem\n"),
    );
    // The documented path: the file can be created (empty), EC2 makes the key, writing it
    // fails with ENOSPC, and labctl deletes the key pair again: one create, one delete.
    let proxy = Proxy::start(&[]);
    let run = test.via(&proxy, &["apply", "--json"]);
    run.assert_code(1);
    let json = run.json();
    let error = json["actions"][0]["error"].as_str().unwrap();
    assert!(error.contains("No space left on device"), "{json:#}");
    assert!(error.contains("the key pair was deleted again"), "{json:#}");
    let stats = proxy.stats();
    assert_eq!(stats["requests"]["CreateKeyPair"], 1, "{stats}");
    assert_eq!(stats["requests"]["DeleteKeyPair"], 1, "{stats}");
    assert!(server().key_pair("us-east-1", &name).is_none(), "{json:#}");
    assert!(!disk.join("key.pem").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&disk)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
