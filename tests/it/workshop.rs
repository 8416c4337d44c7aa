//! Running a workshop from a terminal, a CI job and a pre-commit hook: starting a manifest,
//! finding it, previewing and confirming deletions, one JSON document for every outcome,
//! colors, completions, grouped plans, a live progress display and Ctrl-C.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Manifest, Proxy, Test, labctl_bin, mutating_calls, on_narrow_terminal, on_terminal,
    public_key_of, server, unique,
};

fn manifest(project: &str, seats: usize) -> String {
    Manifest::new(project)
        .defaults("{ region: us-east-1, key_type: ed25519 }")
        .key(
            &format!("{project}-seat-${{index}}"),
            &[("count", &seats.to_string())],
        )
        .text()
}

#[test]
fn init_writes_a_starter_that_validates_and_never_overwrites() {
    let test = Test::new();
    std::fs::create_dir(test.path(".git")).unwrap();
    std::fs::write(test.path(".gitignore"), "target/\n").unwrap();
    let run = test.run(&["init", "--project", "k8s-101", "--region", "eu-west-1"]);
    run.assert_code(0);
    let text = std::fs::read_to_string(test.path("labctl.yaml")).unwrap();
    assert!(
        text.starts_with("# yaml-language-server: $schema=./labctl.schema.json\n"),
        "{text}"
    );
    assert!(
        text.contains("project: k8s-101") && text.contains("region: eu-west-1"),
        "{text}"
    );
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(test.path("labctl.schema.json")).unwrap())
            .unwrap();
    assert_eq!(schema["title"], "labctl manifest");
    assert_eq!(
        std::fs::read_to_string(test.path(".gitignore")).unwrap(),
        "target/\n# Private keys written by labctl\nkeys/\n"
    );
    let valid = test.run(&["validate"]);
    valid.assert_code(0);
    assert!(
        valid
            .stdout
            .contains("labctl.yaml: valid (4 key pairs in 1 region)"),
        "{valid:?}"
    );

    // Again: refused, nothing changed; a bad region is refused before anything is written.
    let again = test.run(&["init"]);
    again.assert_code(1);
    assert!(again.stderr.contains("never overwrites"), "{again:?}");
    assert_eq!(
        std::fs::read_to_string(test.path("labctl.yaml")).unwrap(),
        text
    );
    let other = Test::new();
    let bad = other.run(&["init", "--region", "us-east1"]);
    bad.assert_code(1);
    assert!(bad.stderr.contains("did you mean `us-east-1`?"), "{bad:?}");
    assert_eq!(std::fs::read_dir(other.dir.path()).unwrap().count(), 0);
    // A well-formed region AWS does not have: refused too, nothing written.
    let typo = Test::new();
    let bad = typo.run(&["init", "--region", "eu-wst-1"]);
    bad.assert_code(1);
    assert!(bad.stderr.contains("did you mean `eu-west-1`?"), "{bad:?}");
    assert_eq!(std::fs::read_dir(typo.dir.path()).unwrap().count(), 0);
    // Without --region: AWS_REGION, else the AWS profile's region, else us-east-1.
    let env = Test::new();
    let mut cmd = env.command(&["init"]);
    cmd.env("AWS_REGION", "eu-central-1");
    let run = Test::run_command(cmd);
    run.assert_code(0);
    assert!(
        run.stderr.contains("region eu-central-1 from AWS_REGION"),
        "{run:?}"
    );
    let text = std::fs::read_to_string(env.path("labctl.yaml")).unwrap();
    assert!(text.contains("region: eu-central-1"), "{text}");
    let profile = Test::new();
    let config = profile.path("aws-config");
    std::fs::write(
        &config,
        "[default]\nregion = us-east-2\n[profile lab]\nregion=ap-south-1\n",
    )
    .unwrap();
    let mut cmd = profile.command(&["init"]);
    cmd.env("AWS_CONFIG_FILE", &config)
        .env("AWS_PROFILE", "lab");
    let run = Test::run_command(cmd);
    run.assert_code(0);
    let text = std::fs::read_to_string(profile.path("labctl.yaml")).unwrap();
    assert!(text.contains("region: ap-south-1"), "{text}");
    // Without --project, the folder's name.
    let named = Test::new();
    std::fs::create_dir(named.path("Cloud Camp")).unwrap();
    named.run(&["-C", "Cloud Camp", "init"]).assert_code(0);
    let text = std::fs::read_to_string(named.path("Cloud Camp/labctl.yaml")).unwrap();
    assert!(text.contains("project: cloud-camp\n"), "{text}");
}

