//! `labctl handout`: what an instructor hands each attendee, one bundle per key pair.
//!
//! A bundle is the private key in the formats the manifest asks for (`<name>.pem`, and
//! `<name>.ppk` with `formats: [pem, ppk]`), an `ssh_config` snippet and a `README.txt` with
//! the key pair's regions, the fingerprint EC2 shows in each, and how to connect from Linux,
//! macOS and Windows. It lives in a folder `<out>/<name>/` (0700, files 0400) or, with `--zip`,
//! in one owner-only `<out>/<name>.zip`. Everything is derived from the key files: no AWS
//! call. With `--passphrase` each bundle's keys are encrypted with its own random passphrase
//! (OpenSSH's own encryption for the `.pem`, PPK v3's for the `.ppk`), listed for the
//! instructor in an owner-only CSV. Bundles are written like key files: owner-only from the
//! first byte, atomically, never over another file; one whose key changed is replaced only
//! with `--force`, and then the old one is moved aside.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde_json::json;
use zeroize::Zeroizing;

use crate::cli::HandoutArgs;
use crate::desired::{KeyPairSpec, KeySource};
use crate::error::{Error, Exit};
use crate::keys::folder::{Entry, FolderError, KeyFolder};
use crate::keys::{self, KeyStore, PublicKey, Secret, fingerprint};

use super::{Terminal, load_manifest, write_json, write_stdout};

/// A bundle's README is read back (to see whether the bundle is current) up to this size.
const MAX_README: usize = 64 * 1024;
/// A bundle zip is read back up to this size (a few keys and two text files).
const MAX_ZIP: usize = 1024 * 1024;

/// What happened to one key pair's bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
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
    fn as_str(self) -> &'static str {
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

#[derive(Clone)]
struct Outcome {
    name: String,
    seat: String,
    status: Status,
    path: Option<PathBuf>,
    reason: Option<String>,
    /// A `public_key` entry: never a bundle, and not a problem.
    expected_skip: bool,
}

pub(super) fn handout_command(args: &HandoutArgs, term: Terminal) -> Result<Exit, Error> {
    let (desired, warnings) =
        load_manifest(&args.manifest, &args.vars, args.json, args.quiet, term)?;
    let selected = select(&desired.keypairs, &args.selectors)?;
    let base = args.manifest.parent().unwrap_or(Path::new("")).to_owned();
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => base.join("handout"),
    };
    // Never a private key in a git work tree unignored: an existing folder must be ignored
    // (one labctl creates gets a `.gitignore` of `*` first).
    // Bundles never go into a key folder: a bundle named like a key file (an `output` without
    // `.pem`) would move a live key aside.
    if let Some(spec) = desired.keypairs.iter().find(|k| {
        k.output
            .iter()
            .chain(k.ppk.iter())
            .any(|file| keys::path_identity(&keys::parent_of(file)) == keys::path_identity(&out))
    }) {
        return Err(Error::Usage(format!(
            "{} is a key folder (of `{}`); bundles go elsewhere: use another --out",
            out.display(),
            spec.name
        )));
    }
    // The bundles, their moved-aside copies and the passphrase list: every one of them holds
    // a secret (the same check as for key files).
    if out.exists() {
        let mut probes: Vec<PathBuf> = vec![out.join("passphrases-0.csv")];
        for spec in &selected {
            let bundle = bundle_path(&out, spec.name.as_str(), args.zip);
            probes.extend(keys::aside_names(&bundle));
            probes.push(bundle);
        }
        let refs: Vec<&Path> = probes.iter().map(PathBuf::as_path).collect();
        if let Some((_, root, why)) = keys::git_exposure(&refs).into_iter().next() {
            let how = match why {
                keys::Exposure::NotIgnored => "and not ignored",
                keys::Exposure::Tracked => "and git tracks files in it",
                keys::Exposure::Unchecked => "and git cannot say whether it would commit them",
            };
            return Err(Error::Usage(format!(
                "{} is inside the git work tree {} {how}: bundles and passphrase lists hold secrets; add it to .gitignore (and `git rm --cached` what is tracked) or use --out elsewhere",
                out.display(),
                root.display()
            )));
        }
    }
    let folder = KeyFolder::create(&out)
        .map(|(folder, _)| folder)
        .map_err(|err| Error::Usage(format!("cannot use {} for bundles: {err}", out.display())))?;
    let now = super::now();
    // First what each bundle needs, then the passphrase list (so no bundle is ever encrypted
    // with a passphrase that was not saved), then the bundles.
    let mut outcomes = Vec::new();
    let mut work = Vec::new();
    for spec in selected {
        match decide(spec, &desired.project, &folder, &out, args) {
            Decision::Done(outcome) => outcomes.push(outcome),
            Decision::Write(job) => {
                outcomes.push(job.outcome.clone());
                work.push((outcomes.len() - 1, job));
            }
        }
    }
    let mut csv = None;
    if args.passphrase && !work.is_empty() {
        for (_, job) in &mut work {
            job.passphrase = Some(new_passphrase());
        }
        let rows: Vec<(&str, &str, &str)> = work
            .iter()
            .map(|(_, j)| {
                (
                    j.outcome.seat.as_str(),
                    j.outcome.name.as_str(),
                    j.passphrase.as_deref().map_or("", String::as_str),
                )
            })
            .collect();
        match write_passphrases(&folder, &out, now, &rows) {
            Ok(path) => csv = Some(path),
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
        outcomes[index] = write_bundle(job, &folder, &out, args.zip, now);
    }
    report(
        args,
        &desired.project,
        &out,
        &outcomes,
        csv.as_deref(),
        &warnings,
    )
}

