//! Key custody: labctl never overwrites, deletes, exposes or recycles a key someone still
//! needs. One test per way a hostile or tired user broke that promise.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    Proxy, Run, Test, fixture_key, mutating_calls, public_key_of, server, strip_comment, unique,
};

fn one_key(project: &str, name: &str, regions: &str) -> String {
    format!(
        "version: 1\nproject: {project}\ndefaults: {{ regions: [{regions}], key_type: ed25519 }}\nkeypairs:\n  - name: {name}\n"
    )
}

/// Run labctl, killing it (and failing) if it takes longer than `limit`.
fn run_within(test: &Test, args: &[&str], limit: Duration) -> Run {
    let mut cmd = test.command(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stdout = String::new();
            let mut stderr = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut stdout)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return Run {
                code: status.code().unwrap_or(-1),
                stdout,
                stderr,
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("labctl {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// 1. The lock file.

#[test]
fn the_lock_file_never_follows_a_link_and_is_never_read_without_bound() {
    let test = Test::new();
    let project = unique("locklink");
    test.write(
        "labctl.yaml",
        &one_key(&project, &format!("{project}-k"), "us-east-1"),
    );
    let victim = test.home.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    // Where labctl keeps its lock now, and where it kept it before.
    std::fs::create_dir(test.path(".labctl")).unwrap();
    symlink(&victim, test.path(".labctl/labctl.yaml.lock")).unwrap();
    symlink(&victim, test.path(".labctl.yaml.lock")).unwrap();
    let run = test.cloud(&["apply"]);
    run.assert_code(1);
    assert!(run.stderr.contains("lock file"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(
        server()
            .key_pair("us-east-1", &format!("{project}-k"))
            .is_none()
    );

    // A pipe at the lock's place: plan neither hangs nor reads without end.
    std::fs::remove_file(test.path(".labctl/labctl.yaml.lock")).unwrap();
    std::fs::remove_file(test.path(".labctl.yaml.lock")).unwrap();
    for fifo in [".labctl/labctl.yaml.lock", ".labctl.yaml.lock"] {
        assert!(
            std::process::Command::new("mkfifo")
                .arg(test.path(fifo))
                .status()
                .unwrap()
                .success()
        );
    }
    let endpoint = server().endpoint();
    let plan = run_within(
        &test,
        &["plan", "--endpoint-url", &endpoint],
        Duration::from_mins(1),
    );
    plan.assert_code(0);
    let apply = run_within(
        &test,
        &["apply", "--endpoint-url", &endpoint],
        Duration::from_mins(1),
    );
    apply.assert_code(1);
    assert!(
        apply.stderr.contains("not a regular file"),
        "{}",
        apply.stderr
    );
}

#[test]
fn the_state_folder_is_ignored_by_git() {
    let test = Test::new();
    let project = unique("stateignored");
    test.write(
        "labctl.yaml",
        &one_key(&project, &format!("{project}-k"), "us-east-1"),
    );
    assert!(test.git(&["init", "-q"]).status.success());
    test.cloud(&["apply"]).assert_code(0);
    assert!(test.path(".labctl/labctl.yaml.lock").exists());
    let status = test.git(&["status", "--porcelain", "--untracked-files=all"]);
    let listed = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(!listed.contains(".labctl"), "{listed}");
    assert!(!listed.contains(".pem"), "{listed}");
    assert!(listed.contains("labctl.yaml"), "{listed}");
    assert_eq!(
        test.mode(".labctl") & 0o077,
        0,
        "the state folder is owner-only"
    );
}

// 2. Temporary files.

#[test]
fn cleanup_never_removes_a_key_and_spares_temporary_files_in_use() {
    let test = Test::new();
    let project = unique("tmpname");
    // A key pair named like an old temporary file: refused, its file could not be told apart.
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: .labctl-check-a\n"),
    );
    let run = test.run(&["validate"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("keypairs[0].output")
            && run.stderr.contains("labctl keeps for its own files"),
        "{}",
        run.stderr
    );

    // Two manifests share one key folder: one's cleanup leaves the other's file being
    // written alone (it is locked), and removes only a leftover of a killed run.
    test.write(
        "labctl.yaml",
        &one_key(&project, &format!("{project}-k"), "us-east-1"),
    );
    test.cloud(&["apply"]).assert_code(0);
    let in_use = test.path("keys/.labctl-tmp-00112233445566aa.tmp");
    let leftover = test.path("keys/.labctl-tmp-00112233445566bb.tmp");
    let held = std::fs::File::create(&in_use).unwrap();
    held.lock().unwrap();
    std::fs::write(&leftover, "part of a key").unwrap();
    test.cloud(&["apply"]).assert_code(0);
    assert!(in_use.exists(), "a temporary file in use was removed");
    assert!(!leftover.exists(), "a killed run's leftover was kept");
    drop(held);
}

// 3. Key folders.

#[test]
fn key_folders_others_can_change_or_that_are_links_are_refused() {
    let test = Test::new();
    let project = unique("folders");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-group\n    output: group/k.pem\n  - name: {project}-link\n    output: link/k.pem\n  - name: {project}-foreign\n    output: foreign/k.pem\n"),
    );
    // Group-writable (0775), as a umask of 002 makes them.
    std::fs::create_dir(test.path("group")).unwrap();
    std::fs::set_permissions(test.path("group"), std::fs::Permissions::from_mode(0o775)).unwrap();
    // A link into another tree.
    let elsewhere = test.home.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    symlink(&elsewhere, test.path("link")).unwrap();
    // Owned by another user.
    std::fs::create_dir(test.path("foreign")).unwrap();
    std::fs::set_permissions(test.path("foreign"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let chown = std::process::Command::new("chown")
        .arg("65534")
        .arg(test.path("foreign"))
        .status()
        .unwrap();
    if !chown.success() {
        crate::support::cannot_run("this test needs root to chown a folder");
        return;
    }
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(1);
    let json = run.json();
    for (i, why) in [
        (0, "writable by its group"),
        (1, "symbolic link"),
        (2, "belongs to another user"),
    ] {
        assert_eq!(json["actions"][i]["conflict"], "unsafe-file", "{json:#}");
        assert!(
            json["actions"][i]["reason"].as_str().unwrap().contains(why),
            "{i}: {json:#}"
        );
    }
    assert_eq!(mutating_calls(&json), 0, "{json:#}");
    assert!(files_in(&elsewhere).is_empty());
    assert!(files_in(&test.path("group")).is_empty());
}

// 4. Names that would escape the key folder; 6. names too long for a file.

#[test]
fn key_names_never_build_a_path_outside_the_key_folder_or_over_the_limit() {
    let test = Test::new();
    let long = "k".repeat(253);
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: lab\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: ../lab\n  - name: a/b\n  - name: ok\n    output: keys/${{name}}-{long}.pem\n  - name: {long}\n"),
    );
    let run = test.run(&["validate"]);
    run.assert_code(1);
    assert!(run.stderr.contains("keypairs[0].name"), "{}", run.stderr);
    assert!(run.stderr.contains("keypairs[1].name"), "{}", run.stderr);
    assert!(run.stderr.contains("keypairs[2].output"), "{}", run.stderr);
    assert!(run.stderr.contains("keypairs[3].output"), "{}", run.stderr);
    assert!(run.stderr.contains("is 260 bytes long"), "{}", run.stderr);
    assert!(run.stderr.contains("is 257 bytes long"), "{}", run.stderr);
    let apply = test.cloud(&["apply"]);
    apply.assert_code(1);
    assert!(!test.path("lab.pem").exists());
    assert!(!test.path("keys").exists());
}

// 5. `public_key:` files.

#[test]
fn public_key_files_are_read_bounded_regular_and_never_echoed() {
    let test = Test::new();
    std::fs::write(
        test.path("credentials"),
        "aws_secret_access_key=wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY\n",
    )
    .unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(test.path("fifo.pub"))
            .status()
            .unwrap()
            .success()
    );
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\ndefaults: { region: us-east-1 }\nkeypairs:\n  - name: zero\n    public_key: /dev/zero\n  - name: fifo\n    public_key: fifo.pub\n  - name: creds\n    public_key: credentials\n",
    );
    // Memory is capped well below what an unbounded read of /dev/zero would take.
    let script = format!(
        "ulimit -v 4000000; exec '{}' validate",
        crate::support::labctl_bin().display()
    );
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", &script])
        .current_dir(test.dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = sh.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("validate hung on a public_key file");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("keypairs[0].public_key"), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(stderr.contains("keypairs[1].public_key"), "{stderr}");
    assert!(stderr.contains("keypairs[2].public_key"), "{stderr}");
    assert!(!stderr.contains("wJalrXUtnFEMI"), "{stderr}");
    assert!(!stderr.contains("aws_secret_access_key"), "{stderr}");
}

// 7. Prune never removes a file a listed entry uses; 16. prune lists and asks.

#[test]
fn prune_asks_and_never_removes_a_file_a_listed_entry_uses() {
    let test = Test::new();
    let project = unique("rename");
    let old = format!("{project}-old");
    let new = format!("{project}-new");
    test.write("labctl.yaml", &one_key(&project, &old, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    let file = test.path(&format!("keys/{old}.pem"));
    let key = public_key_of(&file);
    // The entry is renamed, keeping its key file.
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {new}\n    output: keys/{old}.pem\n"),
    );
    // No terminal and no --yes: the prune is listed and refused; nothing changes.
    let refused = test.cloud(&["apply", "--prune", "--purge-local"]);
    refused.assert_code(1);
    assert!(
        refused.stderr.contains(&format!("  {old} in us-east-1")),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("needs --yes"), "{}", refused.stderr);
    assert!(server().key_pair("us-east-1", &old).is_some());
    assert!(server().key_pair("us-east-1", &new).is_none());

    let run = test.cloud(&["apply", "--prune", "--purge-local", "--yes", "--json"]);
    run.assert_code(0);
    assert!(file.exists(), "the file the entry `new` uses was removed");
    assert_eq!(public_key_of(&file), key);
    assert!(server().key_pair("us-east-1", &old).is_none());
    let imported = server().key_pair("us-east-1", &new).unwrap();
    assert_eq!(strip_comment(&imported.public_key), key);
}

// 8. Destroy keeps a file while a key pair still uses it.

#[test]
fn destroy_keeps_the_file_while_a_key_pair_still_uses_it() {
    let test = Test::new();
    let project = unique("stillused");
    let name = format!("{project}-k");
    test.write(
        "labctl.yaml",
        &one_key(&project, &name, "us-east-1, eu-west-1"),
    );
    test.cloud(&["apply"]).assert_code(0);
    // In eu-west-1 another project has taken the key pair over: labctl leaves it alone.
    server().ec2(&["tag", "eu-west-1", &name, "labctl:project", "someone-else"]);
    let run = test.cloud(&["destroy", "--yes", "--purge-local", "--json"]);
    run.assert_code(0);
    assert!(server().key_pair("us-east-1", &name).is_none());
    assert!(server().key_pair("eu-west-1", &name).is_some());
    let file = test.path(&format!("keys/{name}.pem"));
    assert!(
        file.exists(),
        "the key pair in eu-west-1 still uses the file"
    );
    assert_eq!(
        public_key_of(&file),
        strip_comment(&server().key_pair("eu-west-1", &name).unwrap().public_key)
    );
}

#[test]
fn destroy_keeps_the_file_when_a_delete_fails() {
    let test = Test::new();
    let project = unique("deletefails");
    let name = format!("{project}-k");
    test.write(
        "labctl.yaml",
        &one_key(&project, &name, "us-east-1, eu-west-1"),
    );
    test.cloud(&["apply"]).assert_code(0);
    // The first region's delete fails; the second's goes through.
    let proxy = Proxy::faults(&json!([
        {"action": "DeleteKeyPair", "fault": "http500", "count": 1},
    ]));
    let run = test.via(
        &proxy,
        &["destroy", "--yes", "--purge-local", "--max-attempts", "1"],
    );
    run.assert_code(1);
    assert!(server().key_pair("us-east-1", &name).is_some());
    assert!(server().key_pair("eu-west-1", &name).is_none());
    assert!(
        test.path(&format!("keys/{name}.pem")).exists(),
        "the key pair in us-east-1 still uses the file"
    );
}

// 9. Recovery acts only on keys the journal proves were never saved.

#[test]
fn recovery_never_replaces_a_key_that_was_saved() {
    let test = Test::new();
    let project = unique("saved");
    let a = format!("{project}-a");
    let b = format!("{project}-b");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {a}\n  - name: {b}\n"),
    );
    // `b`'s create is held (never forwarded) while the test kills labctl: `a` is saved.
    let proxy = Proxy::faults(&json!([
        {"action": "CreateKeyPair", "fault": "hang", "name": b, "ms": 120_000},
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
    // `b`'s create is held: `a` was created and saved before it.
    proxy.wait_for_fault("hang", Duration::from_mins(1));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let saved = test.path(&format!("keys/{a}.pem"));
    let key = public_key_of(&saved);
    // The key folder is moved away: `a`'s private key exists, just not where labctl looks.
    std::fs::rename(test.path("keys"), test.path("keys-moved")).unwrap();
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(1);
    let json = run.json();
    assert_eq!(json["actions"][0]["name"], a.as_str());
    assert_eq!(
        json["actions"][0]["conflict"], "missing-private-key",
        "{json:#}"
    );
    assert_eq!(json["actions"][1]["action"], "create", "{json:#}");
    assert_eq!(json["api_calls"].get("DeleteKeyPair"), None, "{json:#}");
    let remote = server().key_pair("us-east-1", &a).unwrap();
    assert_eq!(strip_comment(&remote.public_key), key, "`a` was replaced");
}

#[test]
fn a_lost_create_whose_retry_was_refused_is_recovered_by_the_next_run() {
    let test = Test::new();
    let project = unique("lostrefused");
    let name = format!("{project}-a");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    // The create reaches EC2 but its answer is cut; the retry is refused (an auth error: the
    // session expired), and the look that would clean up fails too. (Throttled retries no
    // longer end a request: they go on until --timeout.)
    let proxy = Proxy::faults(&json!([
        {"action": "CreateKeyPair", "fault": "cut", "count": 1},
        {"action": "CreateKeyPair", "fault": "denied", "count": 10},
        {"action": "DescribeKeyPairs", "fault": "http500", "skip": 1, "count": 10},
    ]));
    let run = test.via(&proxy, &["apply", "--max-attempts", "2", "--pace", "none"]);
    run.assert_code(1);
    let remote = server().key_pair("us-east-1", &name);
    assert!(remote.is_some(), "the cut create made the key pair");
    assert!(!test.path(&format!("keys/{name}.pem")).exists());
    // The next run (which finished before this one) knows from the journal that nobody has
    // this key pair's private key, and replaces it.
    let rerun = test.cloud(&["apply", "--json"]);
    rerun.assert_code(0);
    assert_eq!(
        rerun.json()["actions"][0]["action"],
        "replace",
        "{}",
        rerun.stdout
    );
    let file = test.path(&format!("keys/{name}.pem"));
    assert_eq!(
        public_key_of(&file),
        strip_comment(&server().key_pair("us-east-1", &name).unwrap().public_key)
    );
    let again = test.cloud(&["apply", "--json"]).json();
    assert_eq!(mutating_calls(&again), 0, "{again:#}");
}

// 10. Deletes address the key pair observed.

#[test]
fn a_delete_never_hits_a_key_pair_made_since_labctl_looked() {
    let test = Test::new();
    let project = unique("byid");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    // The look before the delete is held for a few seconds; meanwhile someone deletes the
    // key pair and makes another of that name.
    let proxy = Proxy::faults(&json!([
        {"action": "DescribeKeyPairs", "fault": "slow", "skip": 1, "ms": 4000},
    ]));
    let child = test
        .command(&[
            "destroy",
            "--yes",
            "--json",
            "--endpoint-url",
            &proxy.endpoint(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // labctl looks again before deleting; that look is held.
    proxy.wait_for_fault("slow", Duration::from_secs(30));
    server().ec2(&["delete", "us-east-1", &name]);
    server().ec2(&["create", "us-east-1", &name]);
    let newcomer = server().ec2(&["id", "us-east-1", &name]);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("nothing was deleted"), "{stdout}");
    assert_eq!(server().ec2(&["id", "us-east-1", &name]), newcomer);
}

// 11. Destroy, then the next workshop: new keys, not last cohort's.

#[test]
fn destroy_then_apply_makes_new_keys_for_the_next_cohort() {
    let test = Test::new();
    let project = unique("cohort");
    let name = format!("{project}-seat-1");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    let file = test.path(&format!("keys/{name}.pem"));
    let last_cohort = public_key_of(&file);
    let destroyed = test.cloud(&["destroy", "--yes"]);
    destroyed.assert_code(0);
    // destroy's own words, and what became of the file on the line.
    assert!(
        destroyed.stdout.contains("Destroyed:")
            && !destroyed.stdout.contains("Applied:")
            && destroyed.stdout.contains("deleted, key file retired"),
        "{}",
        destroyed.stdout
    );
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    assert_eq!(
        run.json()["actions"][0]["action"],
        "create",
        "{}",
        run.stdout
    );
    let remote = server().key_pair("us-east-1", &name).unwrap();
    assert_ne!(strip_comment(&remote.public_key), last_cohort);
    assert_eq!(public_key_of(&file), strip_comment(&remote.public_key));
    let retired: Vec<String> = files_in(&test.path("keys"))
        .into_iter()
        .filter(|n| n.starts_with(&format!("{name}.pem.retired-")))
        .collect();
    assert_eq!(retired.len(), 1, "the old key is kept aside, not lost");
    assert_eq!(
        public_key_of(&test.path(&format!("keys/{}", retired[0]))),
        last_cohort
    );
    assert_eq!(test.mode(&format!("keys/{}", retired[0])), 0o400);

    // --keep-local keeps the files in place (the same keys come back).
    let kept_run = test.cloud(&["destroy", "--yes", "--keep-local"]);
    kept_run.assert_code(0);
    assert!(
        kept_run.stdout.contains("deleted, key file kept"),
        "{}",
        kept_run.stdout
    );
    let kept = public_key_of(&file);
    test.cloud(&["apply"]).assert_code(0);
    assert_eq!(
        strip_comment(&server().key_pair("us-east-1", &name).unwrap().public_key),
        kept
    );
}

// 12. Growing a workshop never renames a seat.

#[test]
fn growing_a_workshop_past_nine_seats_keeps_every_seat() {
    let test = Test::new();
    let project = unique("grow");
    let manifest = |count: u32| {
        format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: ${{project}}-seat-${{index}}\n    count: {count}\n  - name: ${{project}}-padded-${{index:02}}\n    count: 2\n"
        )
    };
    test.write("labctl.yaml", &manifest(9));
    test.cloud(&["apply"]).assert_code(0);
    let seat1 = public_key_of(&test.path(&format!("keys/{project}-seat-1.pem")));
    assert!(test.path(&format!("keys/{project}-padded-01.pem")).exists());
    test.write("labctl.yaml", &manifest(12));
    let plan = test.cloud(&["plan", "--json"]);
    plan.assert_code(0);
    let json = plan.json();
    assert_eq!(json["summary"]["create"], 3, "{json:#}");
    assert_eq!(json["summary"]["orphan"], 0, "{json:#}");
    test.cloud(&["apply"]).assert_code(0);
    assert_eq!(
        public_key_of(&test.path(&format!("keys/{project}-seat-1.pem"))),
        seat1
    );
    assert!(
        server()
            .key_pair("us-east-1", &format!("{project}-seat-12"))
            .is_some()
    );
}

// 13. Keys made by the workshop guide's own command.

#[test]
fn keys_made_with_the_aws_cli_are_adopted() {
    let test = Test::new();
    let project = unique("guide");
    let name = format!("{project}-keypair");
    // `aws ec2 create-key-pair --query KeyMaterial --output text > k.pem`
    let material = server().ec2(&["create-rsa", "us-east-1", &name]);
    assert!(
        material.ends_with("\n\n") || material.ends_with("-----\n"),
        "{material:?}"
    );
    std::fs::write(test.path("k.pem"), &material).unwrap();
    std::fs::set_permissions(test.path("k.pem"), std::fs::Permissions::from_mode(0o400)).unwrap();
    // The same key saved on Windows: CRLF line ends.
    let crlf_name = format!("{project}-crlf");
    let crlf = server().ec2(&["create-rsa", "us-east-1", &crlf_name]);
    std::fs::write(test.path("crlf.pem"), crlf.replace('\n', "\r\n")).unwrap();
    std::fs::set_permissions(
        test.path("crlf.pem"),
        std::fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    // OpenSSH reads both.
    for file in ["k.pem", "crlf.pem"] {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-y", "-f"])
            .arg(test.path(file))
            .output()
            .expect("ssh-keygen (openssh-client) is needed");
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: rsa }}\nkeypairs:\n  - name: {name}\n    output: k.pem\n  - name: {crlf_name}\n    output: crlf.pem\n"),
    );
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    let json = run.json();
    assert_eq!(json["actions"][0]["action"], "adopt", "{json:#}");
    assert_eq!(json["actions"][1]["action"], "adopt", "{json:#}");
    let remote = server().key_pair("us-east-1", &name).unwrap();
    assert_eq!(remote.tags.get("labctl:project"), Some(&project));
}

// 14. A CreateKeyPair answer that cannot be parsed never reaches the screen.

#[test]
fn a_garbled_create_answer_never_prints_the_key() {
    let test = Test::new();
    let project = unique("garbled");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    let proxy = Proxy::faults(&json!([
        {"action": "CreateKeyPair", "fault": "garble", "count": 1},
    ]));
    let mut cmd = test.command(&[
        "apply",
        "-vv",
        "--max-attempts",
        "1",
        "--endpoint-url",
        &proxy.endpoint(),
    ]);
    cmd.env("RUST_LOG", "trace");
    let run = Test::run_command(cmd);
    run.assert_code(1);
    assert_eq!(proxy.stats()["faults"]["garble"], 1);
    for secret in ["PRIVATE KEY", "b3BlbnNzaC1rZXktdjE", "keyMaterial"] {
        assert!(
            !run.stderr.contains(secret),
            "{secret} in stderr:\n{}",
            run.stderr
        );
        assert!(
            !run.stdout.contains(secret),
            "{secret} in stdout:\n{}",
            run.stdout
        );
    }
    // The key pair whose private key was lost with the answer was deleted again.
    assert!(server().key_pair("us-east-1", &name).is_none());
}

// 15. Owner checks without /proc.

#[test]
fn owner_checks_work_without_proc() {
    let test = Test::new();
    let project = unique("noproc");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    let file = test.path(&format!("keys/{name}.pem"));
    let chown = std::process::Command::new("chown")
        .arg("65534")
        .arg(&file)
        .status()
        .unwrap();
    // /proc hidden in a private mount namespace, as on a system without it (macOS).
    let probe = std::process::Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs none /proc && test ! -e /proc/self/status",
        ])
        .status();
    let can = chown.success() && probe.is_ok_and(|s| s.success());
    if !can {
        crate::support::cannot_run("this test needs root, chown and unshare");
        return;
    }
    let script = format!(
        "mount -t tmpfs none /proc && exec '{}' plan --json --endpoint-url {}",
        crate::support::labctl_bin().display(),
        server().endpoint()
    );
    let mut unshare = std::process::Command::new("unshare");
    unshare
        .args(["-m", "sh", "-c", &script])
        .current_dir(test.dir.path())
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in test.command(&[]).get_envs() {
        if let Some(v) = v {
            unshare.env(k, v);
        }
    }
    let run = Test::run_command(unshare);
    run.assert_code(1);
    assert_eq!(
        run.json()["actions"][0]["conflict"],
        "unsafe-file",
        "{}",
        run.stdout
    );
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.uid(), 65534);
}

// 13. Every way a key pair leaves retires its file; "the same file" is an identity.

fn retired_keys(test: &Test, name: &str) -> Vec<String> {
    files_in(&test.path("keys"))
        .into_iter()
        .filter(|n| n.starts_with(&format!("{name}.pem.retired-")))
        .map(|n| public_key_of(&test.path(&format!("keys/{n}"))))
        .collect()
}

#[test]
fn a_pruned_seat_added_back_gets_a_new_key_not_the_departed_attendees() {
    let test = Test::new();
    let project = unique("reseat");
    let seats = |count: u32| {
        format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-seat-${{index}}\n    count: {count}\n"
        )
    };
    test.write("labctl.yaml", &seats(3));
    test.cloud(&["apply"]).assert_code(0);
    let seat3 = format!("{project}-seat-3");
    let file = test.path(&format!("keys/{seat3}.pem"));
    let departed = public_key_of(&file);
    test.write("labctl.yaml", &seats(2));
    let plan = test.cloud(&["plan", "--prune"]);
    assert!(
        plan.logical_lines()
            .iter()
            .any(|l| l.contains(&seat3) && l.contains("delete") && l.contains("retire")),
        "{}",
        plan.stdout
    );
    test.cloud(&["apply", "--prune", "--yes"]).assert_code(0);
    assert!(server().key_pair("us-east-1", &seat3).is_none());
    assert!(
        !file.exists(),
        "the pruned seat's key stayed live under its name"
    );
    assert_eq!(retired_keys(&test, &seat3), std::slice::from_ref(&departed));
    // The seat comes back: a new key, not the departed attendee's.
    test.write("labctl.yaml", &seats(3));
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    let remote = server().key_pair("us-east-1", &seat3).unwrap();
    assert_ne!(strip_comment(&remote.public_key), departed);
    assert_eq!(public_key_of(&file), strip_comment(&remote.public_key));
}

#[test]
fn prune_never_purges_a_file_an_entry_names_by_another_spelling() {
    let test = Test::new();
    let project = unique("spelling");
    let old = format!("{project}-old");
    let new = format!("{project}-new");
    test.write("labctl.yaml", &one_key(&project, &old, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    let file = test.path(&format!("keys/{old}.pem"));
    let key = public_key_of(&file);
    // The renamed entry names the old file by its absolute path, through a linked folder.
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("workshop");
    symlink(test.dir.path(), &link).unwrap();
    let spelled = link.join(format!("keys/{old}.pem"));
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {new}\n    output: {}\n",
            spelled.display()
        ),
    );
    let run = test.cloud(&["apply", "--prune", "--purge-local", "--yes", "--json"]);
    run.assert_code(0);
    assert!(file.exists(), "the file the entry `new` uses was removed");
    assert_eq!(public_key_of(&file), key);
    assert!(server().key_pair("us-east-1", &old).is_none());
    let imported = server().key_pair("us-east-1", &new).unwrap();
    assert_eq!(strip_comment(&imported.public_key), key);
}

#[test]
fn destroy_purge_never_removes_a_file_that_holds_another_key() {
    let test = Test::new();
    let project = unique("purgemismatch");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    // Someone put another key at the key pair's file: plan calls it a mismatch.
    let file = test.path(&format!("keys/{name}.pem"));
    std::fs::remove_file(&file).unwrap();
    let other = fixture_key("ed25519-b.pem");
    std::fs::write(&file, &other).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    let other_key = public_key_of(&file);
    let plan = test.cloud(&["plan", "--json"]).json();
    assert_eq!(plan["actions"][0]["conflict"], "mismatch", "{plan:#}");
    let run = test.cloud(&["destroy", "--yes", "--purge-local", "--json"]);
    run.assert_code(0);
    assert!(server().key_pair("us-east-1", &name).is_none());
    // Never removed, and not moved either: labctl did not make the key it holds.
    assert_eq!(public_key_of(&file), other_key);
    assert!(retired_keys(&test, &name).is_empty());
}

// 14. A lost delete answer still retires: the key follows the key pair, not the answer.

#[test]
fn a_delete_whose_answers_are_all_lost_still_retires_the_key_file() {
    let test = Test::new();
    let project = unique("lostdelete");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    let key = public_key_of(&test.path(&format!("keys/{name}.pem")));
    // EC2 deletes the key pair; every answer (and every retry's) is lost on the way back.
    let proxy = Proxy::faults(&json!([
        {"action": "DeleteKeyPair", "fault": "stall", "ms": 0, "count": 10},
    ]));
    let run = test.via(
        &proxy,
        &["destroy", "--yes", "--max-attempts", "2", "--json"],
    );
    run.assert_code(0);
    assert!(proxy.stats()["faults"]["stall"].as_u64().unwrap() >= 1);
    assert!(server().key_pair("us-east-1", &name).is_none());
    assert!(!test.path(&format!("keys/{name}.pem")).exists());
    assert_eq!(retired_keys(&test, &name), std::slice::from_ref(&key));
    // The next cohort gets a new key.
    test.cloud(&["apply"]).assert_code(0);
    let remote = server().key_pair("us-east-1", &name).unwrap();
    assert_ne!(strip_comment(&remote.public_key), key);
}

#[test]
fn a_destroy_killed_while_its_delete_is_answered_retires_on_the_next_run() {
    for next in ["destroy", "apply"] {
        let test = Test::new();
        let project = unique(&format!("killdelete-{next}"));
        let name = format!("{project}-k");
        test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
        test.cloud(&["apply"]).assert_code(0);
        let file = test.path(&format!("keys/{name}.pem"));
        let key = public_key_of(&file);
        let proxy = Proxy::faults(&json!([
            {"action": "DeleteKeyPair", "fault": "stall", "ms": 120_000},
        ]));
        let mut child = test
            .command(&[
                "destroy",
                "--yes",
                "-q",
                "--endpoint-url",
                &proxy.endpoint(),
            ])
            .spawn()
            .unwrap();
        proxy.wait_until("the delete reached EC2", Duration::from_mins(1), |s| {
            s["stalled"] == 1
        });
        child.kill().unwrap();
        child.wait().unwrap();
        drop(proxy);
        assert!(server().key_pair("us-east-1", &name).is_none());
        assert!(file.exists(), "killed before the file was retired");
        if next == "destroy" {
            // The rerun retires the file, without an API call beyond the listing.
            let plan = test.cloud(&["destroy", "--yes", "--json"]);
            plan.assert_code(0);
            let json = plan.json();
            assert_eq!(json["actions"][0]["action"], "retire", "{json:#}");
            assert_eq!(mutating_calls(&json), 0, "{json:#}");
            assert!(!file.exists());
            assert_eq!(retired_keys(&test, &name), std::slice::from_ref(&key));
            let again = test.cloud(&["destroy", "--yes", "--json"]).json();
            assert_eq!(again["actions"][0]["action"], "noop", "{again:#}");
        } else {
            // Or apply comes first: the retired key is never imported again.
            let run = test.cloud(&["apply", "--json"]);
            run.assert_code(0);
            let json = run.json();
            assert_eq!(json["actions"][0]["action"], "replace", "{json:#}");
            assert_eq!(
                json["api_calls"]["ImportKeyPair"],
                serde_json::Value::Null,
                "{json:#}"
            );
        }
        test.cloud(&["apply"]).assert_code(0);
        let remote = server().key_pair("us-east-1", &name).unwrap();
        assert_ne!(strip_comment(&remote.public_key), key, "{next}");
        assert_eq!(public_key_of(&file), strip_comment(&remote.public_key));
    }
}

// 15. The journal is part of custody.

#[test]
fn a_state_folder_that_came_with_git_clone_is_refused_not_acted_on() {
    let test = Test::new();
    let project = unique("clonedjournal");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    assert!(test.git(&["init", "-q"]).status.success());
    test.cloud(&["apply"]).assert_code(0);
    let teammates = server().key_pair("us-east-1", &name).unwrap();
    let teammates_id = server().ec2(&["id", "us-east-1", &name]);
    // A fresh clone: no key files, and a journal line someone committed with `git add -f`
    // that says the teammate's key pair was "never saved".
    std::fs::remove_dir_all(test.path("keys")).unwrap();
    let apply_id = teammates.tags["labctl:apply-id"].clone();
    std::fs::write(
        test.path(".labctl/labctl.yaml.journal"),
        format!("create\t{apply_id}\t{name}\n"),
    )
    .unwrap();
    assert!(
        test.git(&["add", "-f", ".labctl/labctl.yaml.journal"])
            .status
            .success()
    );
    for command in [
        &["plan", "--json"][..],
        &["apply", "--json"],
        &["destroy", "--yes", "--json"],
    ] {
        let run = test.cloud(command);
        let command = command[0];
        run.assert_code(1);
        let json = run.json();
        assert_eq!(json["error"]["kind"], "locked", "{command}: {json:#}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains("git tracks"), "{command}: {message}");
        assert!(
            json["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("git rm -r --cached .labctl"),
            "{json:#}"
        );
    }
    let now = server().key_pair("us-east-1", &name).unwrap();
    assert_eq!(
        server().ec2(&["id", "us-east-1", &name]),
        teammates_id,
        "the teammate's key pair was replaced"
    );
    assert_eq!(now.public_key, teammates.public_key);
    // Untracked, it is labctl's own again: the missing file is reported, not "recovered".
    assert!(
        test.git(&["rm", "-q", "-r", "--cached", ".labctl"])
            .status
            .success()
    );
}

#[test]
fn a_kill_between_saving_the_file_and_the_journal_never_replaces_the_key_later() {
    let test = Test::new();
    let project = unique("savedlate");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    let remote = server().key_pair("us-east-1", &name).unwrap();
    let id = server().ec2(&["id", "us-east-1", &name]);
    let apply_id = remote.tags["labctl:apply-id"].clone();
    // The run was killed after the file was linked into place, before `saved`.
    std::fs::write(
        test.path(".labctl/labctl.yaml.journal"),
        format!("create\t{apply_id}\t{name}\n"),
    )
    .unwrap();
    // A plain apply while the file is in place settles it: the key is saved.
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    assert_eq!(mutating_calls(&run.json()), 0);
    let journal = std::fs::read_to_string(test.path(".labctl/labctl.yaml.journal")).unwrap();
    assert!(
        !journal.contains(&format!("create\t{apply_id}")),
        "{journal}"
    );
    // Weeks later the file was moved away: a lost key, reported, never replaced.
    std::fs::rename(test.path("keys"), test.path("keys-moved")).unwrap();
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(1);
    let json = run.json();
    assert_eq!(
        json["actions"][0]["conflict"], "missing-private-key",
        "{json:#}"
    );
    // The hint gives the command to run, with this key pair's name.
    assert!(
        json["actions"][0]["error"]
            .to_string()
            .contains(&format!("labctl apply --replace {name}")),
        "{json:#}"
    );
    assert_eq!(
        server().ec2(&["id", "us-east-1", &name]),
        id,
        "the live key pair was replaced"
    );
}

// 16. `--replace` is exact and atomic.

#[test]
fn replace_name_at_region_replaces_only_that_entry() {
    let test = Test::new();
    let project = unique("replaceexact");
    let name = format!("{project}-lab");
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ key_type: ed25519 }}\nkeypairs:\n  - name: {name}\n    region: us-east-1\n    output: keys/us.pem\n  - name: {name}\n    region: eu-west-1\n    output: keys/eu.pem\n"
        ),
    );
    test.cloud(&["apply"]).assert_code(0);
    let us = server().key_pair("us-east-1", &name).unwrap();
    let eu = server().key_pair("eu-west-1", &name).unwrap();
    // Without a region the name is ambiguous: said, nothing done.
    let refused = test.cloud(&["apply", "--replace", &name, "--yes", "--json"]);
    refused.assert_code(1);
    let json = refused.json();
    assert_eq!(json["error"]["kind"], "usage", "{json:#}");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("@REGION"),
        "{json:#}"
    );
    let run = test.cloud(&[
        "apply",
        "--replace",
        &format!("{name}@eu-west-1"),
        "--yes",
        "--json",
    ]);
    run.assert_code(0);
    assert_eq!(run.json()["summary"]["replace"], 1, "{}", run.stdout);
    let us_now = server().key_pair("us-east-1", &name).unwrap();
    assert_eq!(
        us_now.public_key, us.public_key,
        "the us-east-1 entry was replaced too"
    );
    assert_eq!(
        public_key_of(&test.path("keys/us.pem")),
        strip_comment(&us.public_key)
    );
    let eu_now = server().key_pair("eu-west-1", &name).unwrap();
    assert_ne!(eu_now.public_key, eu.public_key);
    assert_eq!(
        public_key_of(&test.path("keys/eu.pem")),
        strip_comment(&eu_now.public_key)
    );
}

