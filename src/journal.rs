//! The journal of key creations: which keys EC2 was asked to create and whether their private
//! keys were saved, per key pair, so that crash recovery acts only on what it can prove.
//!
//! Before each `CreateKeyPair`, apply appends `create <apply id> <name>` and fsyncs; after the
//! private key is on disk, `saved <apply id> <name>`; when the key pair it made is deleted
//! again (undo, or recovery), `resolved <apply id> <name>`. A key pair that carries a
//! `labctl:apply-id` tag naming a `create` with neither answer was made by a request whose
//! private key nobody ever saved (the run was killed, or the answer was lost and could not be
//! cleaned up): only such a key pair may be replaced without asking. A saved key whose file was
//! later moved away is never one of them. The file lives in the state folder (see `lock`),
//! is written only under the manifest's lock, and is read with a size bound.
//!
//! It also records `deleted <apply id> <key pair id>` for every key pair labctl deletes.
//! EC2's `DescribeKeyPairs` is eventually consistent: for a while after a delete it may still
//! list the key pair. Key pair ids are never reused, so a listed key pair whose id the journal
//! says labctl deleted is gone, whatever the listing says (no false `missing-private-key`
//! right after `destroy`).
//!
//! The project's keys, beside it in the same state folder, are one file per project (not per
//! manifest file: renaming `labctl.yaml`, or a second manifest of the project, keeps them):
//! `<project>.keys`. Its lines say which keys labctl made and which left:
//!
//! - `made <apply id> <SHA256 fingerprint>\t<file>`: labctl wrote this key to this file (a
//!   key EC2 created, or one labctl generated; or one found saved after a killed run). Only a
//!   key labctl made is ever retired or removed with its key pair; a key file the user
//!   brought (an `output` that already held a key, imported) stays theirs.
//! - `retired <apply id> <SHA256 fingerprint>`: before a delete of a key pair whose key
//!   labctl made (destroy, prune, replace), that key has left, whatever becomes of the
//!   delete's answer. A file that still holds a retired key after its key pairs are gone (the
//!   answer was lost, the run was killed) is retired by the next `destroy`, and `apply` makes
//!   a new key instead of importing it again. (Journals written before the project file
//!   existed hold `retired` lines too; they still count.)
//!
//! The manifest's journal also holds `reached <apply id> <JSON>`: how labctl reached a
//! member account (its id, manifest name, role ARN, external id, session name; never
//! credentials), the regions it placed key pairs in there, their names and when the record
//! changed. The last line of an account says it; one with no regions forgets it. A run reads
//! the account's regions even when the manifest no longer names it, so that `--prune` and
//! `destroy` reach what labctl left there. Per manifest, as regions are: another manifest of
//! the project never reads (nor prunes) this one's accounts.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::keys::folder::{KeyFolder, read_bounded};

/// A journal larger than this is not labctl's (a few hundred thousand entries).
const MAX_JOURNAL: usize = 16 * 1024 * 1024;

/// A key EC2 was asked to create for an apply, and whose private key was never saved:
/// `(apply id, key pair name)`.
pub(crate) type UnsavedKey = (String, String);

/// How many deleted key pair ids a compacted journal keeps (the newest).
const KEEP_DELETED: usize = 10_000;

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// `CreateKeyPair` is about to be sent.
    Create,
    /// The private key is saved.
    Saved,
    /// The key pair that request made is gone again (deleted by labctl).
    Resolved,
    /// labctl deleted the key pair of this id (the name field holds the id).
    Deleted,
    /// The key of this SHA-256 fingerprint (the name field) is retired: its key pair is being
    /// deleted; it is never handed out again. Recorded in the project's keys.
    Retired,
    /// labctl wrote the key of this SHA-256 fingerprint to a file (the name field holds the
    /// fingerprint, a tab and the file). Recorded in the project's keys.
    Made,
    /// How a member account was reached and what labctl placed there (the name field holds
    /// a [`Reached`] as JSON). Recorded in the manifest's journal: another manifest of the
    /// project reads only its own accounts, as it reads only its own regions.
    Reached,
}

/// How labctl reached a member account, and where it placed key pairs there.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Reached {
    pub id: String,
    pub name: String,
    pub role_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub session_name: String,
    /// The regions it placed key pairs in (none: forgotten).
    pub regions: Vec<String>,
    /// The key pairs it placed there, for a warning when the account cannot be reached.
    pub names: Vec<String>,
    /// Since when (Unix seconds) every remembered region was read and held nothing of the
    /// project: the account is forgotten only when that is still so at least EC2's listing
    /// lag later (a key pair made moments before may not be listed yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_since: Option<u64>,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::Create => "create",
            Event::Saved => "saved",
            Event::Resolved => "resolved",
            Event::Deleted => "deleted",
            Event::Retired => "retired",
            Event::Made => "made",
            Event::Reached => "reached",
        }
    }

    /// Whether the event belongs to the project's keys (not to one manifest's journal).
    fn is_projects(self) -> bool {
        matches!(self, Event::Retired | Event::Made)
    }
}

