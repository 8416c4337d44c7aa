//! Reading the world: every region's key pairs and every key file. All reads happen here.
//!
//! One `DescribeKeyPairs` per region, all regions at once, and one look at each output file
//! (and at the default file of each key pair the manifest owns but no longer lists). Nothing
//! here writes or decides; `plan` decides from what this returns.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::cloud::{Cloud, CloudError};
use crate::desired::{Desired, KeyName};
use crate::keys::{FileCustody, FileState, KeyCustody as _, KeyRef};
use crate::resource::{RemoteKeyPair, Scope};

/// What exists now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    /// Key pairs per scope, by name.
    pub remote: BTreeMap<Scope, BTreeMap<String, RemoteKeyPair>>,
    /// What is at each key file path looked at.
    pub local: BTreeMap<PathBuf, FileState>,
    /// The team store's entries per scope, by key pair id (empty without `store`).
    pub stored: crate::observe_store::StoreView,
    /// The team store's entries of this project whose key pair is gone.
    pub stranded: crate::observe_store::Stranded,
}

impl Observed {
    /// The key pair `name` in `scope`, if EC2 has it.
    pub(crate) fn pair(&self, scope: &Scope, name: &KeyName) -> Option<&RemoteKeyPair> {
        self.remote
            .get(scope)
            .and_then(|pairs| pairs.get(name.as_str()))
    }

    /// Whether two key file paths name one file: the same path, or the same file (device
    /// and inode) reached by two spellings. The one "same file" rule of custody.
    pub(crate) fn same_file(&self, a: &std::path::Path, b: &std::path::Path) -> bool {
        if a == b {
            return true;
        }
        matches!(
            (self.local.get(a), self.local.get(b)),
            (Some(FileState::Key { id: x, .. }), Some(FileState::Key { id: y, .. })) if x == y
        )
    }

    /// What the team store holds for the key pair `remote` of `scope`, when it has an entry.
    pub(crate) fn stored(
        &self,
        scope: &Scope,
        remote: &RemoteKeyPair,
    ) -> Option<&crate::observe_store::Stored> {
        let id = remote.id.as_ref()?;
        self.stored.get(scope)?.get(id)
    }

    /// Whether a key pair of this name exists in `scope`.
    pub(crate) fn has(&self, scope: &Scope, name: &str) -> bool {
        self.remote
            .get(scope)
            .is_some_and(|pairs| pairs.contains_key(name))
    }
}

/// Observe every region of the manifest (concurrently) and every key file. A listed key pair
/// whose id is in `deleted` (labctl deleted it; EC2's listing may lag behind) is left out.
///
/// # Errors
/// Every region that could not be read.
pub(crate) async fn observe<C: Cloud>(
    cloud: &Arc<C>,
    desired: &Desired,
    store: FileCustody,
    deleted: &std::collections::BTreeSet<String>,
    made: &BTreeMap<String, std::collections::BTreeSet<PathBuf>>,
) -> Result<Observed, Vec<CloudError>> {
    let mut tasks = JoinSet::new();
    // One request per region; the number of regions in a manifest is small and bounded by
    // the regions AWS has, so each gets its own task.
    for scope in desired.scopes() {
        let cloud = Arc::clone(cloud);
        tasks.spawn(async move {
            let result = cloud.describe_key_pairs(&scope).await;
            (scope, result)
        });
    }
    // The files are looked at on the blocking pool while the regions answer.
    let mut outputs: Vec<(PathBuf, Format)> = desired
        .keypairs
        .iter()
        .filter_map(|k| k.output.clone())
        .map(|path| (path, Format::Pem))
        .collect();
    outputs.extend(
        desired
            .keypairs
            .iter()
            .filter_map(|k| k.ppk.clone())
            .map(|path| (path, Format::Ppk)),
    );
    let files = inspect_all(store, outputs);
    let mut remote = BTreeMap::new();
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((scope, Ok(pairs))) => {
                tracing::debug!(scope = %scope, key_pairs = pairs.len(), "observed");
                let by_name = pairs
                    .into_iter()
                    .filter(|k| k.id.as_ref().is_none_or(|id| !deleted.contains(id)))
                    .map(|k| (k.name.clone(), k))
                    .collect();
                remote.insert(scope, by_name);
            }
            Ok((_, Err(err))) => errors.push(err),
            Err(join_error) => {
                errors.push(CloudError::task_failed("DescribeKeyPairs", &join_error));
            }
        }
    }
    let mut local = files.await;
    if !errors.is_empty() {
        errors.sort_by(|a, b| a.scope.cmp(&b.scope));
        return Err(errors);
    }
    // Files of key pairs this manifest owns but no longer lists: at their default place, and
    // where the journal says labctl wrote their keys.
    let orphans: Vec<PathBuf> = crate::ownership::orphans(desired, &remote)
        .into_iter()
        .flat_map(|(_, k)| {
            let written = k
                .public_key
                .as_ref()
                .and_then(|p| made.get(&p.sha256_fingerprint()))
                .into_iter()
                .flatten()
                .cloned();
            desired.orphan_file(&k.name).into_iter().chain(written)
        })
        .collect();
    let orphans: Vec<(PathBuf, Format)> = orphans
        .into_iter()
        .filter(|p| !local.contains_key(p))
        .map(|p| (p, Format::Pem))
        .collect();
    local.extend(inspect_all(store, orphans).await);
    let mut observed = Observed {
        remote,
        local,
        stored: crate::observe_store::StoreView::new(),
        stranded: crate::observe_store::Stranded::new(),
    };
    catch_up_with_recent_keys(cloud, desired, made, deleted, &mut observed).await;
    (observed.stored, observed.stranded) =
        crate::observe_store::read_store(cloud, desired, &observed.remote).await?;
    Ok(observed)
}

