//! EC2's real regime with default flags: paced whatever the endpoint, never giving up a
//! throttled key, quick to fail on a silent endpoint.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Proxy, Test, mutating_calls, public_key_of, server, strip_comment, unique};

#[test]
fn hard_throttling_costs_no_key_with_default_flags() {
    let test = Test::new();
    let project = unique("throttled");
    let n = 30;
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-${{index}}\n    count: {n}\n"
        ),
    );
    // An account whose CreateKeyPair bucket is a tenth of EC2's published burst: labctl's
    // first burst is throttled hard. Throttling is not an attempt: even with one attempt per
    // request, every key is made.
    let proxy = Proxy::start(&[
        "--throttle",
        "--limits",
        &json!({"CreateKeyPair": [5, 10]}).to_string(),
    ]);
    let run = test.via(&proxy, &["apply", "--json", "--max-attempts", "1"]);
    let stats = proxy.stats();
    run.assert_code(0);
    assert!(stats["throttled"].as_u64().unwrap() >= 5, "{stats}");
    let json = run.json();
    assert_eq!(json["summary"]["create"], n, "{json:#}");
    assert_eq!(json["summary"]["failed"], 0, "{json:#}");
    let remote = server().key_pairs("us-east-1");
    for i in 1..=n {
        let name = format!("{project}-{i}");
        let pair = remote
            .iter()
            .find(|k| k.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(
            public_key_of(&test.path(&format!("keys/{name}.pem"))),
            strip_comment(&pair.public_key)
        );
    }
    let again = test.via(&proxy, &["apply", "--json"]);
    again.assert_code(0);
    assert_eq!(mutating_calls(&again.json()), 0);
}

#[test]
fn a_silent_endpoint_fails_fast_and_names_the_host() {
    let test = Test::new();
    let project = unique("silent");
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\nkeypairs:\n  - name: {project}-k\n    region: us-east-1\n"
        ),
    );
    let proxy = Proxy::faults(
        &json!([{"action": "DescribeKeyPairs", "fault": "hang", "ms": 120_000, "count": 100}]),
    );
    let started = Instant::now();
    let run = test.via(&proxy, &["plan"]);
    let took = started.elapsed();
    run.assert_code(1);
    assert!(took < Duration::from_mins(1), "took {took:?}");
    assert!(
        run.stderr
            .contains(&format!("127.0.0.1:{} did not answer in time", proxy.port)),
        "{}",
        run.stderr
    );
    assert_eq!(proxy.stats()["requests"]["DescribeKeyPairs"], 4);
}

#[test]
fn eventual_consistency_never_duplicates_a_key_or_invents_a_conflict() {
    let test = Test::new();
    let project = unique("eventual");
    let names: Vec<String> = (1..=3).map(|i| format!("{project}-{i}")).collect();
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-${{index}}\n    count: 3\n"
        ),
    );
    // For 4 s after a write, EC2's listing does not show it yet (or still shows a deleted
    // key pair).
    let proxy = Proxy::start(&["--eventual", "4000"]);
    test.via(&proxy, &["apply"]).assert_code(0);
    let first: Vec<String> = names
        .iter()
        .map(|n| public_key_of(&test.path(&format!("keys/{n}.pem"))))
        .collect();

    // Re-apply at once: the new key pairs are not listed yet. No second key, no conflict,
    // and nothing sent: labctl made these keys moments ago and waits for the listing.
    let again = test.via(&proxy, &["apply", "--json"]);
    again.assert_code(0);
    let json = again.json();
    assert!(json["api_calls"].get("CreateKeyPair").is_none(), "{json:#}");
    assert_eq!(json["summary"]["conflict"], 0, "{json:#}");
    assert_eq!(mutating_calls(&json), 0, "{json:#}");
    assert_eq!(json["summary"]["import"], 0, "{json:#}");
    for (name, key) in names.iter().zip(&first) {
        let pair = server().key_pair("us-east-1", name).unwrap();
        assert_eq!(&strip_comment(&pair.public_key), key, "{name}");
    }

    // Destroy, then the next workshop at once: the deleted key pairs are still listed, but
    // they are gone; new keys are made, no `missing-private-key`.
    std::thread::sleep(Duration::from_secs(4));
    test.via(&proxy, &["destroy", "--yes"]).assert_code(0);
    let next = test.via(&proxy, &["apply", "--json"]);
    next.assert_code(0);
    let json = next.json();
    assert_eq!(json["summary"]["create"], 3, "{json:#}");
    for (name, old) in names.iter().zip(&first) {
        let pair = server().key_pair("us-east-1", name).unwrap();
        assert_ne!(&strip_comment(&pair.public_key), old, "{name}");
        assert_eq!(
            public_key_of(&test.path(&format!("keys/{name}.pem"))),
            strip_comment(&pair.public_key)
        );
    }

    // Destroy at once: the new key pairs are not listed yet, but their key files are there
    // and hold keys labctl just made; destroy reads the listing again until it shows them
    // and deletes them all (none is left behind for the next cohort).
    let destroy = test.via(&proxy, &["destroy", "--yes"]);
    destroy.assert_code(0);
    for name in &names {
        assert!(
            server().key_pair("us-east-1", name).is_none(),
            "{name} left behind"
        );
    }
}

