//! Team mode: private keys in SSM Parameter Store (`store: ssm`), the lock and the journal in
//! S3 (`state: s3://…`), against the local server (it serves EC2, SSM and S3 at one endpoint;
//! SSM refuses to overwrite, S3 answers `PreconditionFailed` to a second `If-None-Match` put).

use std::path::Path;
use std::process::Command;

use crate::support::{Manifest, Test, mutating_calls, server, unique};

/// Run `tests/it/team.py` (boto3) against the local server.
fn team(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/team.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(server().endpoint())
        .args(args)
        .output()
        .expect("run python3 tests/it/team.py");
    assert!(
        output.status.success(),
        "team.py {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The id of the key pair `name` in `region`.
fn id_of(region: &str, name: &str) -> String {
    server().ec2(&["id", region, name]).trim().to_owned()
}

/// The store's entries (value and tags) of these key pair ids.
fn params(region: &str, ids: &[&str]) -> serde_json::Value {
    let mut args = vec!["params", region];
    args.extend(ids);
    serde_json::from_str(&team(&args)).unwrap()
}

/// Two keys in two regions, kept in SSM (and the shared state when `state` is given).
fn manifest(project: &str, state: Option<&str>) -> String {
    let mut text = Manifest::new(project)
        .defaults("{ regions: [eu-west-1, us-east-1], key_type: ed25519 }")
        .key(&format!("{project}-a"), &[])
        .key(&format!("{project}-b"), &[])
        .text();
    text.push_str("store: ssm\n");
    if let Some(state) = state {
        text.push_str(&format!("state: {state}\n"));
    }
    text
}

/// Put `text` as the store entry (a SecureString) of the key pair `name` in `region`, as
/// another tool would, through a file of `test`'s folder.
fn entry_holding(test: &Test, region: &str, name: &str, text: &str) {
    entry_of_type(test, region, name, text, "SecureString");
}

/// [`entry_holding`], as a parameter of this type.
fn entry_of_type(test: &Test, region: &str, name: &str, text: &str, kind: &str) {
    let id = id_of(region, name);
    let file = test.path(&format!("entry-{id}.pem"));
    std::fs::write(&file, text).unwrap();
    team(&[
        "put-param",
        region,
        &format!("/ec2/keypair/{id}"),
        file.to_str().unwrap(),
        kind,
    ]);
}

fn calls(run: &crate::support::Run) -> serde_json::Value {
    run.json()["api_calls"].clone()
}

#[test]
fn keys_land_in_ssm_and_a_second_folder_gets_every_key_file_without_a_create() {
    let (first, second) = (Test::new(), Test::new());
    let p = unique("team");
    first.write("labctl.yaml", &manifest(&p, None));
    second.write("labctl.yaml", &manifest(&p, None));
    first.cloud(&["apply", "--yes"]).assert_code(0);
    for name in [format!("{p}-a"), format!("{p}-b")] {
        let file = std::fs::read_to_string(first.path(&format!("keys/{name}.pem"))).unwrap();
        for region in ["eu-west-1", "us-east-1"] {
            // One entry per key pair id (the import in the second region has its own).
            let id = id_of(region, &name);
            let entry = &params(region, &[&id])[&id];
            assert_eq!(
                entry["value"].as_str().unwrap().trim(),
                file.trim(),
                "{name} {region}"
            );
            assert_eq!(entry["tags"]["labctl:project"], p.as_str());
        }
    }
    // The second folder has only the manifest: its plan restores, its apply creates nothing.
    let plan = second.cloud(&["plan", "--json"]);
    let changes: Vec<String> = plan.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(changes, ["restore", "noop", "restore", "noop"], "{plan:#?}");
    let applied = second.cloud(&["apply", "--yes", "--json"]);
    applied.assert_code(0);
    let api = calls(&applied);
    for op in [
        "CreateKeyPair",
        "ImportKeyPair",
        "DeleteKeyPair",
        "PutParameter",
    ] {
        assert!(api.get(op).is_none(), "{op} sent: {api}");
    }
    for name in [format!("{p}-a"), format!("{p}-b")] {
        let rel = format!("keys/{name}.pem");
        assert_eq!(
            std::fs::read(first.path(&rel)).unwrap(),
            std::fs::read(second.path(&rel)).unwrap()
        );
        assert_eq!(second.mode(&rel), 0o400);
    }
    // Everything in step: no change, no mutating request, in either folder.
    for folder in [&first, &second] {
        let again = folder.cloud(&["apply", "--yes", "--json"]);
        again.assert_code(0);
        assert_eq!(mutating_calls(&again.json()), 0, "{again:#?}");
    }
}

#[test]
fn a_lost_file_is_restored_and_a_key_pair_without_an_entry_gets_one() {
    let t = Test::new();
    let p = unique("team");
    // Made before the store was asked for: no entries yet.
    t.write(
        "labctl.yaml",
        &manifest(&p, None).replace("store: ssm\n", ""),
    );
    t.cloud(&["apply", "--yes"]).assert_code(0);
    let id = id_of("eu-west-1", &format!("{p}-a"));
    assert!(params("eu-west-1", &[&id]).get(&id).is_none());
    t.write("labctl.yaml", &manifest(&p, None));
    let plan = t.cloud(&["plan"]);
    assert!(plan.stdout.contains("store:"), "{plan:#?}");
    t.cloud(&["apply", "--yes"]).assert_code(0);
    let rel = format!("keys/{p}-a.pem");
    let key = std::fs::read_to_string(t.path(&rel)).unwrap();
    assert_eq!(
        params("eu-west-1", &[&id])[&id]["value"]
            .as_str()
            .unwrap()
            .trim(),
        key.trim()
    );
    // The file is lost: it comes back from the store, the same key, 0400.
    std::fs::remove_file(t.path(&rel)).unwrap();
    let plan = t.cloud(&["plan"]);
    assert!(
        plan.stdout.contains(&format!(
            "the key file comes back from SSM /ec2/keypair/{id}"
        )),
        "{plan:#?}"
    );
    let applied = t.cloud(&["apply", "--yes", "--json"]);
    applied.assert_code(0);
    assert!(calls(&applied).get("CreateKeyPair").is_none());
    // `output --offline` asks nothing, the store included.
    t.run(&["output", "--offline"]).assert_code(0);
    assert_eq!(std::fs::read_to_string(t.path(&rel)).unwrap(), key);
    assert_eq!(t.mode(&rel), 0o400);
}

#[test]
fn an_entry_holding_another_key_is_a_conflict_and_never_used() {
    let (first, second) = (Test::new(), Test::new());
    let p = unique("team");
    let text = Manifest::new(&p)
        .defaults("{ region: eu-west-1, key_type: ed25519 }")
        .key(&format!("{p}-a"), &[])
        .key(&format!("{p}-s"), &[])
        .text()
        + "store: ssm\n";
    // A key pair made elsewhere, whose entry holds some other key.
    server().ec2(&["create", "eu-west-1", &format!("{p}-a")]);
    let other = crate::support::fixture_key("ed25519-b.pem");
    entry_holding(&first, "eu-west-1", &format!("{p}-a"), &other);
    // One whose entry holds its own key, in plain text (a String, not a SecureString).
    let public = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys/ed25519-a.pub");
    server().ec2(&[
        "import",
        "eu-west-1",
        &format!("{p}-s"),
        public.to_str().unwrap(),
    ]);
    let own = crate::support::fixture_key("ed25519-a.pem");
    entry_of_type(&first, "eu-west-1", &format!("{p}-s"), &own, "String");
    second.write("labctl.yaml", &text);
    let plan = second.cloud(&["plan", "--json"]);
    for index in [0, 1] {
        assert_eq!(
            plan.json()["actions"][index]["conflict"],
            "store-mismatch",
            "{plan:#?}"
        );
    }
    let applied = second.cloud(&["apply", "--yes"]);
    assert_ne!(applied.code, 0);
    assert!(!second.path(&format!("keys/{p}-a.pem")).exists());
    assert!(!second.path(&format!("keys/{p}-s.pem")).exists());
    let handout = second.cloud(&["handout", "--from-store"]);
    assert_ne!(handout.code, 0);
    assert!(!second.path(&format!("handout/{p}-s")).exists());
}

#[test]
fn a_cloudformation_key_pair_and_its_parameter_are_adopted_then_destroyed_with_nothing_else() {
    let t = Test::new();
    let p = unique("team");
    let name = format!("{p}-cfn");
    let id = team(&["cfn-key", "eu-west-1", &name, "workshop-stack"])
        .trim()
        .to_owned();
    // Entries labctl must never touch: another key pair's, and one outside /ec2/keypair/.
    let bystander = format!("{p}-other");
    let bystander_id = team(&["cfn-key", "eu-west-1", &bystander, "other-stack"])
        .trim()
        .to_owned();
    let outside = format!("/workshop/{p}/note");
    let note = t.path("note.txt");
    std::fs::write(&note, "not a key").unwrap();
    team(&["put-param", "eu-west-1", &outside, note.to_str().unwrap()]);
    t.write(
        "labctl.yaml",
        &(Manifest::new(&p)
            .defaults("{ region: eu-west-1, key_type: ed25519 }")
            .key(&name, &[])
            .text()
            + "store: ssm\n"),
    );
    let plan = t.cloud(&["plan", "--json"]);
    assert_eq!(plan.json()["actions"][0]["action"], "adopt", "{plan:#?}");
    t.cloud(&["apply", "--yes"]).assert_code(0);
    let rel = format!("keys/{name}.pem");
    let entry = &params("eu-west-1", &[&id])[&id];
    assert_eq!(
        std::fs::read_to_string(t.path(&rel)).unwrap().trim(),
        entry["value"].as_str().unwrap().trim()
    );
    assert_eq!(entry["tags"]["labctl:project"], p.as_str());
    assert_eq!(
        server().key_pair("eu-west-1", &name).unwrap().tags["labctl:project"],
        p
    );
    t.cloud(&["destroy", "--yes"]).assert_code(0);
    assert!(server().key_pair("eu-west-1", &name).is_none());
    let names: Vec<String> = serde_json::from_str(&team(&["names", "eu-west-1"])).unwrap();
    assert!(!names.contains(&format!("/ec2/keypair/{id}")), "{names:?}");
    assert!(
        names.contains(&format!("/ec2/keypair/{bystander_id}")),
        "{names:?}"
    );
    assert!(names.contains(&outside), "{names:?}");
    assert!(server().key_pair("eu-west-1", &bystander).is_some());
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one team's story: apply, a held lock, release, a retired key shared, a missing bucket"
)]
fn two_folders_share_one_lock_and_one_journal_in_s3() {
    let (first, second) = (Test::new(), Test::new());
    let p = unique("team");
    let bucket = format!("state-{}", p.to_lowercase().replace('_', "-"));
    team(&["bucket", &bucket]);
    let state = format!("s3://{bucket}/berlin");
    first.write("labctl.yaml", &manifest(&p, Some(&state)));
    second.write("labctl.yaml", &manifest(&p, Some(&state)));
    first.cloud(&["apply", "--yes"]).assert_code(0);
    // Another machine holds the lock: refused, naming who, where and since when; nothing
    // written, nothing sent to EC2.
    let holder = serde_json::json!({"user": "alice", "host": "laptop-3", "pid": 4242,
        "command": "apply", "since": 1_796_513_315});
    team(&[
        "put-object",
        &bucket,
        "berlin/labctl.yaml.lock",
        &holder.to_string(),
    ]);
    let refused = second.cloud(&["apply", "--yes"]);
    refused.assert_code(1);
    for part in [
        "alice on laptop-3",
        "labctl apply",
        "local time",
        "aws s3api delete-object",
        "berlin/labctl.yaml.lock",
    ] {
        assert!(refused.stderr.contains(part), "{part}: {refused:#?}");
    }
    assert!(!second.path("keys").exists());
    // Released: the second folder restores, and both folders' records are in the bucket's
    // journal.
    let objects: serde_json::Value = serde_json::from_str(&team(&["objects", &bucket])).unwrap();
    assert!(objects.get("berlin/labctl.yaml.lock").is_some());
    Command::new("python3")
        .args(["-c", &format!(
            "import boto3; boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='t', aws_secret_access_key='t').delete_object(Bucket='{bucket}', Key='berlin/labctl.yaml.lock')",
            server().endpoint()
        )])
        .status()
        .unwrap();
    second.cloud(&["apply", "--yes"]).assert_code(0);
    let objects: serde_json::Value = serde_json::from_str(&team(&["objects", &bucket])).unwrap();
    assert!(
        objects.get("berlin/labctl.yaml.lock").is_none(),
        "the lock was released"
    );
    // The first folder retires a key (`--replace`): the bucket's journal says so, and the
    // second folder learns it, even after the bucket's journal is emptied by someone: no
    // machine loses records it had. No machine's file paths ever reach the bucket.
    first
        .cloud(&["apply", "--yes", "--replace", &format!("{p}-b")])
        .assert_code(0);
    let objects: serde_json::Value = serde_json::from_str(&team(&["objects", &bucket])).unwrap();
    let keys = objects[format!("berlin/{p}.keys")]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(keys.contains("retired\t"), "{keys}");
    assert!(
        !keys.contains("made\t") && !keys.contains("/keys/"),
        "{keys}"
    );
    let retired_line = keys
        .lines()
        .find(|l| l.starts_with("retired\t"))
        .unwrap()
        .to_owned();
    second.cloud(&["apply", "--yes"]);
    let own = std::fs::read_to_string(second.path(&format!(".labctl/{p}.keys"))).unwrap();
    assert!(own.contains(&retired_line), "{own}");
    team(&["put-object", &bucket, &format!("berlin/{p}.keys"), ""]);
    second.cloud(&["apply", "--yes"]);
    let own = std::fs::read_to_string(second.path(&format!(".labctl/{p}.keys"))).unwrap();
    assert!(own.contains(&retired_line), "{own}");
    let objects: serde_json::Value = serde_json::from_str(&team(&["objects", &bucket])).unwrap();
    assert!(
        objects[format!("berlin/{p}.keys")]
            .as_str()
            .unwrap()
            .contains(&retired_line)
    );
    // A missing bucket: one clear message before any change.
    let third = Test::new();
    third.write(
        "labctl.yaml",
        &manifest(&p, Some("s3://no-such-labctl-bucket/x")),
    );
    let plan = third.cloud(&["plan", "--json"]);
    assert!(
        plan.json()["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["kind"] == "shared-state-unread"),
        "{plan:#?}"
    );
    let missing = third.cloud(&["apply", "--yes"]);
    missing.assert_code(1);
    assert!(
        missing
            .stderr
            .contains("no-such-labctl-bucket does not exist"),
        "{missing:#?}"
    );
    assert!(!third.path("keys").exists());
}

#[test]
fn two_applies_at_once_from_two_folders_are_serialized() {
    let (first, second) = (Test::new(), Test::new());
    let p = unique("team");
    let bucket = format!("race-{}", p.to_lowercase().replace('_', "-"));
    team(&["bucket", &bucket]);
    let state = format!("s3://{bucket}/p");
    // Enough keys that each apply takes a while.
    let mut m =
        Manifest::new(&p).defaults("{ regions: [eu-west-1, us-east-1], key_type: ed25519 }");
    for i in 0..20 {
        m = m.key(&format!("{p}-n{i}"), &[]);
    }
    let text = m.text() + &format!("store: ssm\nstate: {state}\n");
    first.write("labctl.yaml", &text);
    second.write("labctl.yaml", &text);
    let endpoint = server().endpoint();
    let spawn = |t: &Test| {
        t.command(&["apply", "--yes", "--endpoint-url", &endpoint])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(&first), spawn(&second));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let refused = [&a, &b]
        .iter()
        .filter(|o| {
            String::from_utf8_lossy(&o.stderr).contains("another labctl holds the shared lock")
        })
        .count();
    let succeeded = [&a, &b].iter().filter(|o| o.status.success()).count();
    // Never two at once: one refused while the other held the lock, or one after the other;
    // never a key made twice.
    assert_eq!(refused + succeeded, 2, "{a:?}\n{b:?}");
    assert!(succeeded >= 1);
    for i in 0..20 {
        let name = format!("{p}-n{i}");
        assert!(server().key_pair("eu-west-1", &name).is_some());
    }
    // Whichever lost the race gets the keys from the store.
    for t in [&first, &second] {
        t.cloud(&["apply", "--yes"]).assert_code(0);
        assert_eq!(
            std::fs::read(first.path(&format!("keys/{p}-n7.pem"))).unwrap(),
            std::fs::read(t.path(&format!("keys/{p}-n7.pem"))).unwrap()
        );
    }
}

#[test]
fn no_key_material_in_any_output_or_log_at_vv() {
    let (first, second) = (Test::new(), Test::new());
    let p = unique("team");
    first.write("labctl.yaml", &manifest(&p, None));
    second.write("labctl.yaml", &manifest(&p, None));
    let mut seen = String::new();
    for (t, args) in [
        (&first, &["apply", "--yes", "-vv"][..]),
        (&second, &["plan", "-vv"]),
        (&second, &["apply", "--yes", "-vv", "--json"]),
        (&first, &["destroy", "--yes", "-vv"]),
    ] {
        let run = t.cloud(args);
        run.assert_code(0);
        seen.push_str(&run.stdout);
        seen.push_str(&run.stderr);
    }
    assert!(
        seen.contains("PutParameter") && seen.contains("GetParameter"),
        "the log shows the requests"
    );
    for secret in ["PRIVATE KEY", "b3BlbnNzaC1rZXktdjE"] {
        assert!(!seen.contains(secret), "{secret} in the output");
    }
}

#[test]
fn store_and_state_mistakes_are_reported_on_their_lines() {
    let t = Test::new();
    let p = unique("team");
    let text = Manifest::new(&p)
        .defaults("{ region: eu-west-1 }")
        .key(&format!("{p}-a"), &[])
        .text()
        + "store: { ssm: { kms_key_id: workshop } }\nstate: workshop-state/berlin\n";
    t.write("labctl.yaml", &text);
    let run = t.run(&["validate"]);
    run.assert_code(1);
    for part in [
        "store.ssm.kms_key_id",
        "labctl.yaml:6",
        "`state` is an S3 place",
        "labctl.yaml:7",
    ] {
        assert!(run.stderr.contains(part), "{part}: {run:#?}");
    }
    t.write(
        "labctl.yaml",
        &text.replace("{ ssm: { kms_key_id: workshop } }", "s3"),
    );
    let run = t.run(&["validate"]);
    run.assert_code(1);
    assert!(run.stderr.contains("unknown store `s3`"), "{run:#?}");
}

/// A team bucket and its `state:` place for this test.
fn state_bucket(p: &str) -> (String, String) {
    let bucket = format!("state-{}", p.to_lowercase().replace('_', "-"));
    team(&["bucket", &bucket]);
    let state = format!("s3://{bucket}/w");
    (bucket, state)
}

/// The bucket's object `key`, with `line` appended (another machine's, or a forger's, write).
fn append_to_object(bucket: &str, key: &str, line: &str) {
    let objects: serde_json::Value = serde_json::from_str(&team(&["objects", bucket])).unwrap();
    let body = objects[key].as_str().unwrap_or_default().to_owned() + line;
    team(&["put-object", bucket, key, &body]);
}

#[test]
fn a_machine_with_an_old_key_file_never_replaces_the_teams_current_key() {
    let (first, second) = (Test::new(), Test::new());
    let p = unique("team");
    let (_, state) = state_bucket(&p);
    first.write("labctl.yaml", &manifest(&p, Some(&state)));
    second.write("labctl.yaml", &manifest(&p, Some(&state)));
    first.cloud(&["apply", "--yes"]).assert_code(0);
    second.cloud(&["apply", "--yes"]).assert_code(0);
    // The first machine replaces a key: its old key is retired in the shared journal.
    let name = format!("{p}-a");
    first
        .cloud(&["apply", "--yes", "--replace", &name])
        .assert_code(0);
    let current = server().key_pair("eu-west-1", &name).unwrap().public_key;
    // The second machine still has the old file: a conflict that says how to get the current
    // key, never a replacement of the key the first machine just made.
    let applied = second.cloud(&["apply", "--yes", "--json"]);
    assert_eq!(applied.code, 1, "{applied:#?}");
    let api = calls(&applied);
    for op in [
        "DeleteKeyPair",
        "CreateKeyPair",
        "ImportKeyPair",
        "DeleteParameter",
    ] {
        assert!(api.get(op).is_none(), "{op} sent: {applied:#?}");
    }
    assert!(
        applied
            .stdout
            .contains("aside and `labctl apply` restores it"),
        "{applied:#?}"
    );
    let report = applied.json();
    let conflicts: Vec<&str> = report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == name.as_str())
        .filter_map(|a| a["conflict"].as_str())
        .collect();
    assert_eq!(
        conflicts,
        ["stale-key-file", "stale-key-file"],
        "{applied:#?}"
    );
    assert!(
        !applied.stdout.contains("apply --replace"),
        "never advised: {applied:#?}"
    );
    assert_eq!(
        server().key_pair("eu-west-1", &name).unwrap().public_key,
        current
    );
    // Moved aside, the current key comes back from the store.
    let rel = format!("keys/{name}.pem");
    std::fs::rename(second.path(&rel), second.path(&format!("{rel}.old"))).unwrap();
    second.cloud(&["apply", "--yes"]).assert_code(0);
    assert_eq!(
        std::fs::read(first.path(&rel)).unwrap(),
        std::fs::read(second.path(&rel)).unwrap()
    );
}

#[test]
fn a_forged_shared_journal_cannot_replace_a_key_or_reach_another_account() {
    let t = Test::new();
    let p = unique("team");
    let (bucket, state) = state_bucket(&p);
    t.write("labctl.yaml", &manifest(&p, Some(&state)));
    t.cloud(&["apply", "--yes"]).assert_code(0);
    let name = format!("{p}-a");
    let before = server().key_pair("eu-west-1", &name).unwrap().public_key;
    // A key of this project in an account the manifest never named.
    let victim = crate::support::unique_account();
    let bastion = format!("{p}-bastion");
    server().ec2(&["create", &format!("{victim}:eu-west-1"), &bastion]);
    server().ec2(&[
        "tag",
        &format!("{victim}:eu-west-1"),
        &bastion,
        "labctl:project",
        &p,
    ]);
    // Someone who may write the bucket: the current key "retired", the account "reached".
    let fingerprint = crate::support::public_key_of(&t.path(&format!("keys/{name}.pem")));
    let fingerprint = fingerprint
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let sha = Command::new("ssh-keygen")
        .args(["-lf", t.path(&format!("keys/{name}.pem")).to_str().unwrap()])
        .output()
        .unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or(&fingerprint)
        .to_owned();
    append_to_object(
        &bucket,
        &format!("w/{p}.keys"),
        &format!("retired\t00aa\t{sha}\n"),
    );
    let reached = serde_json::json!({"id": victim, "name": "victim",
        "role_arn": format!("arn:aws:iam::{victim}:role/OrganizationAccountAccessRole"),
        "session_name": format!("labctl-{p}"), "regions": ["eu-west-1"], "names": [bastion]});
    append_to_object(
        &bucket,
        "w/labctl.yaml.journal",
        &format!("reached\t00aa\t{reached}\n"),
    );
    let run = t.cloud(&["apply", "--yes", "--prune", "--json"]);
    run.assert_code(0);
    assert_eq!(mutating_calls(&run.json()), 0, "{run:#?}");
    assert_eq!(
        server().key_pair("eu-west-1", &name).unwrap().public_key,
        before
    );
    assert!(
        server()
            .key_pair(&format!("{victim}:eu-west-1"), &bastion)
            .is_some()
    );
    // A forged `deleted` record: destroy still deletes the key pair (and its entry).
    let id = id_of("eu-west-1", &name);
    append_to_object(
        &bucket,
        "w/labctl.yaml.journal",
        &format!("deleted\t0\t{id}\n"),
    );
    append_to_object(
        &bucket,
        &format!("w/{p}.keys"),
        &format!("deleted\t0\t{id}\n"),
    );
    t.cloud(&["destroy", "--yes"]).assert_code(0);
    assert!(server().key_pair("eu-west-1", &name).is_none());
    assert!(params("eu-west-1", &[&id]).get(&id).is_none());
    assert!(
        server()
            .key_pair(&format!("{victim}:eu-west-1"), &bastion)
            .is_some()
    );
}

#[test]
fn another_projects_key_pairs_and_entries_are_never_used_or_taken_over() {
    let (berlin, munich, paris) = (Test::new(), Test::new(), Test::new());
    let p = unique("team");
    let name = format!("{p}-shared-name");
    let entry = |project: &str, regions: &str| {
        Manifest::new(project)
            .defaults(&format!("{{ regions: {regions}, key_type: ed25519 }}"))
            .key(&name, &[])
            .text()
            + "store: ssm\n"
    };
    berlin.write("labctl.yaml", &entry(&format!("{p}-berlin"), "[eu-west-1]"));
    berlin.cloud(&["apply", "--yes"]).assert_code(0);
    // Another project, the same name, another region besides: its key is not this one's.
    munich.write(
        "labctl.yaml",
        &entry(&format!("{p}-munich"), "[eu-west-1, us-west-2]"),
    );
    let run = munich.cloud(&["apply", "--yes", "--json"]);
    assert_eq!(run.code, 1);
    assert!(calls(&run).get("ImportKeyPair").is_none(), "{run:#?}");
    assert!(server().key_pair("us-west-2", &name).is_none());
    assert!(!munich.path(&format!("keys/{name}.pem")).exists());
    // An untagged key pair whose entry another project tagged: not taken over.
    let other = format!("{p}-lab-x");
    let id = team(&["cfn-key", "eu-west-1", &other, "stack"])
        .trim()
        .to_owned();
    Command::new("python3")
        .args(["-c", &format!(
            "import boto3; boto3.client('ssm', endpoint_url='{}', region_name='eu-west-1', aws_access_key_id='t', aws_secret_access_key='t').add_tags_to_resource(ResourceType='Parameter', ResourceId='/ec2/keypair/{id}', Tags=[{{'Key': 'labctl:project', 'Value': 'zurich'}}])",
            server().endpoint()
        )])
        .status()
        .unwrap();
    paris.write(
        "labctl.yaml",
        &(Manifest::new(&format!("{p}-paris"))
            .defaults("{ region: eu-west-1, key_type: ed25519 }")
            .key(&other, &[])
            .text()
            + "store: ssm\n"),
    );
    let run = paris.cloud(&["apply", "--yes", "--json"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(calls(&run).get("AddTagsToResource").is_none(), "{run:#?}");
    assert!(!paris.path(&format!("keys/{other}.pem")).exists());
    assert_eq!(
        params("eu-west-1", &[&id])[&id]["tags"]["labctl:project"],
        "zurich"
    );
}

#[test]
fn an_entry_whose_key_pair_was_deleted_outside_labctl_is_said() {
    let t = Test::new();
    let p = unique("team");
    t.write(
        "labctl.yaml",
        &(Manifest::new(&p)
            .defaults("{ region: eu-west-1, key_type: ed25519 }")
            .key(&format!("{p}-a"), &[])
            .key(&format!("{p}-b"), &[])
            .text()
            + "store: ssm\n"),
    );
    t.cloud(&["apply", "--yes"]).assert_code(0);
    let id = id_of("eu-west-1", &format!("{p}-a"));
    server().ec2(&["delete", "eu-west-1", &format!("{p}-a")]);
    let run = t.cloud(&["destroy", "--yes", "--json"]);
    run.assert_code(0);
    let warnings = run.json()["warnings"].clone();
    assert!(
        warnings
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["kind"] == "store-entry-without-key-pair"
                && w["parameter"] == format!("/ec2/keypair/{id}")),
        "{run:#?}"
    );
    // Said, never deleted: labctl deletes an entry only with its key pair.
    assert!(params("eu-west-1", &[&id]).get(&id).is_some());
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one story: the store's good and bad entries, bundled"
)]
fn handout_from_the_store_needs_no_key_file_and_never_uses_another_key() {
    let (first, second) = (Test::new(), Test::new());
    let p = unique("team");
    first.write("labctl.yaml", &manifest(&p, None));
    first.cloud(&["apply", "--yes"]).assert_code(0);
    let (a, b) = (
        crate::support::fixture_key("ed25519-a.pem"),
        crate::support::fixture_key("ed25519-b.pem"),
    );
    // A key pair made elsewhere whose entry holds some other key.
    server().ec2(&["create", "eu-west-1", &format!("{p}-c")]);
    entry_holding(&first, "eu-west-1", &format!("{p}-c"), &b);
    // A key pair whose entry holds its key and a second key after it (smuggled into any
    // bundle or key file made from it), and one whose two places hold two keys.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
    let public = |name: &str| fixtures.join(name).to_str().unwrap().to_owned();
    let (a_pub, b_pub) = (public("ed25519-a.pub"), public("ed25519-b.pub"));
    server().ec2(&["import", "eu-west-1", &format!("{p}-d"), &a_pub]);
    entry_holding(&first, "eu-west-1", &format!("{p}-d"), &format!("{a}{b}"));
    server().ec2(&["import", "eu-west-1", &format!("{p}-e"), &a_pub]);
    server().ec2(&["import", "us-east-1", &format!("{p}-e"), &b_pub]);
    entry_holding(&first, "eu-west-1", &format!("{p}-e"), &a);
    // The second machine has the manifest (with those key pairs too) and no key file.
    second.write(
        "labctl.yaml",
        &manifest(&p, None).replace(
            &format!("  - name: {p}-b\n"),
            &format!("  - name: {p}-b\n  - name: {p}-c\n  - name: {p}-d\n  - name: {p}-e\n"),
        ),
    );
    assert!(
        std::fs::read_to_string(second.path("labctl.yaml"))
            .unwrap()
            .contains(&format!("{p}-c"))
    );
    let offline = second.run(&["handout", "--json"]);
    offline.assert_code(1);
    assert!(!second.path(&format!("handout/{p}-a")).exists());
    let run = second.cloud(&["handout", "--from-store", "--json"]);
    run.assert_code(1);
    let bundles = run.json()["bundles"].clone();
    let status = |name: &str| {
        bundles
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {bundles}"))
            .clone()
    };
    for name in [format!("{p}-a"), format!("{p}-b")] {
        assert_eq!(status(&name)["status"], "written", "{run:#?}");
        let bundled = second.path(&format!("handout/{name}/{name}.pem"));
        assert_eq!(
            std::fs::read(&bundled).unwrap(),
            std::fs::read(first.path(&format!("keys/{name}.pem"))).unwrap()
        );
        assert_eq!(second.mode(&format!("handout/{name}/{name}.pem")), 0o400);
    }
    // An entry holding another key, or the key and more, is never handed out; nor is a key
    // one of the entry's places does not hold.
    for (name, why) in [
        ("c", "no entry of the team store"),
        ("d", "no entry of the team store"),
        ("e", "us-east-1 does not hold the key"),
    ] {
        let skipped = status(&format!("{p}-{name}"));
        assert_eq!(skipped["status"], "skipped", "{run:#?}");
        assert!(
            skipped["reason"].as_str().unwrap().contains(why),
            "{skipped}"
        );
        assert!(!second.path(&format!("handout/{p}-{name}")).exists());
    }
    // plan says what is wrong with the smuggling entry, and apply never restores from it.
    let plan = second.cloud(&["plan", "--json"]);
    let d_conflict = plan.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == format!("{p}-d"))
        .map(|a| a["conflict"].clone());
    assert_eq!(d_conflict, Some("store-mismatch".into()), "{plan:#?}");
    // No key file was written: the keys went into the bundles only.
    assert!(!second.path("keys").exists());
    // Bundles never go where a key folder is: a key pair named like the key folder, with
    // --out beside it, would make its bundle the key folder and its key the key file.
    let folder = Test::new();
    folder.write(
        "labctl.yaml",
        &manifest(&p, None).replace(&format!("  - name: {p}-b\n"), "  - name: keys\n"),
    );
    let refused = folder.cloud(&["handout", "--from-store", "--out", "."]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("key folder"), "{refused:#?}");
    assert!(!folder.path("keys").exists());
    assert!(!run.stdout.contains("PRIVATE KEY") && !run.stderr.contains("PRIVATE KEY"));
    // Without `store:` in the manifest, --from-store is a mistake that writes nothing.
    let plain = Test::new();
    plain.write(
        "labctl.yaml",
        &manifest(&p, None).replace("store: ssm\n", ""),
    );
    let refused = plain.cloud(&["handout", "--from-store"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("store: ssm"), "{refused:#?}");
    assert!(!plain.path("handout").exists());
}
