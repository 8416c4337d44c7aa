//! `accounts:`, `defaults.account`, `defaults.role_name`, and an entry's `account`/`accounts`:
//! which member accounts there are, how each is reached, and which accounts an entry is
//! placed in. Every mistake on its line; no request is made to check an account.

use std::collections::BTreeMap;

use super::{Diagnostic, Pos, Scope, Validator};
use crate::desired::Reach;
use crate::manifest::{AccountDef, Entry, Manifest, RegionList};
use crate::resource::{Account, MemberAccount};

/// The role assumed in an account given by `id` when `defaults.role_name` says none.
pub(super) const DEFAULT_ROLE_NAME: &str = "OrganizationAccountAccessRole";

/// The manifest's accounts, checked.
#[derive(Default)]
pub(super) struct Accounts {
    /// Each valid account, in the order written.
    pub(super) reaches: Vec<Reach>,
    /// Every name given, valid or not (a name whose account is in error was reported), and
    /// where.
    names: Vec<(String, Pos)>,
    /// The names an entry or `defaults.account` used (an account none uses is a warning:
    /// often the other half of a misspelling).
    used: std::cell::RefCell<std::collections::BTreeSet<String>>,
    /// The account of entries that name none: the caller's, `defaults.account`'s, or `None`
    /// when that one is in error (reported).
    default: Option<Account>,
}

/// Whether `text` is an IAM role's path and name (`NAME` or `PATH/NAME`).
fn is_role_name(text: &str) -> bool {
    let mut parts = text.split('/').peekable();
    let mut count = 0;
    while let Some(part) = parts.next() {
        count += 1;
        let last = parts.peek().is_none();
        let ok_chars = part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if part.is_empty() || !ok_chars || (last && part.len() > 64) {
            return false;
        }
    }
    count > 0 && text.len() <= 512
}

/// The account id of a role ARN of the right shape (`arn:aws:iam::111111111111:role/NAME`),
/// or why it is not one.
pub fn role_arn_account(arn: &str) -> Result<&str, &'static str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(id), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err("a role ARN looks like `arn:aws:iam::111111111111:role/NAME`");
    };
    let suffix_ok = |rest: &str| {
        !rest.is_empty()
            && !rest.ends_with('-')
            && rest.chars().all(|c| c.is_ascii_lowercase() || c == '-')
    };
    if partition != "aws" && !partition.strip_prefix("aws-").is_some_and(suffix_ok) {
        return Err("the partition (after `arn:`) is `aws`, `aws-cn`, `aws-us-gov`, …");
    }
    if !is_account_id(id) {
        return Err("the account id in a role ARN is 12 digits");
    }
    match resource.strip_prefix("role/") {
        Some(name) if is_role_name(name) => Ok(id),
        _ => Err("a role ARN ends in `:role/NAME` (or `:role/PATH/NAME`)"),
    }
}

/// Why an account name cannot be one, if it cannot: 1–64 of `A-Z a-z 0-9 . _ -`, and not
/// a region's or an account id's shape (`--replace NAME@us-east-1` must mean one thing).
pub(super) fn account_name_problem(name: &str) -> Option<&'static str> {
    if !super::is_project_name(name) {
        Some("use 1 to 64 characters from A-Z a-z 0-9 . _ -")
    } else if crate::desired::Region::parse(name).is_ok() {
        Some("an account name that reads as a region would make `NAME@REGION` mean two things")
    } else if is_account_id(name) {
        Some("an account name of 12 digits would read as another account's id")
    } else {
        None
    }
}

/// Whether a remembered way to reach an account (the state folder's `reached` record) is one
/// the manifest could have written: its name, its id, a role in that very account, and what
/// STS takes as external id and session name. The one check of both.
pub fn reach_is_sound(
    name: &str,
    id: &str,
    role_arn: &str,
    external_id: Option<&str>,
    session_name: &str,
) -> bool {
    account_name_problem(name).is_none()
        && is_account_id(id)
        && role_arn_account(role_arn) == Ok(id)
        && external_id.is_none_or(|e| (2..=1224).contains(&e.len()) && sts_chars(e, ":/"))
        && (2..=64).contains(&session_name.len())
        && sts_chars(session_name, "")
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Characters STS takes in an external id and a session name.
fn sts_chars(text: &str, extra: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) || extra.contains(c))
}

