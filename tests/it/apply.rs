//! `labctl plan` and `labctl apply` against a real local EC2 server, as a user runs them.

use std::os::unix::fs::PermissionsExt;

use crate::support::{
    Manifest, Test, mutating_calls, public_key_of, server, strip_comment, unique,
};

/// A manifest with one key pair per (name, regions, key type).
fn manifest(project: &str, entries: &[(&str, &[&str], &str)]) -> String {
    let mut manifest = Manifest::new(project).defaults("\n  tags:\n    Owner: tests");
    for (name, regions, key_type) in entries {
        let regions = format!("[{}]", regions.join(", "));
        manifest = manifest.key(name, &[("regions", &regions), ("key_type", key_type)]);
    }
    manifest.text()
}

#[test]
fn create_saves_a_0400_key_matching_the_server_and_a_second_apply_changes_nothing() {
    let test = Test::new();
    let project = unique("create");
    let name = format!("{project}-key");
    test.write(
        "labctl.yaml",
        &manifest(&project, &[(&name, &["us-east-1"], "rsa")]),
    );

    let plan = test.cloud(&["plan", "--detailed-exitcode"]);
    plan.assert_code(2);
    assert!(
        plan.stdout.contains(&format!("+ {name}")),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("1 to create"), "{}", plan.stdout);
    assert!(!test.path("keys").exists(), "plan wrote files");
    assert!(
        server().key_pair("us-east-1", &name).is_none(),
        "plan created a key pair"
    );

    let apply = test.cloud(&["apply", "--json"]);
    apply.assert_code(0);
    let json = apply.json();
    assert_eq!(json["summary"]["create"], 1, "{json:#}");
    assert_eq!(json["api_calls"]["CreateKeyPair"], 1, "{json:#}");
    assert_eq!(json["api_calls"]["DescribeKeyPairs"], 1, "{json:#}");
    assert_eq!(json["actions"][0]["status"], "done");

    let file = format!("keys/{name}.pem");
    assert_eq!(test.mode(&file), 0o400);
    assert_eq!(test.mode("keys"), 0o700);
    assert_eq!(
        std::fs::read_to_string(test.path("keys/.gitignore"))
            .unwrap()
            .lines()
            .last(),
        Some("*")
    );
    let remote = server()
        .key_pair("us-east-1", &name)
        .expect("key pair on the server");
    assert_eq!(
        public_key_of(&test.path(&file)),
        strip_comment(&remote.public_key)
    );
    assert_eq!(remote.key_type.as_deref(), Some("rsa"));
    assert_eq!(remote.tags.get("labctl:project"), Some(&project));
    assert_eq!(remote.tags.get("Owner").map(String::as_str), Some("tests"));

    let again = test.cloud(&["apply", "--json"]);
    again.assert_code(0);
    let json = again.json();
    assert_eq!(mutating_calls(&json), 0, "{json:#}");
    assert_eq!(json["summary"]["noop"], 1);
    let human = test.cloud(&["apply"]);
    human.assert_code(0);
    assert!(human.stdout.contains("No changes."), "{}", human.stdout);
    test.cloud(&["plan", "--detailed-exitcode"]).assert_code(0);
}

