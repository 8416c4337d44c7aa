//! Reading `labctl.yaml`: bytes on disk -> YAML tree -> [`Manifest`] with a position on every value.
//!
//! This module is the only code that knows the manifest is YAML. It enforces the limits that
//! keep hostile input harmless (file size, a regular file, the YAML crate's budget for
//! nesting, aliases and nodes) and reports every structural mistake (syntax, types, missing
//! and unknown fields) as a [`Diagnostic`]. It never touches the network and writes nothing.

mod accounts;
mod document;
mod node;
mod source;
mod team;

pub use accounts::{AccountDef, FIELDS_ACCOUNT};
pub use document::{
    Defaults, Entry, FIELDS_DEFAULTS, FIELDS_ENTRY, FIELDS_TOP, Manifest, RegionList,
};
pub use node::{Kind, Node, Pos};
pub use source::{MAX_MANIFEST_BYTES, ReadError, Source};
pub use team::{FIELDS_SSM, StoreDef};

use crate::diagnostic::Diagnostic;

/// A value from the manifest and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub pos: Pos,
}

/// Parse a manifest's text into a [`Manifest`], with every problem found on the way.
///
/// The manifest is `None` only when the text is not usable YAML at all; otherwise the parts
/// that could be read are returned along with the diagnostics for the rest.
pub fn parse(source: &Source) -> (Option<Manifest>, Vec<Diagnostic>) {
    match source::parse_yaml(&source.text) {
        Ok(root) => {
            let (manifest, diagnostics) = document::read(&root);
            (Some(manifest), diagnostics)
        }
        Err(diagnostic) => (None, vec![*diagnostic]),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Source, parse};
    use crate::validate::{Context, validate};

    /// Load and validate text; any panic fails the property, and so does an answer that
    /// differs the second time.
    fn load(text: &str) {
        let source = Source::from_text("fuzz.yaml", text);
        let (manifest, diagnostics) = parse(&source);
        let (again, diagnostics_again) = parse(&source);
        assert_eq!(format!("{diagnostics:?}"), format!("{diagnostics_again:?}"));
        assert_eq!(manifest.is_some(), again.is_some());
        if let Some(manifest) = manifest {
            let first = validate(&manifest, &Context::default());
            let second = validate(&manifest, &Context::default());
            assert_eq!(format!("{first:?}"), format!("{second:?}"));
        }
    }

    /// Pieces of manifests, so generated text often gets past the YAML parser.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("version: 1\n".to_owned()),
            Just("project: lab\n".to_owned()),
            Just("keypairs:\n".to_owned()),
            Just("  - name: ${project}-a\n".to_owned()),
            Just("    regions: [us-east-1, eu-west-1]\n".to_owned()),
            Just("    region: ${r}\n".to_owned()),
            Just("    tags: { A: \"${name}\" }\n".to_owned()),
            Just("    output: ~/k/${name}.pem\n".to_owned()),
            Just("defaults:\n  key_type: ed25519\n".to_owned()),
            Just("vars: { r: us-east-1 }\n".to_owned()),
            Just("    count: 3\n".to_owned()),
            Just("    for_each: [a, b, a]\n".to_owned()),
            Just("    source: local\n".to_owned()),
            Just("    bits: 4096\n".to_owned()),
            Just("    key_type: rsa\n".to_owned()),
            Just("    public_key: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILSsJOePlBjf01wlQcPaZbLAONhsdQ6D8y/AnJIiQnX5\"\n".to_owned()),
            Just("  - name: s-${index}-${item}\n".to_owned()),
            Just("&a [*a]\n".to_owned()),
            Just("<<: *x\n".to_owned()),
            Just("---\n".to_owned()),
            "[ -~]{0,20}\n",
            "[\\[\\]{}:,&*!|>'\"%@`#-]{0,10}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            load(&text);
        }

        #[test]
        fn manifest_shaped_text_never_panics(parts in proptest::collection::vec(fragment(), 0..16)) {
            load(&parts.concat());
        }
    }
}