#[test]
fn the_manifest_is_found_here_or_above_up_to_the_repository_root() {
    let test = Test::new();
    let project = unique("find");
    std::fs::create_dir_all(test.path("repo/.git")).unwrap();
    std::fs::create_dir_all(test.path("repo/day1/labs")).unwrap();
    test.write("repo/labctl.yml", &manifest(&project, 1));
    // From a subfolder: the repository's labctl.yml; key files and lock beside it.
    let mut cmd = test.command(&["apply", "--json", "--endpoint-url", &server().endpoint()]);
    cmd.current_dir(test.path("repo/day1/labs"));
    let run = Test::run_command(cmd);
    run.assert_code(0);
    assert_eq!(run.json()["summary"]["create"], 1, "{run:?}");
    assert!(
        test.path(&format!("repo/keys/{project}-seat-1.pem"))
            .exists()
    );
    assert!(test.path("repo/.labctl").is_dir());
    assert!(!test.path("repo/day1/labs/keys").exists());

    // -C and -f.
    test.run(&["-C", "repo/day1", "validate"]).assert_code(0);
    test.write("elsewhere/other.yaml", &manifest(&project, 1));
    let named = test.run(&["validate", "-f", "elsewhere/other.yaml"]);
    named.assert_code(0);
    assert!(
        named.stdout.starts_with("elsewhere/other.yaml: valid"),
        "{named:?}"
    );
    let two = test.run(&["plan", "a.yaml", "-f", "b.yaml"]);
    two.assert_code(1);
    assert!(two.stderr.contains("two manifests named"), "{two:?}");

    // The search stops at the repository's root: a manifest above it is not used.
    test.write("labctl.yaml", &manifest(&project, 1));
    std::fs::create_dir_all(test.path("other/.git")).unwrap();
    let mut cmd = test.command(&["plan"]);
    cmd.current_dir(test.path("other"));
    let none = Test::run_command(cmd);
    none.assert_code(1);
    assert!(
        none.stderr.contains("no labctl.yaml or labctl.yml in"),
        "{none:?}"
    );
    assert!(none.stderr.contains("hint: run `labctl init`"), "{none:?}");
}

#[test]
fn plan_previews_prune_and_replace_and_apply_asks_before_deleting() {
    let test = Test::new();
    let project = unique("ask");
    test.write("labctl.yaml", &manifest(&project, 3));
    test.cloud(&["apply"]).assert_code(0);
    test.write("labctl.yaml", &manifest(&project, 2));

    let plan = test.cloud(&["plan", "--prune", "--json"]);
    plan.assert_code(0);
    let json = plan.json();
    assert_eq!(json["summary"]["delete"], 1, "{json:#}");
    let plan = test.cloud(&["plan", "--replace", &format!("{project}-seat-1")]);
    plan.assert_code(0);
    assert!(plan.stdout.contains("replace"), "{plan:?}");
    // Nothing was deleted by planning.
    assert!(
        server()
            .key_pair("us-east-1", &format!("{project}-seat-3"))
            .is_some()
    );

    // No terminal, no --yes: refused before any change, for --prune and for --replace.
    let seat1 = format!("{project}-seat-1");
    for args in [vec!["apply", "--prune"], vec!["apply", "--replace", &seat1]] {
        let run = test.cloud(&args);
        run.assert_code(1);
        assert!(run.stderr.contains("needs --yes"), "{run:?}");
        assert!(run.stderr.contains(&format!("{project}-seat-")), "{run:?}");
    }
    assert!(
        server()
            .key_pair("us-east-1", &format!("{project}-seat-3"))
            .is_some()
    );
    assert!(test.path(&format!("keys/{project}-seat-1.pem")).exists());
    // On a terminal, `no` cancels and says so.
    let endpoint = server().endpoint();
    let out = on_terminal(
        &test,
        &format!("apply --prune --endpoint-url {endpoint}"),
        Some("no\n"),
    );
    assert!(out.contains("Delete them? Type `yes` to confirm"), "{out}");
    assert!(
        out.contains("Cancelled: nothing was changed (exit 1)"),
        "{out}"
    );
    assert!(
        server()
            .key_pair("us-east-1", &format!("{project}-seat-3"))
            .is_some()
    );

    let run = test.cloud(&["apply", "--prune", "--yes", "--json"]);
    run.assert_code(0);
    assert_eq!(run.json()["summary"]["delete"], 1);
    assert!(
        server()
            .key_pair("us-east-1", &format!("{project}-seat-3"))
            .is_none()
    );

    // Plain creates stay non-interactive. Seat 3's key file was retired with its key pair:
    // the seat comes back with a new key, not the departed attendee's.
    test.write("labctl.yaml", &manifest(&project, 4));
    let run = test.cloud(&["apply", "--json"]);
    run.assert_code(0);
    assert_eq!(run.json()["summary"]["create"], 2);
    assert_eq!(run.json()["summary"]["import"], 0);

    let destroy = test.cloud(&["destroy", "--yes"]);
    destroy.assert_code(0);
    assert!(
        destroy.stdout.contains("Destroy complete: 4 deleted"),
        "{destroy:?}"
    );
    assert!(!destroy.stdout.contains("Apply complete"), "{destroy:?}");
}

