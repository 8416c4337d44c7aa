//! What labctl manages, named: where a resource lives ([`Scope`]: an account and a region),
//! what names one ([`Address`]: kind, name, scope), and what the cloud says of a key pair
//! ([`RemoteKeyPair`]). Every layer speaks these types: `cloud` takes a scope, `observe`
//! keys what it read on it, `plan` addresses every action, the pacer meters each scope apart.
//! Nothing here does I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::desired::{KeyName, KeyType, Region};
use crate::keys::PublicKey;

/// Which AWS account a resource lives in.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// The account of the caller's own credentials (profile, SSO, environment, instance
    /// role).
    #[default]
    Caller,
    /// Another account, reached by assuming a role in it (the manifest's `accounts:`).
    /// Shared: every scope of the account points at one (a 10,000-key manifest stays small).
    Member(Arc<MemberAccount>),
}

impl Account {
    /// The 12-digit id of a member account (the caller's own is not known without asking).
    pub fn id(&self) -> Option<&str> {
        match self {
            Account::Caller => None,
            Account::Member(member) => Some(&member.id),
        }
    }

    /// The manifest's name of a member account.
    pub fn name(&self) -> Option<&str> {
        match self {
            Account::Caller => None,
            Account::Member(member) => Some(&member.name),
        }
    }
}

/// An account of the manifest's `accounts:`: its 12-digit id, which alone says which
/// account it is, and the name the manifest gives it (what people read). Two names for one
/// id are refused by validation; a name changed between runs is still the same account.
#[derive(Clone, Debug)]
pub struct MemberAccount {
    pub id: String,
    pub name: String,
}

impl PartialEq for MemberAccount {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for MemberAccount {}

impl PartialOrd for MemberAccount {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MemberAccount {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

impl std::hash::Hash for MemberAccount {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

/// Where a resource lives: an account and a region. EC2 keeps (and meters) each scope apart.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    pub account: Account,
    pub region: Region,
}

impl Scope {
    /// A region of the caller's own account.
    pub fn caller(region: Region) -> Self {
        Scope {
            account: Account::Caller,
            region,
        }
    }

    /// Whether `text` names this scope, as `--replace NAME@…` spells it: the whole scope
    /// (`team-a/eu-west-1`, `111111111111/eu-west-1`, or the region alone in the caller's
    /// account), the region alone, or the account alone (its name or id).
    pub fn is_named_by(&self, text: &str) -> bool {
        if text == self.region.as_str() {
            return true;
        }
        let Account::Member(member) = &self.account else {
            return false;
        };
        let account = match text.split_once('/') {
            Some((account, region)) if region == self.region.as_str() => account,
            Some(_) => return false,
            None => text,
        };
        account == member.name || account == member.id
    }
}

/// The region alone in the caller's account (what every plan line, report and hint has
/// always shown); `name/region` in a member account (`team-a/eu-west-1`).
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.account {
            Account::Caller => write!(f, "{}", self.region),
            Account::Member(member) => write!(f, "{}/{}", member.name, self.region),
        }
    }
}

/// How many regions `scopes` cover, and how many accounts when a member account is among
/// them (the caller's own counting as one): what status lines and `validate` say.
pub fn count_places(scopes: &[Scope]) -> (usize, Option<usize>) {
    let regions: std::collections::BTreeSet<&str> =
        scopes.iter().map(|s| s.region.as_str()).collect();
    let accounts: std::collections::BTreeSet<Option<&str>> =
        scopes.iter().map(|s| s.account.id()).collect();
    let members = accounts.iter().any(Option::is_some);
    (regions.len(), members.then_some(accounts.len()))
}

/// `Accounts: team-a 111111111111, …` for member accounts given as (name, id), each once,
/// by id: the one line that says which account a `team-a/eu-west-1` is. `None` for none.
pub fn accounts_line(accounts: impl IntoIterator<Item = (String, String)>) -> Option<String> {
    let mut accounts: Vec<(String, String)> = accounts.into_iter().collect();
    accounts.sort_by(|a, b| a.1.cmp(&b.1));
    accounts.dedup_by(|a, b| a.1 == b.1);
    (!accounts.is_empty()).then(|| {
        let list: Vec<String> = accounts.iter().map(|(n, id)| format!("{n} {id}")).collect();
        format!("Accounts: {}", list.join(", "))
    })
}

/// The kind of a resource. Key pairs are the one kind today; a second kind adds a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    KeyPair,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::KeyPair => "key-pair",
        }
    }
}

/// One resource: its kind, its name and where it lives. Actions, the journal's records of
/// them, progress and JSON name a resource by its address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub kind: Kind,
    pub name: KeyName,
    pub scope: Scope,
}

impl Address {
    /// A key pair's address.
    pub fn key_pair(name: KeyName, scope: Scope) -> Self {
        Address {
            kind: Kind::KeyPair,
            name,
            scope,
        }
    }
}

/// `name@scope`, as `--replace` spells it.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.scope)
    }
}

/// A key pair as EC2 describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemoteKeyPair {
    pub name: String,
    pub id: Option<String>,
    pub fingerprint: Option<String>,
    /// The key type, when EC2 says (and it is one labctl knows).
    pub key_type: Option<KeyType>,
    /// The OpenSSH public key, when EC2 returned one that parses.
    pub public_key: Option<PublicKey>,
    pub tags: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::{Address, Scope};
    use crate::desired::{KeyName, Region};

    #[test]
    fn the_callers_scope_reads_as_its_region_and_orders_by_it() {
        let west = Scope::caller(Region::parse("eu-west-1").unwrap());
        let east = Scope::caller(Region::parse("us-east-1").unwrap());
        assert_eq!(west.to_string(), "eu-west-1");
        assert!(west < east);
        let address = Address::key_pair(KeyName::parse("lab").unwrap(), west);
        assert_eq!(address.to_string(), "lab@eu-west-1");
    }

    #[test]
    fn a_member_account_is_its_id_and_reads_by_its_name() {
        use super::{Account, MemberAccount};
        let member = |id: &str, name: &str| Scope {
            account: Account::Member(std::sync::Arc::new(MemberAccount {
                id: id.to_owned(),
                name: name.to_owned(),
            })),
            region: Region::parse("eu-west-1").unwrap(),
        };
        let team = member("111111111111", "team-a");
        assert_eq!(team.to_string(), "team-a/eu-west-1");
        // A renamed account is the same account: its id says which.
        assert_eq!(team, member("111111111111", "alpha"));
        assert_ne!(team, member("222222222222", "team-a"));
        assert_ne!(team, Scope::caller(Region::parse("eu-west-1").unwrap()));
        for named in [
            "team-a/eu-west-1",
            "111111111111/eu-west-1",
            "eu-west-1",
            "team-a",
            "111111111111",
        ] {
            assert!(team.is_named_by(named), "{named}");
        }
        for other in [
            "team-b/eu-west-1",
            "team-a/us-east-1",
            "team",
            "us-east-1",
            "",
        ] {
            assert!(!team.is_named_by(other), "{other}");
        }
    }
}