/// The result, for people or as one JSON document; the exit code.
fn report(
    args: &HandoutArgs,
    project: &str,
    out: &Path,
    outcomes: &[Outcome],
    csv: Option<&Path>,
    warnings: &[serde_json::Value],
) -> Result<Exit, Error> {
    let failed = outcomes.iter().any(|o| {
        matches!(o.status, Status::Refused | Status::Failed)
            || (o.status == Status::Skipped && !o.expected_skip)
    });
    if args.json {
        let bundles: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|o| {
                json!({
                    "name": o.name,
                    "seat": o.seat,
                    "status": o.status.as_str(),
                    "path": o.path.as_ref().map(|p| p.display().to_string()),
                    "reason": o.reason,
                })
            })
            .collect();
        let doc = json!({
            "project": project,
            "out": out.display().to_string(),
            "bundles": bundles,
            "passphrases": csv.map(|p| p.display().to_string()),
        });
        write_json(&crate::render::json_document(&doc), warnings)?;
    } else {
        write_stdout(&human(project, out, outcomes, csv, args.quiet))?;
    }
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

/// The key pairs named or matched (`*`, `?`) by the selectors; every one when none.
fn select<'a>(
    specs: &'a [KeyPairSpec],
    selectors: &[String],
) -> Result<Vec<&'a KeyPairSpec>, Error> {
    if selectors.is_empty() {
        return Ok(specs.iter().collect());
    }
    for selector in selectors {
        if !specs.iter().any(|s| glob(selector, s.name.as_str())) {
            return Err(Error::Usage(format!(
                "no key pair of the manifest matches `{selector}`"
            )));
        }
    }
    Ok(specs
        .iter()
        .filter(|s| selectors.iter().any(|sel| glob(sel, s.name.as_str())))
        .collect())
}

/// `*` matches any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn bundle_path(out: &Path, name: &str, zip: bool) -> PathBuf {
    if zip {
        out.join(format!("{name}.zip"))
    } else {
        out.join(name)
    }
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

