//! File steps: a `.ppk` beside a key file, the file mode, what becomes of a key file after its
//! key pair is deleted, and `--replace`'s moves aside (undone when the new key is not made).

use crate::keys::{FileCustody, KeyCustody as _, KeyRef};
use crate::plan::AfterDelete;

use super::run::{Failure, failed, file_work};
use super::{Pair, Progress};

/// Write the PuTTY key of the entry's key file beside it (derived from the file as it is
/// now, so the two always hold one key): owner-only, atomic, never over another file.
pub(super) async fn write_ppk(
    store: FileCustody,
    action: &Pair<'_>,
    progress: &dyn Progress,
) -> Result<(), Failure> {
    let (Some(pem), Some(ppk)) = (action.output.clone(), action.ppk.clone()) else {
        return Ok(());
    };
    progress.step(&format!("Writing {}", ppk.display()));
    let name = action.name.as_str().to_owned();
    let shown = ppk.display().to_string();
    file_work(move || -> Result<(), String> {
        let secret = store
            .read(KeyRef::Pem(&pem))
            .ok_or_else(|| "the key file could not be read".to_owned())?;
        let text = crate::keys::to_ppk(&secret, &name, None)?;
        store
            .save_new(KeyRef::Ppk(&ppk), &text)
            .map_err(|e| e.to_string())?;
        Ok(())
    })
    .await?
    .map_err(|e| failed(format!("the PuTTY key {shown} was not written: {e}")))
}

pub(super) async fn finish_mode(store: FileCustody, action: &Pair<'_>) -> Result<(), Failure> {
    let Some(path) = action.output.clone() else {
        return Ok(());
    };
    file_work(move || store.fix_mode(&path))
        .await?
        .map_err(|e| failed(e.to_string()))
}

/// The key file of a deleted key pair: kept, retired or removed, and only when every key
/// pair that used it is gone.
pub(super) async fn after_delete(
    store: FileCustody,
    file: &AfterDelete,
    all_done: bool,
    now: u64,
    progress: &dyn Progress,
) -> Result<(), Failure> {
    let path = match file {
        AfterDelete::Keep => return Ok(()),
        AfterDelete::Retire(path, _) | AfterDelete::Purge(path, _) => path,
    };
    if !all_done {
        return Err(failed(format!(
            "the key pair was deleted here, but {} stays: a key pair of this entry in another region was not deleted",
            path.display()
        )));
    }
    let (path, file) = (path.clone(), file.clone());
    match file {
        AfterDelete::Keep => Ok(()),
        AfterDelete::Retire(_, public) => {
            // Only while it holds the key decided on (checked again now, through its folder);
            // its PuTTY form, when it holds the same key, goes with it.
            let moved = file_work(move || {
                let ppk = store.ppk_beside(&path, &public);
                let moved = store.retire(KeyRef::Pem(&path), &public, now)?;
                if let Some(ppk) = ppk.filter(|_| moved.is_some()) {
                    store.retire(KeyRef::Ppk(&ppk), &public, now)?;
                }
                Ok::<_, crate::keys::StoreError>(moved)
            })
            .await?;
            match moved {
                Ok(Some(aside)) => {
                    progress.note(&format!("Retired a key file to {}", aside.display()));
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(failed(format!("the key pair was deleted, but {e}"))),
            }
        }
        AfterDelete::Purge(_, public) => {
            let shown = path.display().to_string();
            let removed = file_work(move || {
                let ppk = store.ppk_beside(&path, &public);
                let removed = store.remove_if_holds(KeyRef::Pem(&path), &public)?;
                if let Some(ppk) = ppk.filter(|_| removed) {
                    store.remove_if_holds(KeyRef::Ppk(&ppk), &public)?;
                }
                Ok::<_, crate::keys::StoreError>(removed)
            })
            .await?;
            match removed {
                Ok(true) => {
                    progress.note(&format!("Removed {shown}"));
                    Ok(())
                }
                Ok(false) => Ok(()),
                Err(e) => Err(failed(format!(
                    "the key pair was deleted, but not {shown}: {e}"
                ))),
            }
        }
    }
}

/// `--replace`: move the key file aside (and its `.ppk`, only when it is that key's PuTTY
/// form). Returns what was moved, `(original, aside)`, so that a failure can undo it.
pub(super) async fn move_aside_for_replace(
    store: FileCustody,
    action: &Pair<'_>,
    path: &std::path::Path,
    now: u64,
    progress: &dyn Progress,
) -> Result<Vec<(std::path::PathBuf, std::path::PathBuf)>, Failure> {
    let (pem, ppk) = (path.to_owned(), action.ppk.clone());
    let checked = file_work(move || {
        let Some(ppk) = ppk else { return Ok(None) };
        match (
            store.inspect(KeyRef::Pem(&pem)),
            store.inspect(KeyRef::Ppk(&ppk)),
        ) {
            (_, crate::keys::FileState::Absent) => Ok(None),
            (
                crate::keys::FileState::Key { public: a, .. },
                crate::keys::FileState::Key { public: b, .. },
            ) if a == b => Ok(Some(ppk)),
            _ => Err(ppk),
        }
    })
    .await?;
    let ppk = checked.map_err(|ppk| {
        failed(format!(
            "{} is not the PuTTY form of {}: labctl does not move another key; nothing was replaced",
            ppk.display(),
            action.output_display
        ))
        .hint("move the .ppk away (or put back the key it belongs to), then run apply --replace again")
    })?;
    let mut moved = Vec::new();
    for file in std::iter::once(path.to_owned()).chain(ppk) {
        let owned = file.clone();
        let result = file_work(move || store.move_aside(&owned, "replaced", now)).await;
        match result {
            Ok(Ok(Some(aside))) => {
                progress.note(&format!(
                    "Moved {} aside to {}",
                    file.display(),
                    aside.display()
                ));
                moved.push((file, aside));
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                undo_moves(store, &moved, progress).await;
                return Err(failed(format!("{e}; nothing was replaced")));
            }
            Err(f) => {
                undo_moves(store, &moved, progress).await;
                return Err(f);
            }
        }
    }
    Ok(moved)
}

/// Give files moved aside their names back, newest first, saying where each one is.
pub(super) async fn undo_moves(
    store: FileCustody,
    moved: &[(std::path::PathBuf, std::path::PathBuf)],
    progress: &dyn Progress,
) {
    for (original, aside) in moved.iter().rev() {
        let (o, a) = (original.clone(), aside.clone());
        match file_work(move || store.move_back(&a, &o)).await {
            Ok(Ok(())) => progress.note(&format!(
                "Moved {} back: the replacement was not made",
                original.display()
            )),
            _ => progress.note(&format!(
                "{} stays at {}: the replacement was not made",
                original.display(),
                aside.display()
            )),
        }
    }
}