/// Key pairs of keys labctl made moments ago that EC2 does not list yet: `DescribeKeyPairs`
/// lags behind a create or import (a re-apply right after an apply would plan an import for
/// each of them, and send it). A key file whose key the journal records as made, created less
/// than [`LISTING_LAG`](crate::cloud::LISTING_LAG) ago, and whose key pair is missing in one of
/// its regions, is looked for again: that region's listing is read again (backing off 0.25,
/// 0.5, 1, 2 s) until it shows them or the window from the file's creation has passed. A
/// region that cannot be read again keeps what it showed.
async fn catch_up_with_recent_keys<C: Cloud>(
    cloud: &Arc<C>,
    desired: &Desired,
    made: &BTreeMap<String, std::collections::BTreeSet<PathBuf>>,
    deleted: &std::collections::BTreeSet<String>,
    observed: &mut Observed,
) {
    use std::os::unix::fs::MetadataExt;
    let now = std::time::SystemTime::now();
    let mut until = None;
    let mut waiting: BTreeMap<Scope, std::collections::BTreeSet<String>> = BTreeMap::new();
    for spec in &desired.keypairs {
        let Some(path) = spec.output.as_ref() else {
            continue;
        };
        let Some(FileState::Key { public, .. }) = observed.local.get(path) else {
            continue;
        };
        if !made.contains_key(&public.sha256_fingerprint()) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        let created = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(meta.ctime()).unwrap_or(0));
        let Some(left) = (created + crate::cloud::LISTING_LAG)
            .duration_since(now)
            .ok()
            .filter(|d| !d.is_zero())
        else {
            continue;
        };
        for scope in &spec.scopes {
            if !observed.has(scope, spec.name.as_str()) {
                waiting
                    .entry(scope.clone())
                    .or_default()
                    .insert(spec.name.to_string());
                until = until.max(Some(left));
            }
        }
    }
    let Some(left) = until else { return };
    tracing::debug!(
        ?waiting,
        "key pairs labctl made moments ago are not listed yet; looking again"
    );
    let mut looks = crate::cloud::LagLooks::for_window(left);
    while !waiting.is_empty() && !looks.over() {
        looks.pause().await;
        for (scope, names) in &mut waiting {
            let Ok(pairs) = cloud.describe_key_pairs(scope).await else {
                continue;
            };
            let listed = observed.remote.entry(scope.clone()).or_default();
            for pair in pairs {
                if names.remove(&pair.name)
                    && pair.id.as_ref().is_none_or(|id| !deleted.contains(id))
                {
                    listed.insert(pair.name.clone(), pair);
                }
            }
        }
        waiting.retain(|_, names| !names.is_empty());
    }
}

/// Look at key files on the blocking pool (file reads must not stall the runtime's workers).
/// The work starts at once; the future returned waits for it.
/// Which reader a key file needs.
#[derive(Clone, Copy)]
enum Format {
    /// An OpenSSH or PEM private key.
    Pem,
    /// A PuTTY private key.
    Ppk,
}

fn inspect_all(
    store: FileCustody,
    paths: Vec<(PathBuf, Format)>,
) -> impl Future<Output = BTreeMap<PathBuf, FileState>> {
    let names: Vec<PathBuf> = paths.iter().map(|(p, _)| p.clone()).collect();
    let work = tokio::task::spawn_blocking(move || {
        paths
            .into_iter()
            .map(|(path, format)| {
                let state = match format {
                    Format::Pem => store.inspect(KeyRef::Pem(&path)),
                    Format::Ppk => store.inspect(KeyRef::Ppk(&path)),
                };
                (path, state)
            })
            .collect()
    });
    async move {
        work.await.unwrap_or_else(|err| {
            names
                .into_iter()
                .map(|path| {
                    let reason = format!("it could not be looked at ({err})");
                    (path, FileState::Unreadable { reason })
                })
                .collect()
        })
    }
}
