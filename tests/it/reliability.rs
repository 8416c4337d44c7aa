//! Crashes, races, hostile key files and secrets: nothing lost, nothing half-written, nothing
//! world-readable, nothing leaked.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use crate::support::{Proxy, Test, cannot_run, public_key_of, server, strip_comment, unique};

/// 32 key pairs: EC2-generated ones in two regions, and locally generated ones.
fn crash_manifest(project: &str) -> String {
    format!(
        "version: 1\nproject: {project}\ndefaults: {{ regions: [us-east-1, eu-west-1], key_type: ed25519 }}\nkeypairs:\n  - name: {project}-aws-${{index}}\n    count: 24\n  - name: {project}-local-${{index}}\n    count: 8\n    source: local\n"
    )
}

/// Fixed, spread-out kill moments (milliseconds after start) from a small LCG.
fn kill_moments(seed: u64, n: usize, max_ms: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % max_ms
        })
        .collect()
}

#[test]
fn killed_applies_lose_nothing_and_a_rerun_converges() {
    let concurrency = 4;
    for (round, at_ms) in kill_moments(7, 6, 1500).into_iter().enumerate() {
        let test = Test::new();
        let project = unique(&format!("crash{round}"));
        test.write("labctl.yaml", &crash_manifest(&project));
        // Slow the server a little so the kill lands in the middle of the work.
        let proxy = Proxy::start(&["--delay-ms", "15"]);
        let mut child = test
            .command(&[
                "apply",
                "-q",
                "--concurrency",
                &concurrency.to_string(),
                "--endpoint-url",
                &proxy.endpoint(),
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(at_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();

        // The rerun recognises the key pairs the killed run created but never saved (their
        // labctl:apply-id is that run's, and the journal says they were never saved) and recreates them.
        let rerun = test.cloud(&["apply", "--json", "--concurrency", &concurrency.to_string()]);
        assert_eq!(
            rerun.code, 0,
            "round {round} (kill at {at_ms} ms): {}",
            rerun.stdout
        );
        let json = rerun.json();
        let not_done: Vec<&serde_json::Value> = json["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] != "done" && a["status"] != "unchanged")
            .collect();
        assert!(not_done.is_empty(), "round {round}: {not_done:#?}");
        test.cloud(&["plan", "--detailed-exitcode"]).assert_code(0);

        // Every file is whole, 0400, and matches the key pair in every region; no temporary
        // file is left behind.
        let remote: Vec<std::collections::BTreeMap<String, String>> = ["us-east-1", "eu-west-1"]
            .iter()
            .map(|region| {
                server()
                    .key_pairs(region)
                    .into_iter()
                    .filter(|k| k.name.starts_with(&project))
                    .map(|k| (k.name, strip_comment(&k.public_key)))
                    .collect()
            })
            .collect();
        for entry in std::fs::read_dir(test.path("keys")).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".gitignore" {
                continue;
            }
            assert!(
                std::path::Path::new(&name)
                    .extension()
                    .is_some_and(|e| e == "pem"),
                "round {round}: leftover {name}"
            );
            assert_eq!(
                entry.metadata().unwrap().mode() & 0o777,
                0o400,
                "round {round}: {name}"
            );
            let key = public_key_of(&entry.path());
            let pair = name.trim_end_matches(".pem");
            for (region, pairs) in ["us-east-1", "eu-west-1"].iter().zip(&remote) {
                let found = pairs
                    .get(pair)
                    .unwrap_or_else(|| panic!("round {round}: {pair} missing in {region}"));
                assert_eq!(found, &key, "round {round}: {pair} in {region}");
            }
        }
    }
}

#[test]
fn two_applies_at_once_never_both_run() {
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
    assert!(first.wait().unwrap().success());
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
