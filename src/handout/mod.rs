//! `labctl handout`: what an instructor hands each attendee, one bundle per key pair.
//!
//! A bundle is the private key in the formats the manifest asks for (`<name>.pem`, and
//! `<name>.ppk` with `formats: [pem, ppk]`), an `ssh_config` snippet and a `README.txt` with
//! the key pair's regions, the fingerprint EC2 shows in each, and how to connect from Linux,
//! macOS and Windows. It lives in a folder `<out>/<name>/` (0700, files 0400) or, with `--zip`,
//! in one owner-only `<out>/<name>.zip`. Everything is derived from the key files (no AWS
//! call), or with `--from-store` from the team store's entries, read before. With `--passphrase` each bundle's keys are encrypted with its own random passphrase
//! (OpenSSH's own encryption for the `.pem`, PPK v3's for the `.ppk`), listed for the
//! instructor in an owner-only CSV. Bundles are written like key files: owner-only from the
//! first byte, atomically, never over another file; one whose key changed is replaced only
//! with `--force`, and then the old one is moved aside.
//!
//! This module is the capability (`commands/handout.rs` only wires it to the command line):
//! `select.rs` which key pairs, `out.rs` where bundles may go and what they are named,
//! `readme.rs` the bundle's text files, `bundle.rs` its files on disk (folder or zip) and what
//! is already there, `passphrase.rs` passphrases and their list, `text.rs` the result for
//! people.

mod bundle;
mod out;
mod passphrase;
mod readme;
mod select;
mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::desired::{KeyPairSpec, KeySource};
use crate::keys::folder::KeyFolder;
use crate::keys::{self, FileCustody, KeyCustody as _, KeyRef, Secret};

use bundle::{Existing, bundle_files, existing, write_folder, zip_bundle};
pub(crate) use out::refuse_out;
use out::{bundle_path, file_name_of};
pub(crate) use passphrase::ShownPassphrase;
use passphrase::{Known, new_passphrase, write_passphrases};
use readme::{identity, readme};
pub(crate) use select::select;
pub(crate) use text::human;

/// What happened to one key pair's bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Written,
    Unchanged,
    Replaced,
    /// It exists and differs; not replaced without `--force`.
    Refused,
    /// No bundle can be made (no private key here).
    Skipped,
    Failed,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Written => "written",
            Status::Unchanged => "unchanged",
            Status::Replaced => "replaced",
            Status::Refused => "refused",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }
}

/// What became of one key pair's bundle.
#[derive(Clone)]
pub(crate) struct Outcome {
    pub name: String,
    pub seat: String,
    pub status: Status,
    pub path: Option<PathBuf>,
    pub reason: Option<String>,
    /// A `public_key` entry: never a bundle, and not a problem.
    pub expected_skip: bool,
    /// Where the key pair is: (region, member account id, its manifest name), the account
    /// `None` in the caller's own.
    pub places: Vec<(String, Option<String>, Option<String>)>,
}

impl Outcome {
    /// Whether this bundle is a problem for the exit code (a `public_key` entry's skip is not).
    pub(crate) fn is_problem(&self) -> bool {
        matches!(self.status, Status::Refused | Status::Failed)
            || (self.status == Status::Skipped && !self.expected_skip)
    }
}

/// How bundles are made (the command line's choices).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Options {
    /// One zip per key pair instead of a folder.
    pub zip: bool,
    /// Encrypt each bundle's keys with its own passphrase.
    pub passphrase: bool,
    /// Replace a bundle whose key, formats or passphrase setting changed.
    pub force: bool,
}

/// Where the bundles' private keys come from.
pub(crate) enum Keys {
    /// The key files, as plan sees them (the default: no AWS call).
    Files,
    /// The team store's entries (`handout --from-store`), read and checked before: each key
    /// pair's key by name, or why there is none.
    Fetched(BTreeMap<String, Result<(keys::PublicKey, Secret), String>>),
}

impl Keys {
    /// The key of `spec`'s bundle, whose key file is `pem`; why not, when there is none.
    fn of(&self, spec: &KeyPairSpec, pem: &Path) -> Result<(keys::PublicKey, Secret), String> {
        match self {
            Keys::Files => usable_key(spec, pem),
            Keys::Fetched(found) => found.get(spec.name.as_str()).cloned().unwrap_or_else(|| {
                Err(format!(
                    "`{}` was not read from the store",
                    spec.name.as_str()
                ))
            }),
        }
    }
}