#[test]
fn every_command_answers_json_with_one_document_even_on_a_broken_manifest() {
    let test = Test::new();
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\nkeypairs:\n  - name: lab-${nope}\n    region: us-east1\n",
    );
    let endpoint = server().endpoint();
    for args in [
        vec!["validate", "--json"],
        vec!["plan", "--json", "--endpoint-url", &endpoint],
        vec!["apply", "--json", "--endpoint-url", &endpoint],
        vec!["destroy", "--json", "--yes", "--endpoint-url", &endpoint],
        vec!["output", "--json", "--endpoint-url", &endpoint],
        vec!["output", "--format", "json", "--endpoint-url", &endpoint],
    ] {
        let run = test.run(&args);
        run.assert_code(1);
        let json = run.json();
        let diagnostics = json["diagnostics"]
            .as_array()
            .unwrap_or_else(|| panic!("{args:?}: {json:#}"));
        assert_eq!(diagnostics.len(), 2, "{args:?}: {json:#}");
        assert!(
            json.to_string().contains("undefined variable `${nope}`"),
            "{args:?}"
        );
        if args[0] != "validate" {
            assert_eq!(
                json["error"]["kind"], "invalid-manifest",
                "{args:?}: {json:#}"
            );
        }
        assert_eq!(run.stderr, "", "{args:?}: nothing but the document");
    }
    // No manifest, a usage error, a scheme-less endpoint: JSON too.
    let empty = Test::new();
    let none = empty.run(&["plan", "--json"]);
    none.assert_code(1);
    assert_eq!(none.json()["error"]["kind"], "no-manifest");
    let usage = empty.run(&["plan", "--json", "--frobnicate"]);
    usage.assert_code(1);
    assert_eq!(usage.json()["error"]["kind"], "usage", "{usage:?}");
    let scheme = test.run(&["plan", "--json", "--endpoint-url", "localhost:5000"]);
    scheme.assert_code(1);
    assert!(
        scheme.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has no scheme")
    );
    // Warnings ride in the document: a key folder git would track.
    let repo = Test::new();
    std::fs::create_dir(repo.path(".git")).unwrap();
    let project = unique("warn");
    repo.write("labctl.yaml", &format!("version: 1\nproject: {project}\nkeypairs:\n  - name: {project}\n    region: us-east-1\n    output: secrets/k.pem\n"));
    std::fs::create_dir(repo.path("secrets")).unwrap();
    let init = Command::new("git")
        .args(["init", "-q"])
        .current_dir(repo.dir.path())
        .status();
    if init.is_ok_and(|s| s.success()) {
        let run = repo.cloud(&["plan", "--json"]);
        run.assert_code(0);
        let json = run.json();
        assert_eq!(json["warnings"][0]["kind"], "key-file-in-git", "{json:#}");
        assert_eq!(run.stderr, "", "{run:?}");
    }
}

#[test]
fn colors_follow_the_flag_no_color_and_clicolor_force() {
    let test = Test::new();
    let code = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = test.command(args);
        cmd.env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Test::run_command(cmd).stderr.contains("\x1b[")
    };
    assert!(code(&["--color", "always", "plan"], &[]));
    assert!(!code(
        &["--color", "never", "plan"],
        &[("CLICOLOR_FORCE", "1")]
    ));
    assert!(!code(&["plan"], &[]), "not a terminal");
    assert!(code(&["plan"], &[("CLICOLOR_FORCE", "1")]));
    assert!(!code(
        &["plan"],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]
    ));
}

#[test]
fn completions_load_in_bash_and_the_man_page_renders() {
    let test = Test::new();
    let bash = test.run(&["completions", "bash"]);
    bash.assert_code(0);
    std::fs::write(test.path("labctl.bash"), &bash.stdout).unwrap();
    let loaded = Command::new("bash")
        .args(["-c", "source ./labctl.bash && complete -p labctl"])
        .current_dir(test.dir.path())
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{loaded:?}");
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("labctl"));
    for shell in ["zsh", "fish", "powershell"] {
        let run = test.run(&["completions", shell]);
        run.assert_code(0);
        assert!(
            run.stdout.contains("apply") && run.stdout.contains("--prune"),
            "{shell}"
        );
    }
    let man = test.run(&["man"]);
    man.assert_code(0);
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH labctl"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
}

#[test]
fn a_plan_groups_key_pairs_in_sync_and_v_lists_them() {
    let test = Test::new();
    let project = unique("group");
    test.write("labctl.yaml", &manifest(&project, 5));
    test.cloud(&["apply"]).assert_code(0);
    test.write("labctl.yaml", &manifest(&project, 6));
    let plan = test.cloud(&["plan"]);
    plan.assert_code(0);
    assert_eq!(plan.stdout.lines().count(), 4, "{}", plan.stdout);
    assert!(
        plan.stdout.contains("5 key pairs in sync (-v lists them)"),
        "{}",
        plan.stdout
    );
    // The key files' folder is said once, in the heading, not on every line.
    assert!(
        plan.stdout.contains("(key files: keys/<name>.pem)"),
        "{}",
        plan.stdout
    );
    let create = plan.stdout.lines().find(|l| l.contains("create")).unwrap();
    assert_eq!(create.matches(".pem").count(), 0, "{create}");
    // Name, region and file columns, then a short reason: 100 columns for names of 20.
    let reason = create.rsplit("  ").next().unwrap();
    assert!(reason.len() <= 48, "{create}");
    let verbose = test.cloud(&["plan", "-v"]);
    assert_eq!(
        verbose
            .stdout
            .lines()
            .filter(|l| l.contains("in sync"))
            .count(),
        5,
        "{}",
        verbose.stdout
    );
}