fn decide(
    spec: &KeyPairSpec,
    project: &str,
    folder: &KeyFolder,
    out: &Path,
    args: &HandoutArgs,
) -> Decision {
    let name = spec.name.as_str().to_owned();
    let seat = spec.seat.clone().unwrap_or_else(|| name.clone());
    let path = bundle_path(out, &name, args.zip);
    let mut outcome = Outcome {
        name: name.clone(),
        seat,
        status: Status::Skipped,
        path: None,
        reason: None,
        expected_skip: false,
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
    // The key file as plan sees it: a file another user could have swapped, or a link, is not
    // handed to anyone.
    let public = match KeyStore.inspect(pem) {
        keys::FileState::Key { public, .. } => public,
        refused => {
            let why = match refused {
                keys::FileState::Symlink => "is a symbolic link".to_owned(),
                keys::FileState::NotAFile => "is not a regular file".to_owned(),
                keys::FileState::Unsafe { reason } => format!("is not trusted: {reason}"),
                keys::FileState::Unreadable { reason } => {
                    format!("is not a usable private key: {reason}")
                }
                keys::FileState::Absent | keys::FileState::Key { .. } => {
                    "is missing; run `labctl apply` first".to_owned()
                }
            };
            outcome.reason = Some(format!("{} {why}", spec.output_display));
            return Decision::Done(outcome);
        }
    };
    let Some(secret) = KeyStore.read_private(pem) else {
        outcome.reason = Some(format!(
            "{} is missing or unreadable; run `labctl apply` first",
            spec.output_display
        ));
        return Decision::Done(outcome);
    };
    let readme = readme(spec, project, &secret, &public, args.passphrase);
    outcome.path = Some(path.clone());
    outcome.status = Status::Written;
    let file_name = path.file_name().unwrap_or_default().to_owned();
    let aside = match existing(
        folder,
        &path,
        &file_name,
        &name,
        args.zip,
        &identity(&readme),
    ) {
        Existing::None => None,
        Existing::Same => {
            outcome.status = Status::Unchanged;
            return Decision::Done(outcome);
        }
        Existing::Incomplete => Some("incomplete"),
        Existing::Foreign => {
            outcome.status = Status::Refused;
            outcome.reason = Some(format!(
                "{} holds files labctl does not write into a bundle; it is left alone (move it, or use another --out)",
                path.display()
            ));
            return Decision::Done(outcome);
        }
        Existing::Different if args.force => {
            outcome.status = Status::Replaced;
            Some("replaced")
        }
        Existing::Different => {
            outcome.status = Status::Refused;
            outcome.reason = Some(
                "its key, formats or passphrase setting changed since it was written; --force moves the old bundle aside and writes a new one".to_owned(),
            );
            return Decision::Done(outcome);
        }
    };
    Decision::Write(Box::new(Job {
        outcome,
        spec: spec.clone(),
        secret,
        readme,
        aside,
        passphrase: None,
    }))
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

/// The files of a bundle, in the order written (README last: a folder with one is whole).
fn bundle_files(
    spec: &KeyPairSpec,
    secret: &Secret,
    readme: &str,
    passphrase: Option<&str>,
) -> Result<Vec<(String, Secret)>, String> {
    let name = spec.name.as_str();
    let pem = match passphrase {
        Some(pass) => keys::encrypted_openssh(secret, name, pass)?,
        None => Secret::new(secret.expose().to_owned()),
    };
    let mut files = vec![(format!("{name}.pem"), pem)];
    if spec.ppk.is_some() {
        files.push((
            format!("{name}.ppk"),
            keys::to_ppk(secret, name, passphrase)?,
        ));
    }
    files.push(("ssh_config".to_owned(), Secret::new(ssh_config(name))));
    files.push(("README.txt".to_owned(), Secret::new(readme.to_owned())));
    Ok(files)
}

fn write_folder(out: &KeyFolder, name: &str, files: &[(String, Secret)]) -> Result<(), String> {
    let folder = out
        .create_child(OsStr::new(name))
        .map_err(|e| e.to_string())?;
    for (file, content) in files {
        folder
            .write_new(OsStr::new(file), &[content.expose().as_bytes()])
            .map_err(|e| format!("{file}: {e}"))?;
    }
    Ok(())
}

/// The bundle as one zip (stored, not compressed: keys do not compress), built in memory
/// sized once so no copy of a key is left behind by growing it.
fn zip_bundle(
    name: &str,
    files: &[(String, Secret)],
    now: u64,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let stamp = zip_time(now);
    let size: usize = files
        .iter()
        .map(|(f, c)| 2 * f.len() + c.expose().len() + 256)
        .sum();
    let mut buffer = std::io::Cursor::new(Vec::with_capacity(size + 1024));
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        for (file, content) in files {
            let key = Path::new(file)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("pem") || e.eq_ignore_ascii_case("ppk"));
            let mode = if key { 0o600 } else { 0o644 };
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .unix_permissions(mode)
                .last_modified_time(stamp);
            zip.start_file(format!("{name}/{file}"), options)
                .map_err(|e| e.to_string())?;
            zip.write_all(content.expose().as_bytes())
                .map_err(|e| e.to_string())?;
        }
        zip.finish().map_err(|e| e.to_string())?;
    }
    Ok(Zeroizing::new(buffer.into_inner()))
}

