//! labctl against real EC2: opt-in, never in CI by default.
//!
//!   LABCTL_LIVE_REGION=eu-west-1 cargo test --test live -- --nocapture
//!
//! with AWS credentials in the environment (a profile, SSO or keys) allowed the key-pair
//! actions in CONTRIBUTING.md. It runs the scenario of `tests/it/agreement.rs` (which the normal
//! suite runs against the local server): uniquely named key pairs (RSA and ed25519 made by EC2,
//! a local RSA key, imported RSA and ed25519 keys, one made as the AWS CLI makes it and then
//! adopted), labctl's fingerprints against EC2's `KeyFingerprint`, the saved keys against
//! `IncludePublicKey`, tag drift, and `destroy`; whatever it made is deleted again by name
//! prefix when it ends, also when it fails midway. Without `LABCTL_LIVE_REGION` it says so
//! and does nothing.

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "it/support.rs"]
mod support;

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "it/agreement.rs"]
mod agreement;

#[test]
fn real_ec2_agrees_with_labctl() {
    let Some(region) = std::env::var("LABCTL_LIVE_REGION")
        .ok()
        .filter(|r| !r.trim().is_empty())
    else {
        eprintln!(
            "live test not run: LABCTL_LIVE_REGION is not set. It creates and deletes real EC2 key pairs; to run it, set LABCTL_LIVE_REGION=<region> with AWS credentials allowed the key-pair actions (see CONTRIBUTING.md)"
        );
        return;
    };
    agreement::ec2_agrees_with_labctl(&agreement::Cloud::Live { region });
}
