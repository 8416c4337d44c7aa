//! Reading `labctl.yaml`: bytes on disk -> YAML tree -> [`Manifest`] with a position on every value.
//!
//! This module is the only code that knows the manifest is YAML. It enforces the limits that
//! keep hostile input harmless (file size, a regular file, the YAML crate's budget for
//! nesting, aliases and nodes) and reports every structural mistake (syntax, types, missing
//! and unknown fields) as a [`Diagnostic`]. It never touches the network and writes nothing.

mod document;
mod node;
mod source;

pub use document::{
    Defaults, Entry, FIELDS_DEFAULTS, FIELDS_ENTRY, FIELDS_TOP, Manifest, RegionList,
};
pub use node::{Kind, Node, Pos};
pub use source::{MAX_MANIFEST_BYTES, Source};

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