#[test]
fn a_failed_replace_leaves_every_file_where_it_was() {
    let test = Test::new();
    let project = unique("replaceundo");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    let file = test.path(&format!("keys/{name}.pem"));
    let key = public_key_of(&file);
    // The new key is never made: every CreateKeyPair fails.
    let proxy = Proxy::faults(&json!([
        {"action": "CreateKeyPair", "fault": "http503", "count": 20},
    ]));
    let run = test.via(
        &proxy,
        &["apply", "--replace", &name, "--yes", "--max-attempts", "1"],
    );
    run.assert_code(1);
    assert!(file.exists(), "the live key file was left moved aside");
    assert_eq!(public_key_of(&file), key);
    assert!(
        !files_in(&test.path("keys"))
            .iter()
            .any(|n| n.contains(".replaced-")),
        "{:?}",
        files_in(&test.path("keys"))
    );
    assert!(
        run.stderr.contains("back") || run.stdout.contains("back"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    // The old key pair was deleted and its key retired: the rerun finishes the replacement
    // (a new key; the old file moved aside, never lost) rather than bringing the old key back.
    let rerun = test.cloud(&["apply", "--json"]);
    rerun.assert_code(0);
    assert_eq!(
        rerun.json()["actions"][0]["action"],
        "replace",
        "{}",
        rerun.stdout
    );
    let remote = server().key_pair("us-east-1", &name).unwrap();
    assert_ne!(strip_comment(&remote.public_key), key);
    assert_eq!(public_key_of(&file), strip_comment(&remote.public_key));
    let aside: Vec<String> = files_in(&test.path("keys"))
        .into_iter()
        .filter(|n| n.contains(".replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        public_key_of(&test.path(&format!("keys/{}", aside[0]))),
        key
    );
}

#[test]
fn replace_never_moves_a_ppk_that_holds_another_key() {
    let test = Test::new();
    let project = unique("replaceppk");
    let (a, b) = (format!("{project}-a"), format!("{project}-b"));
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519, formats: [pem, ppk] }}\nkeypairs:\n  - name: {a}\n  - name: {b}\n"
        ),
    );
    test.cloud(&["apply"]).assert_code(0);
    // a.ppk now holds b's key (someone copied the wrong file).
    let a_ppk = test.path(&format!("keys/{a}.ppk"));
    std::fs::remove_file(&a_ppk).unwrap();
    std::fs::copy(test.path(&format!("keys/{b}.ppk")), &a_ppk).unwrap();
    let before = std::fs::read(&a_ppk).unwrap();
    let remote = server().key_pair("us-east-1", &a).unwrap();
    let run = test.cloud(&["apply", "--replace", &a, "--yes", "--json"]);
    run.assert_code(1);
    assert!(run.stdout.contains("not the PuTTY form"), "{}", run.stdout);
    assert_eq!(
        std::fs::read(&a_ppk).unwrap(),
        before,
        "the other key's .ppk was moved"
    );
    assert!(test.path(&format!("keys/{a}.pem")).exists());
    assert_eq!(
        server().key_pair("us-east-1", &a).unwrap().public_key,
        remote.public_key,
        "the key pair was replaced anyway"
    );
}