/// What docs/performance.md claims and can be counted rather than timed: with default flags
/// through EC2's buckets, 60 key pairs cost exactly 60 `CreateKeyPair` and no throttled
/// answer; a plan over 3 regions sends exactly 3 `DescribeKeyPairs` and nothing else.
#[test]
fn paced_requests_are_counted_not_timed() {
    let test = Test::new();
    let project = unique("counted");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\ndefaults: {{ key_type: ed25519 }}\nkeypairs:\n  - name: {project}-${{index}}\n    count: 60\n    region: us-east-1\n  - name: {project}-w-${{index}}\n    count: 2\n    region: us-west-2\n  - name: {project}-e-${{index}}\n    count: 2\n    region: eu-west-1\n"),
    );
    let proxy = Proxy::start(&["--throttle"]);
    let run = test.via(&proxy, &["apply", "--json"]);
    run.assert_code(0);
    let stats = proxy.stats();
    assert_eq!(stats["requests"]["CreateKeyPair"], 64, "{stats}");
    assert_eq!(stats["throttled"], 0, "{stats}");
    let planned = Proxy::start(&["--throttle"]);
    test.via(&planned, &["plan"]).assert_code(0);
    let stats = planned.stats();
    assert_eq!(
        stats["requests"],
        serde_json::json!({ "DescribeKeyPairs": 3 }),
        "{stats}"
    );
}

/// The user's own key, imported moments ago and not listed yet: a re-apply's import is
/// answered `InvalidKeyPair.Duplicate`, and the key pair found holds the same key, so it is
/// reported unchanged ("already there"), never `imported`.
#[test]
fn a_duplicate_import_of_the_same_key_is_already_there_not_imported() {
    let test = Test::new();
    let project = unique("already");
    let name = format!("{project}-own");
    test.write(
        "own/id_ed25519",
        &crate::support::fixture_key("ed25519-a.pem"),
    );
    std::fs::set_permissions(
        test.path("own/id_ed25519"),
        std::os::unix::fs::PermissionsExt::from_mode(0o400),
    )
    .unwrap();
    test.write(
        "labctl.yaml",
        &crate::support::Manifest::new(&project)
            .defaults("{ region: us-east-1, key_type: ed25519 }")
            .key(&name, &[("output", "own/id_ed25519")])
            .text(),
    );
    let proxy = Proxy::start(&["--eventual", "4000"]);
    let first = test.via(&proxy, &["apply", "--json"]);
    first.assert_code(0);
    assert_eq!(first.json()["summary"]["import"], 1, "{first:?}");
    let again = test.via(&proxy, &["apply", "--json"]);
    again.assert_code(0);
    let json = again.json();
    assert_eq!(json["summary"]["import"], 0, "{json:#}");
    assert_eq!(json["actions"][0]["status"], "unchanged", "{json:#}");
    assert!(
        json["actions"][0]["reason"]
            .as_str()
            .is_some_and(|e| e.contains("already there")),
        "{json:#}"
    );
    assert!(json["actions"][0].get("error").is_none(), "{json:#}");
}