/// What a handout did: each bundle's outcome, the passphrase list it wrote, and the bundles
/// of the manifest that list leaves out although they are in `out` (a key that could not be
/// read now, or a bundle no longer current): by key pair name, with why.
pub(crate) struct Handout {
    pub outcomes: Vec<Outcome>,
    pub passphrases: Option<PathBuf>,
    pub unlisted: Vec<(String, String)>,
}

/// Make the bundles of `selected` in `out` (created 0700 when missing): first what each
/// bundle needs, then the passphrase list (so no bundle is ever encrypted with a passphrase
/// that was not saved), then the bundles. The list holds every current bundle of the
/// manifest (`others` too, when they are unchanged and their passphrase is known), so the
/// newest list is always the one to hand out from.
///
/// # Errors
/// `out` cannot be used as a folder for bundles.
pub(crate) fn hand_out(
    project: &str,
    selected: &[&KeyPairSpec],
    others: &[&KeyPairSpec],
    out: &Path,
    options: Options,
    keys: &Keys,
    now: u64,
) -> Result<Handout, String> {
    let folder = KeyFolder::create(out)
        .map(|(folder, _)| folder)
        .map_err(|err| format!("cannot use {} for bundles: {err}", out.display()))?;
    // The passphrases of the bundles already here (by key pair and bundle): an unchanged
    // bundle's goes into this run's list; one whose passphrase no list has is not unchanged.
    let earlier = if options.passphrase {
        passphrase::known(&folder)
    } else {
        BTreeMap::new()
    };
    let mut outcomes = Vec::new();
    let mut work = Vec::new();
    for spec in selected {
        match decide(spec, project, &folder, out, options, &earlier, keys) {
            Decision::Done(outcome) => outcomes.push(outcome),
            Decision::Write(job) => {
                outcomes.push(job.outcome.clone());
                work.push((outcomes.len() - 1, job));
            }
        }
    }
    let mut passphrases = None;
    let mut unlisted = Vec::new();
    if options.passphrase && !work.is_empty() {
        for (_, job) in &mut work {
            job.passphrase = Some(new_passphrase());
        }
        // One list per run holding every current bundle: the new ones with their new
        // passphrases, the unchanged ones (of this run, or not selected) with theirs from the
        // newest list that has them.
        let (unselected, left_out) =
            carried(others, project, &folder, out, options, &earlier, keys);
        unlisted = left_out;
        let rows: Vec<(&str, &str, &str, &str)> = outcomes
            .iter()
            .chain(&unselected)
            .enumerate()
            .filter_map(|(index, outcome)| {
                let bundle = outcome.path.as_ref()?.file_name()?.to_str()?;
                let passphrase: &str = match work.iter().find(|(i, _)| *i == index) {
                    Some((_, job)) => job.passphrase.as_deref().map(String::as_str)?,
                    None if outcome.status == Status::Unchanged => earlier
                        .get(&(outcome.name.clone(), bundle.to_owned()))
                        .map(|p| p.as_str())?,
                    None => return None,
                };
                Some((
                    outcome.seat.as_str(),
                    outcome.name.as_str(),
                    passphrase,
                    bundle,
                ))
            })
            .collect();
        match write_passphrases(&folder, out, now, &rows) {
            Ok(path) => passphrases = Some(path),
            Err(err) => {
                for (index, _) in work.drain(..) {
                    outcomes[index].status = Status::Failed;
                    outcomes[index].reason =
                        Some(format!("the passphrase list could not be written: {err}"));
                }
            }
        }
    }
    for (index, job) in work {
        outcomes[index] = write_bundle(job, &folder, out, options.zip, now);
    }
    Ok(Handout {
        outcomes,
        passphrases,
        unlisted,
    })
}

/// The bundles of `others` (not selected) that the new passphrase list carries (unchanged, so
/// the newest earlier list's passphrase still opens them), and those in `out` it cannot carry,
/// with why: said, never dropped in silence.
fn carried(
    others: &[&KeyPairSpec],
    project: &str,
    folder: &KeyFolder,
    out: &Path,
    options: Options,
    earlier: &Known,
    keys: &Keys,
) -> (Vec<Outcome>, Vec<(String, String)>) {
    let (mut unselected, mut unlisted) = (Vec::new(), Vec::new());
    for spec in others {
        let check = Options {
            force: false,
            ..options
        };
        let outcome = match decide(spec, project, folder, out, check, earlier, keys) {
            Decision::Done(o) if o.status == Status::Unchanged => {
                unselected.push(o);
                continue;
            }
            Decision::Done(o) => o,
            Decision::Write(job) => job.outcome,
        };
        let name = spec.name.as_str();
        if file_name_of(name) && bundle_path(out, name, options.zip).exists() {
            let why = outcome.reason.unwrap_or_else(|| {
                "its key, formats or passphrase setting changed since it was written".to_owned()
            });
            unlisted.push((name.to_owned(), why));
        }
    }
    (unselected, unlisted)
}

