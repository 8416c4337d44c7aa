//! One scenario, two clouds: what labctl believes of EC2 (fingerprints, public keys, key
//! formats, adoption, tag drift, clean-up) checked against what EC2 itself answers. It runs in
//! the normal suite against the local server, and against real EC2 in `tests/live.rs` when
//! asked (`LABCTL_LIVE_REGION`). A difference between the two clouds shows as this scenario
//! passing in one and failing in the other; the differences the local server is known to
//! have (`../shared` notes, docs/reliability.md) are named in [`Cloud::known_difference`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{Test, labctl_bin, ssh_public_key_of, strip_comment};

/// Where the scenario runs.
#[derive(Clone, Debug)]
pub(crate) enum Cloud {
    /// The local EC2 server of the test suite.
    Local { endpoint: String },
    /// Real EC2, with the credentials of the environment (`tests/live.rs` only).
    #[allow(dead_code)]
    Live { region: String },
}

impl Cloud {
    pub(crate) fn region(&self) -> &str {
        match self {
            Cloud::Local { .. } => "eu-west-1",
            Cloud::Live { region } => region,
        }
    }

    /// labctl in `dir` against this cloud.
    fn labctl(&self, test: &Test, args: &[&str]) -> crate::support::Run {
        let mut cmd = match self {
            Cloud::Local { endpoint } => {
                let mut cmd = test.command(args);
                cmd.args(["--endpoint-url", endpoint]);
                cmd
            }
            Cloud::Live { .. } => {
                let mut cmd = Command::new(labctl_bin());
                cmd.args(args)
                    .current_dir(test.dir.path())
                    .env("NO_COLOR", "1")
                    .env_remove("AWS_ENDPOINT_URL")
                    .stdin(Stdio::null());
                cmd
            }
        };
        cmd.env_remove("LABCTL_LIVE_REGION");
        Test::run_command(cmd)
    }

    /// The independent EC2 client (`tests/it/ec2.py`, boto3) against this cloud.
    fn ec2(&self, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/ec2.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script);
        match self {
            Cloud::Local { endpoint } => {
                cmd.arg(endpoint)
                    .env("AWS_ACCESS_KEY_ID", "testing")
                    .env("AWS_SECRET_ACCESS_KEY", "testing");
            }
            Cloud::Live { .. } => {
                cmd.arg("aws");
            }
        }
        let out = cmd
            .args(args)
            .output()
            .expect("run python3 tests/it/ec2.py");
        assert!(
            out.status.success(),
            "ec2.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Where the local server is known to differ from EC2 (and so labctl's fingerprint, which
    /// follows AWS's documentation, cannot match it): fingerprints of keys it created (RSA:
    /// SHA-1 of the public key instead of the PKCS#8 private key; ed25519: hex instead of
    /// base64), and of imported ed25519 keys (hex).
    fn known_difference(&self, kind: &str) -> bool {
        matches!(self, Cloud::Local { .. })
            && matches!(
                kind,
                "aws-rsa" | "aws-ed25519" | "adopted" | "imported-ed25519"
            )
    }
}

/// Deletes every key pair of the scenario when it ends, also when it fails midway: those
/// tagged with its project (`labctl:project`), and by name the one made before labctl
/// adopted (tagged) it.
struct CleanUp<'a> {
    cloud: &'a Cloud,
    prefix: String,
}

impl Drop for CleanUp<'_> {
    fn drop(&mut self) {
        let region = self.cloud.region().to_owned();
        let Ok(listed) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.cloud.ec2(&["describe", &region])
        })) else {
            return;
        };
        let pairs: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap_or_default();
        for pair in pairs {
            let name = pair["name"].as_str().unwrap_or_default().to_owned();
            let tagged = pair["tags"]["labctl:project"] == self.prefix.as_str();
            if tagged || name.starts_with(&self.prefix) {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.cloud.ec2(&["delete", &region, &name])
                }));
            }
        }
    }
}

