//! Faults from the network and the API, injected by a proxy in front of the local server:
//! each ends with bounded retries, a clear error naming the region and key pair, exit 1, no
//! key pair whose private key was not saved, and a rerun without faults that converges.

use serde_json::json;

use crate::support::{
    Manifest, Proxy, Test, mutating_calls, public_key_of, server, strip_comment, unique,
};

fn manifest(project: &str, names: &[&str]) -> String {
    let mut manifest = Manifest::new(project).defaults("{ region: us-east-1, key_type: ed25519 }");
    for name in names {
        manifest = manifest.key(&format!("{project}-{name}"), &[]);
    }
    manifest.text()
}

/// After a fault: every key pair of the project on the server has its private key on disk.
fn nothing_lost(test: &Test, project: &str, names: &[&str]) {
    for name in names {
        let full = format!("{project}-{name}");
        let file = test.path(&format!("keys/{full}.pem"));
        match server().key_pair("us-east-1", &full) {
            Some(remote) => {
                assert!(
                    file.exists(),
                    "{full} exists in EC2 without its private key"
                );
                assert_eq!(
                    public_key_of(&file),
                    strip_comment(&remote.public_key),
                    "{full}"
                );
            }
            None => assert!(
                !file.exists() || public_key_of(&file).starts_with("ssh-"),
                "{full}"
            ),
        }
    }
}

fn converges(test: &Test, project: &str, names: &[&str]) {
    let rerun = test.cloud(&["apply", "--json"]);
    rerun.assert_code(0);
    let again = test.cloud(&["apply", "--json"]).json();
    assert_eq!(mutating_calls(&again), 0, "{again:#}");
    nothing_lost(test, project, names);
}

#[test]
fn throttling_bursts_and_server_errors_are_retried_to_success() {
    let test = Test::new();
    let project = unique("retry");
    test.write("labctl.yaml", &manifest(&project, &["a"]));
    let proxy = Proxy::faults(&json!([
        {"action": "DescribeKeyPairs", "fault": "http500", "count": 1},
        {"action": "CreateKeyPair", "fault": "throttle", "count": 2},
    ]));
    let run = test.via(&proxy, &["apply", "--json"]);
    run.assert_code(0);
    let json = run.json();
    assert_eq!(
        json["api_calls"]["CreateKeyPair"], 3,
        "retries are counted: {json:#}"
    );
    assert_eq!(json["api_calls"]["DescribeKeyPairs"], 2, "{json:#}");
    assert_eq!(proxy.stats()["faults"]["throttle"], 2);
    nothing_lost(&test, &project, &["a"]);
}

#[test]
fn slow_answers_only_take_longer() {
    let test = Test::new();
    let project = unique("slow");
    test.write("labctl.yaml", &manifest(&project, &["a"]));
    let proxy = Proxy::faults(&json!([{"action": "*", "fault": "slow", "ms": 700, "count": 3}]));
    test.via(&proxy, &["apply"]).assert_code(0);
    // The slow rule matched (the describe and the create were slowed), and a slow answer
    // cost no second request.
    let stats = proxy.stats();
    assert_eq!(stats["faults"]["slow"], 2, "{stats}");
    assert_eq!(stats["requests"]["CreateKeyPair"], 1, "{stats}");
    converges(&test, &project, &["a"]);
}