/// What one key pair's bundle needs.
enum Decision {
    Done(Outcome),
    Write(Box<Job>),
}

/// A bundle to write.
struct Job {
    outcome: Outcome,
    spec: KeyPairSpec,
    secret: Secret,
    readme: String,
    /// What is in the way: moved aside first, with this label.
    aside: Option<&'static str>,
    passphrase: Option<Zeroizing<String>>,
}

/// `a`, `a and b`, `a, b and c`.
fn words_and(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The newest passphrase of each bundle of `seat` (a seat label, else a key pair name) the
/// lists in `out` hold, each marked current only when its bundle is what the key file and the
/// manifest make now (a bundle whose key or seat changed is not worth its old passphrase).
///
/// # Errors
/// `out` is not a folder labctl can trust.
pub(crate) fn show_passphrase(
    project: &str,
    specs: &[KeyPairSpec],
    out: &Path,
    seat: &str,
) -> Result<Vec<ShownPassphrase>, String> {
    let folder = match KeyFolder::open(out) {
        Ok(folder) => folder,
        Err(crate::keys::folder::FolderError::Missing) => return Ok(Vec::new()),
        Err(err) => return Err(format!("cannot use {}: {err}", out.display())),
    };
    Ok(passphrase::find(
        &folder,
        out,
        seat,
        |name, bundle, known| {
            let check = Options {
                zip: Path::new(bundle).extension().is_some_and(|e| e == "zip"),
                passphrase: true,
                force: false,
            };
            specs
                .iter()
                .filter(|spec| spec.name.as_str() == name)
                .any(|spec| {
                    matches!(
                        decide(spec, project, &folder, out, check, known, &Keys::Files),
                        Decision::Done(o) if o.status == Status::Unchanged
                    )
                })
        },
    ))
}

/// The key a bundle is made of: the key file as plan sees it (a file another user could have
/// swapped, or a link, is handed to nobody), read once. Why not, when it cannot be used.
fn usable_key(spec: &KeyPairSpec, pem: &Path) -> Result<(keys::PublicKey, Secret), String> {
    let shown = &spec.output_display;
    let public = match FileCustody.inspect(KeyRef::Pem(pem)) {
        keys::FileState::Key { public, .. } => public,
        keys::FileState::Absent => {
            return Err(format!("{shown} is missing; run `labctl apply` first"));
        }
        refused => {
            return Err(refused
                .refusal(shown, "private key")
                .map_or_else(|| format!("{shown} cannot be used"), |(_, why)| why));
        }
    };
    match FileCustody.read(KeyRef::Pem(pem)) {
        Some(secret) => Ok((public, secret)),
        None => Err(format!(
            "{shown} is missing or unreadable; run `labctl apply` first"
        )),
    }
}

fn decide(
    spec: &KeyPairSpec,
    project: &str,
    folder: &KeyFolder,
    out: &Path,
    options: Options,
    known: &Known,
    keys: &Keys,
) -> Decision {
    let name = spec.name.as_str().to_owned();
    let seat = spec.seat.clone();
    let path = bundle_path(out, &name, options.zip);
    let mut outcome = Outcome {
        name: name.clone(),
        seat,
        status: Status::Skipped,
        path: None,
        reason: None,
        expected_skip: false,
        places: spec
            .scopes
            .iter()
            .map(|s| {
                (
                    s.region.to_string(),
                    s.account.id().map(str::to_owned),
                    s.account.name().map(str::to_owned),
                )
            })
            .collect(),
    };
    let Some(pem) = spec
        .output
        .as_ref()
        .filter(|_| !matches!(spec.source, KeySource::PublicKey(_)))
    else {
        outcome.reason =
            Some("it imports a public key: there is no private key to hand out".to_owned());
        outcome.expected_skip = true;
        return Decision::Done(outcome);
    };
    if !file_name_of(&name) {
        outcome.reason = Some(format!(
            "`{name}` cannot name a bundle (a bundle and its files are named after the key pair, and this name holds `/` or is `.` or `..`)"
        ));
        return Decision::Done(outcome);
    }
    let (public, secret) = match keys.of(spec, pem) {
        Ok(key) => key,
        Err(why) => {
            outcome.reason = Some(why);
            return Decision::Done(outcome);
        }
    };
    let readme = readme(spec, project, &secret, &public, options.passphrase);
    outcome.path = Some(path.clone());
    outcome.status = Status::Written;
    let file_name = path.file_name().unwrap_or_default().to_owned();
    let mut found = existing(
        folder,
        &path,
        &file_name,
        &name,
        options.zip,
        &identity(&readme),
    );
    // An encrypted bundle whose passphrase no list here holds cannot be handed out again.
    if matches!(found, Existing::Same)
        && options.passphrase
        && !known.contains_key(&(name.clone(), file_name.to_string_lossy().into_owned()))
    {
        found = Existing::PassphraseLost;
    }
    let Ok(aside) = what_of_existing(found, &mut outcome, &path, options.force) else {
        return Decision::Done(outcome);
    };
    Decision::Write(Box::new(Job {
        outcome,
        spec: (*spec).clone(),
        secret,
        readme,
        aside,
        passphrase: None,
    }))
}

/// What to do about what is already where a bundle goes: write over nothing (`Ok(None)`),
/// move it aside first with this label, or leave it (`Err`, with the outcome said).
fn what_of_existing(
    found: Existing,
    outcome: &mut Outcome,
    path: &Path,
    force: bool,
) -> Result<Option<&'static str>, ()> {
    match found {
        Existing::None => Ok(None),
        Existing::Same => {
            outcome.status = Status::Unchanged;
            Err(())
        }
        Existing::Incomplete => Ok(Some("incomplete")),
        Existing::Foreign => {
            outcome.status = Status::Refused;
            outcome.reason = Some(format!(
                "{} holds files labctl does not write into a bundle; it is left alone (move it, or use another --out)",
                path.display()
            ));
            Err(())
        }
        Existing::Different | Existing::Changed(_) | Existing::PassphraseLost if force => {
            outcome.status = Status::Replaced;
            Ok(Some("replaced"))
        }
        Existing::Different => {
            outcome.status = Status::Refused;
            outcome.reason = Some(
                "its key, formats or passphrase setting changed since it was written (or it cannot be read); --force moves the old bundle aside and writes a new one".to_owned(),
            );
            Err(())
        }
        Existing::PassphraseLost => {
            outcome.status = Status::Refused;
            outcome.reason = Some(
                "its passphrase is in no passphrase list here (moved away?); --force writes it again with a new one".to_owned(),
            );
            Err(())
        }
        Existing::Changed(what) => {
            outcome.status = Status::Refused;
            outcome.reason = Some(format!(
                "its {} changed since it was written; --force moves the old bundle aside and writes a new one",
                words_and(&what)
            ));
            Err(())
        }
    }
}