/// A zip entry's time (UTC; zip keeps no zone) from seconds since 1970.
fn zip_time(now: u64) -> zip::DateTime {
    // Days to a civil date (Howard Hinnant's algorithm).
    let days = i64::try_from(now / 86_400).unwrap_or(0) + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let secs = now % 86_400;
    let part = |v: i64| u8::try_from(v).unwrap_or(1);
    zip::DateTime::from_date_and_time(
        u16::try_from(year).unwrap_or(1980),
        part(month),
        part(day),
        u8::try_from(secs / 3600).unwrap_or(0),
        u8::try_from(secs % 3600 / 60).unwrap_or(0),
        u8::try_from(secs % 60).unwrap_or(0),
    )
    .unwrap_or_default()
}

enum Existing {
    None,
    Same,
    Different,
    /// A folder without its README (a run stopped while writing it).
    Incomplete,
    /// A folder holding files labctl never writes into a bundle: someone's own, never moved.
    Foreign,
}

/// Whether a bundle is already at `path`, and whether it holds the same key, formats and
/// protection (`expected`, from the README it would get).
fn existing(
    folder: &KeyFolder,
    path: &Path,
    file_name: &OsStr,
    name: &str,
    zip: bool,
    expected: &[String],
) -> Existing {
    match folder.entry(file_name) {
        Ok(Entry::Absent) => return Existing::None,
        Ok(Entry::Symlink) | Err(_) => return Existing::Different,
        // Another user's file is never read as ours (nor left in place as "unchanged").
        Ok(Entry::File { uid, .. }) if uid != keys::effective_uid() => {
            return Existing::Different;
        }
        Ok(Entry::File { .. } | Entry::NotAFile) => {}
    }
    let text = if zip {
        let Ok((_, Some(bytes))) = folder.read(file_name, MAX_ZIP) else {
            return Existing::Different;
        };
        let Ok(mut archive) = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())) else {
            return Existing::Different;
        };
        let Ok(readme) = archive.by_name(&format!("{name}/README.txt")) else {
            return Existing::Different;
        };
        let mut text = String::new();
        if readme
            .take(MAX_README as u64)
            .read_to_string(&mut text)
            .is_err()
        {
            return Existing::Different;
        }
        text
    } else {
        let inner = match KeyFolder::open(path) {
            Ok(inner) => inner,
            Err(FolderError::Missing) => return Existing::None,
            Err(_) => return Existing::Different,
        };
        // Only the files a bundle holds: anything else is someone's, never moved aside.
        let ours = [
            format!("{name}.pem"),
            format!("{name}.ppk"),
            "ssh_config".to_owned(),
            "README.txt".to_owned(),
        ];
        let only_ours = inner
            .names()
            .is_ok_and(|names| names.iter().all(|n| ours.iter().any(|o| n == o.as_str())));
        if !only_ours {
            return Existing::Foreign;
        }
        match inner.read(OsStr::new("README.txt"), MAX_README) {
            Ok((Entry::File { .. }, Some(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Existing::Incomplete,
            _ => return Existing::Different,
        }
    };
    if identity(&text) == expected {
        Existing::Same
    } else {
        Existing::Different
    }
}

/// The lines of a README that say which key, formats and protection a bundle holds.
fn identity(readme: &str) -> Vec<String> {
    readme
        .lines()
        .filter(|l| {
            l.starts_with("Public key:") || l.starts_with("Files:") || l.starts_with("Passphrase:")
        })
        .map(str::to_owned)
        .collect()
}

fn new_passphrase() -> Zeroizing<String> {
    // 31 letters and digits that cannot be mistaken for one another; 24 of them, about 119
    // bits, in groups of four to read out or type.
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
    let mut text = Zeroizing::new(String::with_capacity(29));
    let mut picked = 0;
    while picked < 24 {
        let mut byte = [0u8; 1];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut byte);
        // Rejection sampling keeps every character equally likely.
        if usize::from(byte[0]) >= ALPHABET.len() * 8 {
            continue;
        }
        if picked > 0 && picked % 4 == 0 {
            text.push('-');
        }
        text.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
        picked += 1;
    }
    text
}

fn write_passphrases(
    folder: &KeyFolder,
    out: &Path,
    now: u64,
    rows: &[(&str, &str, &str)],
) -> Result<PathBuf, String> {
    let mut text = Zeroizing::new(String::from("seat,key_name,passphrase\n"));
    for (seat, name, passphrase) in rows {
        let _ = writeln!(text, "{},{},{passphrase}", csv_field(seat), csv_field(name));
    }
    let stamp = now;
    for n in 1..100 {
        let file = if n == 1 {
            format!("passphrases-{stamp}.csv")
        } else {
            format!("passphrases-{stamp}-{n}.csv")
        };
        match folder.write_new(OsStr::new(&file), &[text.as_bytes()]) {
            Ok(()) => return Ok(out.join(file)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err.to_string()),
        }
    }
    Err("no free name for the passphrase list".to_owned())
}

/// A CSV field, quoted when it needs to be (key names never do; seats from `for_each` may).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn ssh_config(name: &str) -> String {
    format!(
        "# {name}: add this to ~/.ssh/config, set HostName to your instance's address (and User\n\
         # to ubuntu on Ubuntu), put {name}.pem in ~/.ssh/, then run: ssh {name}\n\
         Host {name}\n    HostName ADDRESS\n    User ec2-user\n    IdentityFile ~/.ssh/{name}.pem\n    IdentitiesOnly yes\n"
    )
}