// 17. One check for secrets against git: ignored by the rules and not tracked by the index.

#[test]
fn a_key_file_git_tracks_is_warned_about_even_when_gitignore_lists_it() {
    let test = Test::new();
    let project = unique("tracked");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    assert!(test.git(&["init", "-q"]).status.success());
    test.cloud(&["apply"]).assert_code(0);
    // keys/.gitignore says `*`, but someone forced the key into the index.
    assert!(
        test.git(&["add", "-f", &format!("keys/{name}.pem")])
            .status
            .success()
    );
    let plan = test.cloud(&["plan"]);
    plan.assert_code(0);
    assert!(
        plan.stderr
            .contains(&format!("keys/{name}.pem is tracked by git")),
        "{}",
        plan.stderr
    );
    assert!(plan.stderr.contains("git rm --cached"), "{}", plan.stderr);
    // The pre-commit hook's check fails.
    let strict = test.run(&["validate", "--strict"]);
    strict.assert_code(1);
    assert!(
        strict.stderr.contains("is tracked by git"),
        "{}",
        strict.stderr
    );
    assert!(
        test.git(&["rm", "-q", "--cached", &format!("keys/{name}.pem")])
            .status
            .success()
    );
    test.run(&["validate", "--strict"]).assert_code(0);
}

#[test]
fn ppk_retired_and_replaced_files_are_checked_against_git_too() {
    let test = Test::new();
    let project = unique("gitnames");
    let name = format!("{project}-k");
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519, formats: [pem, ppk] }}\nkeypairs:\n  - name: {name}\n    output: secrets/{name}.pem\n"
        ),
    );
    assert!(test.git(&["init", "-q"]).status.success());
    // The workshop's own folder, whose ignore rule knows only `.pem` files.
    std::fs::create_dir(test.path("secrets")).unwrap();
    std::fs::set_permissions(test.path("secrets"), std::fs::Permissions::from_mode(0o700)).unwrap();
    test.write(".gitignore", "secrets/*.pem\n");
    let plan = test.cloud(&["plan"]);
    plan.assert_code(0);
    assert!(
        plan.stderr
            .contains(&format!("secrets/{name}.ppk is inside the git work tree")),
        "{}",
        plan.stderr
    );
    assert!(
        plan.stderr
            .contains(&format!("secrets/{name}.pem.retired-")),
        "{}",
        plan.stderr
    );
    assert!(
        !plan
            .stderr
            .contains(&format!("secrets/{name}.pem is inside")),
        "{}",
        plan.stderr
    );
    // A destroy retires the key next to it: validate --strict finds the retired file.
    test.cloud(&["apply"]).assert_code(0);
    test.cloud(&["destroy", "--yes"]).assert_code(0);
    let strict = test.run(&["validate", "--strict"]);
    strict.assert_code(1);
    assert!(strict.stderr.contains(".pem.retired-"), "{}", strict.stderr);
    // Ignored as a whole, all is well.
    test.write(".gitignore", "secrets/\n");
    test.run(&["validate", "--strict"]).assert_code(0);
    assert!(!test.cloud(&["plan"]).stderr.contains("git"));
}