/// A path in a `made` line: one line, tabs and newlines escaped (`\\`, `\t`, `\n`).
fn escape_path(path: &Path) -> String {
    path.to_string_lossy()
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn unescape_path(text: &str) -> PathBuf {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    PathBuf::from(out)
}

/// The name field of a `made` line: the key's fingerprint and the file it was written to.
pub(crate) fn made_name(fingerprint: &str, path: &Path) -> String {
    format!("{fingerprint}\t{}", escape_path(path))
}

/// What the journal knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct State {
    /// Keys EC2 was asked to create and whose private keys were never saved.
    pub unsaved: BTreeSet<UnsavedKey>,
    /// Ids of key pairs labctl deleted, oldest first.
    pub deleted: Vec<String>,
    /// SHA-256 fingerprints of keys retired by destroy, prune or replace, oldest first.
    pub retired: Vec<String>,
    /// SHA-256 fingerprints of the keys labctl made, each with the files it wrote them to.
    pub made: BTreeMap<String, BTreeSet<PathBuf>>,
    /// The member accounts labctl placed key pairs in, by id (the last `reached` line of
    /// each; forgotten ones left out).
    pub reached: BTreeMap<String, Reached>,
}

/// The open journal of one manifest and the project's keys (held with the manifest's lock).
#[derive(Debug)]
pub(crate) struct Journal {
    file: Mutex<File>,
    /// The state folder and the journal's name in it (compaction replaces the file).
    folder: PathBuf,
    name: std::ffi::OsString,
    /// The project's keys (`made`, `retired`): appended to, never rewritten.
    keys: Mutex<File>,
    /// What the journal held when the run began.
    pub state: State,
}

/// What the journal's lines say.
fn parse(text: &str, into: &mut State) {
    let State {
        unsaved,
        deleted,
        retired,
        made,
        reached,
    } = into;
    let mut seen_retired: BTreeSet<String> = retired.iter().cloned().collect();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(event), Some(id), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let key = (id.to_owned(), name.to_owned());
        match event {
            "create" => {
                unsaved.insert(key);
            }
            "saved" | "resolved" => {
                unsaved.remove(&key);
            }
            "deleted" => deleted.push(name.to_owned()),
            "retired" if seen_retired.insert(name.to_owned()) => retired.push(name.to_owned()),
            "reached" => {
                if let Ok(account) = serde_json::from_str::<Reached>(name) {
                    if account.regions.is_empty() {
                        reached.remove(&account.id);
                    } else {
                        reached.insert(account.id.clone(), account);
                    }
                }
            }
            "made" => {
                let (fingerprint, path) = name.split_once('\t').unwrap_or((name, ""));
                let paths = made.entry(fingerprint.to_owned()).or_default();
                if !path.is_empty() {
                    paths.insert(unescape_path(path));
                }
            }
            _ => {}
        }
    }
}

fn read_into(file: &mut File, state: &mut State) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let bytes = read_bounded(&mut *file, MAX_JOURNAL)?
        .ok_or_else(|| io::Error::other("the journal is too large to be labctl's"))?;
    parse(&String::from_utf8_lossy(&bytes), state);
    Ok(())
}

fn read_all(file: &mut File) -> io::Result<State> {
    let mut state = State::default();
    read_into(file, &mut state)?;
    Ok(state)
}

impl Journal {
    /// Open (or create) the journal `name` and the project's keys `keys` in the state
    /// folder; call with the lock held.
    pub(crate) fn open(folder: &KeyFolder, name: &OsStr, keys: &OsStr) -> io::Result<Journal> {
        let mut file = folder.open_state_file(name, true)?;
        let mut keys_file = folder.open_state_file(keys, true)?;
        let mut state = read_all(&mut file)?;
        read_into(&mut keys_file, &mut state)?;
        Ok(Journal {
            file: Mutex::new(file),
            folder: folder.path().to_owned(),
            name: name.to_owned(),
            keys: Mutex::new(keys_file),
            state,
        })
    }

    /// What the journal `name` and the project's keys `keys` hold, read only (empty when
    /// there is none).
    pub(crate) fn read(folder: &KeyFolder, name: &OsStr, keys: &OsStr) -> State {
        let mut state = State::default();
        for file in [name, keys] {
            if let Ok(mut file) = folder.open_state_file(file, false) {
                let _ = read_into(&mut file, &mut state);
            }
        }
        state
    }

    /// Append one event and make it durable before returning.
    ///
    /// # Errors
    /// Why the event could not be recorded (then a create must not be sent).
    pub(crate) fn record(&self, event: Event, apply_id: &str, name: &str) -> io::Result<()> {
        let line = format!("{}\t{apply_id}\t{name}\n", event.as_str());
        let file = if event.is_projects() {
            &self.keys
        } else {
            &self.file
        };
        let mut file = file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.seek(SeekFrom::End(0))?;
        file.write_all(line.as_bytes())?;
        file.sync_data()
    }

    /// The ids of the key pairs labctl deleted, as the journal holds them now (this run's
    /// deletions included).
    ///
    /// # Errors
    /// Why the journal could not be read.
    pub(crate) fn deleted_now(&self) -> io::Result<BTreeSet<String>> {
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(read_all(&mut file)?.deleted.into_iter().collect())
    }

