//! The whole life of a workshop's key pairs: key sources, per-attendee keys, tag drift,
//! adoption, prune, replace, destroy and output — against the local EC2 server.

use crate::support::{
    Proxy, Test, fixture_key, mutating_calls, public_key_of, server, strip_comment, unique,
};

fn calls(json: &serde_json::Value, op: &str) -> u64 {
    json["api_calls"][op].as_u64().unwrap_or(0)
}

#[test]
fn local_keys_are_generated_saved_first_and_imported_everywhere() {
    let test = Test::new();
    let project = unique("local");
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults:\n  source: local\n  regions: [us-east-1, eu-west-1]\nkeypairs:\n  - name: {project}-ed\n    key_type: ed25519\n  - name: {project}-rsa\n    key_type: rsa\n    bits: 3072\n"
        ),
    );
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    let json = run.json();
    assert_eq!(
        calls(&json, "CreateKeyPair"),
        0,
        "EC2 must never generate a local key: {json:#}"
    );
    assert_eq!(calls(&json, "ImportKeyPair"), 4, "{json:#}");
    for (name, header) in [("ed", "OPENSSH PRIVATE KEY"), ("rsa", "RSA PRIVATE KEY")] {
        let file = format!("keys/{project}-{name}.pem");
        assert_eq!(test.mode(&file), 0o400);
        assert!(
            std::fs::read_to_string(test.path(&file))
                .unwrap()
                .contains(header)
        );
        let local = public_key_of(&test.path(&file));
        for region in ["us-east-1", "eu-west-1"] {
            let remote = server()
                .key_pair(region, &format!("{project}-{name}"))
                .unwrap();
            assert_eq!(
                strip_comment(&remote.public_key),
                local,
                "{name} in {region}"
            );
            assert_eq!(remote.tags.get("labctl:project"), Some(&project));
        }
    }
    // The RSA key has the 3072 bits asked for (ssh-keygen reads the size, not labctl).
    let listed = std::process::Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(test.path(&format!("keys/{project}-rsa.pem")))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.starts_with("3072 SHA256:"), "{listed}");
    assert_eq!(mutating_calls(&test.cloud(&["apply", "--json"]).json()), 0);
}

/// "Saved first": a locally made key is on disk (0400) before EC2 hears of it, so an import
/// that fails loses nothing, and the next run imports that same key.
#[test]
fn a_local_key_is_saved_before_its_import_and_survives_a_failed_one() {
    let test = Test::new();
    let project = unique("savedfirst");
    let name = format!("{project}-ed");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\nkeypairs:\n  - name: {name}\n    region: us-east-1\n    source: local\n    key_type: ed25519\n"),
    );
    let proxy = Proxy::faults(&serde_json::json!([
        {"action": "ImportKeyPair", "fault": "denied", "count": 100}
    ]));
    test.via(&proxy, &["apply", "--json"]).assert_code(1);
    assert_eq!(proxy.stats()["faults"]["denied"], 1, "{}", proxy.stats());
    let file = format!("keys/{name}.pem");
    assert_eq!(test.mode(&file), 0o400);
    let saved = public_key_of(&test.path(&file));
    assert!(server().key_pair("us-east-1", &name).is_none());
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    assert_eq!(run.json()["summary"]["import"], 1, "{}", run.stdout);
    let remote = server().key_pair("us-east-1", &name).unwrap();
    assert_eq!(strip_comment(&remote.public_key), saved);
}

#[test]
fn an_existing_public_key_is_imported_and_compared() {
    let test = Test::new();
    let project = unique("pubkey");
    std::fs::write(test.path("mine.pub"), fixture_key("rsa-pkcs1.pub")).unwrap();
    let inline = strip_comment(&fixture_key("ed25519-a.pub"));
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1 }}\nkeypairs:\n  - name: {project}-file\n    public_key: mine.pub\n  - name: {project}-inline\n    public_key: \"{inline}\"\n"
        ),
    );
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    assert_eq!(calls(&run.json(), "ImportKeyPair"), 2, "{}", run.stdout);
    assert!(
        !test.path("keys").exists(),
        "no private key file for public_key entries"
    );
    let remote = server()
        .key_pair("us-east-1", &format!("{project}-file"))
        .unwrap();
    assert_eq!(
        strip_comment(&remote.public_key),
        strip_comment(&fixture_key("rsa-pkcs1.pub"))
    );
    assert_eq!(remote.key_type.as_deref(), Some("rsa"));
    assert_eq!(mutating_calls(&test.cloud(&["apply", "--json"]).json()), 0);

    // The manifest now names another key: drift, judged by public key, is a conflict.
    std::fs::write(test.path("mine.pub"), fixture_key("rsa-openssh.pub")).unwrap();
    let run = test.cloud(&["plan", "--json"]);
    run.assert_code(1);
    assert_eq!(
        run.json()["actions"][0]["conflict"],
        "mismatch",
        "{}",
        run.stdout
    );
}