#[test]
fn multi_region_entry_has_one_file_and_the_same_key_everywhere() {
    let test = Test::new();
    let project = unique("multi");
    let name = format!("{project}-key");
    let regions = ["us-east-1", "eu-west-1", "ap-southeast-1"];
    test.write(
        "labctl.yaml",
        &manifest(&project, &[(&name, &regions, "ed25519")]),
    );
    let apply = test.cloud(&["apply", "--json"]);
    apply.assert_code(0);
    let json = apply.json();
    assert_eq!(json["summary"]["create"], 1, "{json:#}");
    assert_eq!(json["summary"]["import"], 2, "{json:#}");
    assert_eq!(
        json["api_calls"]["DescribeKeyPairs"], 3,
        "one describe per region: {json:#}"
    );

    let files: Vec<_> = std::fs::read_dir(test.path("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        files.len(),
        3,
        "one key file, .gitignore and the folder's claim: {files:?}"
    );
    let local = public_key_of(&test.path(&format!("keys/{name}.pem")));
    for region in regions {
        let remote = server()
            .key_pair(region, &name)
            .unwrap_or_else(|| panic!("missing in {region}"));
        assert_eq!(strip_comment(&remote.public_key), local, "{region}");
        assert_eq!(
            remote.tags.get("labctl:project"),
            Some(&project),
            "{region}"
        );
    }
    assert_eq!(mutating_calls(&test.cloud(&["apply", "--json"]).json()), 0);
}

#[test]
fn a_key_pair_deleted_behind_labctls_back_is_reimported_from_its_file() {
    let test = Test::new();
    let project = unique("restore");
    let name = format!("{project}-key");
    test.write(
        "labctl.yaml",
        &manifest(&project, &[(&name, &["us-west-2"], "ed25519")]),
    );
    test.cloud(&["apply"]).assert_code(0);
    let before = server().key_pair("us-west-2", &name).unwrap();
    server().ec2(&["delete", "us-west-2", &name]);

    let plan = test.cloud(&["plan", "--json"]);
    assert_eq!(
        plan.json()["actions"][0]["action"],
        "import",
        "{}",
        plan.stdout
    );
    let apply = test.cloud(&["apply", "--json"]);
    apply.assert_code(0);
    assert_eq!(apply.json()["api_calls"]["ImportKeyPair"], 1);
    let after = server().key_pair("us-west-2", &name).expect("re-imported");
    assert_eq!(
        strip_comment(&after.public_key),
        strip_comment(&before.public_key)
    );
    assert_eq!(after.tags.get("labctl:project"), Some(&project));
}

#[test]
fn a_loose_file_mode_is_fixed() {
    let test = Test::new();
    let project = unique("mode");
    let name = format!("{project}-key");
    test.write(
        "labctl.yaml",
        &manifest(&project, &[(&name, &["us-east-1"], "ed25519")]),
    );
    test.cloud(&["apply"]).assert_code(0);
    let file = test.path(&format!("keys/{name}.pem"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    let plan = test.cloud(&["plan", "--detailed-exitcode"]);
    plan.assert_code(2);
    assert!(
        plan.stdout.contains("~ ") && plan.stdout.contains("mode 0644"),
        "{}",
        plan.stdout
    );
    let apply = test.cloud(&["apply", "--json"]);
    apply.assert_code(0);
    let json = apply.json();
    assert_eq!(json["summary"]["fix-mode"], 1, "{json:#}");
    assert_eq!(
        mutating_calls(&json),
        0,
        "fixing a mode needs no API call: {json:#}"
    );
    assert_eq!(test.mode(&format!("keys/{name}.pem")), 0o400);
}

#[test]
fn conflicts_are_reported_and_nothing_is_touched() {
    let test = Test::new();
    let project = unique("conflict");
    let lost = format!("{project}-lost");
    let swapped = format!("{project}-swapped");
    let garbage = format!("{project}-garbage");
    test.write(
        "labctl.yaml",
        &manifest(
            &project,
            &[
                (&lost, &["us-east-1"], "ed25519"),
                (&swapped, &["us-east-1"], "ed25519"),
                (&garbage, &["us-east-1"], "ed25519"),
            ],
        ),
    );
    test.cloud(&["apply"]).assert_code(0);
    // The private key of one is lost, another file holds some other key, a third is garbage.
    std::fs::remove_file(test.path(&format!("keys/{lost}.pem"))).unwrap();
    let swapped_file = test.path(&format!("keys/{swapped}.pem"));
    std::fs::remove_file(&swapped_file).unwrap();
    let other_key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/keys/ed25519-b.pem"
    ))
    .unwrap();
    std::fs::write(&swapped_file, &other_key).unwrap();
    let garbage_file = test.path(&format!("keys/{garbage}.pem"));
    std::fs::remove_file(&garbage_file).unwrap();
    std::fs::write(&garbage_file, "not a key").unwrap();

    let plan = test.cloud(&["plan", "--json", "--detailed-exitcode"]);
    plan.assert_code(1);
    let reasons: Vec<String> = plan.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["action"].as_str().unwrap(),
                a["conflict"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "conflict:missing-private-key",
            "conflict:mismatch",
            "conflict:unreadable"
        ]
    );

    let apply = test.cloud(&["apply", "--json"]);
    apply.assert_code(1);
    let json = apply.json();
    assert_eq!(json["summary"]["conflict"], 3, "{json:#}");
    assert_eq!(mutating_calls(&json), 0, "{json:#}");
    // Nothing was recreated or overwritten.
    assert!(!test.path(&format!("keys/{lost}.pem")).exists());
    assert_eq!(std::fs::read_to_string(&swapped_file).unwrap(), other_key);
    assert_eq!(std::fs::read_to_string(&garbage_file).unwrap(), "not a key");

    let human = test.cloud(&["plan"]);
    assert!(
        human.stdout.contains(&format!("! {lost}")),
        "{}",
        human.stdout
    );
    assert!(
        human
            .logical_lines()
            .join("\n")
            .contains("EC2 returned the private key only when the key pair was created"),
        "{}",
        human.stdout
    );
}