// 18. One key folder, one project.

#[test]
fn two_manifests_never_share_a_key_folder() {
    let test = Test::new();
    let (a, b) = (unique("folder-a"), unique("folder-b"));
    let seat = unique("seat");
    let manifest = |project: &str, region: &str| {
        format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: {region}, key_type: ed25519 }}\nkeypairs:\n  - name: {seat}-${{index}}\n    count: 2\n"
        )
    };
    test.write("a.yaml", &manifest(&a, "us-east-1"));
    test.write("b.yaml", &manifest(&b, "eu-west-1"));
    test.cloud(&["-f", "a.yaml", "apply"]).assert_code(0);
    let file = test.path(&format!("keys/{seat}-1.pem"));
    let key = public_key_of(&file);
    // b would import a's key files into its region: refused, before any request.
    for args in [
        &["-f", "b.yaml", "apply", "--json"][..],
        &["-f", "b.yaml", "plan", "--json"],
    ] {
        let run = test.cloud(args);
        run.assert_code(1);
        let json = run.json();
        assert_eq!(json["error"]["kind"], "key-folder", "{json:#}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("project `{a}`")), "{message}");
    }
    assert!(
        server()
            .key_pair("eu-west-1", &format!("{seat}-1"))
            .is_none()
    );
    // validate says so too, before anyone plans.
    let validate = test.run(&["-f", "b.yaml", "validate"]);
    validate.assert_code(1);
    assert!(
        validate.stderr.contains(&format!("project `{a}`")),
        "{}",
        validate.stderr
    );
    let run = test.cloud(&["-f", "b.yaml", "destroy", "--yes", "--purge-local"]);
    run.assert_code(1);
    assert_eq!(
        public_key_of(&file),
        key,
        "b's destroy touched a's key file"
    );
    // Its own folder, and all is well.
    test.write(
        "b.yaml",
        &manifest(&b, "eu-west-1").replace("defaults: {", "defaults: { output_dir: keys-b,"),
    );
    test.cloud(&["-f", "b.yaml", "apply"]).assert_code(0);
    test.cloud(&["-f", "b.yaml", "destroy", "--yes", "--purge-local"])
        .assert_code(0);
    assert_eq!(public_key_of(&file), key);
    assert!(
        server()
            .key_pair("us-east-1", &format!("{seat}-1"))
            .is_some()
    );
}

