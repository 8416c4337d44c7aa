//! Replacing an entry's key: `--replace`, and recovery of a key that was never saved.

use super::{
    Action, Conflict, Desired, FileState, KeyPairOp, KeyPairSpec, Observed, Scope, action,
    generator, ours,
};

/// Why an entry is replaced.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// `--replace NAME`.
    Asked,
    /// The journal proves its private key was never saved.
    NeverSaved,
    /// Its key file holds a key destroy or prune retired.
    Retired,
}

/// `--replace`: delete the entry's key pairs and create a new key, if this manifest owns them.
pub(super) fn plan_replace(
    entry: usize,
    desired: &Desired,
    spec: &KeyPairSpec,
    observed: &Observed,
    why: Why,
    actions: &mut Vec<Action>,
) {
    let remote = |region: &Scope| observed.pair(region, &spec.name);
    let unowned = spec
        .scopes
        .iter()
        .filter_map(remote)
        .any(|r| !ours(desired, r));
    let symlink = spec
        .output
        .as_ref()
        .is_some_and(|p| matches!(observed.local.get(p), Some(FileState::Symlink)));
    let primary = &spec.scopes[0];
    for region in &spec.scopes {
        let (op, reason) = match generator(spec) {
            _ if unowned => (
                KeyPairOp::Conflict(Conflict::NotOwned),
                "not every key pair of this entry carries this manifest's ownership tag".to_owned(),
            ),
            _ if symlink => (
                KeyPairOp::Conflict(Conflict::Symlink),
                format!("{} is a symbolic link", spec.output_display),
            ),
            None => (
                KeyPairOp::Conflict(Conflict::KeyType),
                "a `public_key` entry imports the key it names; change `public_key` instead"
                    .to_owned(),
            ),
            Some(generator) => {
                let exists = remote(region).is_some();
                let reason = match (region == primary, exists) {
                    (true, true) => format!(
                        "delete the key pair, move {} aside, create a new key",
                        spec.output_display
                    ),
                    (true, false) => {
                        format!("move {} aside, create a new key", spec.output_display)
                    }
                    (false, true) => {
                        format!("delete the key pair, import the new key created in {primary}")
                    }
                    (false, false) => format!("import the new key created in {primary}"),
                };
                let reason = match why {
                    Why::Asked => reason,
                    Why::NeverSaved => format!(
                        "created by an apply whose private key was never saved; recreate it ({reason})"
                    ),
                    Why::Retired => format!(
                        "{} holds a key that destroy or prune retired, never handed out again ({reason})",
                        spec.output_display
                    ),
                };
                (
                    KeyPairOp::Replace {
                        generator,
                        created_in: primary.clone(),
                        exists,
                    },
                    reason,
                )
            }
        };
        actions.push(action(
            Some(entry),
            spec,
            region,
            remote(region),
            op,
            reason,
        ));
    }
}

#[cfg(test)]
mod tests {
    //! Replace only what this manifest owns.

    use crate::desired::*;
    use crate::keys::FileState;
    use crate::plan::fixtures::*;
    use crate::plan::*;

    #[test]
    fn replace_only_what_this_manifest_owns() {
        let d = desired(&["us-east-1", "eu-west-1"], KeyType::Ed25519);
        let options = Options {
            replace: [0].into(),
            ..Options::default()
        };
        let owned = observed(
            &d,
            &[("us-east-1", remote(Some(key("ed25519-a.pub")), "ed25519"))],
            FileState::Absent,
        );
        let p = plan(&d, &owned, &options);
        let region = scope("us-east-1");
        let expected = |exists| KeyPairOp::Replace {
            generator: Generator::Ec2 {
                key_type: KeyType::Ed25519,
            },
            created_in: region.clone(),
            exists,
        };
        let got: Vec<KeyPairOp> = p
            .actions
            .iter()
            .filter_map(Action::key_pair)
            .map(|a| a.op.clone())
            .collect();
        assert_eq!(got, [expected(true), expected(false)]);

        let unowned = observed(
            &d,
            &[(
                "us-east-1",
                remote_named("lab-key", Some(key("ed25519-a.pub")), "ed25519", &[]),
            )],
            FileState::Absent,
        );
        let got: Vec<KeyPairOp> = ops_with(&d, &unowned, &options);
        assert_eq!(got, vec![KeyPairOp::Conflict(Conflict::NotOwned); 2]);
    }
}
