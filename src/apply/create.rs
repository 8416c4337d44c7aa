//! Making a key: create (EC2) or generate and save (locally), prove a created key before its
//! file exists, undo a create whose key was not saved, recover one whose answer was lost, and
//! imports into the other regions.

use crate::cloud::{Cloud, CloudError, CloudErrorKind};
use crate::desired::APPLY_TAG;
use crate::journal::Event;
use crate::keys::{
    FileCustody, KeyCustody as _, KeyRef, PublicKey, generate, public_key_of_private,
};
use crate::ownership;
use crate::plan::{Generator, KeyPairOp};

use super::run::Done;
use super::run::{
    Failure, Settings, cloud_failure, failed, file_work, journal_made, journal_saved, record,
};
use super::{Pair, Progress, delete, move_aside_for_replace, undo_moves};

pub(super) async fn import<C: Cloud>(
    cloud: &C,
    action: &Pair<'_>,
    public: &PublicKey,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<Done, Failure> {
    progress.step(&format!(
        "Importing key pair `{}` into {}",
        action.name, action.scope
    ));
    match cloud
        .import_key_pair(action.scope, action.name, public, &action.tags)
        .await
    {
        Ok(_) => Ok(Done::Changed),
        // The key pair is there already, holding this key: EC2's listing had not caught up
        // with an earlier write (or a retry after a lost answer found its own import).
        // Nothing needed doing: reported unchanged, never `imported`.
        Err(err) if err.kind == CloudErrorKind::Duplicate => {
            match look_until_listed(cloud, action.scope, action.name, settings.listing_lag).await {
                Some(found) if found.public_key.as_ref() == Some(public) => Ok(Done::AlreadyThere(
                    "already there: EC2 has this key pair with this key (its listing showed it late)"
                        .to_owned(),
                )),
                _ => Err(cloud_failure(&err)),
            }
        }
        Err(err) => Err(cloud_failure(&err)),
    }
}

/// `CreateKeyPair` failed. Whatever the error (a lost answer whose retries then ended in
/// throttling or an auth error included), look: a key pair tagged with this apply's id was
/// created by this very request, and its private key is gone with the answer. Delete it, so
/// EC2 keeps no key whose private half nobody has. When it cannot be looked at or deleted now,
/// the journal still says the key was never saved, and the next run replaces it.
pub(super) async fn recover_create<C: Cloud>(
    cloud: &C,
    action: &Pair<'_>,
    settings: &Settings,
    err: &CloudError,
) -> Failure {
    let failure = cloud_failure(err);
    if err.kind == CloudErrorKind::NotSent {
        // EC2 never heard of it: nothing to look for.
        return failure;
    }
    // A last answer that EC2 refused the request (no credentials, denied, a refused key) says
    // nothing of earlier attempts: look once for a key pair this apply made. Any other
    // failure may have come after EC2 acted (a retry's `Duplicate` among them), and its
    // listing may lag behind: look until it catches up.
    let lag = if err.kind.is_refusal() {
        std::time::Duration::ZERO
    } else {
        settings.listing_lag
    };
    let found = look_until_listed(cloud, action.scope, action.name, lag).await;
    if found
        .as_ref()
        .is_some_and(|pair| !ownership::made_by_this_apply(&pair.tags, &settings.apply_id))
    {
        // Another key pair of that name (another machine's): nothing of this apply's.
        return failure;
    }
    let Some(pair) = found else {
        if err.kind.is_refusal() {
            // EC2 said no: it made nothing (the failure's own hint says what to do).
            return failure;
        }
        // The key is named (in the hint), so that a report never folds it into another key's
        // line; a failure of the whole region still stops the region.
        return failure.hint(format!(
            "EC2 may have made `{}` before its answer was lost (it is not listed yet): the next apply finds it by this apply's id and recreates it; run apply again",
            action.name
        ));
    };
    match cloud
        .delete_key_pair(action.scope, action.name, pair.id.as_deref())
        .await
    {
        Ok(()) => {
            record(settings, Event::Resolved, action.name);
            failed(format!(
                "{}\nEC2 created the key pair but its answer, with the private key, was lost; the key pair was deleted again, so nothing is lost",
                failure.problem.message
            ))
            .hint("run apply again")
        }
        Err(delete_err) => failed(format!(
            "{}\nEC2 created `{}` but its answer, with the private key, was lost, and deleting it failed too ({delete_err})",
            failure.problem.message, action.name
        ))
        .hint("run apply again: the journal shows the key was never saved, and it is recreated"),
    }
}

/// The key pair `name`, looking again for a while when EC2 does not list it yet (a write
/// that EC2 answered with `InvalidKeyPair.Duplicate` proves it exists).
pub(super) async fn look_until_listed<C: Cloud>(
    cloud: &C,
    scope: &crate::resource::Scope,
    name: &crate::desired::KeyName,
    lag: std::time::Duration,
) -> Option<crate::resource::RemoteKeyPair> {
    let mut looks = crate::cloud::LagLooks::for_window(lag);
    loop {
        match cloud.find_key_pair(scope, name).await {
            Ok(Some(found)) => return Some(found),
            // The run is out of time or stopped: no look can be sent any more, and waiting
            // out the window would only hold the run past its --timeout.
            Err(err) if err.kind == CloudErrorKind::NotSent => return None,
            Ok(None) | Err(_) if looks.over() => return None,
            Ok(None) | Err(_) => looks.pause().await,
        }
    }
}

/// Create the entry's key and save its private key; returns the public key.
pub(super) async fn create<C: Cloud>(
    cloud: &C,
    action: &Pair<'_>,
    store: FileCustody,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<PublicKey, Failure> {
    let (generator, replace_existing) = match &action.op {
        KeyPairOp::Create { generator } => (*generator, false),
        KeyPairOp::Replace {
            generator, exists, ..
        } => (*generator, *exists),
        _ => return Err(failed("internal: not a create")),
    };
    let Some(path) = action.output.as_deref() else {
        return Err(failed(
            "internal: a new key needs an output file".to_owned(),
        ));
    };
    let moved = if matches!(action.op, KeyPairOp::Replace { .. }) {
        move_aside_for_replace(store, action, path, settings.now, progress).await?
    } else {
        Vec::new()
    };
    let made = make_key(
        cloud,
        action,
        generator,
        replace_existing,
        path,
        store,
        settings,
        progress,
    )
    .await;
    if made.is_err() {
        // A replace that did not make its new key leaves every file where it was.
        undo_moves(store, &moved, progress).await;
    }
    made
}

/// Make the new key: check its file can be written, delete the key pair it replaces, then
/// create it (EC2) or generate, save and import it (locally).
#[allow(clippy::too_many_arguments)]
pub(super) async fn make_key<C: Cloud>(
    cloud: &C,
    action: &Pair<'_>,
    generator: Generator,
    replace_existing: bool,
    path: &std::path::Path,
    store: FileCustody,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<PublicKey, Failure> {
    let owned = path.to_owned();
    file_work(move || store.prepare(&owned))
        .await?
        .map_err(|e| failed(format!("{e}; the key pair was not created")))?;
    if replace_existing {
        delete(cloud, action, settings, progress).await?;
    }
    match generator {
        Generator::Ec2 { key_type } => {
            create_by_ec2(cloud, action, key_type, path, store, settings, progress).await
        }
        Generator::Local { key_type, bits } => {
            progress.step(&format!(
                "Generating a {key_type} key for `{}`",
                action.name
            ));
            let (secret, public) = tokio::task::spawn_blocking(move || generate(key_type, bits))
                .await
                .map_err(|e| failed(format!("key generation stopped: {e}")))?
                .map_err(failed)?;
            let owned = path.to_owned();
            file_work(move || store.save_new(KeyRef::Pem(&owned), &secret))
                .await?
                .map_err(|e| failed(e.to_string()))?;
            journal_made(settings, &public, path).map_err(|err| {
                failed(format!(
                    "the private key was saved to {}, but labctl's journal could not record it ({err}); it was not imported",
                    action.output_display
                ))
                .hint("fix what stops labctl writing its state folder .labctl/ (a full disk, permissions), move the new key file away, and run apply again")
            })?;
            import(cloud, action, &public, settings, progress).await?;
            Ok(public)
        }
    }
}

pub(super) async fn create_by_ec2<C: Cloud>(
    cloud: &C,
    action: &Pair<'_>,
    key_type: crate::desired::KeyType,
    path: &std::path::Path,
    store: FileCustody,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<PublicKey, Failure> {
    if let Some(journal) = &settings.journal {
        journal
            .record(Event::Create, &settings.apply_id, action.name.as_str())
            .map_err(|e| {
                failed(format!(
                    "cannot record the new key in labctl's journal ({e}); the key pair was not created"
                ))
            })?;
    }
    progress.step(&format!(
        "Creating key pair `{}` in {}",
        action.name, action.scope
    ));
    let tags = action.tags.with(APPLY_TAG, &settings.apply_id);
    let mut created = cloud
        .create_key_pair(action.scope, action.name, key_type, &tags)
        .await;
    // An earlier run's request may land after this run looked: its key pair, whose private
    // key the journal proves was never saved, takes the name. Delete it and try again.
    if let Err(err) = &created
        && err.kind == CloudErrorKind::Duplicate
        && let Some(found) =
            look_until_listed(cloud, action.scope, action.name, settings.listing_lag).await
        && ownership::made_by_unsaved_create(&found.tags, action.name.as_str(), &settings.unsaved)
        && cloud
            .delete_key_pair(action.scope, action.name, found.id.as_deref())
            .await
            .is_ok()
    {
        created = cloud
            .create_key_pair(action.scope, action.name, key_type, &tags)
            .await;
    }
    let created = match created {
        Ok(created) => created,
        Err(err) => return Err(recover_create(cloud, action, settings, &err).await),
    };
    match save_created(cloud, action, path, store, created, settings).await {
        Ok(public) => match journal_saved(settings, action.name, &public, path) {
            Ok(()) => Ok(public),
            Err(err) => Err(failed(format!(
                "the private key was saved to {}, but labctl's journal could not record it ({err})",
                action.output_display
            ))
            .hint("fix what stops labctl writing its state folder .labctl/ (a full disk, permissions) and run apply again: the key file stays, and the next run records it as saved")),
        },
        Err((failure, undone)) => {
            if undone {
                record(settings, Event::Resolved, action.name);
            }
            Err(failure)
        }
    }
}

/// Save a key EC2 created; if it cannot be saved, delete the key pair again (then the error
/// comes with `true`).
pub(super) async fn save_created<C: Cloud>(
    cloud: &C,
    action: &Pair<'_>,
    path: &std::path::Path,
    store: FileCustody,
    created: crate::cloud::CreatedKeyPair,
    settings: &Settings,
) -> Result<PublicKey, (Failure, bool)> {
    let crate::cloud::CreatedKeyPair {
        id,
        fingerprint,
        material,
    } = created;
    // The key is saved only when it is proven to be the key EC2 keeps: an answer cut inside
    // the key (which HTTP may take as complete) must never become a `.pem`.
    let public = match prove_created(
        cloud,
        action,
        id.as_deref(),
        &material,
        fingerprint,
        settings,
    )
    .await
    {
        Ok(public) => public,
        Err(reason) => {
            let why = format!(
                "EC2's answer did not hold the whole private key of `{}` ({reason}); nothing was saved",
                action.name
            );
            return Err(undo_create(cloud, action, id.as_deref(), why).await);
        }
    };
    let owned = path.to_owned();
    let saved = file_work(move || store.save_new(KeyRef::Pem(&owned), &material))
        .await
        .map_err(|failure| (failure, false))?;
    match saved {
        Ok(_) => Ok(public),
        Err(err) => Err(undo_create(cloud, action, id.as_deref(), err.to_string()).await),
    }
}

/// The public key of the private key EC2 returned, once it is proven to be the key of the
/// key pair EC2 made: the answer's own fingerprint matches it, or (a fingerprint in another
/// form, or none) the public key EC2 lists for that key pair is the same.
pub(super) async fn prove_created<C: Cloud>(
    cloud: &C,
    action: &Pair<'_>,
    id: Option<&str>,
    material: &crate::keys::Secret,
    fingerprint: Option<String>,
    settings: &Settings,
) -> Result<PublicKey, String> {
    // Parsing a key and hashing it take well under a millisecond: done here, on the secret
    // itself, without a copy of it for another thread.
    let public = public_key_of_private(material)?;
    let proven = fingerprint
        .is_some_and(|f| crate::keys::fingerprint::proves_created(&f, material, &public));
    if proven {
        return Ok(public);
    }
    match look_until_listed(cloud, action.scope, action.name, settings.listing_lag).await {
        Some(found) if id.is_some() && found.id.as_deref() != id => {
            Err("EC2 lists another key pair under that name".to_owned())
        }
        Some(found) if found.public_key.as_ref() == Some(&public) => Ok(public),
        Some(found) if found.public_key.is_some() => {
            Err("it is not the key of the key pair EC2 made".to_owned())
        }
        _ => Err("EC2 did not show the key pair's public key to compare with".to_owned()),
    }
}

/// Delete again a key pair this apply created whose private key was not saved. Returns the
/// failure to report, and whether the key pair is gone (the journal then marks it resolved).
pub(super) async fn undo_create<C: Cloud>(
    cloud: &C,
    action: &Pair<'_>,
    id: Option<&str>,
    why: String,
) -> (Failure, bool) {
    let undo = cloud.delete_key_pair(action.scope, action.name, id).await;
    let (undone, message) = match undo {
        Ok(()) => (
            true,
            "the key pair was deleted again, so nothing is lost; fix the cause and run apply again"
                .to_owned(),
        ),
        Err(e) => (
            false,
            format!(
                "deleting the key pair again also failed ({e}); run apply again: the journal shows its key was never saved, and it is recreated"
            ),
        ),
    };
    (failed(format!("{why}; {message}")), undone)
}