#[test]
fn a_tracked_copy_of_a_key_the_manifest_no_longer_lists_is_warned_about() {
    let test = Test::new();
    let project = unique("trackedretired");
    let seats = |count: u32| {
        format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-seat-${{index}}\n    count: {count}\n"
        )
    };
    assert!(test.git(&["init", "-q"]).status.success());
    test.write("labctl.yaml", &seats(2));
    test.cloud(&["apply"]).assert_code(0);
    test.write("labctl.yaml", &seats(1));
    test.cloud(&["apply", "--prune", "--yes"]).assert_code(0);
    let retired = files_in(&test.path("keys"))
        .into_iter()
        .find(|n| n.contains("seat-2.pem.retired-"))
        .unwrap();
    assert!(
        test.git(&["add", "-f", &format!("keys/{retired}")])
            .status
            .success()
    );
    let plan = test.cloud(&["plan"]);
    plan.assert_code(0);
    assert!(
        plan.stderr
            .contains(&format!("keys/{retired} is tracked by git")),
        "{}",
        plan.stderr
    );
    let strict = test.run(&["validate", "--strict"]);
    strict.assert_code(1);
    assert!(strict.stderr.contains(&retired), "{}", strict.stderr);
}

// 19. Trust boundaries on inputs.

#[test]
fn a_manifest_in_another_users_folder_is_never_found() {
    let test = Test::new();
    let shared = test.path("shared");
    std::fs::create_dir_all(shared.join("mine")).unwrap();
    test.write(
        "shared/labctl.yaml",
        "version: 1\nproject: theirs\nkeypairs:\n  - name: theirs\n    region: us-east-1\n",
    );
    let chown = std::process::Command::new("chown")
        .args(["65534"])
        .arg(&shared)
        .arg(shared.join("labctl.yaml"))
        .status()
        .unwrap();
    if !chown.success() {
        crate::support::cannot_run("this test needs root to chown a folder");
        return;
    }
    // From a folder of one's own below it: the search stops where ownership changes.
    let mut cmd = test.command(&["validate"]);
    cmd.current_dir(shared.join("mine"));
    let run = Test::run_command(cmd);
    run.assert_code(1);
    assert!(run.stderr.contains("another user owns"), "{}", run.stderr);
    // In that folder itself: refused, with how to name it if it is trusted.
    let mut cmd = test.command(&["validate"]);
    cmd.current_dir(&shared);
    let run = Test::run_command(cmd);
    run.assert_code(1);
    assert!(
        run.stderr.contains("belongs to another user"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("labctl -f"), "{}", run.stderr);
    // Named, it is the user's choice.
    let mut cmd = test.command(&["validate", "-f", "../labctl.yaml"]);
    cmd.current_dir(shared.join("mine"));
    Test::run_command(cmd).assert_code(0);
}

#[test]
fn init_never_writes_through_a_link_or_waits_on_a_fifo() {
    // A link at .gitignore: refused, its target untouched.
    let test = Test::new();
    let victim = test.home.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    symlink(&victim, test.path(".gitignore")).unwrap();
    let run = test.run(&["init"]);
    run.assert_code(1);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    // A FIFO at .gitignore: refused at once, never waited on.
    let test = Test::new();
    let made = std::process::Command::new("mkfifo")
        .arg(test.path(".gitignore"))
        .status()
        .unwrap();
    assert!(made.success());
    let run = run_within(&test, &["init"], Duration::from_secs(20));
    run.assert_code(1);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    // A `*.pem` rule does not cover `.ppk` files and retired copies: keys/ is added.
    let test = Test::new();
    test.write(".gitignore", "*.pem\n");
    test.run(&["init"]).assert_code(0);
    assert!(
        std::fs::read_to_string(test.path(".gitignore"))
            .unwrap()
            .lines()
            .any(|l| l == "keys/")
    );
}

#[test]
fn a_ppk_cut_after_its_public_lines_is_not_in_sync() {
    let test = Test::new();
    let project = unique("ppkcut");
    let name = format!("{project}-k");
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519, formats: [pem, ppk] }}\nkeypairs:\n  - name: {name}\n"
        ),
    );
    test.cloud(&["apply"]).assert_code(0);
    let ppk = test.path(&format!("keys/{name}.ppk"));
    let text = std::fs::read_to_string(&ppk).unwrap();
    let cut = &text[..text.find("Private-Lines").unwrap()];
    std::fs::remove_file(&ppk).unwrap();
    std::fs::write(&ppk, cut).unwrap();
    std::fs::set_permissions(&ppk, std::fs::Permissions::from_mode(0o400)).unwrap();
    let plan = test.cloud(&["plan", "--json"]);
    plan.assert_code(1);
    let json = plan.json();
    assert_eq!(json["actions"][0]["conflict"], "unreadable", "{json:#}");
    assert!(
        json["actions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a whole, unencrypted PuTTY private key"),
        "{json:#}"
    );
    // Never overwritten.
    test.cloud(&["apply"]).assert_code(1);
    assert_eq!(std::fs::read_to_string(&ppk).unwrap(), cut);
}