#[test]
fn a_terminal_gets_one_live_progress_display_and_a_pipe_gets_none() {
    let test = Test::new();
    let project = unique("bar");
    test.write("labctl.yaml", &manifest(&project, 12));
    let proxy = Proxy::start(&["--delay-ms", "150"]);
    let shown = on_terminal(
        &test,
        &format!("apply --concurrency 2 --endpoint-url {}", proxy.endpoint()),
        None,
    );
    // The display counts done/total with the region while it works, then clears itself
    // before the report.
    assert!(
        (1..12).any(|k| shown.contains(&format!(" {k}/12 us-east-1 {k}/12"))),
        "no count while working: {shown}"
    );
    assert!(shown.contains("Apply complete: 12 created"), "{shown}");
    assert!(
        !shown.contains("Creating key pair"),
        "step lines only with -v: {shown}"
    );
    test.write("labctl.yaml", &manifest(&project, 14));
    let piped = test.via(&proxy, &["apply"]);
    piped.assert_code(0);
    assert!(!piped.stderr.contains("/2"), "{piped:?}");
    assert!(!piped.stderr.contains("Creating key pair"), "{piped:?}");
}

/// Start an apply of `seats` keys through a slow proxy; return it once `started` key files exist.
#[allow(clippy::zombie_processes)] // the caller waits for the child it gets back
fn apply_until(test: &Test, proxy: &Proxy, project: &str, started: usize) -> std::process::Child {
    let mut cmd = test.command(&[
        "apply",
        "--json",
        "--concurrency",
        "2",
        "--endpoint-url",
        &proxy.endpoint(),
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let made = std::fs::read_dir(test.path("keys")).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(project))
                .count()
        });
        if made >= started {
            return child;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the apply never got going");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn names_on_server(project: &str) -> Vec<String> {
    let mut names: Vec<String> = server()
        .key_pairs("us-east-1")
        .into_iter()
        .map(|k| k.name)
        .filter(|n| n.starts_with(&format!("{project}-")))
        .collect();
    names.sort();
    names
}

#[test]
fn ctrl_c_and_sigterm_finish_what_was_sent_report_and_exit_130() {
    for sig in ["INT", "TERM"] {
        let test = Test::new();
        let project = unique("stop");
        test.write("labctl.yaml", &manifest(&project, 20));
        let proxy = Proxy::start(&["--delay-ms", "250"]);
        let child = apply_until(&test, &proxy, &project, 2);
        signal(&child, sig);
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(130), "{sig}: {output:?}");
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let created = json["summary"]["create"].as_u64().unwrap();
        assert!((2..20).contains(&created), "{sig}: {json:#}");
        // Every key pair the stopped run made has its key saved: nothing to recover, nothing lost.
        let made = names_on_server(&project);
        assert_eq!(made.len() as u64, created, "{sig}: {made:?}");
        for name in &made {
            let file = test.path(&format!("keys/{name}.pem"));
            assert!(!public_key_of(&file).is_empty(), "{sig}: {name}");
        }
        let rerun = test.cloud(&["apply", "--json"]);
        rerun.assert_code(0);
        assert_eq!(
            rerun.json()["summary"]["create"].as_u64().unwrap(),
            20 - created
        );
        assert_eq!(names_on_server(&project).len(), 20);
        assert_eq!(mutating_calls(&test.cloud(&["apply", "--json"]).json()), 0);
    }
}

#[test]
fn a_second_ctrl_c_quits_at_once_and_leaves_no_half_written_key() {
    let test = Test::new();
    let project = unique("quit");
    test.write("labctl.yaml", &manifest(&project, 20));
    let proxy = Proxy::start(&["--delay-ms", "1500"]);
    let child = apply_until(&test, &proxy, &project, 1);
    let started = Instant::now();
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "did not wait for requests in flight"
    );
    // --json: one document on stdout even now (the `interrupted` error; or, when the report
    // was already being written as the second signal came, that report), nothing on stderr.
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {output:?}"));
    assert!(
        doc["error"]["kind"] == "interrupted" || doc.get("actions").is_some(),
        "{doc:#}"
    );
    assert!(output.stderr.is_empty(), "{output:?}");
    for entry in std::fs::read_dir(test.path("keys")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pem") {
            assert!(!public_key_of(&path).is_empty(), "{}", path.display());
        }
    }
    // The next run recovers (the journal knows what was asked for) and converges.
    let rerun = test.cloud(&["apply", "--json"]);
    rerun.assert_code(0);
    assert_eq!(names_on_server(&project).len(), 20);
}

