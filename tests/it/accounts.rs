//! Many accounts: key pairs in member accounts reached by assuming a role, against the local
//! server (it keeps accounts apart when a role in another account id is assumed).

use serde_json::json;

use crate::support::{Manifest, Proxy, Test, public_key_of, server, unique, unique_account};

/// Names of the key pairs the server holds in `account` (`None`: the caller's own) and region.
fn names_in(account: Option<&str>, region: &str) -> Vec<String> {
    let place = account.map_or_else(|| region.to_owned(), |a| format!("{a}:{region}"));
    let mut names: Vec<String> = server()
        .key_pairs(&place)
        .into_iter()
        .map(|k| k.name)
        .collect();
    names.sort();
    names
}

/// A proxy that answers `fault` to the first `count` `AssumeRole` requests for the default
/// role of `account` (other roles and every EC2 request pass).
fn role_fault(account: &str, fault: &str, count: u32) -> Proxy {
    let role = format!("arn:aws:iam::{account}:role/OrganizationAccountAccessRole");
    Proxy::faults(&json!([
        { "action": "AssumeRole", "role": role, "fault": fault, "count": count }
    ]))
}

/// Two member accounts (one by role ARN, one by id), a key pair in each, one key shared by
/// both, one in the caller's own account.
fn two_teams(project: &str, a: &str, b: &str, keep_b: bool) -> String {
    let mut manifest = Manifest::new(project).account(
        "team-a",
        &format!("{{ role_arn: \"arn:aws:iam::{a}:role/OrganizationAccountAccessRole\" }}"),
    );
    let teams = if keep_b {
        manifest = manifest.account("team-b", &format!("{{ id: \"{b}\" }}"));
        "[team-a, team-b]"
    } else {
        "[team-a]"
    };
    manifest
        .defaults("{ region: eu-west-1, key_type: ed25519 }")
        .key(
            &format!("{project}-${{item}}"),
            &[("for_each", teams), ("account", "${item}")],
        )
        .key(&format!("{project}-shared"), &[("accounts", teams)])
        .key(&format!("{project}-home"), &[])
        .text()
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one workshop's story: apply, look in each account, re-apply, output, replace"
)]
fn keys_land_only_in_their_accounts_and_a_shared_key_is_one_key_in_each() {
    let t = Test::new();
    let p = unique("acct");
    let (a, b) = (unique_account(), unique_account());
    t.write("labctl.yaml", &two_teams(&p, &a, &b, true));

    let plan = t.cloud(&["plan"]);
    plan.assert_code(0);
    assert!(
        plan.stdout
            .contains(&format!("Accounts: team-a {a}, team-b {b}")),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("team-b/eu-west-1"), "{}", plan.stdout);

    let applied = t.cloud(&["apply", "--yes", "--json"]);
    applied.assert_code(0);
    let doc = applied.json();
    for action in doc["actions"].as_array().unwrap() {
        let name = action["name"].as_str().unwrap();
        let (id, account_name) = if name.ends_with("-home") {
            (json!(null), json!(null))
        } else if name.ends_with("-team-b") {
            (json!(b), json!("team-b"))
        } else if name.ends_with("-team-a") {
            (json!(a), json!("team-a"))
        } else {
            (action["account"].clone(), action["account_name"].clone())
        };
        assert_eq!(action["account"], id, "{action}");
        assert_eq!(action["account_name"], account_name, "{action}");
        assert_eq!(action["region"], "eu-west-1", "{action}");
    }

    // Each account holds its own key pair and the shared one; the caller's only its own.
    assert_eq!(
        names_in(Some(&a), "eu-west-1"),
        [format!("{p}-shared"), format!("{p}-team-a")]
    );
    assert_eq!(
        names_in(Some(&b), "eu-west-1"),
        [format!("{p}-shared"), format!("{p}-team-b")]
    );
    let home = names_in(None, "eu-west-1");
    assert!(home.contains(&format!("{p}-home")), "{home:?}");
    assert!(
        !home
            .iter()
            .any(|n| n.contains("-team-") || n.ends_with("-shared")),
        "{home:?}"
    );
    // The shared key is one key: the same public key in both accounts, the one on disk.
    let local = public_key_of(&t.path(&format!("keys/{p}-shared.pem")));
    for account in [&a, &b] {
        let pair = server()
            .key_pair(&format!("{account}:eu-west-1"), &format!("{p}-shared"))
            .unwrap();
        assert_eq!(crate::support::strip_comment(&pair.public_key), local);
        assert_eq!(pair.tags["labctl:project"], p);
    }
    assert_eq!(t.mode(&format!("keys/{p}-team-b.pem")), 0o400);

    // A second apply changes nothing and sends nothing that changes anything.
    let again = t.cloud(&["apply", "--yes", "--json"]);
    again.assert_code(0);
    assert_eq!(
        crate::support::mutating_calls(&again.json()),
        0,
        "{}",
        again.stdout
    );
    assert_eq!(again.json()["summary"]["noop"], 5, "{}", again.stdout);

    // `output` names accounts too.
    let output = t.cloud(&["output", "--json"]);
    output.assert_code(0);
    let rows = output.json()["keypairs"].as_array().unwrap().clone();
    assert!(
        rows.iter()
            .any(|r| r["account"] == json!(b) && r["account_name"] == "team-b")
    );
    assert!(
        rows.iter()
            .any(|r| r["account"].is_null() && r["name"] == format!("{p}-home"))
    );

    // The handout README says which account and region, and its JSON too.
    let handout = t.run(&["handout", "--json", &format!("{p}-team-b")]);
    handout.assert_code(0);
    let place = &handout.json()["bundles"][0]["places"][0];
    assert_eq!(place["account"], json!(b), "{}", handout.stdout);
    assert_eq!(place["account_name"], "team-b", "{}", handout.stdout);
    assert_eq!(place["region"], "eu-west-1", "{}", handout.stdout);
    let readme =
        std::fs::read_to_string(t.path(&format!("handout/{p}-team-b/README.txt"))).unwrap();
    assert!(
        readme.contains(&format!("account {b} (team-b), region eu-west-1")),
        "{readme}"
    );

    // The table says which account each `team-a/…` is.
    let table = t.cloud(&["output"]);
    table.assert_code(0);
    assert!(
        table
            .stdout
            .contains(&format!("Accounts: team-a {a}, team-b {b}")),
        "{}",
        table.stdout
    );
    // An address that misses says where the key pair is.
    let missed = t.cloud(&["plan", "--replace", &format!("{p}-team-b@team-a")]);
    missed.assert_code(1);
    assert!(
        missed.stderr.contains("it is in team-b/eu-west-1"),
        "{}",
        missed.stderr
    );

    // `--replace NAME@ACCOUNT/REGION` reaches the one in that account.
    let replaced = t.cloud(&[
        "apply",
        "--yes",
        "--replace",
        &format!("{p}-team-b@team-b/eu-west-1"),
    ]);
    replaced.assert_code(0);
    assert!(
        replaced.stdout.contains("team-b/eu-west-1"),
        "{}",
        replaced.stdout
    );
    assert_ne!(public_key_of(&t.path(&format!("keys/{p}-team-b.pem"))), "");
    let shared = t.cloud(&[
        "apply",
        "--yes",
        "--replace",
        &format!("{p}-shared@{b}/eu-west-1"),
    ]);
    shared.assert_code(1);
    assert!(
        shared.stderr.contains("shared by 2 places"),
        "{}",
        shared.stderr
    );
}