/// One layer removes, moves and links files: `src/keys/folder.rs`, relative to an opened
/// folder. Every other module asks it (through `FileCustody`), so no rule about what may be
/// removed can be bypassed by a stray `remove_file`.
#[test]
fn only_the_key_folder_layer_removes_moves_or_links_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    let mut offenders = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs")
                || path
                    .parent()
                    .is_some_and(|dir| dir.ends_with("keys/folder"))
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for call in [
                "unlinkat",
                "renameat",
                "linkat",
                "remove_file",
                "fs::rename",
                "remove_dir",
                "hard_link",
            ] {
                if text.contains(call) {
                    offenders.push(format!("{} calls {call}", path.display()));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

#[test]
fn two_outputs_that_are_one_file_are_one_file_to_validation() {
    let test = Test::new();
    symlink(test.dir.path(), test.path("here")).unwrap();
    test.write(
        "labctl.yaml",
        "version: 1\nproject: spellings\ndefaults: { region: us-east-1 }\nkeypairs:\n  - name: a\n    output: keys/k.pem\n  - name: b\n    output: here/keys/k.pem\n",
    );
    let run = test.run(&["validate", "--json"]);
    run.assert_code(1);
    let json = run.json();
    let messages: Vec<&str> = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("would write the same file")),
        "{json:#}"
    );
}