/// Under EC2's throttling, Ctrl-C and `--timeout` bound the run: requests waiting for their
/// turn are not sent once the run stops (before, throttled requests went on being retried and
/// new creates went out for tens of seconds after the signal).
#[test]
fn ctrl_c_and_the_timeout_bound_a_throttled_run() {
    let limits = r#"{"CreateKeyPair": [3, 0.5]}"#;
    // Ctrl-C once a few keys are made.
    let test = Test::new();
    let project = unique("throttlestop");
    test.write("labctl.yaml", &manifest(&project, 20));
    let proxy = Proxy::start(&["--throttle", "--limits", limits]);
    let mut cmd = test.command(&["apply", "--json", "--endpoint-url", &proxy.endpoint()]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    proxy.wait_until("three keys made", Duration::from_mins(1), |s| {
        s["requests"]["CreateKeyPair"].as_u64().unwrap_or(0) >= 3
    });
    std::thread::sleep(Duration::from_millis(1500));
    let sent_before = proxy.stats()["requests"]["CreateKeyPair"].as_u64().unwrap();
    let signalled = Instant::now();
    signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    let took = signalled.elapsed();
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    assert!(took < Duration::from_secs(4), "stopping took {took:?}");
    let sent_after = proxy.stats()["requests"]["CreateKeyPair"].as_u64().unwrap();
    assert!(
        sent_after <= sent_before + 1,
        "{} CreateKeyPair sent after the signal",
        sent_after - sent_before
    );
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(doc["summary"]["failed"].as_u64().unwrap() > 0, "{doc:#}");
    drop(proxy);
    // The rerun converges: nothing was lost or left half-made.
    test.cloud(&["apply"]).assert_code(0);
    assert_eq!(names_on_server(&project).len(), 20);

    // --timeout 4 under the same throttling ends near 4 s.
    let test = Test::new();
    let project = unique("throttletimeout");
    test.write("labctl.yaml", &manifest(&project, 20));
    let proxy = Proxy::start(&["--throttle", "--limits", limits]);
    let started = Instant::now();
    let run = test.via(&proxy, &["apply", "--timeout", "4"]);
    let took = started.elapsed();
    run.assert_code(1);
    assert!(took < Duration::from_secs(8), "--timeout 4 took {took:?}");
    drop(proxy);
    test.cloud(&["apply"]).assert_code(0);
    assert_eq!(names_on_server(&project).len(), 20);
}

/// On a terminal, a Ctrl-C at `Type yes to confirm:` cancels at once, and nothing is deleted
/// (before, labctl printed "Stopping…" and went on waiting for the answer).
#[test]
fn a_ctrl_c_at_the_question_cancels() {
    let test = Test::new();
    let project = unique("askstop");
    test.write("labctl.yaml", &manifest(&project, 2));
    test.cloud(&["apply"]).assert_code(0);
    let started = Instant::now();
    let shown = on_terminal(
        &test,
        &format!("destroy --endpoint-url {}", server().endpoint()),
        Some("\u{3}"),
    );
    assert!(shown.contains("Type `yes` to confirm"), "{shown}");
    assert!(shown.contains("Cancelled; nothing was changed"), "{shown}");
    assert!(started.elapsed() < Duration::from_secs(20), "{shown}");
    assert_eq!(names_on_server(&project).len(), 2);
}

#[test]
fn a_ctrl_c_while_the_regions_are_read_ends_with_the_report_not_by_the_signal() {
    let test = Test::new();
    let project = unique("readstop");
    test.write("labctl.yaml", &manifest(&project, 3));
    for (args, json) in [
        (&["plan", "--json"][..], true),
        (&["apply", "--json"], true),
        (&["apply"], false),
    ] {
        let proxy = Proxy::faults(&serde_json::json!([
            {"action": "DescribeKeyPairs", "fault": "hang", "ms": 60_000, "count": 10},
        ]));
        let mut all = args.to_vec();
        let endpoint = proxy.endpoint();
        all.extend(["--endpoint-url", &endpoint]);
        let mut cmd = test.command(&all);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        proxy.wait_for_fault("hang", Duration::from_mins(1));
        signal(&child, "INT");
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(130), "{args:?}: {output:?}");
        if json {
            let doc: serde_json::Value = serde_json::from_slice(&output.stdout)
                .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {output:?}"));
            assert_eq!(doc["error"]["kind"], "interrupted", "{doc:#}");
            assert!(output.stderr.is_empty(), "{output:?}");
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("interrupted"), "{stderr}");
        }
        assert!(names_on_server(&project).is_empty());
    }
}

#[test]
fn the_pre_commit_hook_fails_on_a_key_file_git_would_commit() {
    let hooks = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.pre-commit-hooks.yaml"
    ))
    .unwrap();
    let entries: Vec<&str> = hooks
        .lines()
        .filter_map(|l| l.trim().strip_prefix("entry: "))
        .collect();
    assert_eq!(entries.len(), 2, "{hooks}");
    let test = Test::new();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(test.dir.path())
            .output()
            .unwrap()
    };
    assert!(git(&["init", "-q"]).status.success());
    let project = unique("hook");
    test.write("labctl.yaml", &manifest(&project, 1));
    for entry in &entries {
        // pre-commit runs `entry` with the staged manifests' names appended.
        let mut words: Vec<&str> = entry.split_whitespace().skip(1).collect();
        words.push("labctl.yaml");
        test.run(&words).assert_code(0);
        test.write(
            &format!("keys/{project}-seat-1.pem"),
            "not a key, but a file git would add\n",
        );
        let run = test.run(&words);
        run.assert_code(1);
        assert!(run.stderr.contains("could be committed"), "{run:?}");
        test.write(".gitignore", "keys/\n");
        test.run(&words).assert_code(0);
        std::fs::remove_file(test.path(".gitignore")).unwrap();
        std::fs::remove_file(test.path(&format!("keys/{project}-seat-1.pem"))).unwrap();
    }
}