#[test]
fn a_server_that_keeps_failing_gives_a_clear_error_and_creates_nothing() {
    let test = Test::new();
    let project = unique("down");
    test.write("labctl.yaml", &manifest(&project, &["a", "b"]));
    let proxy = Proxy::faults(
        &json!([{"action": "CreateKeyPair", "fault": "http503", "count": 100, "name": format!("{project}-a")}]),
    );
    let run = test.via(&proxy, &["apply", "--max-attempts", "3"]);
    run.assert_code(1);
    // Exactly --max-attempts tries of a request whose failure never clears.
    let stats = proxy.stats();
    assert_eq!(stats["faults"]["http503"], 3, "{stats}");
    assert!(
        run.stdout.contains(&format!("{project}-a"))
            && run.stdout.contains("CreateKeyPair in us-east-1 failed"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("hint:"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("DispatchFailure") && !run.stderr.contains("DispatchFailure"),
        "SDK dump"
    );
    // The other key pair went on.
    assert!(
        server()
            .key_pair("us-east-1", &format!("{project}-b"))
            .is_some()
    );
    assert!(
        server()
            .key_pair("us-east-1", &format!("{project}-a"))
            .is_none()
    );
    assert!(!test.path(&format!("keys/{project}-a.pem")).exists());
    converges(&test, &project, &["a", "b"]);
}

#[test]
fn an_answer_cut_mid_response_leaves_no_key_without_its_private_key() {
    let test = Test::new();
    let project = unique("cut");
    test.write("labctl.yaml", &manifest(&project, &["a", "b"]));
    // EC2 creates the key pair, but the answer carrying its private key never arrives.
    let proxy = Proxy::faults(
        &json!([{"action": "CreateKeyPair", "fault": "cut", "name": format!("{project}-a")}]),
    );
    let run = test.via(&proxy, &["apply"]);
    run.assert_code(1);
    assert!(
        run.stdout
            .contains("its answer, with the private key, was lost; the key pair was deleted again"),
        "{}",
        run.stdout
    );
    assert_eq!(proxy.stats()["faults"]["cut"], 1);
    assert!(
        server()
            .key_pair("us-east-1", &format!("{project}-a"))
            .is_none(),
        "a key pair without its private key was left"
    );
    nothing_lost(&test, &project, &["a", "b"]);
    converges(&test, &project, &["a", "b"]);
}

/// An answer cut inside the private key in a way HTTP takes as complete (a matching
/// Content-Length, or no length and the connection closed): the fragment is never saved as
/// the key, and the key pair it belongs to is deleted again.
#[test]
fn a_private_key_cut_inside_a_complete_looking_answer_is_never_saved() {
    for fault in ["cutkey", "unframed"] {
        let test = Test::new();
        let project = unique(fault);
        let text = manifest(&project, &["a", "b"]).replace("key_type: ed25519", "key_type: rsa");
        test.write("labctl.yaml", &text);
        let proxy = Proxy::faults(
            &json!([{"action": "CreateKeyPair", "fault": fault, "name": format!("{project}-a")}]),
        );
        let run = test.via(&proxy, &["apply"]);
        run.assert_code(1);
        assert_eq!(proxy.stats()["faults"][fault], 1, "{fault}");
        let a = format!("{project}-a");
        assert!(
            run.stdout.contains(&a) && run.stdout.contains("deleted again"),
            "{fault}: {}",
            run.stdout
        );
        assert!(
            !test.path(&format!("keys/{a}.pem")).exists(),
            "{fault}: a fragment of the key was saved as the key"
        );
        assert!(
            server().key_pair("us-east-1", &a).is_none(),
            "{fault}: a key pair without its private key was left"
        );
        assert!(!run.stdout.contains("PRIVATE KEY") && !run.stderr.contains("PRIVATE KEY"));
        nothing_lost(&test, &project, &["a", "b"]);
        converges(&test, &project, &["a", "b"]);
    }
}

#[test]
fn a_hanging_server_is_bounded_by_the_timeout() {
    let test = Test::new();
    let project = unique("hang");
    test.write("labctl.yaml", &manifest(&project, &["a"]));
    let proxy = Proxy::faults(
        &json!([{"action": "CreateKeyPair", "fault": "hang", "ms": 20000, "count": 10}]),
    );
    let started = std::time::Instant::now();
    let run = test.via(&proxy, &["apply", "--timeout", "2", "--max-attempts", "2"]);
    run.assert_code(1);
    assert!(
        started.elapsed().as_secs() < 15,
        "took {:?}",
        started.elapsed()
    );
    assert!(
        run.stdout.contains("CreateKeyPair in us-east-1 failed"),
        "{}",
        run.stdout
    );
    nothing_lost(&test, &project, &["a"]);
    converges(&test, &project, &["a"]);
}

#[test]
fn refused_connections_fail_clearly() {
    let test = Test::new();
    let project = unique("refuse");
    test.write("labctl.yaml", &manifest(&project, &["a"]));
    let proxy =
        Proxy::faults(&json!([{"action": "DescribeKeyPairs", "fault": "refuse", "count": 100}]));
    let run = test.via(&proxy, &["plan", "--max-attempts", "2"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("DescribeKeyPairs in us-east-1 failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert!(!test.path("keys").exists());
}

#[test]
fn another_machine_creating_the_same_key_pair_is_a_conflict_for_that_key_only() {
    let test = Test::new();
    let project = unique("race");
    test.write("labctl.yaml", &manifest(&project, &["a", "b"]));
    let proxy = Proxy::faults(
        &json!([{"action": "CreateKeyPair", "fault": "race", "name": format!("{project}-a")}]),
    );
    let run = test.via(&proxy, &["apply", "--json"]);
    run.assert_code(1);
    let json = run.json();
    let a = json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == format!("{project}-a"))
        .unwrap();
    assert_eq!(a["status"], "conflict", "{json:#}");
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .contains("InvalidKeyPair.Duplicate"),
        "{json:#}"
    );
    let b = json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == format!("{project}-b"))
        .unwrap();
    assert_eq!(
        b["status"], "done",
        "the rest of the apply goes on: {json:#}"
    );
    // The other machine's key pair is intact, and no file was written for it here.
    let remote = server()
        .key_pair("us-east-1", &format!("{project}-a"))
        .unwrap();
    assert!(
        remote
            .public_key
            .contains("AAAAC3NzaC1lZDI1NTE5AAAAILSsJOeP"),
        "{remote:?}"
    );
    assert!(!test.path(&format!("keys/{project}-a.pem")).exists());
}

#[test]
fn odd_data_from_the_server_never_crashes_labctl() {
    let test = Test::new();
    let project = unique("odd");
    test.write("labctl.yaml", &manifest(&project, &["a"]));
    test.cloud(&["apply"]).assert_code(0);
    let proxy =
        Proxy::faults(&json!([{"action": "DescribeKeyPairs", "fault": "mangle", "count": 10}]));
    let file = test.path(&format!("keys/{project}-a.pem"));
    let before = std::fs::read(&file).unwrap();
    for command in ["plan", "apply", "output"] {
        let run = test.via(&proxy, &[command]);
        assert!(run.code == 0 || run.code == 1, "{command}: {run:#?}");
        assert!(
            !run.stderr.contains("panicked"),
            "{command}: {}",
            run.stderr
        );
    }
    // Whatever the garbled listing said, nothing was created, imported or deleted, and the
    // key file is untouched.
    let stats = proxy.stats();
    let requests = stats["requests"].as_object().unwrap();
    assert!(requests.keys().all(|k| k == "DescribeKeyPairs"), "{stats}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

/// EC2 made the key pairs, their answers were lost, and the listing lags 3 s behind: the
/// look for what the creates did waits the lag out, finds both key pairs this apply made and
/// deletes them again in the same run (before, one look found nothing and left them without
/// their private keys until the next apply).
#[test]
fn lost_creates_are_found_again_through_the_listings_lag() {
    let test = Test::new();
    let project = unique("lostlag");
    test.write("labctl.yaml", &manifest(&project, &["a", "b"]));
    let proxy = Proxy::start(&[
        "--eventual",
        "3000",
        "--faults",
        &json!([{"action": "CreateKeyPair", "fault": "stall", "ms": 0, "count": 2}]).to_string(),
    ]);
    let run = test.via(&proxy, &["apply", "--max-attempts", "1"]);
    run.assert_code(1);
    assert_eq!(proxy.stats()["faults"]["stall"], 2);
    for name in ["a", "b"] {
        let full = format!("{project}-{name}");
        assert!(
            server().key_pair("us-east-1", &full).is_none(),
            "{full} was left in EC2 without its private key: {}",
            run.stdout
        );
        assert!(!test.path(&format!("keys/{full}.pem")).exists());
    }
    assert!(run.stdout.contains("deleted again"), "{}", run.stdout);
    converges(&test, &project, &["a", "b"]);
}

/// A plan against an endpoint that does not answer says it is still waiting, every 5 s,
/// instead of standing silent until the timeout.
#[test]
fn a_slow_endpoint_is_said_to_be_slow() {
    let test = Test::new();
    let project = unique("slow");
    test.write("labctl.yaml", &manifest(&project, &["a"]));
    let proxy = Proxy::faults(
        &json!([{"action": "DescribeKeyPairs", "fault": "hang", "ms": 20000, "count": 10}]),
    );
    let run = test.via(&proxy, &["plan", "--timeout", "7", "--max-attempts", "1"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("Still waiting for EC2's answer (5 s)"),
        "{}",
        run.stderr
    );
    // Not under --json or -q.
    let quiet = test.via(
        &proxy,
        &["plan", "--timeout", "7", "--max-attempts", "1", "-q"],
    );
    assert!(!quiet.stderr.contains("Still waiting"), "{}", quiet.stderr);
}