#[test]
fn changing_the_key_type_of_an_existing_key_pair_is_a_conflict() {
    let test = Test::new();
    let project = unique("ktype");
    let manifest = |t: &str| {
        format!(
            "version: 1\nproject: {project}\nkeypairs:\n  - name: {project}-k\n    region: us-east-1\n    key_type: {t}\n"
        )
    };
    test.write("labctl.yaml", &manifest("ed25519"));
    test.cloud(&["apply"]).assert_code(0);
    test.write("labctl.yaml", &manifest("rsa"));
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(1);
    let json = run.json();
    assert_eq!(json["actions"][0]["conflict"], "key-type", "{json:#}");
    assert_eq!(mutating_calls(&json), 0);
}

#[test]
fn count_and_for_each_make_one_key_pair_per_attendee() {
    let test = Test::new();
    let project = unique("attendees");
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: ${{project}}-seat-${{index}}\n    count: 10\n    tags: {{ Seat: \"${{index}}\" }}\n  - name: ${{project}}-${{item}}\n    for_each: [alice, bob]\n    output: keys/people/${{item}}.pem\n"
        ),
    );
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    let json = run.json();
    assert_eq!(json["summary"]["create"], 12, "{json:#}");
    for seat in ["1", "5", "10"] {
        assert_eq!(test.mode(&format!("keys/{project}-seat-{seat}.pem")), 0o400);
        let remote = server()
            .key_pair("us-east-1", &format!("{project}-seat-{seat}"))
            .unwrap();
        assert_eq!(remote.tags.get("Seat").map(String::as_str), Some(seat));
    }
    for person in ["alice", "bob"] {
        assert_eq!(test.mode(&format!("keys/people/{person}.pem")), 0o400);
        assert!(
            server()
                .key_pair("us-east-1", &format!("{project}-{person}"))
                .is_some()
        );
    }
}

