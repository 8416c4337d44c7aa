//! Reading the team store (`store: ssm`): for every key pair a run may act on (a name the
//! manifest places in that scope, or one this project owns), what its entry
//! `/ec2/keypair/<id>` holds: the public half of the private key in it, or that it is not a
//! key, and whether it carries this project's tag. The private keys read are dropped (and
//! wiped) here; apply reads an entry again when it restores a file from it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::cloud::{Cloud, CloudError, CloudErrorKind};
use crate::desired::Desired;
use crate::keys::PublicKey;
use crate::resource::{RemoteKeyPair, Scope};

/// What the team store holds for one key pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    /// The public half of the private key the entry holds; `None` when it holds no usable
    /// private key.
    pub public: Option<PublicKey>,
    /// The entry carries this project's `labctl:project` tag (labctl wrote or adopted it).
    pub tagged: bool,
    /// The entry carries another project's `labctl:project` tag: never used, taken over or
    /// deleted.
    pub foreign: bool,
}

impl Stored {
    /// Whether the entry holds the private key of `public` (and is not another project's).
    pub(crate) fn holds(&self, public: Option<&PublicKey>) -> bool {
        !self.foreign && public.is_some() && self.public.as_ref() == public
    }
}

/// The store's entries per scope, by key pair id.
pub(crate) type StoreView = BTreeMap<Scope, BTreeMap<String, Stored>>;

/// Entries of this project whose key pair is gone (deleted outside labctl), per scope: a
/// private key nobody will delete with its key pair.
pub(crate) type Stranded = BTreeMap<Scope, Vec<String>>;

/// The key pair ids of `scope` a run may act on.
fn ids_of(
    desired: &Desired,
    scope: &Scope,
    pairs: &BTreeMap<String, RemoteKeyPair>,
) -> Vec<String> {
    let named: BTreeSet<&str> = desired
        .keypairs
        .iter()
        .filter(|k| k.scopes.contains(scope))
        .map(|k| k.name.as_str())
        .collect();
    pairs
        .values()
        .filter(|k| {
            named.contains(k.name.as_str()) || crate::ownership::is_ours(&k.tags, &desired.project)
        })
        .filter_map(|k| k.id.clone())
        .collect()
}

/// Read the store's entries of every scope's key pairs (scopes side by side); nothing without
/// `store`.
///
/// # Errors
/// Every scope whose store could not be read (a run must not act without knowing it).
pub(crate) async fn read_store<C: Cloud>(
    cloud: &Arc<C>,
    desired: &Desired,
    remote: &BTreeMap<Scope, BTreeMap<String, RemoteKeyPair>>,
) -> Result<(StoreView, Stranded), Vec<CloudError>> {
    let mut tasks = JoinSet::new();
    if desired.store.is_none() {
        return Ok((StoreView::new(), Stranded::new()));
    }
    for (scope, pairs) in remote {
        let ids = ids_of(desired, scope, pairs);
        let cloud = Arc::clone(cloud);
        let scope = scope.clone();
        let project = desired.project.clone();
        tasks.spawn(async move {
            let result = cloud.read_store(&scope, &ids, &project).await;
            (scope, result)
        });
    }
    let mut view = StoreView::new();
    let mut stranded = Stranded::new();
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((scope, Ok(entries))) => {
                let listed: std::collections::BTreeSet<&String> = remote
                    .get(&scope)
                    .into_iter()
                    .flat_map(|pairs| pairs.values().filter_map(|k| k.id.as_ref()))
                    .collect();
                let gone: Vec<String> = entries
                    .tagged
                    .iter()
                    .filter(|id| !listed.contains(id))
                    .cloned()
                    .collect();
                if !gone.is_empty() {
                    stranded.insert(scope.clone(), gone);
                }
                let stored = entries
                    .keys
                    .iter()
                    .map(|(id, secret)| {
                        let public = crate::keys::public_key_of_private(secret).ok();
                        let tagged = entries.tagged.contains(id);
                        let foreign = entries.foreign.contains(id);
                        (
                            id.clone(),
                            Stored {
                                public,
                                tagged,
                                foreign,
                            },
                        )
                    })
                    .collect();
                view.insert(scope, stored);
            }
            Ok((_, Err(err))) => errors.push(err),
            Err(join_error) => errors.push(CloudError {
                kind: CloudErrorKind::Other,
                operation: "GetParameters",
                scope: String::new(),
                message: format!("the request task failed: {join_error}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok((view, stranded))
    } else {
        errors.sort_by(|a, b| a.scope.cmp(&b.scope));
        Err(errors)
    }
}