#[test]
fn a_role_that_cannot_be_assumed_changes_nothing_anywhere() {
    let t = Test::new();
    let p = unique("deny");
    let (a, b) = (unique_account(), unique_account());
    t.write("labctl.yaml", &two_teams(&p, &a, &b, true));
    let proxy = role_fault(&b, "denied", 1000);
    let run = t.via(&proxy, &["apply", "--yes"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!("team-b ({b})")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("AccessDenied"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("nothing was read or changed in any account"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("trust policy"), "{}", run.stderr);
    assert!(!run.stderr.contains("team-a ("), "{}", run.stderr);
    // Nothing anywhere: no key pair in either account or the caller's, no key file.
    assert!(names_in(Some(&a), "eu-west-1").is_empty());
    assert!(names_in(Some(&b), "eu-west-1").is_empty());
    assert!(!names_in(None, "eu-west-1").contains(&format!("{p}-home")));
    assert!(
        !t.path("keys").exists()
            || std::fs::read_dir(t.path("keys"))
                .unwrap()
                .all(|e| { !e.unwrap().file_name().to_string_lossy().ends_with(".pem") })
    );
    // EC2 heard nothing: the proxy saw no EC2 request at all.
    let seen = proxy.stats()["requests"].clone();
    assert!(
        seen.get("DescribeKeyPairs").is_none() && seen.get("CreateKeyPair").is_none(),
        "{seen}"
    );

    // With --json: one document naming the account.
    let run = t.via(&proxy, &["plan", "--json"]);
    run.assert_code(1);
    assert_eq!(run.json()["error"]["kind"], "account", "{}", run.stdout);
}

#[test]
fn an_account_dropped_from_the_manifest_is_pruned_and_destroyed() {
    let t = Test::new();
    let p = unique("drop");
    let (a, b) = (unique_account(), unique_account());
    t.write("labctl.yaml", &two_teams(&p, &a, &b, true));
    t.cloud(&["apply", "--yes"]).assert_code(0);

    // team-b leaves the manifest: its key pairs are orphans, listed and pruned.
    t.write("labctl.yaml", &two_teams(&p, &a, &b, false));
    let plan = t.cloud(&["plan", "--prune"]);
    plan.assert_code(0);
    let lines = plan.logical_lines();
    for name in [format!("{p}-team-b"), format!("{p}-shared")] {
        assert!(
            lines.iter().any(|l| l.contains(&name)
                && l.contains("team-b/eu-west-1")
                && l.contains("delete")),
            "{}",
            plan.stdout
        );
    }
    // Without --prune nothing of team-b is touched.
    t.cloud(&["apply", "--yes"]).assert_code(0);
    assert_eq!(names_in(Some(&b), "eu-west-1").len(), 2);
    let pruned = t.cloud(&["apply", "--yes", "--prune"]);
    pruned.assert_code(0);
    assert!(names_in(Some(&b), "eu-west-1").is_empty());
    assert_eq!(
        names_in(Some(&a), "eu-west-1").len(),
        2,
        "team-a keeps its own"
    );
    // The shared key's file stays: team-a still uses it.
    assert!(t.path(&format!("keys/{p}-shared.pem")).exists());
    // Once nothing is left there, the account is forgotten: no longer read.
    t.cloud(&["apply", "--yes"]).assert_code(0);
    let quiet = t.cloud(&["plan", "--prune", "--json"]);
    assert!(!quiet.stdout.contains("team-b"), "{}", quiet.stdout);

    // destroy reaches a dropped account too.
    t.write("labctl.yaml", &two_teams(&p, &a, &b, true));
    t.cloud(&["apply", "--yes"]).assert_code(0);
    assert_eq!(names_in(Some(&b), "eu-west-1").len(), 2);
    t.write("labctl.yaml", &two_teams(&p, &a, &b, false));
    let destroyed = t.cloud(&["destroy", "--yes"]);
    destroyed.assert_code(0);
    assert!(
        names_in(Some(&b), "eu-west-1").is_empty(),
        "{}",
        destroyed.stdout
    );
    assert!(
        names_in(Some(&a), "eu-west-1").is_empty(),
        "{}",
        destroyed.stdout
    );
}

#[test]
fn a_dropped_account_whose_role_is_gone_is_said_and_the_rest_goes_on() {
    let t = Test::new();
    let p = unique("gone");
    let (a, b) = (unique_account(), unique_account());
    t.write("labctl.yaml", &two_teams(&p, &a, &b, true));
    t.cloud(&["apply", "--yes"]).assert_code(0);
    t.write("labctl.yaml", &two_teams(&p, &a, &b, false));
    let proxy = role_fault(&b, "denied", 1000);
    let run = t.via(&proxy, &["apply", "--yes", "--prune"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "account team-b ({b}) is no longer in the manifest"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("{p}-team-b")),
        "{}",
        run.stderr
    );
    // The prune is not complete, and says so.
    assert!(
        run.stderr.contains(&format!(
            "The prune is not complete: team-b ({b}) could not be reached"
        )),
        "{}",
        run.stderr
    );
    // Left as it was; team-a's and the caller's untouched.
    assert_eq!(names_in(Some(&b), "eu-west-1").len(), 2);
    assert_eq!(names_in(Some(&a), "eu-west-1").len(), 2);
    // Not forgotten: the next run says it again, and once the role is back, prunes.
    let again = t.via(&proxy, &["apply", "--yes", "--prune"]);
    again.assert_code(1);
    assert!(
        again.stderr.contains(&format!("team-b ({b})")),
        "{}",
        again.stderr
    );
    t.cloud(&["apply", "--yes", "--prune"]).assert_code(0);
    assert!(names_in(Some(&b), "eu-west-1").is_empty());
}

#[test]
fn a_state_record_whose_role_leads_into_another_account_is_not_used() {
    let t = Test::new();
    let p = unique("tamper");
    let (a, b, other) = (unique_account(), unique_account(), unique_account());
    t.write("labctl.yaml", &two_teams(&p, &a, &b, false));
    t.cloud(&["apply", "--yes"]).assert_code(0);
    // A hand-edited record: "account `other`", reached through team-a's role. Read as
    // `other`, every key pair of team-a would look like an orphan there.
    let record = json!({
        "id": other, "name": "ghost",
        "role_arn": format!("arn:aws:iam::{a}:role/OrganizationAccountAccessRole"),
        "session_name": "labctl-x", "regions": ["eu-west-1"], "names": []
    });
    let keys = t.path(".labctl/labctl.yaml.journal");
    let mut text = std::fs::read_to_string(&keys).unwrap();
    text.push_str(&format!("reached\t00aa\t{record}\n"));
    std::fs::write(&keys, text).unwrap();
    let plan = t.cloud(&["plan", "--prune"]);
    plan.assert_code(0);
    assert!(!plan.stdout.contains("delete"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("ghost"), "{}", plan.stdout);
    t.cloud(&["apply", "--yes", "--prune"]).assert_code(0);
    assert_eq!(names_in(Some(&a), "eu-west-1").len(), 2);
}

#[test]
fn an_account_that_is_the_callers_own_beside_its_entries_is_refused() {
    let t = Test::new();
    let p = unique("own");
    // The local server's caller is account 123456789012.
    t.write(
        "labctl.yaml",
        &Manifest::new(&p)
            .account("me", "{ id: \"123456789012\" }")
            .defaults("{ region: eu-west-1, key_type: ed25519 }")
            .key(&format!("{p}-a"), &[("account", "me")])
            .key(&format!("{p}-b"), &[])
            .text(),
    );
    let run = t.cloud(&["apply", "--yes"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("the caller's own account"),
        "{}",
        run.stderr
    );
    assert!(
        !names_in(None, "eu-west-1")
            .iter()
            .any(|n| n.starts_with(&p))
    );
}

#[test]
fn account_mistakes_are_errors_on_their_lines_before_any_request() {
    let t = Test::new();
    let text = "version: 1\nproject: lab\naccounts:\n  team-a: { id: \"11111111111\" }\n  team-b: { role_arn: \"arn:aws:iam::222222222222:user/x\" }\n  team-c: { id: \"333333333333\", role_arn: \"arn:aws:iam::333333333333:role/R\" }\n  team-d: { id: \"444444444444\" }\n  team-e: { id: \"444444444444\" }\n  team-f: { external_id: x }\ndefaults: { region: eu-west-1 }\nkeypairs:\n  - name: a\n    account: team-dd\n  - name: b\n    account: team-d\n    accounts: [team-d]\n";
    t.write("labctl.yaml", text);
    let run = t.cloud(&["plan"]);
    run.assert_code(1);
    for (line, text) in [
        (4, "is not an AWS account id"),
        (5, "is not a role ARN"),
        (6, "give either `role_arn` or `id`"),
        (8, "are the same account 444444444444"),
        (9, "gives neither `role_arn` nor `id`"),
        (13, "did you mean `team-d`?"),
        (16, "give either `account` or `accounts`"),
    ] {
        assert!(
            run.stderr.contains(&format!("labctl.yaml:{line}:")) && run.stderr.contains(text),
            "line {line}: {text}\n{}",
            run.stderr
        );
    }
}

#[test]
fn each_service_follows_its_own_endpoint_variable() {
    let t = Test::new();
    let p = unique("endpoints");
    let (a, b) = (unique_account(), unique_account());
    t.write("labctl.yaml", &two_teams(&p, &a, &b, true));
    let proxy = role_fault(&b, "denied", 1000);
    let run = |vars: &[(&str, String)]| {
        let mut command = t.command(&["plan"]);
        for (name, value) in vars {
            command.env(name, value);
        }
        crate::support::Test::run_command(command)
    };
    // STS through the proxy (which refuses team-b's role), EC2 straight to the server.
    let split = run(&[
        ("AWS_ENDPOINT_URL", server().endpoint()),
        ("AWS_ENDPOINT_URL_STS", proxy.endpoint()),
    ]);
    split.assert_code(1);
    assert!(split.stderr.contains("AccessDenied"), "{}", split.stderr);
    assert_eq!(
        proxy.stats()["requests"]["AssumeRole"],
        2,
        "{}",
        proxy.stats()
    );
    assert!(proxy.stats()["requests"].get("DescribeKeyPairs").is_none());
    // EC2 through the proxy, STS straight to the server: every role is assumed, EC2 is read
    // through the proxy.
    let other = run(&[
        ("AWS_ENDPOINT_URL_EC2", proxy.endpoint()),
        ("AWS_ENDPOINT_URL_STS", server().endpoint()),
    ]);
    other.assert_code(0);
    assert_eq!(
        proxy.stats()["requests"]["AssumeRole"],
        2,
        "{}",
        proxy.stats()
    );
    assert_eq!(
        proxy.stats()["requests"]["DescribeKeyPairs"],
        3,
        "{}",
        proxy.stats()
    );
    // `--endpoint-url` points both at one URL, whatever the variables say.
    let flag = {
        let mut command = t.command(&["plan", "--endpoint-url", &server().endpoint()]);
        command.env("AWS_ENDPOINT_URL_STS", proxy.endpoint());
        crate::support::Test::run_command(command)
    };
    flag.assert_code(0);
    assert_eq!(
        proxy.stats()["requests"]["AssumeRole"],
        2,
        "{}",
        proxy.stats()
    );
}

#[test]
fn a_former_place_that_cannot_be_read_is_said_and_kept_for_the_next_run() {
    let t = Test::new();
    let p = unique("unread");
    let (a, b) = (unique_account(), unique_account());
    t.write("labctl.yaml", &two_teams(&p, &a, &b, true));
    t.cloud(&["apply", "--yes"]).assert_code(0);
    // team-b leaves; its record also names a region that cannot be read (as one disabled
    // since would be).
    t.write("labctl.yaml", &two_teams(&p, &a, &b, false));
    let keys = t.path(".labctl/labctl.yaml.journal");
    let text = std::fs::read_to_string(&keys).unwrap();
    let record = text
        .lines()
        .rfind(|l| l.starts_with("reached\t") && l.contains(&b))
        .unwrap()
        .replace("[\"eu-west-1\"]", "[\"eu-west-1\",\"xx-mars-1\"]");
    std::fs::write(&keys, format!("{text}{record}\n")).unwrap();
    let run = t.cloud(&["apply", "--yes", "--prune"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("team-b/xx-mars-1 is no longer in the manifest and could not be read"),
        "{}",
        run.stderr
    );
    // What could be read was pruned; the place that could not be is still remembered.
    assert!(names_in(Some(&b), "eu-west-1").is_empty());
    let again = t.cloud(&["plan", "--prune"]);
    again.assert_code(0);
    assert!(
        again.stderr.contains("team-b/xx-mars-1"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_role_whose_answer_fails_once_is_asked_again() {
    let t = Test::new();
    let p = unique("again");
    let (a, b) = (unique_account(), unique_account());
    t.write("labctl.yaml", &two_teams(&p, &a, &b, true));
    let proxy = role_fault(&a, "http503", 1);
    let run = t.via(&proxy, &["plan"]);
    run.assert_code(0);
    assert_eq!(
        proxy.stats()["requests"]["AssumeRole"],
        3,
        "{}",
        proxy.stats()
    );
    assert_eq!(proxy.stats()["faults"]["http503"], 1, "{}", proxy.stats());
}

#[test]
fn handout_refuses_two_entries_of_one_name_before_writing_anything() {
    let t = Test::new();
    let a = unique_account();
    t.write(
        "labctl.yaml",
        &Manifest::new("twins")
            .account("team-a", &format!("{{ id: \"{a}\" }}"))
            .defaults("{ region: eu-west-1, key_type: ed25519 }")
            .key("k1", &[("account", "team-a"), ("output", "keys/k1-a.pem")])
            .key("k1", &[("output", "keys/k1-home.pem")])
            .text(),
    );
    let run = t.run(&["handout"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("2 entries are named `k1` (team-a/eu-west-1, eu-west-1)"),
        "{}",
        run.stderr
    );
    assert!(!t.path("handout").exists());
}

#[test]
fn an_account_no_key_pair_uses_is_a_warning_on_its_line() {
    let t = Test::new();
    t.write(
        "labctl.yaml",
        "version: 1\nproject: lab\naccounts:\n  team-a: { id: \"111111111111\" }\n  taem-b: { id: \"222222222222\" }\ndefaults: { region: eu-west-1 }\nkeypairs:\n  - name: a\n    account: team-a\n  - name: b\n    account: team-b\n",
    );
    let run = t.run(&["validate"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("no key pair is placed in account `taem-b`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("labctl.yaml:5:3"), "{}", run.stderr);
    assert!(
        run.stderr.contains("Or add `team-b` under `accounts:`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_bundle_whose_places_changed_is_refused_until_forced() {
    let t = Test::new();
    let p = unique("places");
    let (a, b) = (unique_account(), unique_account());
    t.write("labctl.yaml", &two_teams(&p, &a, &b, true));
    t.cloud(&["apply", "--yes"]).assert_code(0);
    let shared = format!("{p}-shared");
    t.run(&["handout", "--zip", &shared]).assert_code(0);
    // team-b leaves: the shared key no longer opens its account.
    t.write("labctl.yaml", &two_teams(&p, &a, &b, false));
    let run = t.run(&["handout", "--zip", &shared]);
    run.assert_code(1);
    assert!(run.stdout.contains("its places changed"), "{}", run.stdout);
    t.run(&["handout", "--zip", "--force", &shared])
        .assert_code(0);
}

#[test]
fn the_callers_own_account_is_never_read_twice_whatever_else_fails() {
    let t = Test::new();
    let p = unique("twice");
    let gone = unique_account();
    // First: a member account that later leaves, and a key pair in the caller's own account.
    t.write(
        "labctl.yaml",
        &Manifest::new(&p)
            .account("gone", &format!("{{ id: \"{gone}\" }}"))
            .defaults("{ region: eu-west-1, key_type: ed25519 }")
            .key(&format!("{p}-g"), &[("account", "gone")])
            .key(&format!("{p}-home"), &[])
            .text(),
    );
    t.cloud(&["apply", "--yes"]).assert_code(0);
    // Then the caller's own account (123456789012 on the local server) listed as a member,
    // beside entries of the caller's own, while the dropped account's role fails.
    t.write(
        "labctl.yaml",
        &Manifest::new(&p)
            .account("me", "{ id: \"123456789012\" }")
            .defaults("{ region: eu-west-1, key_type: ed25519 }")
            .key(&format!("{p}-me"), &[("account", "me")])
            .key(&format!("{p}-home"), &[])
            .text(),
    );
    let proxy = role_fault(&gone, "denied", 1000);
    let run = t.via(&proxy, &["apply", "--yes", "--prune"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("is the caller's own account"),
        "{}",
        run.stderr
    );
    assert!(names_in(None, "eu-west-1").contains(&format!("{p}-home")));
    // And when the caller's own account cannot be told (GetCallerIdentity keeps failing),
    // no member account is used beside the caller's own places.
    let proxy = Proxy::faults(&json!([
        { "action": "GetCallerIdentity", "fault": "http503", "count": 1000 }
    ]));
    t.write(
        "labctl.yaml",
        &two_teams(&p, &unique_account(), &unique_account(), true),
    );
    let run = t.via(&proxy, &["plan"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("could not be told apart"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_second_manifest_of_the_project_never_prunes_the_first_ones_accounts() {
    let t = Test::new();
    let p = unique("second");
    let (a, b) = (unique_account(), unique_account());
    let one = |name: &str, id: &str| {
        Manifest::new(&p)
            .account(name, &format!("{{ id: \"{id}\" }}"))
            .defaults("{ region: eu-west-1, key_type: ed25519 }")
            .key(
                &format!("{p}-{name}"),
                &[("account", name), ("output", &format!("keys/{name}.pem"))],
            )
            .text()
    };
    t.write("a.yaml", &one("team-a", &a));
    t.write("b.yaml", &one("team-b", &b));
    t.cloud(&["apply", "a.yaml", "--yes"]).assert_code(0);
    t.cloud(&["apply", "b.yaml", "--yes"]).assert_code(0);
    let plan = t.cloud(&["plan", "a.yaml", "--prune"]);
    plan.assert_code(0);
    assert!(!plan.stdout.contains("team-b"), "{}", plan.stdout);
    t.cloud(&["apply", "a.yaml", "--yes", "--prune"])
        .assert_code(0);
    assert_eq!(names_in(Some(&b), "eu-west-1"), [format!("{p}-team-b")]);
}

#[test]
fn an_account_just_written_is_not_forgotten_while_ec2_lists_it_late() {
    let t = Test::new();
    let p = unique("lag");
    let (a, b) = (unique_account(), unique_account());
    t.write("labctl.yaml", &two_teams(&p, &a, &b, true));
    // EC2's listing lag: for 8 s a new key pair is not listed (labctl looks again for the
    // ones the manifest places; team-b's, once dropped, it has no reason to wait for).
    let proxy = Proxy::start(&["--eventual", "8000"]);
    t.via(&proxy, &["apply", "--yes"]).assert_code(0);
    // team-b leaves at once; its key pairs are not listed yet.
    t.write("labctl.yaml", &two_teams(&p, &a, &b, false));
    t.via(&proxy, &["apply", "--yes"]).assert_code(0);
    // Still remembered: read straight from the server, its key pairs are orphans.
    let plan = t.cloud(&["plan", "--prune"]);
    assert!(
        plan.stdout.contains(&format!("{p}-team-b")),
        "{}",
        plan.stdout
    );
}

#[test]
fn a_ctrl_c_while_roles_are_assumed_ends_at_once() {
    let t = Test::new();
    let p = unique("stopsts");
    let (a, b) = (unique_account(), unique_account());
    t.write("labctl.yaml", &two_teams(&p, &a, &b, true));
    let proxy = Proxy::faults(&json!([
        { "action": "AssumeRole", "fault": "hang", "ms": 60000, "count": 1 }
    ]));
    let endpoint = proxy.endpoint();
    let mut command = t.command(&["apply", "--yes", "--json", "--endpoint-url", &endpoint]);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    proxy.wait_for_fault("hang", std::time::Duration::from_mins(1));
    let started = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{output:?}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "interrupted", "{doc:#}");
    assert!(names_in(Some(&a), "eu-west-1").is_empty());
}

#[test]
fn a_destroy_that_emptied_an_account_forgets_it() {
    let t = Test::new();
    let p = unique("emptied");
    let (a, b) = (unique_account(), unique_account());
    t.write("labctl.yaml", &two_teams(&p, &a, &b, true));
    t.cloud(&["apply", "--yes"]).assert_code(0);
    t.cloud(&["destroy", "--yes"]).assert_code(0);
    // The next cohort has other accounts; the old ones were handed back (their roles fail).
    t.write(
        "labctl.yaml",
        &Manifest::new(&p)
            .defaults("{ region: eu-west-1, key_type: ed25519 }")
            .key(&format!("{p}-next"), &[])
            .text(),
    );
    let proxy = Proxy::faults(&json!([
        { "action": "AssumeRole", "fault": "denied", "count": 1000 }
    ]));
    let run = t.via(&proxy, &["apply", "--yes", "--prune"]);
    run.assert_code(0);
    assert!(
        !run.stderr.contains("no longer in the manifest"),
        "{}",
        run.stderr
    );
    assert_eq!(
        proxy.stats()["requests"].get("AssumeRole"),
        None,
        "{}",
        proxy.stats()
    );
}

#[test]
fn the_callers_own_account_remembered_as_a_member_is_read_as_its_own() {
    let t = Test::new();
    let p = unique("ownreg");
    t.write(
        "labctl.yaml",
        &Manifest::new(&p)
            .account("me", "{ id: \"123456789012\" }")
            .defaults("{ regions: [eu-west-1, us-east-1], key_type: ed25519 }")
            .key(&format!("{p}-a"), &[("account", "me")])
            .text(),
    );
    t.cloud(&["apply", "--yes"]).assert_code(0);
    // The entries move to the caller's own account, in one region only.
    t.write(
        "labctl.yaml",
        &Manifest::new(&p)
            .defaults("{ region: us-east-1, key_type: ed25519 }")
            .key(&format!("{p}-b"), &[])
            .text(),
    );
    let plan = t.cloud(&["plan", "--prune"]);
    plan.assert_code(0);
    let lines = plan.logical_lines();
    assert!(
        lines.iter().any(|l| l.contains(&format!("{p}-a"))
            && l.contains("eu-west-1")
            && l.contains("delete")),
        "{}",
        plan.stdout
    );
    t.cloud(&["apply", "--yes", "--prune"]).assert_code(0);
    assert!(!names_in(None, "eu-west-1").contains(&format!("{p}-a")));
    assert!(!names_in(None, "us-east-1").contains(&format!("{p}-a")));
}
