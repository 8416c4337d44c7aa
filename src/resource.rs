//! What labctl manages, named: where a resource lives ([`Scope`]: an account and a region),
//! what names one ([`Address`]: kind, name, scope), and what the cloud says of a key pair
//! ([`RemoteKeyPair`]). Every layer speaks these types: `cloud` takes a scope, `observe`
//! keys what it read on it, `plan` addresses every action, the pacer meters each scope apart.
//! Nothing here does I/O.

use std::collections::BTreeMap;
use std::fmt;

use crate::desired::{KeyName, KeyType, Region};
use crate::keys::PublicKey;

/// Which AWS account a resource lives in.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// The account of the caller's own credentials (profile, SSO, environment, instance
    /// role): the one account a manifest reaches today.
    #[default]
    Caller,
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
}

/// The region alone in the caller's account (what every plan line, report and hint has
/// always shown).
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.account {
            Account::Caller => write!(f, "{}", self.region),
        }
    }
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
}