#[test]
fn names_that_collide_after_expansion_are_refused() {
    let test = Test::new();
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\ndefaults: { region: us-east-1 }\nkeypairs:\n  - name: lab-seat\n    count: 2\n  - name: lab-${item}\n    for_each: [a, a]\n  - name: x\n    count: 2\n    for_each: [a]\n",
    );
    let run = test.run(&["validate"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("key pair `lab-seat` is listed twice in us-east-1"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("entry needs its own name"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`a` is listed twice"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("give either `count` or `for_each`, not both"),
        "{}",
        run.stderr
    );
}

#[test]
fn tag_drift_is_fixed_in_one_request_and_foreign_tags_are_kept_unless_purged() {
    let test = Test::new();
    let project = unique("tags");
    let manifest = |owner: &str, purge: bool| {
        format!(
            "version: 1\nproject: {project}\ndefaults:\n  region: us-east-1\n  key_type: ed25519\n  purge_tags: {purge}\n  tags: {{ Owner: {owner} }}\nkeypairs:\n  - name: {project}-a\n  - name: {project}-b\n"
        )
    };
    test.write("labctl.yaml", &manifest("alice", false));
    test.cloud(&["apply"]).assert_code(0);
    // Someone adds a tag of their own in the console.
    for name in ["a", "b"] {
        server().ec2(&[
            "tag",
            "us-east-1",
            &format!("{project}-{name}"),
            "CostCenter",
            "42",
        ]);
    }
    test.write("labctl.yaml", &manifest("bob", false));
    let plan = test.cloud(&["plan", "--json"]);
    let json = plan.json();
    assert_eq!(json["summary"]["update-tags"], 2, "{json:#}");
    assert!(
        json["actions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("Owner=bob"),
        "{json:#}"
    );

    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    let json = run.json();
    assert_eq!(
        calls(&json, "CreateTags"),
        1,
        "one request for both key pairs: {json:#}"
    );
    assert_eq!(calls(&json, "DeleteTags"), 0, "{json:#}");
    let a = server()
        .key_pair("us-east-1", &format!("{project}-a"))
        .unwrap();
    assert_eq!(a.tags.get("Owner").map(String::as_str), Some("bob"));
    assert_eq!(
        a.tags.get("CostCenter").map(String::as_str),
        Some("42"),
        "a foreign tag was removed"
    );
    assert_eq!(mutating_calls(&test.cloud(&["apply", "--json"]).json()), 0);

    test.write("labctl.yaml", &manifest("bob", true));
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    assert_eq!(calls(&run.json(), "DeleteTags"), 1, "{}", run.stdout);
    let a = server()
        .key_pair("us-east-1", &format!("{project}-a"))
        .unwrap();
    assert!(!a.tags.contains_key("CostCenter"), "{:?}", a.tags);
    assert_eq!(a.tags.get("labctl:project"), Some(&project));
}

#[test]
fn a_matching_key_pair_made_by_hand_is_adopted() {
    let test = Test::new();
    let project = unique("adopt");
    let name = format!("{project}-k");
    // Made earlier by hand, as a workshop guide does: no ownership tag.
    std::fs::write(test.path("k.pub"), fixture_key("ed25519-b.pub")).unwrap();
    server().ec2(&[
        "import",
        "us-east-1",
        &name,
        test.path("k.pub").to_str().unwrap(),
    ]);
    test.write("keys/k.pem", &fixture_key("ed25519-b.pem"));
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\nkeypairs:\n  - name: {name}\n    region: us-east-1\n    key_type: ed25519\n    output: keys/k.pem\n    tags: {{ Team: blue }}\n"),
    );
    let plan = test.cloud(&["plan", "--json"]);
    assert_eq!(
        plan.json()["actions"][0]["action"],
        "adopt",
        "{}",
        plan.stdout
    );
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    let json = run.json();
    assert_eq!(calls(&json, "CreateTags"), 1, "{json:#}");
    let remote = server().key_pair("us-east-1", &name).unwrap();
    assert_eq!(remote.tags.get("labctl:project"), Some(&project));
    assert_eq!(remote.tags.get("Team").map(String::as_str), Some("blue"));
    // The loose file mode was fixed along with the adoption.
    assert_eq!(test.mode("keys/k.pem"), 0o400);
    assert_eq!(mutating_calls(&test.cloud(&["apply", "--json"]).json()), 0);
}

#[test]
fn prune_deletes_only_owned_key_pairs_no_longer_listed() {
    let test = Test::new();
    let project = unique("prune");
    let both = format!(
        "version: 1\nproject: {project}\ndefaults: {{ region: us-west-2, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-keep\n  - name: {project}-gone\n"
    );
    test.write("labctl.yaml", &both);
    test.cloud(&["apply"]).assert_code(0);
    // A key pair nobody tagged, in the same region: prune must never touch it.
    server().ec2(&["create", "us-west-2", &format!("{project}-unowned")]);
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-west-2, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-keep\n"),
    );
    let plan = test.cloud(&["plan", "--json"]);
    plan.assert_code(0);
    let json = plan.json();
    let orphans: Vec<&serde_json::Value> = json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "orphan")
        .collect();
    assert_eq!(orphans.len(), 1, "{json:#}");
    assert_eq!(orphans[0]["name"], format!("{project}-gone"));

    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    assert_eq!(
        mutating_calls(&run.json()),
        0,
        "without --prune nothing is deleted"
    );
    assert!(
        server()
            .key_pair("us-west-2", &format!("{project}-gone"))
            .is_some()
    );

    let run = test.cloud(&["apply", "--prune", "--yes", "--json"]);
    run.assert_code(0);
    assert_eq!(calls(&run.json(), "DeleteKeyPair"), 1, "{}", run.stdout);
    assert!(
        server()
            .key_pair("us-west-2", &format!("{project}-gone"))
            .is_none()
    );
    assert!(
        server()
            .key_pair("us-west-2", &format!("{project}-unowned"))
            .is_some()
    );
    // Without --purge-local the pruned key pair's file is retired (moved aside), as destroy
    // does: a seat added back later gets a new key.
    assert!(!test.path(&format!("keys/{project}-gone.pem")).exists());
    let retired = std::fs::read_dir(test.path("keys"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{project}-gone.pem.retired-"))
        })
        .count();
    assert_eq!(
        retired, 1,
        "the key file is kept aside without --purge-local"
    );
}