#[test]
fn the_github_action_script_validates_and_plans() {
    let test = Test::new();
    let project = unique("action");
    test.write("labctl.yaml", &manifest(&project, 2));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/action");
    let outputs = test.path("github-output");
    let summary = test.path("step-summary");
    let action = |command: &str| {
        let mut cmd = test.command(&[]);
        let mut bash = Command::new("bash");
        bash.arg(script)
            .current_dir(test.dir.path())
            .env_clear()
            .envs(
                cmd.get_envs()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
            )
            .env("LABCTL", labctl_bin())
            .env("LABCTL_COMMAND", command)
            .env("AWS_ENDPOINT_URL", server().endpoint())
            .env("GITHUB_OUTPUT", &outputs)
            .env("GITHUB_STEP_SUMMARY", &summary);
        cmd = bash;
        Test::run_command(cmd)
    };
    action("validate").assert_code(0);
    let plan = action("plan");
    plan.assert_code(0);
    assert!(plan.stdout.contains("Plan: 2 to create"), "{plan:?}");
    assert_eq!(std::fs::read_to_string(&outputs).unwrap(), "changes=true\n");
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("### labctl plan")
    );
    test.cloud(&["apply"]).assert_code(0);
    std::fs::remove_file(&outputs).unwrap();
    action("plan").assert_code(0);
    assert_eq!(
        std::fs::read_to_string(&outputs).unwrap(),
        "changes=false\n"
    );
    // A tag value with a newline and a code fence: the job summary's code block stays one
    // block, and nothing the manifest says becomes Markdown of its own.
    test.write(
        "labctl.yaml",
        &manifest(&project, 2).replace(
            "key_type: ed25519 }",
            "key_type: ed25519, tags: { Note: \"x\\n```\\n## injected\\n\\u001b[31mred\" } }",
        ),
    );
    std::fs::remove_file(&summary).unwrap();
    let plan = action("plan");
    plan.assert_code(0);
    assert!(plan.stdout.contains("update-tags"), "{plan:?}");
    let written = std::fs::read_to_string(&summary).unwrap();
    let fences = written.lines().filter(|l| l.starts_with("```")).count();
    assert_eq!(fences, 2, "{written}");
    assert!(
        !written.lines().any(|l| l.starts_with("## injected")),
        "{written}"
    );
    assert!(!written.contains('\u{1b}'), "{written}");
    assert!(written.contains("x\\n```\\n## injected"), "{written}");
    action("nonsense").assert_code(1);
    // The action file names the script it runs.
    let yml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    assert!(yml.contains("scripts/action") && yml.contains("using: composite"));
}

#[test]
fn a_region_that_stops_answering_is_reported_once_not_once_per_key() {
    let test = Test::new();
    let project = unique("dead");
    test.write("labctl.yaml", &manifest(&project, 40));
    let proxy = Proxy::faults(&serde_json::json!([
        { "action": "CreateKeyPair", "fault": "refuse", "count": 10000 }
    ]));
    let run = test.via(
        &proxy,
        &["apply", "--concurrency", "2", "--max-attempts", "2"],
    );
    run.assert_code(1);
    // One failure in full, then one line for the rest; nothing more was tried there.
    let report = run.stdout.split_once("Applied:\n").unwrap().1;
    assert!(report.lines().count() < 12, "{report}");
    assert!(
        run.stdout
            .contains("more in us-east-1 with the same problem"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("127.0.0.1"),
        "the host is named: {}",
        run.stdout
    );
    let creates = proxy.stats()["requests"]["CreateKeyPair"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        creates <= 4,
        "{creates} CreateKeyPair requests: {}",
        proxy.stats()
    );
    assert!(
        server()
            .key_pairs("us-east-1")
            .iter()
            .all(|k| !k.name.starts_with(&project))
    );
}

#[test]
fn an_endpoint_that_is_not_ec2_and_a_profile_that_does_not_exist_are_named() {
    let test = Test::new();
    test.write("labctl.yaml", &manifest(&unique("named"), 1));
    // A web server that answers 404 to everything.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            use std::io::{Read, Write};
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
        }
    });
    let run = test.run(&[
        "plan",
        "--endpoint-url",
        &format!("http://127.0.0.1:{port}"),
    ]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("answered HTTP 404 without an EC2 error"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("no message"), "{run:?}");

    let run = test.cloud(&["plan", "--profile", "nosuch"]);
    run.assert_code(1);
    assert!(run.stderr.contains("`nosuch`"), "{run:?}");
}

#[test]
fn a_large_apply_reports_successes_as_counts_and_problems_in_full() {
    let test = Test::new();
    let project = unique("count");
    test.write("labctl.yaml", &manifest(&project, 25));
    let run = test.cloud(&["apply"]);
    run.assert_code(0);
    let report = run.stdout.split_once("Applied:\n").unwrap().1;
    assert_eq!(
        report,
        "  + 25 key pairs created (-v lists them)\nApply complete: 25 created.\n"
    );
    test.write("labctl.yaml", &manifest(&project, 50));
    let verbose = test.cloud(&["apply", "-v"]);
    verbose.assert_code(0);
    let report = verbose.stdout.split_once("Applied:\n").unwrap().1;
    assert_eq!(
        report
            .lines()
            .filter(|l| l.contains("created, private key saved"))
            .count(),
        25
    );
}

