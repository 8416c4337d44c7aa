//! Deleting a key pair: the journal's `retired` records first, the delete, and, when its answer
//! is lost, whether the key pair is gone after all.

use crate::cloud::Cloud;
use crate::journal::Event;

use super::run::{Failure, Settings, cloud_failure, failed, record_id};
use super::{Pair, Progress};

pub(super) async fn delete<C: Cloud>(
    cloud: &C,
    action: &Pair<'_>,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<(), Failure> {
    record_retired(action, settings)?;
    progress.step(&format!(
        "Deleting key pair `{}` from {}",
        action.name, action.scope
    ));
    let deleted = cloud
        .delete_key_pair(action.scope, action.name, action.remote_id.as_deref())
        .await;
    if let Err(err) = deleted {
        // The answer may be lost after EC2 acted (a reset, an empty answer): what counts is
        // whether the key pair is gone.
        let failure = cloud_failure(&err);
        if !err.kind.may_have_acted() || !gone_after_all(cloud, action).await {
            return Err(failure);
        }
        tracing::debug!(key = %action.name, region = %action.scope, "the delete's answer was lost, but the key pair is gone");
    }
    // EC2 may list it for a while yet; the journal says it is gone.
    if let Some(id) = &action.remote_id {
        record_id(settings, Event::Deleted, id);
    }
    Ok(())
}

/// After a delete that failed: whether EC2 no longer has the key pair the action meant (none
/// of that name, or one with another id, made since).
pub(super) async fn gone_after_all<C: Cloud>(cloud: &C, action: &Pair<'_>) -> bool {
    match cloud.find_key_pair(action.scope, action.name).await {
        Ok(None) => true,
        Ok(Some(found)) => {
            action.remote_id.is_some() && found.id.is_some() && found.id != action.remote_id
        }
        Err(_) => false,
    }
}

/// Before a delete: record in the journal the keys that leave with it (custody decided which:
/// `KeyPairAction::retires`), so that they stay retired whatever becomes of the delete's
/// answer (the next `destroy` retires a file left behind; `apply` never imports it again).
fn record_retired(action: &Pair<'_>, settings: &Settings) -> Result<(), Failure> {
    let Some(journal) = &settings.journal else {
        return Ok(());
    };
    for fingerprint in &action.retires {
        journal
            .record(Event::Retired, &settings.apply_id, fingerprint)
            .map_err(|e| {
                failed(format!(
                    "cannot record the retired key in labctl's journal ({e}); the key pair was not deleted"
                ))
            })?;
    }
    Ok(())
}
