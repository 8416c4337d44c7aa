//! `labctl validate` and `labctl schema`: offline, every mistake at once, on the right line.

use std::path::{Path, PathBuf};

use crate::support::{Test, labctl_bin, unique};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// What a corpus file says it must produce: (severity, line, field, text).
fn expectations(text: &str) -> Vec<(String, Option<usize>, String, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(at) = line.find("# error: ").or_else(|| line.find("# warning: ")) else {
            continue;
        };
        for item in line[at + 2..].split(" | ") {
            let (severity, rest) = item.split_once(": ").unwrap();
            let (field, message) = rest.split_once(": ").unwrap_or(("", rest));
            out.push((
                severity.to_owned(),
                Some(i + 1),
                field.trim().to_owned(),
                message.trim().to_owned(),
            ));
        }
    }
    out
}

fn example_manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn example_manifests_are_valid() {
    let test = Test::new();
    let files = example_manifests();
    assert!(files.len() >= 3, "{files:?}");
    let mut args = vec!["validate".to_owned()];
    args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = test.run(&args);
    run.assert_code(0);
    assert!(
        run.stdout
            .contains("ecs-workshop.yaml: valid (1 key pair in 1 region)"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("multi-region.yaml: valid (3 key pairs in 3 regions)"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("attendees.yaml: valid (15 key pairs in 1 region)"),
        "{run:?}"
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn every_rule_in_the_corpus_is_reported_on_its_line() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("tests/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 28, "the corpus shrank: {files:?}");
    let test = Test::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected = expectations(&text);
        // A file whose first line says so runs without HOME (for `~/` in paths).
        let mut command = test.command(&["validate", "--json", file.to_str().unwrap()]);
        if text.starts_with("# run without HOME") {
            command.env_remove("HOME");
        }
        let run = Test::run_command(command);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let json = run.json();
        let diagnostics = json["diagnostics"].as_array().unwrap();
        let errors = expected.iter().filter(|e| e.0 == "error").count();
        let must_fail = errors > 0 || expected.is_empty();
        assert_eq!(
            run.code,
            i32::from(must_fail),
            "{name}: exit code\n{run:#?}"
        );
        assert_eq!(json["valid"], !must_fail, "{name}");
        if expected.is_empty() {
            assert_eq!(diagnostics.len(), 1, "{name}: {diagnostics:#?}");
            assert!(
                diagnostics[0]["line"].is_null(),
                "{name}: a file-level error has no line"
            );
            continue;
        }
        for (severity, line, field, message) in &expected {
            let found = diagnostics.iter().any(|d| {
                d["severity"] == severity.as_str()
                    && d["line"].as_u64().map(|l| l as usize) == *line
                    && d["field"] == field.as_str()
                    && d["message"].as_str().unwrap().contains(message.as_str())
                    && d["file"].as_str().unwrap().ends_with(&name)
            });
            assert!(
                found,
                "{name}: no {severity} at line {line:?} for `{field}` containing {message:?}\n{diagnostics:#?}"
            );
        }
        assert_eq!(
            diagnostics.len(),
            expected.len(),
            "{name}: unexpected extra diagnostics\n{diagnostics:#?}"
        );
    }
}

#[test]
fn human_output_names_file_line_field_and_help() {
    let test = Test::new();
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\nkeypairs:\n  - name: a\n    regoin: us-east-1\n",
    );
    let run = test.run(&["validate"]);
    run.assert_code(1);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .contains("keypairs[0].regoin: unknown field `regoin` in a key pair"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("[labctl.yaml:5:5]"), "{}", run.stderr);
    assert!(
        run.stderr.contains("help: did you mean `region`?"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("error: labctl.yaml has 1 error\n"),
        "{}",
        run.stderr
    );
    // The caret sits under the field.
    assert!(
        run.stderr.contains("5 │     regoin: us-east-1"),
        "{}",
        run.stderr
    );
}

#[test]
fn five_mistakes_give_five_diagnostics_sorted_by_position() {
    let test = Test::new();
    test.write(
        "labctl.yaml",
        "version: 3\nproject: lab\ndefaults:\n  key_type: dsa\nkeypairs:\n  - name: a\n    region: useast1\n    tags: { aws:x: y }\n  - name: b\n    region: us-east-1\n    ouput: b.pem\n",
    );
    let run = test.run(&["validate", "--json"]);
    run.assert_code(1);
    let json = run.json();
    let lines: Vec<u64> = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [1, 4, 7, 8, 11], "{json:#}");
    let human = test.run(&["validate"]);
    assert_eq!(human.stderr.matches("  × ").count(), 5, "{}", human.stderr);
}

#[test]
fn vars_on_the_command_line_override_the_manifest() {
    let test = Test::new();
    test.write(
        "lab.yaml",
        "version: 1\nproject: lab\nvars: { region: us-east-1 }\ndefaults: { region: \"${region}\" }\nkeypairs:\n  - name: ${project}-${suffix}\n",
    );
    let run = test.run(&["validate", "lab.yaml"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("undefined variable `${suffix}`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--var suffix=VALUE"), "{}", run.stderr);
    // `--var` changes what the manifest declares; an undeclared name is a mistake.
    let undeclared = test.run(&["validate", "lab.yaml", "--var", "suffix=a"]);
    undeclared.assert_code(1);
    assert!(
        undeclared
            .stderr
            .contains("--var suffix: the manifest declares no variable `suffix`"),
        "{}",
        undeclared.stderr
    );
    let typo = test.run(&["validate", "lab.yaml", "--var", "regoin=eu-west-1"]);
    typo.assert_code(1);
    assert!(
        typo.stderr.contains("did you mean `--var region=…`?"),
        "{}",
        typo.stderr
    );
    test.write(
        "lab.yaml",
        "version: 1\nproject: lab\nvars: { region: us-east-1, suffix: x }\ndefaults: { region: \"${region}\" }\nkeypairs:\n  - name: ${project}-${suffix}\n",
    );
    test.run(&[
        "validate",
        "lab.yaml",
        "--var",
        "suffix=a",
        "--var",
        "region=eu-west-1",
    ])
    .assert_code(0);
    let bad = test.run(&[
        "validate",
        "lab.yaml",
        "--var",
        "suffix=a",
        "--var",
        "region=nowhere",
    ]);
    bad.assert_code(1);
    assert!(
        bad.stderr.contains("`nowhere` is not an AWS region name"),
        "{}",
        bad.stderr
    );
}

#[test]
fn unknown_region_is_a_warning_not_an_error() {
    let test = Test::new();
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\nkeypairs:\n  - name: a\n    region: xx-mars-1\n",
    );
    let run = test.run(&["validate"]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("region xx-mars-1 is not one labctl knows"),
        "{}",
        run.stderr
    );
}

#[test]
fn refuses_files_that_are_not_manifests() {
    let test = Test::new();
    std::fs::create_dir(test.path("folder.yaml")).unwrap();
    let run = test.run(&["validate", "folder.yaml"]);
    run.assert_code(1);
    assert!(run.stderr.contains("is a folder"), "{}", run.stderr);

    let missing = test.run(&["validate", "labctl.yaml"]);
    missing.assert_code(1);
    assert!(
        missing.stderr.contains("no manifest at labctl.yaml"),
        "{}",
        missing.stderr
    );

    let fifo = test.path("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let run = test.run(&["validate", "fifo.yaml"]);
    run.assert_code(1);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);

    let big = "# padding\n".repeat(900_000);
    test.write("big.yaml", &big);
    let run = test.run(&["validate", "big.yaml"]);
    run.assert_code(1);
    assert!(run.stderr.contains("larger than 8 MiB"), "{}", run.stderr);

    std::fs::write(test.path("binary.yaml"), b"version: 1\nproject: \xff\xfe\n").unwrap();
    let run = test.run(&["validate", "binary.yaml"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("not valid UTF-8") && run.stderr.contains("binary.yaml:2:10"),
        "{}",
        run.stderr
    );
}

/// Run `labctl validate FILE` under GNU time and return the run and its peak memory in KiB.
fn validate_measuring_memory(test: &Test, file: &str) -> (crate::support::Run, u64) {
    let report = test.path("time.txt");
    let mut cmd = std::process::Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(labctl_bin())
        .args(["validate", file]);
    cmd.current_dir(test.dir.path());
    let run = Test::run_command(cmd);
    let peak = std::fs::read_to_string(&report)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    (run, peak)
}

#[test]
fn hostile_yaml_fails_fast_without_panic_or_memory_blowup() {
    let test = Test::new();
    // A billion laughs: each level repeats the previous ten times.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..=12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    test.write("bomb.yaml", &bomb);
    test.write(
        "deep.yaml",
        &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
    );
    let nested: String = (0..10_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    test.write("nested.yaml", &nested);
    test.write("nul.yaml", "version: 1\nproject: a\0b\n");
    test.write(
        "wide.yaml",
        &format!("a: [{}]\n", vec!["x"; 2_000_000].join(",")),
    );
    for file in [
        "bomb.yaml",
        "deep.yaml",
        "nested.yaml",
        "nul.yaml",
        "wide.yaml",
    ] {
        let (run, peak_kib) = validate_measuring_memory(&test, file);
        assert_eq!(run.code, 1, "{file}: {run:#?}");
        assert!(peak_kib < 100 * 1024, "{file}: peak memory {peak_kib} KiB");
        assert!(!run.stderr.contains("panicked"), "{file}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("error: {file} has 1 error")),
            "{file}: {}",
            run.stderr
        );
    }
}

#[test]
fn schema_is_checked_in_and_current() {
    let test = Test::new();
    let run = test.run(&["schema"]);
    run.assert_code(0);
    let checked_in = std::fs::read_to_string(repo("schemas/labctl.schema.json")).unwrap();
    assert!(
        run.stdout == checked_in,
        "schemas/labctl.schema.json is stale: run `labctl schema > schemas/labctl.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    // A stable, versioned identity: the copy attached to this version's release.
    assert_eq!(
        schema["$id"],
        format!(
            "https://github.com/labctl/labctl/releases/download/v{}/labctl.schema.json",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(
        schema["definitions"]["KeyPair"]["properties"]["key_type"]["anyOf"][0]["$ref"],
        "#/definitions/KeyType"
    );
}

#[test]
fn schema_accepts_the_examples_and_rejects_a_typo() {
    // Validated with the reference implementation of JSON Schema (python `jsonschema`, which
    // `moto[server]` brings along), as an editor would.
    let check = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft7Validator.check_schema(schema)
validator = jsonschema.Draft7Validator(schema)
for path in sys.argv[2:]:
    errors = list(validator.iter_errors(yaml.safe_load(open(path))))
    print(path, "ok" if not errors else "invalid: " + errors[0].message)
"#;
    let test = Test::new();
    test.write(
        "typo.yaml",
        "version: 1\nproject: lab\nkeypairs:\n  - name: a\n    regoin: us-east-1\n",
    );
    crate::support::python_packages();
    let output = std::process::Command::new("python3")
        .args(["-c", check])
        .arg(repo("schemas/labctl.schema.json"))
        .args(example_manifests())
        .arg(test.path("typo.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ecs-workshop.yaml ok"), "{stdout}");
    assert!(stdout.contains("multi-region.yaml ok"), "{stdout}");
    assert!(stdout.contains("attendees.yaml ok"), "{stdout}");
    assert!(stdout.contains("typo.yaml invalid"), "{stdout}");
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let test = Test::new();
    let run = test.run(&["frobnicate"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("unrecognized subcommand"),
        "{}",
        run.stderr
    );
    test.run(&["plan", "--var", "nonsense"]).assert_code(1);
    test.run(&[]).assert_code(1);
    let help = test.run(&["--help"]);
    help.assert_code(0);
    for command in ["validate", "schema", "plan", "apply"] {
        assert!(help.stdout.contains(command), "{}", help.stdout);
    }
    test.run(&["help", "apply"]).assert_code(0);
    let version = test.run(&["--version"]);
    version.assert_code(0);
    // The version and the commit it was built from (this checkout's HEAD).
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        );
    let commit = std::env::var("LABCTL_COMMIT").map_or(head, |c| c.chars().take(12).collect());
    assert_eq!(
        version.stdout,
        format!("labctl {} ({commit})\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn validate_writes_nothing() {
    let test = Test::new();
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\nkeypairs:\n  - name: a\n    region: us-east-1\n",
    );
    test.run(&["validate"]).assert_code(0);
    let entries: Vec<_> = std::fs::read_dir(test.dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "validate created files: {entries:?}");
}

#[test]
fn var_may_not_set_a_variable_labctl_defines() {
    let test = Test::new();
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\ndefaults: { region: us-east-1 }\nkeypairs:\n  - name: lab-${index}\n",
    );
    for var in ["index=7", "item=a", "project=x", "name=y", "output_dir=z"] {
        let run = test.run(&["validate", "--var", var]);
        run.assert_code(1);
        assert!(
            run.stderr.contains("reserved variable"),
            "{var}: {}",
            run.stderr
        );
    }
    // Without `count`, `${index}` stays undefined whatever the command line says.
    let run = test.run(&["validate"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("only available in an entry with `count`"),
        "{}",
        run.stderr
    );
}

#[test]
fn yaml_errors_point_at_the_unclosed_bracket_and_explain_tabs() {
    let test = Test::new();
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\ndefaults:\n  region: us-east-1\nkeypairs:\n  - name: a\n    regions: [us-east-1, eu-west-1\n  - name: b\n",
    );
    let run = test.run(&["validate"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("this `[` is never closed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(" 7 │     regions: [us-east-1"),
        "{}",
        run.stderr
    );
    let json = test.run(&["validate", "--json"]).json();
    let related = &json["diagnostics"][0]["related"][0];
    assert_eq!(related["line"], 7, "{json:#}");
    assert_eq!(related["column"], 14, "{json:#}");

    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\nkeypairs:\n  - name: a\n\tregion: us-east-1\n",
    );
    let run = test.run(&["validate"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("never tabs: line 5 has a tab"),
        "{}",
        run.stderr
    );
}

#[test]
fn every_undefined_variable_is_reported_with_did_you_mean() {
    let test = Test::new();
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\nvars: { owner: me }\ndefaults:\n  region: us-est-1\n  tags:\n    Owner: ${ownr}\n    Team: ${team}\nkeypairs:\n  - name: lab-${ownr}\n    output: keys/${nme}.pem\n",
    );
    let run = test.run(&["validate", "--json"]);
    run.assert_code(1);
    let text = run.stdout;
    for needle in [
        "undefined variable `${ownr}`",
        "undefined variable `${team}`",
        "undefined variable `${nme}`",
        "did you mean `${owner}`?",
        "did you mean `${name}`?",
        "did you mean `us-east-1`?",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn a_misspelled_region_field_is_one_error() {
    let test = Test::new();
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\nkeypairs:\n  - name: a\n    regoin: us-east-1\n  - name: b\n    region: us-east-1\n",
    );
    let json = test.run(&["validate", "--json"]).json();
    let diagnostics = json["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1, "{json:#}");
    assert_eq!(diagnostics[0]["help"], "did you mean `region`?");
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\ndefaults: { regoin: us-east-1 }\nkeypairs:\n  - name: a\n  - name: b\n",
    );
    let json = test.run(&["validate", "--json"]).json();
    assert_eq!(json["diagnostics"].as_array().unwrap().len(), 1, "{json:#}");
}

/// A manifest saved with Windows line ends validates, and its diagnostics point at the same
/// lines and columns; a column counts characters (as editors do), not bytes.
#[test]
fn crlf_manifests_and_non_ascii_text_keep_lines_and_columns_right() {
    let test = Test::new();
    test.write(
        "labctl.yaml",
        "version: 1\r\nproject: lab\r\ndefaults: { region: us-east-1 }\r\nkeypairs:\r\n  - name: lab-a\r\n",
    );
    test.run(&["validate"]).assert_code(0);
    test.write(
        "labctl.yaml",
        "version: 1\r\nproject: lab\r\nkeypairs:\r\n  - name: lab-a\r\n    regoin: us-east-1\r\n",
    );
    let json = test.run(&["validate", "--json"]).json();
    assert_eq!(json["diagnostics"][0]["line"], 5, "{json:#}");
    assert_eq!(json["diagnostics"][0]["column"], 5, "{json:#}");
    // `é` and `→` are 2 and 3 bytes: `mars-1` starts at character 25 (byte 28).
    test.write(
        "labctl.yaml",
        "version: 1\nproject: lab\nkeypairs:\n  - { name: é→, region: mars-1 }\n",
    );
    let json = test.run(&["validate", "--json"]).json();
    let region = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["field"].as_str().unwrap_or("").ends_with("region"))
        .unwrap_or_else(|| panic!("{json:#}"))
        .clone();
    assert_eq!(region["line"], 4, "{json:#}");
    assert_eq!(region["column"], 25, "{json:#}");
}

/// `--var` works the same on plan and apply as on validate (and is refused the same way).
#[test]
fn var_overrides_reach_plan_and_apply() {
    let test = Test::new();
    let project = unique("var");
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: {project}\nvars: {{ seat: x }}\ndefaults: {{ region: us-east-1, key_type: ed25519 }}\nkeypairs:\n  - name: {project}-${{seat}}\n"),
    );
    let plan = test.cloud(&["plan", "--json", "--var", "seat=7"]);
    plan.assert_code(0);
    assert_eq!(plan.json()["actions"][0]["name"], format!("{project}-7"));
    let apply = test.cloud(&["apply", "--json", "--var", "seat=7"]);
    apply.assert_code(0);
    assert!(
        crate::support::server()
            .key_pair("us-east-1", &format!("{project}-7"))
            .is_some()
    );
    let refused = test.cloud(&["apply", "--json", "--var", "sead=7"]);
    refused.assert_code(1);
    assert_eq!(refused.json()["error"]["kind"], "invalid-manifest");
}

/// docs/performance.md: a 10,000-entry manifest adds under 30 MB to what validating a
/// one-entry manifest takes (the binary's own resident pages, which grow with the SDK crates
/// it links, are not the manifest's); counted by GNU time, not timed.
#[test]
fn a_ten_thousand_entry_manifest_validates_in_under_30_mb_more_than_one_entry() {
    let test = Test::new();
    let mut text =
        String::from("version: 1\nproject: big\ndefaults: { region: us-east-1 }\nkeypairs:\n");
    for i in 0..10_000 {
        text.push_str(&format!(
            "  - name: big-{i:05}\n    tags: {{ Seat: \"{i}\" }}\n"
        ));
    }
    test.write("big.yaml", &text);
    let (run, peak_kib) = validate_measuring_memory(&test, "big.yaml");
    run.assert_code(0);
    assert!(
        run.stdout.contains("valid (10000 key pairs in 1 region)"),
        "{run:?}"
    );
    test.write(
        "small.yaml",
        "version: 1\nproject: big\ndefaults: { region: us-east-1 }\nkeypairs:\n  - name: big-1\n",
    );
    let (small, small_kib) = validate_measuring_memory(&test, "small.yaml");
    small.assert_code(0);
    assert!(
        peak_kib.saturating_sub(small_kib) < 30 * 1024,
        "{peak_kib} KiB, {small_kib} KiB for one entry"
    );
}

#[test]
fn a_private_key_pasted_into_the_manifest_is_refused_and_never_shown() {
    let test = Test::new();
    let key = std::fs::read_to_string(repo("tests/fixtures/keys/ed25519-a.pem")).unwrap();
    let indented: String = key.lines().map(|l| format!("      {l}\n")).collect();
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: lab\ndefaults:\n  region: us-east-1\nkeypairs:\n  - name: a\n    public_key: |\n{indented}  - name: b\n    public_key: \"{}\"\n", key.trim().replace('\n', "\\n")),
    );
    let body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    for args in [
        &["validate"][..],
        &["validate", "--json"],
        &["plan"],
        &["plan", "--json"],
    ] {
        let run = test.run(args);
        run.assert_code(1);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(
            all.matches("this is a private key").count() == 2
                && all.contains("keypairs[0].public_key")
                && all.contains("keypairs[1].public_key"),
            "{args:?}: {all}"
        );
        for line in &body {
            for piece in line.as_bytes().chunks(16).filter(|p| p.len() == 16) {
                let piece = std::str::from_utf8(piece).unwrap();
                assert!(
                    !all.contains(piece),
                    "{args:?} shows the key ({piece}): {all}"
                );
            }
        }
    }
    // The snippet still points at the field.
    let run = test.run(&["validate"]);
    assert!(run.stderr.contains("[labctl.yaml:8:7]"), "{}", run.stderr);

    // The body alone, without its armour lines, as one quoted value: not taken for a file
    // name, never quoted, starred out of the snippet.
    let joined: String = body.concat();
    test.write(
        "labctl.yaml",
        &format!("version: 1\nproject: lab\ndefaults:\n  region: us-east-1\nkeypairs:\n  - name: a\n    public_key: \"{joined}\"\n"),
    );
    for args in [&["validate"][..], &["validate", "--json"]] {
        let run = test.run(args);
        run.assert_code(1);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(
            all.contains("looks like the body of a key"),
            "{args:?}: {all}"
        );
        for piece in joined.as_bytes().chunks(16).filter(|p| p.len() == 16) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(
                !all.contains(piece),
                "{args:?} shows the key ({piece}): {all}"
            );
        }
    }
}
