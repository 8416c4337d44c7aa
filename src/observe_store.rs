//! Reading the team store (`store: ssm`): for every key pair a run may act on (a name the
//! manifest places in that scope, or one this project owns), what its entry
//! `/ec2/keypair/<id>` holds: the public half of the private key in it, or that it is not a
//! key, and whether it carries this project's tag. The private keys read are dropped (and
//! wiped) here; apply reads an entry again when it restores a file from it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::cloud::{Cloud, CloudError};
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

/// What one request of the store's reading brought back.
enum Read {
    /// The private keys of some ids (one `GetParameters`).
    Keys(BTreeMap<String, crate::keys::Secret>),
    /// Every entry of the scope tagged for this project.
    Tagged(BTreeSet<String>),
    /// Whether an entry not tagged for this project carries another project's tag.
    Foreign(String, bool),
}

/// `GetParameters` takes at most this many names.
const NAMES_PER_REQUEST: usize = 10;

type Reads = JoinSet<(Scope, Result<Read, CloudError>)>;

fn spawn_read<C: Cloud>(
    tasks: &mut Reads,
    cloud: &Arc<C>,
    scope: &Scope,
    read: impl FnOnce(
        Arc<C>,
        Scope,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Read, CloudError>> + Send>>,
) {
    let future = read(Arc::clone(cloud), scope.clone());
    let scope = scope.clone();
    tasks.spawn(async move { (scope, future.await) });
}

/// Wait for every read; the errors, in scope order.
async fn gather(tasks: &mut Reads, reads: &mut Vec<(Scope, Read)>) -> Vec<CloudError> {
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((scope, Ok(read))) => reads.push((scope, read)),
            Ok((_, Err(err))) => errors.push(err),
            Err(join_error) => errors.push(CloudError::task_failed("GetParameters", &join_error)),
        }
    }
    errors.sort_by(|a, b| a.scope.cmp(&b.scope));
    errors
}

/// Read the store's entries of every scope's key pairs: every request side by side (ten
/// names a request, the tagged list of each scope, then a tag look at each entry not tagged
/// for this project). Nothing without `store`.
///
/// # Errors
/// Every scope whose store could not be read (a run must not act without knowing it).
pub(crate) async fn read_store<C: Cloud>(
    cloud: &Arc<C>,
    desired: &Desired,
    remote: &BTreeMap<Scope, BTreeMap<String, RemoteKeyPair>>,
) -> Result<(StoreView, Stranded), Vec<CloudError>> {
    if desired.store.is_none() {
        return Ok((StoreView::new(), Stranded::new()));
    }
    let mut tasks = Reads::new();
    for (scope, pairs) in remote {
        let project = desired.project.clone();
        spawn_read(&mut tasks, cloud, scope, move |cloud, scope| {
            Box::pin(async move { cloud.list_stored(&scope, &project).await.map(Read::Tagged) })
        });
        for chunk in ids_of(desired, scope, pairs).chunks(NAMES_PER_REQUEST) {
            let ids = chunk.to_vec();
            spawn_read(&mut tasks, cloud, scope, move |cloud, scope| {
                Box::pin(async move { cloud.read_stored(&scope, &ids).await.map(Read::Keys) })
            });
        }
    }
    let mut reads = Vec::new();
    let errors = gather(&mut tasks, &mut reads).await;
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut keys: BTreeMap<Scope, BTreeMap<String, crate::keys::Secret>> = BTreeMap::new();
    let mut tagged: BTreeMap<Scope, BTreeSet<String>> = BTreeMap::new();
    for (scope, read) in reads.drain(..) {
        match read {
            Read::Keys(found) => keys.entry(scope).or_default().extend(found),
            Read::Tagged(found) => tagged.entry(scope).or_default().extend(found),
            Read::Foreign(..) => {}
        }
    }
    // An entry without this project's tag may carry another project's (rare: a key pair
    // CloudFormation or another project made): asked entry by entry.
    for (scope, found) in &keys {
        for id in found.keys() {
            if tagged.get(scope).is_none_or(|t| !t.contains(id)) {
                let id = id.clone();
                spawn_read(&mut tasks, cloud, scope, move |cloud, scope| {
                    Box::pin(async move {
                        let foreign = cloud.stored_is_tagged(&scope, &id).await?;
                        Ok(Read::Foreign(id, foreign))
                    })
                });
            }
        }
    }
    let errors = gather(&mut tasks, &mut reads).await;
    if !errors.is_empty() {
        return Err(errors);
    }
    let foreign: BTreeSet<(Scope, String)> = reads
        .into_iter()
        .filter_map(|(scope, read)| match read {
            Read::Foreign(id, true) => Some((scope, id)),
            _ => None,
        })
        .collect();
    Ok(assemble(remote, keys, tagged, &foreign))
}

/// What the reads say, per scope: each entry's key and tags, and this project's entries whose
/// key pair is gone.
fn assemble(
    remote: &BTreeMap<Scope, BTreeMap<String, RemoteKeyPair>>,
    mut keys: BTreeMap<Scope, BTreeMap<String, crate::keys::Secret>>,
    mut tagged: BTreeMap<Scope, BTreeSet<String>>,
    foreign: &BTreeSet<(Scope, String)>,
) -> (StoreView, Stranded) {
    let mut view = StoreView::new();
    let mut stranded = Stranded::new();
    for (scope, pairs) in remote {
        let tagged_here = tagged.remove(scope).unwrap_or_default();
        let listed: BTreeSet<&String> = pairs.values().filter_map(|k| k.id.as_ref()).collect();
        let gone: Vec<String> = tagged_here
            .iter()
            .filter(|id| !listed.contains(id))
            .cloned()
            .collect();
        if !gone.is_empty() {
            stranded.insert(scope.clone(), gone);
        }
        let stored = keys
            .remove(scope)
            .unwrap_or_default()
            .into_iter()
            .map(|(id, secret)| {
                let public = crate::keys::public_key_of_stored(&secret).ok();
                let entry = Stored {
                    public,
                    tagged: tagged_here.contains(&id),
                    foreign: foreign.contains(&(scope.clone(), id.clone())),
                };
                (id, entry)
            })
            .collect();
        view.insert(scope.clone(), stored);
    }
    (view, stranded)
}