/// The README of a bundle: what it is, how to check it, how to connect.
fn readme(
    spec: &KeyPairSpec,
    project: &str,
    secret: &Secret,
    public: &PublicKey,
    encrypted: bool,
) -> String {
    let name = spec.name.as_str();
    let mut text = format!("Your key pair for {project}\n\nKey pair:    {name}\n");
    if let Some(seat) = &spec.seat {
        let _ = writeln!(text, "Seat:        {seat}");
    }
    let regions: Vec<String> = spec.scopes.iter().map(ToString::to_string).collect();
    let _ = writeln!(text, "Regions:     {}", regions.join(", "));
    let _ = writeln!(text, "Public key:  {}", public.to_openssh());
    let mut files = vec![format!("{name}.pem (OpenSSH, for ssh)")];
    if spec.ppk.is_some() {
        files.push(format!("{name}.ppk (PuTTY and WinSCP)"));
    }
    let _ = writeln!(text, "Files:       {}", files.join(", "));
    text.push_str(if encrypted {
        "Passphrase:  yes; your instructor gives it to you separately\n"
    } else {
        "Passphrase:  none\n"
    });
    text.push_str(
        "\nFingerprint, as the EC2 console shows it (EC2 > Key pairs); check that it matches:\n",
    );
    for (i, region) in spec.scopes.iter().enumerate() {
        let made_here = i == 0 && matches!(spec.source, KeySource::Aws);
        let shown = if made_here {
            fingerprint::created(secret, public)
        } else {
            fingerprint::imported(public)
        };
        let _ = writeln!(
            text,
            "  {:<16} {}",
            region.to_string(),
            shown.unwrap_or_else(|| "(not computed)".to_owned())
        );
    }
    let _ = writeln!(
        text,
        "\nConnect (your instructor gives you the instance's address; the user is ec2-user on\n\
         Amazon Linux, ubuntu on Ubuntu):\n\n\
         Linux and macOS:\n\
         \x20 mkdir -p ~/.ssh && cp {name}.pem ~/.ssh/ && chmod 600 ~/.ssh/{name}.pem\n\
         \x20 ssh -i ~/.ssh/{name}.pem ec2-user@ADDRESS\n\
         \x20 (or add ssh_config to ~/.ssh/config, set its HostName, and run: ssh {name})\n\n\
         Windows, PowerShell (OpenSSH is built in):\n\
         \x20 copy {name}.pem $env:USERPROFILE\\.ssh\\\n\
         \x20 icacls $env:USERPROFILE\\.ssh\\{name}.pem /inheritance:r /grant:r \"$($env:USERNAME):R\"\n\
         \x20 ssh -i $env:USERPROFILE\\.ssh\\{name}.pem ec2-user@ADDRESS"
    );
    if spec.ppk.is_some() {
        let _ = writeln!(
            text,
            "\nWindows, PuTTY 0.75 or later:\n\
             \x20 Session > Host Name: ec2-user@ADDRESS\n\
             \x20 Connection > SSH > Auth > Credentials > Private key file: {name}.ppk"
        );
    }
    if encrypted {
        text.push_str(
            "\nssh, PuTTY and WinSCP ask for the passphrase when they use the key. Type it exactly\n\
             as your instructor gives it, dashes included: six groups of four letters and digits,\n\
             like abcd-2345-efgh-6789-jkmn-pqrs (no 0, 1, i, l or o in it).\n",
        );
    }
    text.push_str("\nKeep the private key to yourself: never e-mail it on, never commit it.\n");
    text
}