#[test]
fn prune_with_purge_local_removes_the_orphans_file() {
    let test = Test::new();
    let project = unique("purge");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-west-2, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-keep\n  - name: {project}-gone\n"),
    );
    test.cloud(&["apply"]).assert_code(0);
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-west-2, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-keep\n"),
    );
    test.cloud(&["apply", "--prune", "--purge-local", "--yes"])
        .assert_code(0);
    assert!(!test.path(&format!("keys/{project}-gone.pem")).exists());
    assert!(test.path(&format!("keys/{project}-keep.pem")).exists());
}

#[test]
fn replace_recreates_an_owned_key_pair_and_keeps_the_old_file() {
    let test = Test::new();
    let project = unique("replace");
    let name = format!("{project}-k");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\nkeypairs:\n  - name: {name}\n    regions: [us-east-1, eu-west-1]\n    key_type: ed25519\n"),
    );
    test.cloud(&["apply"]).assert_code(0);
    let file = test.path(&format!("keys/{name}.pem"));
    // The file now holds some other key: a mismatch that only --replace resolves.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, fixture_key("ed25519-a.pem")).unwrap();
    test.cloud(&["apply"]).assert_code(1);

    // Refused with the reason, and nothing that changes anything is sent (the proxy counts).
    let proxy = Proxy::start(&[]);
    let one_region = format!("{name}@us-east-1");
    for (target, why) in [
        (one_region.as_str(), "is shared by 2 regions"),
        ("nonexistent", "the manifest has no key pair of that name"),
    ] {
        let run = test.via(&proxy, &["apply", "--replace", target, "--yes"]);
        run.assert_code(1);
        assert!(run.stderr.contains(why), "{target}: {run:?}");
    }
    // Replacing deletes: refused without --yes off a terminal.
    let refused = test.via(&proxy, &["apply", "--replace", &name, "--json"]);
    refused.assert_code(1);
    assert_eq!(refused.json()["error"]["kind"], "usage");
    let seen = proxy.stats()["requests"].clone();
    assert_eq!(
        seen.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["DescribeKeyPairs"],
        "{seen}"
    );
    let run = test.cloud(&["apply", "--replace", &name, "--json", "--yes"]);
    run.assert_code(0);
    let json = run.json();
    assert_eq!(json["summary"]["replace"], 2, "{json:#}");
    let aside: Vec<String> = std::fs::read_dir(test.path("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read_to_string(test.path(&format!("keys/{}", aside[0]))).unwrap(),
        fixture_key("ed25519-a.pem")
    );
    let new_key = public_key_of(&file);
    assert_ne!(new_key, strip_comment(&fixture_key("ed25519-a.pub")));
    assert_eq!(test.mode(&format!("keys/{name}.pem")), 0o400);
    for region in ["us-east-1", "eu-west-1"] {
        assert_eq!(
            strip_comment(&server().key_pair(region, &name).unwrap().public_key),
            new_key,
            "{region}"
        );
    }
    assert_eq!(mutating_calls(&test.cloud(&["apply", "--json"]).json()), 0);
}

#[test]
fn replace_refuses_key_pairs_this_manifest_does_not_own() {
    let test = Test::new();
    let project = unique("notmine");
    let name = format!("{project}-k");
    server().ec2(&["create", "us-east-1", &name]);
    test.write("labctl.yaml", &format!("version: 1\nproject: {project}\nkeypairs:\n  - name: {name}\n    region: us-east-1\n    key_type: ed25519\n"));
    let run = test.cloud(&["apply", "--replace", &name, "--json"]);
    run.assert_code(1);
    let json = run.json();
    assert_eq!(json["actions"][0]["conflict"], "not-owned", "{json:#}");
    assert_eq!(mutating_calls(&json), 0);
    assert!(server().key_pair("us-east-1", &name).is_some());
}