#[test]
fn files_are_never_overwritten_or_written_through_links() {
    let test = Test::new();
    let project = unique("link");
    let name = format!("{project}-key");
    test.write(
        "labctl.yaml",
        &manifest(&project, &[(&name, &["us-east-1"], "ed25519")]),
    );
    std::fs::create_dir(test.path("keys")).unwrap();
    let target = test.path("elsewhere.pem");
    std::os::unix::fs::symlink(&target, test.path(&format!("keys/{name}.pem"))).unwrap();

    let apply = test.cloud(&["apply", "--json"]);
    apply.assert_code(1);
    let json = apply.json();
    assert_eq!(json["actions"][0]["conflict"], "symlink", "{json:#}");
    assert_eq!(mutating_calls(&json), 0);
    assert!(!target.exists(), "wrote through the link");
    assert!(server().key_pair("us-east-1", &name).is_none());
}

#[test]
fn an_unwritable_folder_stops_the_create_before_ec2_is_asked() {
    let test = Test::new();
    let project = unique("readonly");
    let name = format!("{project}-key");
    test.write(
        "labctl.yaml",
        &manifest(&project, &[(&name, &["us-east-1"], "ed25519")]),
    );
    // A file where the key folder should be: the folder cannot be made.
    test.write("keys", "I am a file");
    let apply = test.cloud(&["apply", "--json"]);
    apply.assert_code(1);
    let json = apply.json();
    assert_eq!(json["actions"][0]["status"], "failed", "{json:#}");
    assert!(
        json["actions"][0]["error"]
            .as_str()
            .unwrap()
            .contains("was not created"),
        "{json:#}"
    );
    assert_eq!(
        mutating_calls(&json),
        0,
        "EC2 was asked for a key that could not be saved: {json:#}"
    );
    assert!(server().key_pair("us-east-1", &name).is_none());
}

#[test]
fn a_key_file_inside_a_git_work_tree_is_warned_about() {
    let test = Test::new();
    let project = unique("git");
    let name = format!("{project}-key");
    test.write(
        "labctl.yaml",
        &manifest(&project, &[(&name, &["us-east-1"], "ed25519")]),
    );
    let init = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(test.dir.path())
        .status()
        .unwrap();
    assert!(init.success());
    // The folder exists and nothing ignores it.
    std::fs::create_dir(test.path("keys")).unwrap();
    let plan = test.cloud(&["plan"]);
    plan.assert_code(0);
    assert!(
        plan.stderr.contains("is inside the git work tree") && plan.stderr.contains("not ignored"),
        "{}",
        plan.stderr
    );
    test.write(".gitignore", "keys/\n");
    let plan = test.cloud(&["plan"]);
    assert!(!plan.stderr.contains("git work tree"), "{}", plan.stderr);
}