#[test]
fn a_state_folder_written_on_another_machine_is_refused_not_acted_on() {
    let test = Test::new();
    let project = unique("othermachine");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    let origin = test.path(".labctl/origin");
    assert!(
        std::fs::read_to_string(&origin)
            .unwrap()
            .starts_with("machine "),
        "labctl records where its state was written"
    );
    // The workshop folder was copied from a colleague's laptop, journal and all.
    std::fs::write(&origin, "machine 0123456789abcdef-colleague\n").unwrap();
    for args in [
        &["plan", "--json"][..],
        &["apply", "--json"],
        &["destroy", "--yes", "--json"],
    ] {
        let run = test.cloud(args);
        run.assert_code(1);
        let json = run.json();
        assert_eq!(json["error"]["kind"], "locked", "{args:?}: {json:#}");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("written on another machine"),
            "{json:#}"
        );
    }
    assert!(server().key_pair("us-east-1", &name).is_some());
    // Moved here on purpose: removing the origin adopts the folder.
    std::fs::remove_file(&origin).unwrap();
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    assert_eq!(mutating_calls(&run.json()), 0);
}

#[test]
fn plan_reads_the_journal_even_without_its_lock_file() {
    let test = Test::new();
    let project = unique("nolockfile");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    test.cloud(&["destroy", "--yes"]).assert_code(0);
    let retired = files_in(&test.path("keys"))
        .into_iter()
        .find(|n| n.contains(".retired-"))
        .unwrap();
    // The retired key put back under its name, and the lock file removed (as a tired
    // instructor might after a `locked` error): plan still previews what apply does.
    std::fs::copy(
        test.path(&format!("keys/{retired}")),
        test.path(&format!("keys/{name}.pem")),
    )
    .unwrap();
    std::fs::remove_file(test.path(".labctl/labctl.yaml.lock")).unwrap();
    let plan = test.cloud(&["plan", "--json"]).json();
    assert_eq!(plan["actions"][0]["action"], "replace", "{plan:#}");
    let apply = test.cloud(&["apply", "--json"]).json();
    assert_eq!(apply["actions"][0]["action"], "replace", "{apply:#}");
}

#[test]
fn a_repository_git_refuses_is_never_taken_as_clean() {
    let test = Test::new();
    let project = unique("dubious");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    assert!(test.git(&["init", "-q"]).status.success());
    test.cloud(&["apply"]).assert_code(0);
    // The work tree now belongs to another user: git refuses it ("dubious ownership").
    let chown = std::process::Command::new("chown")
        .arg("65534")
        .arg(test.dir.path())
        .status()
        .unwrap();
    if !chown.success() {
        crate::support::cannot_run("this test needs root to chown a folder");
        return;
    }
    let manifest = test.path("labctl.yaml");
    let run = test.cloud(&["plan", "-f", manifest.to_str().unwrap(), "--json"]);
    run.assert_code(1);
    let json = run.json();
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("git cannot read the repository"),
        "{json:#}"
    );
}

// 15. Only a key labctl made is labctl's to move or remove, and what it made or retired is
// the project's, whatever its manifest file is called.

/// A user's own key named as `output` (as `~/.ssh/id_ed25519` would be): imported, and left
/// exactly where it is by `destroy` and `destroy --purge-local`; its folder is not claimed.
#[test]
fn a_users_own_key_named_as_output_is_never_moved_removed_or_claimed() {
    let test = Test::new();
    let project = unique("ownkey");
    let name = format!("{project}-k");
    let mine = test.path("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = mine.join("id_ed25519");
    std::fs::write(&file, fixture_key("ed25519-a.pem")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = public_key_of(&file);
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {name}\n    output: mine/id_ed25519\n"
        ),
    );
    for destroy in [
        &["destroy", "--yes"][..],
        &["destroy", "--yes", "--purge-local"],
    ] {
        test.cloud(&["apply"]).assert_code(0);
        let imported = server().key_pair("us-east-1", &name).unwrap();
        assert_eq!(strip_comment(&imported.public_key), key);
        let run = test.cloud(destroy);
        run.assert_code(0);
        assert!(server().key_pair("us-east-1", &name).is_none());
        assert!(
            file.exists(),
            "{destroy:?} moved the user's own key: {}",
            run.stderr
        );
        assert_eq!(public_key_of(&file), key);
        assert_eq!(files_in(&mine), ["id_ed25519"], "{destroy:?}");
    }
    // And the next apply imports it again: it was never retired.
    test.cloud(&["apply"]).assert_code(0);
    let imported = server().key_pair("us-east-1", &name).unwrap();
    assert_eq!(strip_comment(&imported.public_key), key);
    assert_eq!(files_in(&mine), ["id_ed25519"]);
}