fn write_bundle(job: Box<Job>, folder: &KeyFolder, out: &Path, zip: bool, now: u64) -> Outcome {
    let Job {
        mut outcome,
        spec,
        secret,
        readme,
        aside,
        passphrase,
    } = *job;
    let name = spec.name.as_str();
    let file_name = bundle_path(out, name, zip)
        .file_name()
        .unwrap_or_default()
        .to_owned();
    let fail = |outcome: &mut Outcome, reason: String| {
        outcome.status = Status::Failed;
        outcome.reason = Some(reason);
    };
    if let Some(label) = aside
        && let Err(err) = folder.move_aside(&file_name, &format!(".{label}-{now}"))
    {
        fail(
            &mut outcome,
            format!("the old bundle could not be moved aside: {err}"),
        );
        return outcome;
    }
    let files = match bundle_files(
        &spec,
        &secret,
        &readme,
        passphrase.as_deref().map(String::as_str),
    ) {
        Ok(files) => files,
        Err(reason) => {
            fail(&mut outcome, reason);
            return outcome;
        }
    };
    let written = if zip {
        zip_bundle(name, &files, now).and_then(|bytes| {
            folder
                .write_new(&file_name, &[&bytes])
                .map_err(|e| e.to_string())
        })
    } else {
        write_folder(folder, name, &files)
    };
    if let Err(err) = written {
        fail(
            &mut outcome,
            format!("the bundle could not be written: {err}"),
        );
    }
    outcome
}