#[test]
fn no_output_ever_contains_key_material() {
    let test = Test::new();
    let project = unique("secret");
    let name = format!("{project}-key");
    test.write(
        "labctl.yaml",
        &manifest(&project, &[(&name, &["us-east-1", "eu-west-1"], "rsa")]),
    );
    for args in [
        &["plan", "-vv"][..],
        &["apply", "-vv"],
        &["apply", "-v", "--json"],
        &["plan", "-vv", "--json"],
    ] {
        let run = test.cloud(args);
        run.assert_code(0);
        let key =
            std::fs::read_to_string(test.path(&format!("keys/{name}.pem"))).unwrap_or_default();
        let body: String = key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("");
        for output in [&run.stdout, &run.stderr] {
            assert!(!output.contains("PRIVATE KEY"), "{args:?}: {output}");
            if body.len() > 64 {
                for chunk in body.as_bytes().chunks(48) {
                    let chunk = std::str::from_utf8(chunk).unwrap();
                    assert!(
                        !output.contains(chunk),
                        "{args:?} printed part of the private key"
                    );
                }
            }
        }
    }
}

#[test]
fn unreachable_endpoint_and_missing_credentials_fail_clearly_and_write_nothing() {
    let test = Test::new();
    let project = unique("offline");
    test.write(
        "labctl.yaml",
        &manifest(
            &project,
            &[(&format!("{project}-key"), &["us-east-1"], "rsa")],
        ),
    );
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let run = test.run(&["apply", "--endpoint-url", &endpoint, "--max-attempts", "2"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("DescribeKeyPairs in us-east-1 failed: cannot connect to the endpoint"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: check the network"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("DispatchFailure"),
        "SDK debug dump: {}",
        run.stderr
    );
    assert!(!test.path("keys").exists());

    let mut cmd = test.command(&["plan", "--endpoint-url", &server().endpoint()]);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let run = Test::run_command(cmd);
    run.assert_code(1);
    assert!(
        run.stderr.contains("no AWS credentials were found"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: configure AWS credentials"),
        "{}",
        run.stderr
    );
    assert!(!test.path("keys").exists());
}

#[test]
fn an_invalid_manifest_makes_no_call_and_writes_nothing() {
    let test = Test::new();
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\nkeypairs:\n  - name: a\n    region: nowhere\n",
    );
    // No endpoint at all: if labctl tried to reach one, it would say so.
    let run = test.run(&["apply", "--endpoint-url", "http://127.0.0.1:9"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("`nowhere` is not an AWS region name"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("DescribeKeyPairs"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(!test.path("keys").exists());
}

#[test]
fn json_plan_has_the_documented_shape() {
    let test = Test::new();
    let project = unique("json");
    let name = format!("{project}-key");
    test.write(
        "labctl.yaml",
        &manifest(&project, &[(&name, &["us-east-1"], "ed25519")]),
    );
    let run = test.cloud(&["plan", "--json"]);
    run.assert_code(0);
    let json = run.json();
    assert_eq!(json["project"], project.as_str());
    let action = &json["actions"][0];
    assert_eq!(action["action"], "create");
    assert_eq!(action["name"], name.as_str());
    assert_eq!(action["region"], "us-east-1");
    assert_eq!(action["output"], format!("keys/{name}.pem"));
    assert!(action["reason"].as_str().unwrap().contains("made by EC2"));
    for key in ["create", "import", "fix-mode", "noop", "conflict"] {
        assert!(json["summary"][key].is_u64(), "summary.{key}: {json:#}");
    }
    assert!(
        json["summary"].get("failed").is_none(),
        "plan has no failed count: {json:#}"
    );
    assert_eq!(
        json["api_calls"],
        serde_json::json!({ "DescribeKeyPairs": 1 })
    );
}