#[test]
fn destroy_asks_deletes_owned_key_pairs_retires_files_and_is_idempotent() {
    let test = Test::new();
    let project = unique("destroy");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ regions: [us-east-1, eu-west-1], key_type: ed25519 }}\nkeypairs:\n  - name: {project}-a\n"),
    );
    test.cloud(&["apply"]).assert_code(0);
    // No terminal to ask on, no --yes: refuse, change nothing.
    let run = test.cloud(&["destroy"]);
    run.assert_code(1);
    assert!(run.stderr.contains("needs --yes"), "{}", run.stderr);
    assert!(
        server()
            .key_pair("us-east-1", &format!("{project}-a"))
            .is_some()
    );

    let run = test.cloud(&["destroy", "--yes", "--json"]);
    run.assert_code(0);
    assert_eq!(calls(&run.json(), "DeleteKeyPair"), 2, "{}", run.stdout);
    for region in ["us-east-1", "eu-west-1"] {
        assert!(
            server().key_pair(region, &format!("{project}-a")).is_none(),
            "{region}"
        );
    }
    // Without --purge-local the file is retired: moved aside, never removed.
    assert!(!test.path(&format!("keys/{project}-a.pem")).exists());
    let retired: Vec<String> = std::fs::read_dir(test.path("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{project}-a.pem.retired-")))
        .collect();
    assert_eq!(retired.len(), 1, "{retired:?}");

    let again = test.cloud(&["destroy", "--yes"]);
    again.assert_code(0);
    assert!(
        again.stdout.contains("Nothing to destroy"),
        "{}",
        again.stdout
    );
}

#[test]
fn destroy_with_purge_local_removes_the_key_files() {
    let test = Test::new();
    let project = unique("destroyall");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-a\n"),
    );
    test.cloud(&["apply"]).assert_code(0);
    test.cloud(&["destroy", "--yes", "--purge-local"])
        .assert_code(0);
    assert!(!test.path(&format!("keys/{project}-a.pem")).exists());
}

#[test]
fn output_shows_ids_fingerprints_and_shell_variables() {
    let test = Test::new();
    let project = unique("output");
    std::fs::write(test.path("rsa.pub"), fixture_key("rsa-pkcs1.pub")).unwrap();
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\nkeypairs:\n  - name: {project}-imported\n    region: us-east-1\n    public_key: rsa.pub\n"),
    );
    test.cloud(&["apply"]).assert_code(0);
    let run = test.cloud(&["output", "--json"]);
    run.assert_code(0);
    let json = run.json();
    let row = &json["keypairs"][0];
    assert!(row["id"].as_str().unwrap().starts_with("key-"), "{json:#}");
    // Imported RSA: MD5 of the public key's SubjectPublicKeyInfo, as AWS documents.
    let expected = fixture_key("rsa-pkcs1.md5");
    assert_eq!(row["fingerprint"], expected.trim(), "{json:#}");
    assert_eq!(row["local_fingerprint"], expected.trim(), "{json:#}");

    let text = test.cloud(&["output"]);
    assert!(
        text.stdout.contains("KEY PAIR ID") && text.stdout.contains(&format!("{project}-imported")),
        "{}",
        text.stdout
    );

    let env = test.cloud(&["output", "--format", "env"]);
    env.assert_code(0);
    let script = format!("{}\nprintf '%s' \"$LABCTL_KEY_NAME\"", env.stdout);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{project}-imported"),
        "{}",
        env.stdout
    );
}

/// `output --format env`: names that would become one variable are an error (not "the last
/// wins"), and hostile names and paths are quoted so that `eval` runs nothing.
#[test]
fn output_env_refuses_colliding_names_and_quotes_hostile_ones() {
    let test = Test::new();
    let project = unique("env");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-east-1 }}\nkeypairs:\n  - name: {project}-lab-a\n  - name: {project}-lab_a\n"),
    );
    let run = test.cloud(&["output", "--format", "env"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("both become LABCTL_KEY_NAME_"),
        "{run:?}"
    );
    assert_eq!(run.stdout, "");

    let hostile = format!("{project}-it's$(touch pwned)`x`");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ region: us-east-1 }}\nkeypairs:\n  - name: \"{hostile}\"\n    output: \"keys/a b;touch pwned2.pem\"\n"),
    );
    let run = test.cloud(&["output", "--format", "env"]);
    run.assert_code(0);
    let script = format!(
        "{}\nprintf '%s\\n' \"$LABCTL_KEY_NAME\" \"$LABCTL_KEY_FILE\"",
        run.stdout
    );
    let shell = std::process::Command::new("sh")
        .args(["-c", &script])
        .current_dir(test.dir.path())
        .output()
        .unwrap();
    assert!(shell.status.success(), "{shell:?}");
    assert_eq!(
        String::from_utf8_lossy(&shell.stdout),
        format!("{hostile}\nkeys/a b;touch pwned2.pem\n")
    );
    assert!(!test.path("pwned").exists() && !test.path("pwned2.pem").exists());
}
