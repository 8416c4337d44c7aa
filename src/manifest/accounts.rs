//! The manifest's `accounts:` mapping: the names entries place key pairs under, each with the
//! role labctl assumes there. Structure only; what the values mean is `validate`'s.

use super::Located;
use super::document::{Reader, join};
use super::node::{Kind, Node, Pos};
use crate::diagnostic::Diagnostic;

/// Fields of one account of `accounts`.
pub const FIELDS_ACCOUNT: &[&str] = &["role_arn", "id", "external_id", "session_name"];

/// One account of `accounts`, as written.
#[derive(Clone, Debug)]
pub struct AccountDef {
    pub name: Located<String>,
    /// Where its mapping is (for "give `role_arn` or `id`").
    pub pos: Pos,
    pub role_arn: Option<Located<String>>,
    pub id: Option<Located<String>>,
    pub external_id: Option<Located<String>>,
    pub session_name: Option<Located<String>>,
}

impl Reader {
    /// `accounts:`: a mapping of names to `{ role_arn | id, external_id, session_name }`.
    pub(super) fn accounts(&mut self, node: &Node) -> Vec<AccountDef> {
        let Kind::Map(entries) = &node.kind else {
            if !matches!(node.kind, Kind::Null) {
                self.wrong_type(
                    "accounts",
                    node,
                    "a mapping of account names to `{ role_arn: … }` or `{ id: … }`",
                );
            }
            return Vec::new();
        };
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let Some(name) = self.string("accounts", key) else {
                continue;
            };
            let path = join("accounts", &name.value);
            let Some(fields) = self.fields(value, &path, "an account", FIELDS_ACCOUNT) else {
                continue;
            };
            // A `role_arn` or `id` of the wrong type is reported as such, not also as missing.
            let given = fields
                .iter()
                .any(|(f, _, _)| matches!(*f, "role_arn" | "id"));
            let mut account = AccountDef {
                name,
                pos: value.pos,
                role_arn: None,
                id: None,
                external_id: None,
                session_name: None,
            };
            for (field, _, value) in fields {
                let slot = match field {
                    "role_arn" => &mut account.role_arn,
                    "id" => &mut account.id,
                    "external_id" => &mut account.external_id,
                    _ => &mut account.session_name,
                };
                *slot = self.string(&join(&path, field), value);
            }
            if !given {
                self.error(
                    Diagnostic::error(
                        &path,
                        account.pos,
                        format!("account `{}` gives neither `role_arn` nor `id`", account.name.value),
                    )
                    .with_label("which account is this?")
                    .with_help(
                        "give `role_arn: \"arn:aws:iam::111111111111:role/NAME\"`, or `id: \"111111111111\"` to assume defaults.role_name there",
                    ),
                );
            }
            out.push(account);
        }
        out
    }
}
