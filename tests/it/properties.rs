//! Generated manifests over every field that shapes a key pair (`count`, `for_each`, `source`,
//! `public_key`, `bits`, `key_type`, `formats`, regions, output, tags): validation is deterministic, a
//! valid manifest makes exactly the key pairs its entries describe, and the JSON Schema that
//! editors use accepts every manifest labctl accepts.

use std::collections::BTreeSet;
use std::path::Path;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use crate::support::{Manifest, Test, python_packages};

/// How many manifests are generated (each is validated twice, and schema-checked).
const CASES: usize = 240;

#[derive(Clone, Debug)]
enum Many {
    One,
    Count(&'static str),
    ForEach(&'static [&'static str]),
    Both,
}

#[derive(Clone, Debug)]
struct Entry {
    suffix: &'static str,
    many: Many,
    source: Option<&'static str>,
    key_type: Option<&'static str>,
    bits: Option<&'static str>,
    public_key: Option<usize>,
    regions: Option<&'static str>,
    output: Option<&'static str>,
    tags: Option<&'static str>,
    formats: Option<&'static str>,
}

/// A field left out, or one of `valid` values, or now and then one of `wrong` ones.
fn field(
    absent: u32,
    valid: &[&'static str],
    wrong: &[&'static str],
) -> BoxedStrategy<Option<&'static str>> {
    let mut choices: Vec<(u32, BoxedStrategy<Option<&'static str>>)> =
        vec![(absent, Just(None).boxed())];
    if !valid.is_empty() {
        choices.push((
            6,
            prop::sample::select(valid.to_vec()).prop_map(Some).boxed(),
        ));
    }
    if !wrong.is_empty() {
        choices.push((
            1,
            prop::sample::select(wrong.to_vec()).prop_map(Some).boxed(),
        ));
    }
    proptest::strategy::Union::new_weighted(choices).boxed()
}

fn entry() -> impl Strategy<Value = Entry> {
    let many = prop_oneof![
        8 => Just(Many::One),
        4 => prop::sample::select(vec!["1", "3"]).prop_map(Many::Count),
        1 => prop::sample::select(vec!["0", "1001", "two"]).prop_map(Many::Count),
        4 => prop::sample::select(vec![&["ana", "bo"][..], &["x"][..]]).prop_map(Many::ForEach),
        1 => prop::sample::select(vec![&[][..], &["ana", "ana"][..]]).prop_map(Many::ForEach),
        1 => Just(Many::Both),
    ];
    (
        (
            many,
            field(
                12,
                &[],
                &["", "-${index}", "-${item}", "-${name}", "-${index:02}"],
            ),
            field(12, &["aws", "local"], &["cloud"]),
            field(12, &["rsa", "ed25519"], &["dsa"]),
            field(12, &["[pem, ppk]", "[pem]"], &["[ppk]", "[pem, PPK]"]),
        ),
        (
            field(40, &["2048", "3072", "4096"], &["1024", "big"]),
            prop::option::weighted(0.12, 0..PUBLIC_KEYS.len()),
            field(
                12,
                &["region: eu-west-1", "regions: [us-east-1, eu-west-1]"],
                &[
                    "regions: []",
                    "region: nowhere",
                    "regions: [ap-south-1, ap-south-1]",
                ],
            ),
            field(12, &["keys/${name}.pem"], &["\"\"", "out/k.pem", "keys/"]),
            field(
                12,
                &["{ Seat: \"${name}\" }"],
                &["{ aws:x: y }", "{ Team: \"${item}\" }"],
            ),
        ),
    )
        .prop_map(
            |(
                (many, suffix, source, key_type, formats),
                (bits, public_key, regions, output, tags),
            )| {
                // The name a careful author gives: numbered with `count`, named with `for_each`
                // (unless a wrong one was drawn).
                let suffix = suffix.unwrap_or(match many {
                    Many::Count(_) | Many::Both => "-${index}",
                    Many::ForEach(_) => "-${item}",
                    Many::One => "",
                });
                Entry {
                    suffix,
                    many,
                    source,
                    key_type,
                    bits,
                    public_key,
                    regions,
                    output,
                    tags,
                    formats,
                }
            },
        )
}

/// Public key values: inline keys of both kinds, files (public, private, missing), garbage.
const PUBLIC_KEYS: [&str; 6] = [
    "\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILSsJOePlBjf01wlQcPaZbLAONhsdQ6D8y/AnJIiQnX5\"",
    "{fixtures}/rsa-openssh.pub",
    "{fixtures}/ed25519-a.pub",
    "{fixtures}/ed25519-a.pem",
    "{fixtures}/missing.pub",
    "\"not a key\"",
];

fn manifest(entries: &[Entry], defaults_region: bool) -> String {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
    let mut manifest = Manifest::new("lab");
    if defaults_region {
        manifest = manifest.defaults("\n  region: us-east-1");
    }
    for (i, e) in entries.iter().enumerate() {
        let mut lines: Vec<(&str, String)> = match &e.many {
            Many::One => vec![],
            Many::Count(n) => vec![("count", (*n).to_owned())],
            Many::ForEach(items) => vec![("for_each", format!("[{}]", items.join(", ")))],
            Many::Both => vec![("count", "2".to_owned()), ("for_each", "[a, b]".to_owned())],
        };
        let fields = [
            ("source", e.source.map(str::to_owned)),
            ("key_type", e.key_type.map(str::to_owned)),
            ("bits", e.bits.map(str::to_owned)),
            (
                "public_key",
                e.public_key
                    .map(|k| PUBLIC_KEYS[k].replace("{fixtures}", &fixtures.to_string_lossy())),
            ),
            ("output", e.output.map(str::to_owned)),
            ("tags", e.tags.map(str::to_owned)),
            ("formats", e.formats.map(str::to_owned)),
        ];
        lines.extend(fields.into_iter().filter_map(|(f, v)| Some((f, v?))));
        if let Some((field, value)) = e.regions.and_then(|r| r.split_once(": ")) {
            lines.push((field, value.to_owned()));
        }
        let lines: Vec<(&str, &str)> = lines.iter().map(|(f, v)| (*f, v.as_str())).collect();
        manifest = manifest.key(&format!("e{i}{}", e.suffix), &lines);
    }
    manifest.text()
}

/// The key pairs and regions a valid manifest describes, by the manifest's own rules (not
/// labctl's code): one key pair per `count` or `for_each` item, in the entry's regions or the
/// default one.
fn described(entries: &[Entry]) -> (usize, usize) {
    let mut pairs = 0;
    let mut regions = BTreeSet::new();
    for e in entries {
        let instances = match &e.many {
            Many::One | Many::Both => 1,
            Many::Count(n) => n.parse().unwrap_or(0),
            Many::ForEach(items) => items.len(),
        };
        pairs += instances;
        let listed: &[&str] = match e.regions {
            Some("region: eu-west-1") => &["eu-west-1"],
            Some("regions: [us-east-1, eu-west-1]") => &["us-east-1", "eu-west-1"],
            Some("regions: [ap-south-1, ap-south-1]") => &["ap-south-1"],
            Some(_) => &[],
            None => &["us-east-1"],
        };
        regions.extend(listed.iter().copied());
    }
    (pairs, regions.len())
}

#[test]
fn generated_manifests_validate_deterministically_and_agree_with_the_schema() {
    python_packages();
    let test = Test::new();
    let strategy = (prop::collection::vec(entry(), 1..4), any::<bool>());
    let mut runner = TestRunner::deterministic();
    let mut valid = Vec::new();
    let mut invalid = 0;
    let mut with_ppk = 0;
    for case in 0..CASES {
        let (entries, defaults_region) = strategy.new_tree(&mut runner).unwrap().current();
        let file = format!("m{case:03}.yaml");
        let text = manifest(&entries, defaults_region);
        test.write(&file, &text);

        // Deterministic: the same answer twice, to the byte (JSON and for people).
        let json = test.run(&["validate", "--json", &file]);
        let again = test.run(&["validate", "--json", &file]);
        assert_eq!(json.stdout, again.stdout, "{text}");
        let human = test.run(&["validate", &file]);
        assert_eq!(
            human.stderr,
            test.run(&["validate", &file]).stderr,
            "{text}"
        );
        assert!(matches!(json.code, 0 | 1), "{text}\n{json:?}");
        assert_eq!(json.code, human.code, "{text}");
        let document = json.json();
        assert_eq!(document["valid"], json.code == 0, "{text}");
        for d in document["diagnostics"].as_array().unwrap() {
            let line = d["line"].as_u64().unwrap_or(1) as usize;
            assert!((1..=text.lines().count()).contains(&line), "{text}\n{d}");
            assert!(!d["message"].as_str().unwrap().is_empty(), "{text}\n{d}");
        }
        if json.code == 0 {
            // A valid manifest makes one key pair per instance, in the regions it names.
            let (pairs, regions) = described(&entries);
            let expected = format!(
                "valid ({pairs} key pair{} in {regions} region{})",
                if pairs == 1 { "" } else { "s" },
                if regions == 1 { "" } else { "s" }
            );
            assert!(
                human.stdout.contains(&expected),
                "{text}\n{expected}\n{human:?}"
            );
            with_ppk += usize::from(text.contains("formats: [pem, ppk]"));
            valid.push(test.path(&file));
        } else {
            invalid += 1;
        }
    }
    eprintln!(
        "{} valid ({with_ppk} with ppk), {invalid} invalid",
        valid.len()
    );
    assert!(with_ppk > 0, "no valid manifest asks for ppk");
    // Enough of both kinds that the properties say something.
    assert!(valid.len() >= CASES / 10, "only {} valid", valid.len());
    assert!(invalid >= CASES / 10, "only {invalid} invalid");

    // Every manifest labctl accepts, the schema accepts (as an editor checks it).
    let check = r"
import json, sys, yaml, jsonschema
validator = jsonschema.Draft7Validator(json.load(open(sys.argv[1])))
for path in sys.argv[2:]:
    errors = list(validator.iter_errors(yaml.safe_load(open(path))))
    if errors:
        print(path, errors[0].message)
";
    let output = std::process::Command::new("python3")
        .args(["-c", check])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/labctl.schema.json"))
        .args(&valid)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let refused = String::from_utf8_lossy(&output.stdout);
    assert!(
        refused.is_empty(),
        "the schema refuses manifests labctl accepts:\n{refused}"
    );
}