    /// Rewrite the journal with only the keys still unsaved, the newest deleted ids and the
    /// retired keys it holds from before the project's keys existed, at once (a new file
    /// renamed over the old), and append to the new one from then on.
    ///
    /// # Errors
    /// Why the journal could not be read or written.
    pub(crate) fn compact(&self) -> io::Result<()> {
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = read_all(&mut file)?;
        let mut text = String::new();
        for (id, name) in &state.unsaved {
            let _ = writeln!(text, "create\t{id}\t{name}");
        }
        let skip = state.deleted.len().saturating_sub(KEEP_DELETED);
        for id in &state.deleted[skip..] {
            let _ = writeln!(text, "deleted\t0\t{id}");
        }
        let skip = state.retired.len().saturating_sub(KEEP_DELETED);
        for fingerprint in &state.retired[skip..] {
            let _ = writeln!(text, "retired\t0\t{fingerprint}");
        }
        for account in state.reached.values() {
            if let Ok(record) = serde_json::to_string(account) {
                let _ = writeln!(text, "reached\t0\t{record}");
            }
        }
        // Written beside and renamed over: a kill in the middle leaves the whole journal.
        let folder = KeyFolder::open(&self.folder).map_err(|e| io::Error::other(e.to_string()))?;
        *file = folder.replace_state_file(&self.name, text.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{made_name, parse};

    #[test]
    fn a_key_is_unsaved_from_its_create_until_it_is_saved_or_resolved() {
        let journal = "create\t00aa\tlab a\ncreate\t00aa\tlab-b\nsaved\t00aa\tlab-b\ncreate\t00bb\tlab-c\nresolved\t00bb\tlab-c\ncreate\tnot-hex\tx\ngarbage\ndeleted\t00bb\tkey-0123\nretired\t00bb\tSHA256:abc\nretired\t00cc\tSHA256:abc\n";
        let mut state = super::State::default();
        parse(journal, &mut state);
        let unsaved: Vec<_> = state.unsaved.into_iter().collect();
        assert_eq!(unsaved, [("00aa".to_owned(), "lab a".to_owned())]);
        assert_eq!(state.deleted, ["key-0123"]);
        assert_eq!(state.retired, ["SHA256:abc"]);
    }

    #[test]
    fn the_last_reached_line_of_an_account_says_how_it_is_reached() {
        let account = |regions: &[&str]| super::Reached {
            id: "111111111111".into(),
            name: "team-a".into(),
            role_arn: "arn:aws:iam::111111111111:role/R".into(),
            external_id: Some("ev\tent".into()),
            session_name: "labctl-lab".into(),
            regions: regions.iter().map(|r| (*r).to_owned()).collect(),
            names: vec!["lab a".into()],
            empty_since: None,
        };
        let line =
            |a: &super::Reached| format!("reached\t00aa\t{}\n", serde_json::to_string(a).unwrap());
        let mut state = super::State::default();
        parse(
            &(line(&account(&["eu-west-1"])) + &line(&account(&["us-east-1"]))),
            &mut state,
        );
        assert_eq!(state.reached["111111111111"], account(&["us-east-1"]));
        assert_eq!(line(&account(&[])).lines().count(), 1);
        parse(&line(&account(&[])), &mut state);
        assert!(state.reached.is_empty());
    }

    #[test]
    fn compaction_replaces_the_journal_at_once_and_later_records_land_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let (folder, _) = crate::keys::folder::KeyFolder::create(dir.path()).unwrap();
        let (name, keys) = (std::ffi::OsStr::new("j"), std::ffi::OsStr::new("k"));
        let journal = super::Journal::open(&folder, name, keys).unwrap();
        journal.record(super::Event::Create, "00aa", "a").unwrap();
        journal.record(super::Event::Saved, "00aa", "a").unwrap();
        journal.record(super::Event::Create, "00bb", "b").unwrap();
        journal.compact().unwrap();
        // The saved create is gone, the unsaved one stays, and what is recorded after the
        // compaction is in the journal's file (not in the file it replaced).
        journal.record(super::Event::Saved, "00bb", "b").unwrap();
        let text = std::fs::read_to_string(dir.path().join("j")).unwrap();
        assert_eq!(text, "create\t00bb\tb\nsaved\t00bb\tb\n");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".labctl-tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn made_lines_keep_any_path_on_one_line() {
        let odd = std::path::Path::new("/w/a\tb\\c\nd.pem");
        let text = format!(
            "made\t00aa\t{}\nmade\t00bb\tSHA256:y\t/w/y.pem\n",
            made_name("SHA256:x", odd)
        );
        assert_eq!(text.lines().count(), 2);
        let mut state = super::State::default();
        parse(&text, &mut state);
        assert_eq!(state.made["SHA256:x"].iter().collect::<Vec<_>>(), [odd]);
        assert!(state.made["SHA256:y"].contains(std::path::Path::new("/w/y.pem")));
    }
}