impl Validator<'_> {
    /// Check `accounts:` and the defaults that concern them.
    pub(super) fn accounts(&mut self, manifest: &Manifest, project: Option<&str>) -> Accounts {
        let role_name = match &manifest.defaults.role_name {
            Some(role) => self
                .expand("defaults.role_name", role, Scope::default())
                .filter(|text| {
                    let ok = is_role_name(text);
                    if !ok {
                        self.push(
                            Diagnostic::error("defaults.role_name", role.pos, format!("`{text}` is not an IAM role name"))
                                .with_label("not a role name")
                                .with_help("a role name is 1 to 64 characters of A-Z a-z 0-9 + = , . @ _ -, e.g. `OrganizationAccountAccessRole`"),
                        );
                    }
                    ok
                }),
            None => Some(DEFAULT_ROLE_NAME.to_owned()),
        };
        let mut accounts = Accounts::default();
        let mut by_id: BTreeMap<String, (String, Pos)> = BTreeMap::new();
        for def in &manifest.accounts {
            accounts.names.push((def.name.value.clone(), def.name.pos));
            if let Some(reach) = self.account(def, role_name.as_deref(), project, &mut by_id) {
                accounts.reaches.push(reach);
            }
        }
        accounts.default = match &manifest.defaults.account {
            None => Some(Account::Caller),
            Some(name) => {
                let name = self
                    .expand("defaults.account", name, Scope::default())
                    .map(|text| crate::manifest::Located {
                        value: text,
                        pos: name.pos,
                    });
                name.and_then(|n| {
                    self.account_named(&accounts, "defaults.account", &n.value, n.pos)
                })
            }
        };
        accounts
    }

    /// One account of `accounts:` checked: its name, role (or id) and STS settings.
    fn account(
        &mut self,
        def: &AccountDef,
        role_name: Option<&str>,
        project: Option<&str>,
        by_id: &mut BTreeMap<String, (String, Pos)>,
    ) -> Option<Reach> {
        let name = &def.name.value;
        let path = format!("accounts.{name}");
        let mut ok = true;
        if let Some(why) = account_name_problem(name) {
            self.push(
                Diagnostic::error(
                    &path,
                    def.name.pos,
                    format!("`{name}` is not a valid account name"),
                )
                .with_label("not an account name")
                .with_help(why),
            );
            ok = false;
        }
        let (role_arn, id, at) = self.account_role(def, &path, role_name)?;
        if let Some((first, first_pos)) = by_id.get(&id) {
            self.push(
                Diagnostic::error(
                    &path,
                    at,
                    format!("accounts `{first}` and `{name}` are the same account {id}"),
                )
                .with_label("the same account again")
                .with_related(*first_pos, "first given here")
                .with_help("give each account one name"),
            );
            ok = false;
        } else {
            by_id.insert(id.clone(), (name.clone(), at));
        }
        let external_id = self.sts_setting(
            &path,
            "external_id",
            def.external_id.as_ref(),
            (2, 1224),
            ":/",
        );
        let session_name = match &def.session_name {
            Some(_) => self.sts_setting(
                &path,
                "session_name",
                def.session_name.as_ref(),
                (2, 64),
                "",
            )?,
            None => format!("labctl-{}", project.unwrap_or("labctl"))
                .chars()
                .take(64)
                .collect(),
        };
        let external_id = match (&def.external_id, external_id) {
            (Some(_), None) => return None,
            (_, external_id) => external_id,
        };
        ok.then(|| Reach {
            account: std::sync::Arc::new(MemberAccount {
                id,
                name: name.clone(),
            }),
            role_arn,
            external_id,
            session_name,
            former: false,
        })
    }

    /// An account's role ARN, id and where it was given: its `role_arn`, or its `id` with
    /// `defaults.role_name`. `None` when in error (reported).
    fn account_role(
        &mut self,
        def: &AccountDef,
        path: &str,
        role_name: Option<&str>,
    ) -> Option<(String, String, Pos)> {
        match (&def.role_arn, &def.id) {
            (Some(_), Some(id)) => {
                self.push(
                    Diagnostic::error(format!("{path}.id"), id.pos, "give either `role_arn` or `id`, not both")
                        .with_label("the role ARN names the account already")
                        .with_help("keep `role_arn` for a role of your own name, or `id` to assume defaults.role_name"),
                );
                None
            }
            (Some(arn), None) => {
                let field = format!("{path}.role_arn");
                let text = self.expand(&field, arn, Scope::default())?;
                match role_arn_account(&text) {
                    Ok(id) => Some((text.clone(), id.to_owned(), arn.pos)),
                    Err(why) => {
                        self.push(
                            Diagnostic::error(
                                &field,
                                arn.pos,
                                format!("`{text}` is not a role ARN"),
                            )
                            .with_label("not a role ARN")
                            .with_help(why),
                        );
                        None
                    }
                }
            }
            (None, Some(id)) => {
                let field = format!("{path}.id");
                let text = self.expand(&field, id, Scope::default())?;
                if !is_account_id(&text) {
                    self.push(
                        Diagnostic::error(
                            &field,
                            id.pos,
                            format!("`{text}` is not an AWS account id"),
                        )
                        .with_label("not 12 digits")
                        .with_help(
                            "an account id is 12 digits, written in quotes: `id: \"012345678901\"`",
                        ),
                    );
                    return None;
                }
                Some((
                    format!("arn:aws:iam::{text}:role/{}", role_name?),
                    text,
                    id.pos,
                ))
            }
            (None, None) => None,
        }
    }

    /// An STS setting (`external_id`, `session_name`): expanded, its length and characters
    /// checked. `None` when absent or in error (reported).
    fn sts_setting(
        &mut self,
        path: &str,
        field: &str,
        value: Option<&crate::manifest::Located<String>>,
        (min, max): (usize, usize),
        extra: &str,
    ) -> Option<String> {
        let value = value?;
        let field = format!("{path}.{field}");
        let text = self.expand(&field, value, Scope::default())?;
        if (min..=max).contains(&text.len()) && sts_chars(&text, extra) {
            return Some(text);
        }
        self.push(
            Diagnostic::error(
                &field,
                value.pos,
                format!(
                    "`{text}` is not a valid {}",
                    field
                        .rsplit('.')
                        .next()
                        .unwrap_or("value")
                        .replace('_', " ")
                ),
            )
            .with_label("STS refuses this")
            .with_help(format!(
                "use {min} to {max} characters from A-Z a-z 0-9 + = , . @ _ -{}",
                if extra.is_empty() {
                    String::new()
                } else {
                    format!(
                        " {}",
                        extra
                            .chars()
                            .map(String::from)
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                }
            )),
        );
        None
    }

    /// The account an `account`/`accounts`/`defaults.account` value names, or `None` (an
    /// unknown name is reported with the names there are; a name whose account is in error
    /// was reported already).
    fn account_named(
        &mut self,
        accounts: &Accounts,
        field: &str,
        name: &str,
        pos: Pos,
    ) -> Option<Account> {
        if accounts.names.iter().any(|(n, _)| n == name) {
            accounts.used.borrow_mut().insert(name.to_owned());
        }
        if let Some(reach) = accounts.reaches.iter().find(|r| r.account.name == name) {
            return Some(Account::Member(reach.account.clone()));
        }
        if accounts.names.iter().any(|(n, _)| n == name) {
            return None;
        }
        let known: Vec<&str> = accounts.names.iter().map(|(n, _)| n.as_str()).collect();
        let help = match crate::diagnostic::suggest(name, &known) {
            Some(close) => format!("did you mean `{close}`? Or add `{name}` under `accounts:`"),
            None if known.is_empty() => "name the account under `accounts:` first, e.g. `accounts: { team-a: { id: \"111111111111\" } }`".to_owned(),
            None => format!("the manifest's accounts: {}", known.join(", ")),
        };
        self.push(
            Diagnostic::error(field, pos, format!("no account `{name}` in `accounts`"))
                .with_label("unknown account")
                .with_help(help),
        );
        None
    }

    /// An account of `accounts:` that no entry and not `defaults.account` uses: a warning on
    /// its name (nothing is assumed there; often the other half of a misspelled name).
    pub(super) fn unused_accounts(&mut self, accounts: &Accounts) {
        let used = accounts.used.borrow().clone();
        for (name, pos) in &accounts.names {
            if !used.contains(name) {
                self.push(
                    Diagnostic::warning(
                        format!("accounts.{name}"),
                        *pos,
                        format!("no key pair is placed in account `{name}`"),
                    )
                    .with_label("not used")
                    .with_help("name it in an entry's `account`/`accounts` (is it misspelled there or here?), or remove it"),
                );
            }
        }
    }

    /// The accounts an entry is placed in: its `account`/`accounts` (expanded for its
    /// instance: `account: ${item}`), else the default. `None` when one is in error.
    pub(super) fn entry_accounts(
        &mut self,
        entry: &Entry,
        accounts: &Accounts,
        instance: Option<(&'static str, &str)>,
    ) -> Option<Vec<Account>> {
        let Some(list) = &entry.accounts else {
            return accounts.default.clone().map(|a| vec![a]);
        };
        self.account_list(list, accounts, instance)
    }

    fn account_list(
        &mut self,
        list: &RegionList,
        accounts: &Accounts,
        instance: Option<(&'static str, &str)>,
    ) -> Option<Vec<Account>> {
        if list.invalid {
            return None;
        }
        if list.items.is_empty() {
            self.push(
                Diagnostic::error(&list.field, list.pos, "the account list is empty")
                    .with_help("list at least one account, e.g. `accounts: [team-a]`, or leave it out for the caller's own"),
            );
            return None;
        }
        let scope = Scope {
            instance,
            ..Scope::default()
        };
        let mut out: Vec<(Account, Pos)> = Vec::with_capacity(list.items.len());
        let mut ok = true;
        for (i, item) in list.items.iter().enumerate() {
            let field = if list.field.ends_with('s') {
                format!("{}[{i}]", list.field)
            } else {
                list.field.clone()
            };
            let Some(name) = self.expand(&field, item, scope) else {
                ok = false;
                continue;
            };
            let Some(account) = self.account_named(accounts, &field, &name, item.pos) else {
                ok = false;
                continue;
            };
            if let Some((_, first)) = out.iter().find(|(a, _)| *a == account) {
                self.push(
                    Diagnostic::error(&field, item.pos, format!("account {name} is listed twice"))
                        .with_label("listed again here")
                        .with_related(*first, "first listed here")
                        .with_help("remove one of them"),
                );
                ok = false;
                continue;
            }
            out.push((account, item.pos));
        }
        ok.then(|| out.into_iter().map(|(a, _)| a).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::role_arn_account;

    #[test]
    fn role_arns_by_shape() {
        for (arn, id) in [
            (
                "arn:aws:iam::111111111111:role/OrganizationAccountAccessRole",
                "111111111111",
            ),
            (
                "arn:aws-cn:iam::012345678901:role/path/to/Lab+Role",
                "012345678901",
            ),
            ("arn:aws-us-gov:iam::222222222222:role/a", "222222222222"),
        ] {
            assert_eq!(role_arn_account(arn), Ok(id), "{arn}");
        }
        for bad in [
            "",
            "arn:aws:iam::11111111111:role/x",
            "arn:aws:iam::111111111111:user/x",
            "arn:aws:iam::111111111111:role/",
            "arn:aws:sts::111111111111:role/x",
            "arn:aws:iam:eu-west-1:111111111111:role/x",
            "arn:AWS:iam::111111111111:role/x",
            "arn:aws:iam::111111111111:role/bad name",
            "arn:aws:iam::111111111111:role//x",
            "arn:aws-:iam::111111111111:role/x",
            "arn:aws-cn-:iam::111111111111:role/x",
        ] {
            assert!(role_arn_account(bad).is_err(), "{bad}");
        }
        let long = format!("arn:aws:iam::111111111111:role/{}", "r".repeat(65));
        assert!(role_arn_account(&long).is_err());
    }

    #[test]
    fn account_names_and_remembered_reaches() {
        use super::{account_name_problem, reach_is_sound};
        assert_eq!(account_name_problem("team-a"), None);
        for bad in ["", "us-east-1", "111111111111", "team a", "\u{1b}[31mred"] {
            assert!(account_name_problem(bad).is_some(), "{bad}");
        }
        let role = "arn:aws:iam::111111111111:role/R";
        assert!(reach_is_sound(
            "team-a",
            "111111111111",
            role,
            None,
            "labctl-lab"
        ));
        assert!(reach_is_sound(
            "team-a",
            "111111111111",
            role,
            Some("ev:1/2"),
            "labctl-lab"
        ));
        // A role in another account than the record's, and every field STS would refuse.
        assert!(!reach_is_sound(
            "team-a",
            "555555555555",
            role,
            None,
            "labctl-lab"
        ));
        assert!(!reach_is_sound(
            "bad name",
            "111111111111",
            role,
            None,
            "labctl-lab"
        ));
        assert!(!reach_is_sound(
            "team-a",
            "1111",
            "arn:aws:iam::1111:role/R",
            None,
            "labctl-lab"
        ));
        assert!(!reach_is_sound(
            "team-a",
            "111111111111",
            role,
            Some("x"),
            "labctl-lab"
        ));
        assert!(!reach_is_sound("team-a", "111111111111", role, None, "s"));
        assert!(!reach_is_sound("team-a", "111111111111", role, None, "a b"));
    }
}