fn human(
    project: &str,
    out: &Path,
    outcomes: &[Outcome],
    csv: Option<&Path>,
    quiet: bool,
) -> String {
    let mut text = String::new();
    if !quiet {
        let _ = writeln!(text, "Handout for project {project} in {}:", out.display());
    }
    let width = outcomes
        .iter()
        .map(|o| o.name.chars().count())
        .max()
        .unwrap_or(0);
    for o in outcomes {
        let problem = matches!(o.status, Status::Refused | Status::Failed)
            || (o.status == Status::Skipped && !o.expected_skip);
        if quiet && !problem {
            continue;
        }
        let symbol = match o.status {
            Status::Written => "+",
            Status::Replaced => "±",
            Status::Unchanged => "=",
            Status::Skipped => "-",
            Status::Refused | Status::Failed => "!",
        };
        let what = match (&o.reason, &o.path) {
            (Some(reason), _) => format!("{}: {reason}", o.status.as_str()),
            (None, Some(path)) => format!("{} {}", o.status.as_str(), path.display()),
            (None, None) => o.status.as_str().to_owned(),
        };
        let _ = writeln!(text, "  {symbol} {:<width$}  {what}", o.name);
    }
    let count = |s: Status| outcomes.iter().filter(|o| o.status == s).count();
    if !quiet {
        let _ = writeln!(
            text,
            "Handout: {} written, {} replaced, {} unchanged, {} skipped, {} refused or failed.",
            count(Status::Written),
            count(Status::Replaced),
            count(Status::Unchanged),
            count(Status::Skipped),
            count(Status::Refused) + count(Status::Failed),
        );
    }
    if let Some(csv) = csv {
        let _ = writeln!(
            text,
            "Passphrases: {} (owner-only). Give each attendee theirs over another channel than the bundle.",
            csv.display()
        );
    }
    text
}
