//! A cloud that is not asked: `labctl output --offline` says what the manifest and the key
//! files know (names, regions, files, the fingerprints EC2 would show) without the network.
//! It lists nothing and sends nothing.

use std::collections::BTreeMap;

use super::{Cloud, CloudError, CloudErrorKind, CreatedKeyPair};
use crate::desired::{KeyName, KeyType, TagSet};
use crate::keys::PublicKey;
use crate::resource::{RemoteKeyPair, Scope};

/// No cloud: every look finds nothing, every change is refused unsent.
pub(crate) struct Offline;

fn not_sent(operation: &'static str, scope: &Scope) -> CloudError {
    CloudError {
        kind: CloudErrorKind::NotSent,
        operation,
        scope: scope.to_string(),
        message: "offline: nothing is sent".to_owned(),
    }
}

impl Cloud for Offline {
    async fn describe_key_pairs(&self, _scope: &Scope) -> Result<Vec<RemoteKeyPair>, CloudError> {
        Ok(Vec::new())
    }

    async fn read_stored(
        &self,
        _scope: &Scope,
        _ids: &[String],
    ) -> Result<BTreeMap<String, crate::keys::Secret>, CloudError> {
        Ok(BTreeMap::new())
    }

    async fn list_stored(
        &self,
        _scope: &Scope,
        _project: &str,
    ) -> Result<std::collections::BTreeSet<String>, CloudError> {
        Ok(std::collections::BTreeSet::new())
    }

    async fn create_key_pair(
        &self,
        scope: &Scope,
        _name: &KeyName,
        _key_type: KeyType,
        _tags: &TagSet,
    ) -> Result<CreatedKeyPair, CloudError> {
        Err(not_sent("CreateKeyPair", scope))
    }

    async fn import_key_pair(
        &self,
        scope: &Scope,
        _name: &KeyName,
        _public_key: &PublicKey,
        _tags: &TagSet,
    ) -> Result<RemoteKeyPair, CloudError> {
        Err(not_sent("ImportKeyPair", scope))
    }

    async fn find_key_pair(
        &self,
        _scope: &Scope,
        _name: &KeyName,
    ) -> Result<Option<RemoteKeyPair>, CloudError> {
        Ok(None)
    }

    async fn delete_key_pair(
        &self,
        scope: &Scope,
        _name: &KeyName,
        _expected_id: Option<&str>,
    ) -> Result<(), CloudError> {
        Err(not_sent("DeleteKeyPair", scope))
    }

    async fn create_tags(
        &self,
        scope: &Scope,
        _ids: &[String],
        _tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        Err(not_sent("CreateTags", scope))
    }

    async fn delete_tags(
        &self,
        scope: &Scope,
        _ids: &[String],
        _keys: &[String],
    ) -> Result<(), CloudError> {
        Err(not_sent("DeleteTags", scope))
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}