/// Flags before the command work as after it (`labctl --json plan`, `labctl -q apply`), as
/// people type them; a value that looks like a command stays a value.
#[test]
fn flags_before_the_command_work_as_after_it() {
    let test = Test::new();
    let project = crate::support::unique("flagsfirst");
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-k\n"
        ),
    );
    let plan = test.cloud(&["--json", "plan"]);
    plan.assert_code(0);
    assert_eq!(plan.json()["summary"]["create"], 1, "{}", plan.stdout);
    let apply = test.cloud(&["-q", "--max-attempts", "2", "apply", "--yes"]);
    apply.assert_code(0);
    assert!(apply.stderr.is_empty(), "{}", apply.stderr);
    assert!(test.path(&format!("keys/{project}-k.pem")).exists());
    // A flag the command does not have is still refused, as usage.
    let wrong = test.run(&["--yes", "validate"]);
    wrong.assert_code(1);
    assert!(
        wrong.stderr.contains("unexpected argument '--yes'"),
        "{}",
        wrong.stderr
    );
}

/// Plans and reports fit 100 columns for names up to 40 characters: the key files' folder is
/// said once in the heading, and what does not fit goes under the line.
#[test]
fn plans_and_reports_fit_a_hundred_columns() {
    let test = Test::new();
    let project = unique("wide");
    let prefix = format!("{project}-{}", "s".repeat(37 - project.len()));
    assert_eq!(format!("{prefix}-1").len(), 40);
    test.write(
        "labctl.yaml",
        &format!(
            "version: 1\nproject: {project}\ndefaults: {{ regions: [us-east-1, ap-southeast-2], key_type: ed25519 }}\nkeypairs:\n  - name: {prefix}-${{index}}\n    count: 3\n"
        ),
    );
    let long_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.chars().count() > 100)
            .map(ToOwned::to_owned)
            .collect()
    };
    let plan = test.cloud(&["plan"]);
    plan.assert_code(0);
    assert!(
        plan.stdout.contains("(key files: keys/<name>.pem)"),
        "{}",
        plan.stdout
    );
    assert_eq!(
        long_lines(&plan.stdout),
        Vec::<String>::new(),
        "{}",
        plan.stdout
    );
    let apply = test.cloud(&["apply", "--yes"]);
    apply.assert_code(0);
    assert_eq!(
        long_lines(&apply.stdout),
        Vec::<String>::new(),
        "{}",
        apply.stdout
    );
    // A conflict and its hint too.
    std::fs::rename(
        test.path(&format!("keys/{prefix}-2.pem")),
        test.path("away.pem"),
    )
    .unwrap();
    let conflict = test.cloud(&["plan"]);
    assert!(
        conflict.stdout.contains("missing-private-key"),
        "{}",
        conflict.stdout
    );
    assert_eq!(
        long_lines(&conflict.stdout),
        Vec::<String>::new(),
        "{}",
        conflict.stdout
    );
    let destroy = test.cloud(&["destroy", "--yes"]);
    destroy.assert_code(0);
    assert_eq!(
        long_lines(&destroy.stdout),
        Vec::<String>::new(),
        "{}",
        destroy.stdout
    );
}

/// The live progress line fits the terminal, however many regions and counts it shows: on a
/// 50-column terminal no drawn line is wider than 50.
#[test]
fn the_progress_line_never_exceeds_the_terminal_width() {
    let test = Test::new();
    let project = unique("narrow");
    test.write(
        "labctl.yaml",
        &Manifest::new(&project)
            .defaults(
                "{ regions: [us-east-1, eu-west-1, ap-south-1, us-west-2], key_type: ed25519 }",
            )
            .key(&format!("{project}-${{index}}"), &[("count", "5")])
            .text(),
    );
    let proxy = Proxy::start(&["--delay-ms", "250"]);
    let shown = on_narrow_terminal(
        &test,
        50,
        &format!("apply --endpoint-url {}", proxy.endpoint()),
    );
    // The text without its escape sequences (`ESC [ … letter`).
    let mut plain = String::new();
    let mut chars = shown.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let drawn: Vec<&str> = plain
        .split(['\r', '\n'])
        .filter(|l| l.contains("[00:"))
        .collect();
    assert!(!drawn.is_empty(), "no progress line was drawn: {shown:?}");
    for line in drawn {
        assert!(
            line.chars().count() <= 50,
            "{} columns: {line:?}",
            line.chars().count()
        );
    }
}