/// The scenario, read from top to bottom.
#[allow(clippy::too_many_lines)]
pub(crate) fn ec2_agrees_with_labctl(cloud: &Cloud) {
    let test = Test::new();
    let prefix = format!("labctl-agree-{}-{}", std::process::id(), unique_suffix());
    let _clean = CleanUp {
        cloud,
        prefix: prefix.clone(),
    };
    let region = cloud.region().to_owned();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");

    // A key made the way the workshop guides make it (the AWS CLI's create-key-pair, its
    // KeyMaterial saved as text), to be adopted.
    let adopted = format!("{prefix}-adopted");
    let material = cloud.ec2(&["create-rsa", &region, &adopted]);
    std::fs::create_dir_all(test.path("keys")).unwrap();
    let adopted_file = test.path(&format!("keys/{adopted}.pem"));
    std::fs::write(&adopted_file, material).unwrap();
    std::fs::set_permissions(
        &adopted_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o400),
    )
    .unwrap();

    let kinds: BTreeMap<String, &str> = [
        (format!("{prefix}-aws-rsa"), "aws-rsa"),
        (format!("{prefix}-aws-ed25519"), "aws-ed25519"),
        (format!("{prefix}-local-rsa"), "local-rsa"),
        (format!("{prefix}-imported-rsa"), "imported-rsa"),
        (format!("{prefix}-imported-ed25519"), "imported-ed25519"),
        (adopted.clone(), "adopted"),
    ]
    .into_iter()
    .collect();
    let manifest = format!(
        "version: 1\nproject: {prefix}\ndefaults:\n  region: {region}\n  tags: {{ Purpose: labctl-agreement }}\nkeypairs:\n  - name: {prefix}-aws-rsa\n    key_type: rsa\n  - name: {prefix}-aws-ed25519\n    key_type: ed25519\n  - name: {prefix}-local-rsa\n    source: local\n    key_type: rsa\n    bits: 3072\n  - name: {prefix}-imported-rsa\n    public_key: {}\n  - name: {prefix}-imported-ed25519\n    public_key: {}\n  - name: {adopted}\n    key_type: rsa\n",
        fixtures.join("rsa-openssh.pub").display(),
        fixtures.join("ed25519-b.pub").display(),
    );
    test.write("labctl.yaml", &manifest);

    // Apply: five new key pairs, one adopted; then nothing to do.
    let apply = cloud.labctl(&test, &["apply", "--json"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let again = cloud.labctl(&test, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");

    // EC2's own view: every key pair, its public key and fingerprint.
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&cloud.ec2(&["describe-full", &region])).unwrap();
    let remote: BTreeMap<String, &serde_json::Value> = listed
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p))
        .collect();
    assert_eq!(
        remote.keys().collect::<Vec<_>>(),
        kinds.keys().collect::<Vec<_>>()
    );

    // The saved private keys are the keys EC2 holds (compared by public key, read by
    // ssh-keygen), and labctl's fingerprints are the ones EC2 shows.
    let output = cloud.labctl(&test, &["output", "--json"]);
    assert_eq!(output.code, 0, "{output:?}");
    let output = output.json();
    for row in output["keypairs"].as_array().unwrap() {
        let name = row["name"].as_str().unwrap();
        let kind = kinds[name];
        let pair = remote[name];
        if let Some(file) = row["private_key"].as_str() {
            let file: PathBuf = test.dir.path().join(file);
            assert_eq!(
                ssh_public_key_of(&file),
                strip_comment(pair["public_key"].as_str().unwrap()),
                "{kind}: the saved key is not EC2's"
            );
        }
        let ours = row["local_fingerprint"].as_str().unwrap_or("(none)");
        let theirs = pair["fingerprint"].as_str().unwrap_or("(none)");
        assert_eq!(
            row["fingerprint"].as_str().unwrap_or("(none)"),
            theirs,
            "{kind}: labctl reports EC2's fingerprint as given"
        );
        if cloud.known_difference(kind) {
            assert_ne!(
                ours, theirs,
                "{kind}: the local server now agrees with EC2; update known_difference"
            );
        } else {
            assert_eq!(ours, theirs, "{kind}: labctl's fingerprint is not EC2's");
        }
        assert_eq!(pair["tags"]["Purpose"], "labctl-agreement", "{kind}: tags");
        assert_eq!(pair["tags"]["labctl:project"], prefix.as_str(), "{kind}");
    }

    // Tag drift made outside labctl is seen and fixed with one request.
    cloud.ec2(&[
        "tag",
        &region,
        &format!("{prefix}-aws-rsa"),
        "Purpose",
        "changed-by-hand",
    ]);
    let plan = cloud.labctl(&test, &["plan", "--json"]);
    let drift: Vec<String> = plan.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "update-tags")
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(drift, [format!("{prefix}-aws-rsa")]);
    assert_eq!(cloud.labctl(&test, &["apply", "-q"]).code, 0);
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&cloud.ec2(&["describe-full", &region])).unwrap();
    let fixed = listed
        .iter()
        .find(|p| p["name"] == format!("{prefix}-aws-rsa"))
        .unwrap();
    assert_eq!(fixed["tags"]["Purpose"], "labctl-agreement");

    // destroy removes every key pair the scenario made (the clean-up finds nothing left).
    let destroy = cloud.labctl(&test, &["destroy", "--yes", "--json"]);
    assert_eq!(destroy.code, 0, "{destroy:?}");
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&cloud.ec2(&["describe-full", &region])).unwrap();
    let left: Vec<&serde_json::Value> = listed
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        .collect();
    // EC2's listing is eventually consistent: a deleted key pair may still be listed briefly.
    if matches!(cloud, Cloud::Local { .. }) {
        assert!(left.is_empty(), "{left:?}");
    }
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000)
}