/// Renaming the manifest keeps what the project retired: a retired key put back is never
/// imported again.
#[test]
fn retired_keys_stay_retired_when_the_manifest_file_is_renamed() {
    let test = Test::new();
    let project = unique("renamed");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    let file = test.path(&format!("keys/{name}.pem"));
    let departed = public_key_of(&file);
    let copy = std::fs::read(&file).unwrap();
    test.cloud(&["destroy", "--yes"]).assert_code(0);
    assert!(!file.exists());
    std::fs::rename(test.path("labctl.yaml"), test.path("workshop.yaml")).unwrap();
    // Someone puts last cohort's key back (a backup, a copy on a USB stick).
    std::fs::write(&file, &copy).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    let plan = test
        .cloud(&["plan", "-f", "workshop.yaml", "--json"])
        .json();
    assert_eq!(plan["actions"][0]["action"], "replace", "{plan:#}");
    test.cloud(&["apply", "-f", "workshop.yaml"]).assert_code(0);
    let remote = server().key_pair("us-east-1", &name).unwrap();
    assert_ne!(strip_comment(&remote.public_key), departed);
    assert_eq!(public_key_of(&file), strip_comment(&remote.public_key));
}

/// A pruned entry that had its own `output` (not `keys/<name>.pem`): its file is found where
/// labctl wrote the key, retired, and the entry added back gets a new key.
#[test]
fn a_pruned_entry_with_its_own_output_is_retired_and_comes_back_with_a_new_key() {
    let test = Test::new();
    let project = unique("ownout");
    let (a, b) = (format!("{project}-a"), format!("{project}-b"));
    let manifest = |with_b: bool| {
        let mut text = format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {a}\n"
        );
        if with_b {
            text.push_str(&format!("  - name: {b}\n    output: seats/b/key.pem\n"));
        }
        text
    };
    test.write("labctl.yaml", &manifest(true));
    test.cloud(&["apply"]).assert_code(0);
    let file = test.path("seats/b/key.pem");
    let departed = public_key_of(&file);
    test.write("labctl.yaml", &manifest(false));
    let plan = test.cloud(&["plan", "--prune"]);
    assert!(
        plan.logical_lines()
            .iter()
            .any(|l| l.contains(&b) && l.contains("retire") && l.contains("seats/b/key.pem")),
        "{}",
        plan.stdout
    );
    test.cloud(&["apply", "--prune", "--yes"]).assert_code(0);
    assert!(server().key_pair("us-east-1", &b).is_none());
    assert!(
        !file.exists(),
        "the pruned entry's key stayed live under its name"
    );
    let aside: Vec<String> = files_in(&test.path("seats/b"))
        .into_iter()
        .filter(|n| n.starts_with("key.pem.retired-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        public_key_of(&test.path(&format!("seats/b/{}", aside[0]))),
        departed
    );
    // Someone puts it back, and the entry comes back: a new key all the same.
    std::fs::copy(test.path(&format!("seats/b/{}", aside[0])), &file).unwrap();
    test.write("labctl.yaml", &manifest(true));
    test.cloud(&["apply"]).assert_code(0);
    let remote = server().key_pair("us-east-1", &b).unwrap();
    assert_ne!(strip_comment(&remote.public_key), departed);
    assert_eq!(public_key_of(&file), strip_comment(&remote.public_key));
}

/// A journal that cannot record `saved` (here: the file-size limit reached exactly after the
/// `create` line, so the next line fails with EFBIG): apply says so and fails, the key file
/// stays, and the next run records it saved and never replaces the key pair.
#[test]
fn a_journal_that_cannot_record_saved_fails_the_run_and_the_next_run_keeps_the_key() {
    const LIMIT: usize = 8192;
    let test = Test::new();
    let project = unique("nosaved");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    // The state folder as labctl makes it, then a journal that the create line fills exactly
    // to the limit (lines labctl does not know are skipped when it is read).
    test.cloud(&["plan"]).assert_code(0);
    test.run(&["validate"]).assert_code(0);
    let apply_id_len = 16;
    let create_line = format!("create\t{}\t{name}\n", "0".repeat(apply_id_len));
    let pad = LIMIT - create_line.len();
    let mut padding = String::new();
    while padding.len() + 100 < pad {
        padding.push_str(&format!("{}\n", "#".repeat(99)));
    }
    padding.push_str(&"#".repeat(pad - padding.len() - 1));
    padding.push('\n');
    assert_eq!(padding.len() + create_line.len(), LIMIT);
    std::fs::create_dir_all(test.path(".labctl")).unwrap();
    test.write(".labctl/labctl.yaml.journal", &padding);
    let endpoint = server().endpoint();
    let limit = format!("--fsize={LIMIT}");
    let script = "trap '' XFSZ; exec \"$@\"";
    let run = Test::run_command(test.command_under(
        &["sh", "-c", script, "sh", "prlimit", &limit],
        &["apply", "--endpoint-url", &endpoint],
    ));
    assert!(
        run.code == 1
            && run
                .stdout
                .contains("journal could not record it (File too large"),
        "{run:?}"
    );
    let file = test.path(&format!("keys/{name}.pem"));
    let remote = server().key_pair("us-east-1", &name).unwrap();
    assert_eq!(public_key_of(&file), strip_comment(&remote.public_key));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o400
    );
    // The next run records it saved and changes nothing.
    let again = test.cloud(&["apply", "--json"]);
    again.assert_code(0);
    assert_eq!(mutating_calls(&again.json()), 0, "{}", again.stdout);
    let after = server().key_pair("us-east-1", &name).unwrap();
    assert_eq!(after.public_key, remote.public_key);
    assert_eq!(after.tags, remote.tags);
    // Even once the file is moved away, the key pair is never replaced as "never saved".
    std::fs::rename(&file, test.path("elsewhere.pem")).unwrap();
    let plan = test.cloud(&["plan", "--json"]).json();
    assert_eq!(
        plan["actions"][0]["conflict"], "missing-private-key",
        "{plan:#}"
    );
}

/// A key pair this manifest does not own, whose private key is not here: the hint never
/// offers `--replace` (which refuses key pairs it does not own); an owned one's does.
#[test]
fn a_missing_private_key_of_a_key_pair_not_owned_is_never_offered_replace() {
    let test = Test::new();
    let project = unique("notowned");
    let name = format!("{project}-k");
    test.write("labctl.yaml", &one_key(&project, &name, "us-east-1"));
    // Made by hand (`aws ec2 create-key-pair`), no tags, its private key elsewhere.
    server().ec2(&["create", "us-east-1", &name]);
    let plan = test.cloud(&["plan"]);
    assert!(
        plan.stdout.contains("missing-private-key"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("--replace"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains(&format!(
            "aws ec2 delete-key-pair --key-name {name} --region us-east-1"
        )),
        "{}",
        plan.stdout
    );
    let apply = test.cloud(&["apply", "--json"]);
    let json = apply.json();
    let hint = json["actions"][0]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{json:#}"))
        .to_owned();
    assert!(
        !hint.contains("--replace") && hint.contains("not tagged"),
        "{hint}"
    );
    // Owned (labctl made it) and its file moved away: `--replace` is the way out.
    let owned = format!("{project}-owned");
    test.write("labctl.yaml", &one_key(&project, &owned, "us-east-1"));
    test.cloud(&["apply"]).assert_code(0);
    std::fs::rename(
        test.path(&format!("keys/{owned}.pem")),
        test.path("away.pem"),
    )
    .unwrap();
    let plan = test.cloud(&["plan"]);
    assert!(
        plan.stdout
            .contains(&format!("labctl apply --replace {owned}")),
        "{}",
        plan.stdout
    );
}