/// `labctl man` makes the per-command pages its own page points to.
#[test]
fn man_pages_exist_for_every_command() {
    let test = Test::new();
    let plan = test.run(&["man", "plan"]);
    plan.assert_code(0);
    assert!(
        plan.stdout.contains(".TH labctl-plan"),
        "{}",
        &plan.stdout[..200.min(plan.stdout.len())]
    );
    assert!(
        plan.stdout.contains("detailed"),
        "the page documents plan's own flags"
    );
    let main = test.run(&["man"]);
    main.assert_code(0);
    assert!(
        main.stdout.contains("labctl\\-plan(1)"),
        "the main page names the pages"
    );
    test.run(&["man", "--dir", "pages"]).assert_code(0);
    for page in [
        "labctl.1",
        "labctl-plan.1",
        "labctl-handout.1",
        "labctl-destroy.1",
    ] {
        assert!(test.path(&format!("pages/{page}")).exists(), "{page}");
    }
    test.run(&["man", "nope"]).assert_code(1);
    // A page is never written through a link.
    test.write("victim", "mine\n");
    std::fs::create_dir(test.path("linked")).unwrap();
    std::os::unix::fs::symlink(test.path("victim"), test.path("linked/labctl.1")).unwrap();
    test.run(&["man", "--dir", "linked"]).assert_code(1);
    assert_eq!(
        std::fs::read_to_string(test.path("victim")).unwrap(),
        "mine\n"
    );
}

/// `output --offline` says what the manifest and the key files know without the network: an
/// endpoint that answers nothing is never asked.
#[test]
fn output_offline_needs_no_network() {
    let test = Test::new();
    let project = unique("offline");
    test.write("labctl.yaml", &manifest(&project, 2));
    test.cloud(&["apply", "-q"]).assert_code(0);
    let run = test.run(&[
        "output",
        "--offline",
        "--format",
        "json",
        "--endpoint-url",
        "http://127.0.0.1:9",
    ]);
    run.assert_code(0);
    let json = run.json();
    let keys = json["keypairs"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{json:#}");
    for key in keys {
        assert!(key["local_fingerprint"].is_string(), "{json:#}");
        assert!(key["id"].is_null(), "{json:#}");
    }
    assert!(!run.stderr.contains("do not exist yet"), "{run:?}");
    // The wide table shows the fingerprint EC2 shows, computed from the key file.
    let table = test.run(&[
        "output",
        "--offline",
        "--format",
        "wide",
        "--endpoint-url",
        "http://127.0.0.1:9",
    ]);
    table.assert_code(0);
    let fingerprint = keys[0]["local_fingerprint"].as_str().unwrap();
    assert!(table.stdout.contains(fingerprint), "{table:?}");
    assert!(
        !table.stderr.contains("Reading key pairs"),
        "nothing is read: {table:?}"
    );
}

/// bash completes the manifest's key pair names after `handout` and `--replace`, read from
/// the manifest when Tab is pressed (`labctl __names`), and flags as before elsewhere.
#[test]
fn completion_offers_the_manifests_key_pair_names() {
    let test = Test::new();
    let project = unique("complete");
    test.write("labctl.yaml", &manifest(&project, 3));
    let script = test.run(&["completions", "bash"]);
    script.assert_code(0);
    test.write("labctl.bash", &script.stdout);
    let bin_dir = labctl_bin().parent().unwrap().to_owned();
    let complete = |words: &str| -> Vec<String> {
        let line = format!(
            "source ./labctl.bash; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _labctl_with_names labctl; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let cmd = test.command(&[]);
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .args(["-c", &line])
            .current_dir(test.dir.path())
            .env_clear()
            .envs(
                cmd.get_envs()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
            )
            .env("PATH", path)
            .output()
            .unwrap();
        let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        got.sort();
        got
    };
    let all: Vec<String> = (1..=3).map(|i| format!("{project}-seat-{i}")).collect();
    assert_eq!(complete("labctl handout \"\""), all);
    assert_eq!(
        complete(&format!("labctl handout {project}-seat-2")),
        [format!("{project}-seat-2")]
    );
    assert_eq!(complete("labctl apply --replace \"\""), all);
    assert!(complete("labctl apply --pr").contains(&"--prune".to_owned()));
    // After a flag that takes a file or folder, files and folders, not names.
    for flag in ["--file", "-C", "--out"] {
        let got = complete(&format!("labctl handout {flag} \"\""));
        assert!(!got.contains(&all[0]), "{flag}: {got:?}");
    }
}

/// `output`'s table fits 100 columns for names of 40 characters; `--format wide` has the
/// fingerprints.
#[test]
fn the_output_table_fits_a_hundred_columns() {
    let test = Test::new();
    let project = unique("outwidth");
    let long = format!("{project}-{}", "x".repeat(40 - project.len() - 1));
    assert_eq!(long.len(), 40);
    test.write(
        "labctl.yaml",
        &Manifest::new(&project)
            .defaults("{ regions: [us-east-1, ap-southeast-2], key_type: rsa }")
            .key(&long, &[])
            .text(),
    );
    test.cloud(&["apply", "-q"]).assert_code(0);
    let table = test.cloud(&["output"]);
    table.assert_code(0);
    for line in table.stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert!(
        table.stdout.contains("Key files: keys/<name>.pem"),
        "{table:?}"
    );
    assert!(table.stdout.contains("key-"), "the key pair ids: {table:?}");
    let wide = test.cloud(&["output", "--format", "wide"]);
    wide.assert_code(0);
    assert!(wide.stdout.contains("FINGERPRINT"), "{wide:?}");
}
