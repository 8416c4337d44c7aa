//! The manifest's team settings: `store` (where the team's copy of each private key is kept)
//! and `state` (where the lock and the journal are shared). Structure only; what the values
//! mean is `validate`'s.

use super::Located;
use super::document::Reader;
use super::node::{Kind, Node};

/// Fields of `store: { ssm: … }`.
pub const FIELDS_SSM: &[&str] = &["kms_key_id"];

/// `store: ssm`, or `store: { ssm: { kms_key_id: … } }`, as written.
#[derive(Clone, Debug)]
pub struct StoreDef {
    /// The kind of store (`ssm`), where it is written.
    pub kind: Located<String>,
    pub kms_key_id: Option<Located<String>>,
}

impl Reader {
    /// `store:`: a store's name, or a mapping of one store name to its settings.
    pub(super) fn store(&mut self, node: &Node) -> Option<StoreDef> {
        if let Kind::Str(kind) = &node.kind {
            return Some(StoreDef {
                kind: Located {
                    value: kind.clone(),
                    pos: node.pos,
                },
                kms_key_id: None,
            });
        }
        if !matches!(node.kind, Kind::Map(_)) {
            self.wrong_type("store", node, "`ssm`, or `{ ssm: { kms_key_id: … } }`");
            return None;
        }
        let fields = self.fields(node, "store", "the store", &["ssm"])?;
        let (_, key, value) = fields.first()?;
        let mut store = StoreDef {
            kind: Located {
                value: "ssm".to_owned(),
                pos: key.pos,
            },
            kms_key_id: None,
        };
        if matches!(value.kind, Kind::Null) {
            return Some(store);
        }
        for (_, _, value) in self.fields(value, "store.ssm", "the SSM store", FIELDS_SSM)? {
            store.kms_key_id = self.string("store.ssm.kms_key_id", value);
        }
        Some(store)
    }
}
