//! Reading the world: every region's key pairs and every key file. All reads happen here.
//!
//! One `DescribeKeyPairs` per region, all regions at once, and one look at each output file.
//! Nothing here writes or decides; `plan` decides from what this returns.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::cloud::{Cloud, CloudError, RemoteKeyPair};
use crate::desired::{Desired, Region};
use crate::keys::{FileState, KeyStore};

/// What exists now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Key pairs per region, by name.
    pub remote: BTreeMap<Region, BTreeMap<String, RemoteKeyPair>>,
    /// What is at each output path.
    pub local: BTreeMap<PathBuf, FileState>,
}

/// Observe every region of the manifest (concurrently) and every key file.
///
/// # Errors
/// Every region that could not be read.
pub async fn observe<C: Cloud>(
    cloud: &Arc<C>,
    desired: &Desired,
    store: KeyStore,
) -> Result<Observed, Vec<CloudError>> {
    let mut tasks = JoinSet::new();
    // One request per region; the number of regions in a manifest is small and bounded by
    // the regions AWS has, so each gets its own task.
    for region in desired.regions() {
        let cloud = Arc::clone(cloud);
        tasks.spawn(async move {
            let result = cloud.describe_key_pairs(&region).await;
            (region, result)
        });
    }
    let local = desired
        .keypairs
        .iter()
        .map(|k| (k.output.clone(), store.inspect(&k.output).state))
        .collect();
    let mut remote = BTreeMap::new();
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((region, Ok(pairs))) => {
                let by_name = pairs.into_iter().map(|k| (k.name.clone(), k)).collect();
                remote.insert(region, by_name);
            }
            Ok((_, Err(err))) => errors.push(err),
            Err(join_error) => errors.push(CloudError {
                kind: crate::cloud::CloudErrorKind::Other,
                operation: "DescribeKeyPairs",
                region: String::new(),
                message: format!("the request task failed: {join_error}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(Observed { remote, local })
    } else {
        errors.sort_by(|a, b| a.region.cmp(&b.region));
        Err(errors)
    }
}
