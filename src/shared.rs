//! The shared state (`state: s3://bucket/prefix`): one lock and one journal for every machine
//! of a team. The lock is an object written with `If-None-Match: *` (S3 refuses a second
//! one); the journal's two files live beside it under their local names, brought into the
//! local state folder when the lock is taken and written back when it is released, with
//! `If-Match` on the version read: a write that would lose another machine's records is
//! refused, and the two are merged first. Local copies remember the content last in step with
//! the bucket (`<file>.synced`, its SHA-256): a copy with records the bucket never got (a run
//! that crashed, a write that failed) has them added to the bucket's next time. One write per
//! file per run: the journal's records of 200 keys cost two requests, not 400.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::cloud::{Bucket, CloudErrorKind, Ec2Options, Etag};
use crate::desired::{Region, SharedState};
use crate::lock::{self, LockError};

/// The largest journal labctl reads from the bucket.
const MAX_OBJECT: usize = 16 * 1024 * 1024;
/// Writes tried per file when another machine wrote between the read and the write.
const MERGES: usize = 3;

static LOCAL_OFFSET: OnceLock<time::UtcOffset> = OnceLock::new();

/// Learn the local time zone's offset while the process has one thread (the only time the
/// `time` crate reads it on Unix); lock messages say times in it.
pub fn learn_local_offset() {
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(offset);
}

/// `09:14:03 (UTC+01:00, 2 minutes ago)`: a moment in local time, and its age.
pub(crate) fn local_clock(unix: u64, now: u64) -> String {
    let offset = LOCAL_OFFSET.get().copied().unwrap_or(time::UtcOffset::UTC);
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset);
    let age = now.saturating_sub(unix);
    let ago = match age {
        0..60 => format!("{age} s ago"),
        60..120 => "1 minute ago".to_owned(),
        120..7200 => format!("{} minutes ago", age / 60),
        7200..172_800 => format!("{} hours ago", age / 3600),
        _ => format!("{} days ago", age / 86_400),
    };
    let (h, m, _) = offset.as_hms();
    format!(
        "{} {:02}:{:02}:{:02} local time (UTC{}{:02}:{:02}), {ago}",
        at.date(),
        at.hour(),
        at.minute(),
        at.second(),
        if h < 0 || m < 0 { '-' } else { '+' },
        h.unsigned_abs(),
        m.unsigned_abs()
    )
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who holds the shared lock: the lock object's content.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Holder {
    user: String,
    host: String,
    pid: u32,
    command: String,
    since: u64,
}

impl Holder {
    fn this_run(command: &str) -> Self {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "an unnamed machine".to_owned());
        Holder {
            user: std::env::var("USER").unwrap_or_else(|_| "someone".to_owned()),
            host,
            pid: std::process::id(),
            command: command.to_owned(),
            since: now_unix(),
        }
    }

    fn describe(&self, now: u64) -> String {
        let p = crate::render::printable;
        format!(
            "{} on {} (pid {}, `labctl {}`), since {}",
            p(&self.user),
            p(&self.host),
            self.pid,
            p(&self.command),
            local_clock(self.since, now)
        )
    }
}

/// One journal file kept in step with the bucket.
#[derive(Debug)]
struct Synced {
    name: OsString,
    /// The bucket's version read when the lock was taken (`None`: there was none).
    etag: Option<Etag>,
}

/// The held shared lock.
#[derive(Debug)]
pub(crate) struct Shared {
    bucket: Bucket,
    lock: String,
    /// What this run wrote to the lock object.
    holder: Vec<u8>,
    files: Vec<Synced>,
    manifest: PathBuf,
}

fn marker(name: &OsStr) -> OsString {
    let mut m = name.to_owned();
    m.push(".synced");
    m
}

fn digest(bytes: &[u8]) -> Vec<u8> {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut out, b| {
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{b:02x}"));
            out
        });
    hex.into_bytes()
}

/// Lines of the bucket's journal a machine takes: every record but `made` (a file another
/// machine wrote: its path means nothing here, and a forged one would make a file of this
/// machine labctl's to retire) and `reached` (how to reach an account: a forged one would
/// point this machine's credentials at another account's key pairs). Each machine keeps those
/// of its own.
fn shared_lines(remote: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(remote.len());
    for line in String::from_utf8_lossy(remote).lines() {
        if !line.is_empty() && !line.starts_with("made\t") && !line.starts_with("reached\t") {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// The bucket's records, then the local copy's lines the bucket does not have (in order).
fn merged(remote: &[u8], local: &[u8]) -> Vec<u8> {
    let remote = &shared_lines(remote);
    let remote_text = String::from_utf8_lossy(remote);
    let have: std::collections::HashSet<&str> = remote_text.lines().collect();
    let mut out = remote.clone();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    for line in String::from_utf8_lossy(local).lines() {
        if !line.is_empty() && !have.contains(line) {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

fn name_text(name: &OsStr) -> String {
    name.to_string_lossy().into_owned()
}

impl Shared {
    /// Check the bucket, take the shared lock, and bring the bucket's journal into the local
    /// state folder; call with the local lock held. Nothing is changed when it fails (a lock
    /// taken is released again).
    ///
    /// # Errors
    /// The bucket is missing or refused; another machine holds the lock.
    pub(crate) async fn take(
        options: &Ec2Options,
        state: &SharedState,
        manifest: &Path,
        project: &str,
        command: &str,
        fallback: &Region,
    ) -> Result<Shared, LockError> {
        let lock = name_text(&lock::lock_name(manifest));
        let mut bucket = Bucket::connect(options, &state.bucket, &state.prefix, fallback).await;
        let shared_err = |reason: String, kind: CloudErrorKind| LockError::Shared {
            url: state.to_string(),
            reason,
            hint: bucket_hint(kind),
        };
        bucket
            .check(options)
            .await
            .map_err(|e| shared_err(e.to_string(), e.kind))?;
        let holder = serde_json::to_vec(&Holder::this_run(command)).unwrap_or_default();
        match bucket.put(&lock, holder.clone(), None).await {
            Ok(_) => {}
            Err(err) if err.kind == CloudErrorKind::Duplicate => {
                let held = bucket.get(&lock, 4096).await.ok().flatten();
                let holder = held
                    .and_then(|o| serde_json::from_slice::<Holder>(&o.body).ok())
                    .map_or_else(|| "holder unknown".to_owned(), |h| h.describe(now_unix()));
                return Err(LockError::SharedHeld {
                    holder,
                    url: bucket.url(&lock),
                    release: release_command(state, &lock, options.profile.as_deref()),
                });
            }
            Err(err) => return Err(shared_err(err.to_string(), err.kind)),
        }
        let mut shared = Shared {
            bucket,
            lock,
            holder,
            files: Vec::new(),
            manifest: manifest.to_owned(),
        };
        for name in lock::journal_files(manifest, project) {
            match shared.pull(&name).await {
                Ok(etag) => shared.files.push(Synced { name, etag }),
                Err(reason) => {
                    let _ = shared.bucket.delete(&shared.lock).await;
                    return Err(shared_err(reason, CloudErrorKind::Other));
                }
            }
        }
        Ok(shared)
    }

    /// Bring one journal file in: the bucket's content, plus local records it never got.
    async fn pull(&self, name: &OsStr) -> Result<Option<Etag>, String> {
        let remote = self
            .bucket
            .get(&name_text(name), MAX_OBJECT)
            .await
            .map_err(|e| e.to_string())?;
        let local = lock::read_state(&self.manifest, name).map_err(|e| e.to_string())?;
        let synced = lock::read_state(&self.manifest, &marker(name)).unwrap_or_default();
        let (content, etag) = match remote {
            // The local copy is what the bucket held when it was last in step: the bucket's
            // content stands (another machine may have compacted it).
            // The local copy is what this machine last wrote to the bucket: the bucket's
            // records stand (another machine may have compacted them), with this machine's own
            // `made` and `reached` lines.
            Some(remote) if synced == digest(&local) => {
                let own: Vec<u8> = String::from_utf8_lossy(&local)
                    .lines()
                    .filter(|l| l.starts_with("made\t") || l.starts_with("reached\t"))
                    .flat_map(|l| [l.as_bytes(), b"\n"].concat())
                    .collect();
                (merged(&remote.body, &own), Some(remote.etag))
            }
            Some(remote) => (merged(&remote.body, &local), Some(remote.etag)),
            None => (local, None),
        };
        lock::write_state(&self.manifest, name, &content).map_err(|e| e.to_string())?;
        Ok(etag)
    }

    /// Write the journal back (merging with whatever another machine wrote meanwhile) and
    /// release the lock. Failures are warnings: the local copy keeps every record, and the
    /// next run with the lock adds them to the bucket's.
    pub(crate) async fn release(self) -> Vec<String> {
        let mut problems = Vec::new();
        for file in &self.files {
            if let Err(why) = self.push(file).await {
                problems.push(format!(
                    "the journal {} was not written back ({why}); this machine keeps its records and adds them next time",
                    self.bucket.url(&name_text(&file.name))
                ));
            }
        }
        // Only the lock this run wrote: one released by hand and taken by another machine
        // since stays.
        match self.bucket.get(&self.lock, 4096).await {
            Ok(Some(held)) if held.body == self.holder => {}
            Ok(_) => {
                problems.push(format!(
                    "the shared lock {} was released by someone else while this run held it",
                    self.bucket.url(&self.lock)
                ));
                return problems;
            }
            Err(err) => {
                problems.push(format!(
                    "the shared lock {} could not be read back: {err}",
                    self.bucket.url(&self.lock)
                ));
                return problems;
            }
        }
        if let Err(err) = self.bucket.delete(&self.lock).await {
            problems.push(format!(
                "the shared lock {} could not be released: {err}",
                self.bucket.url(&self.lock)
            ));
        }
        problems
    }

    async fn push(&self, file: &Synced) -> Result<(), String> {
        let name = name_text(&file.name);
        let mut etag = file.etag.clone();
        for _ in 0..MERGES {
            let local = lock::read_state(&self.manifest, &file.name).map_err(|e| e.to_string())?;
            match self.bucket.put(&name, local.clone(), etag.as_ref()).await {
                Ok(_) => {
                    return lock::write_state(&self.manifest, &marker(&file.name), &digest(&local))
                        .map_err(|e| e.to_string());
                }
                Err(err)
                    if err.kind == CloudErrorKind::Duplicate
                        || err.kind == CloudErrorKind::NotFound =>
                {
                    // Another machine wrote since this one read: add its records first.
                    let remote = self
                        .bucket
                        .get(&name, MAX_OBJECT)
                        .await
                        .map_err(|e| e.to_string())?;
                    let content = remote
                        .as_ref()
                        .map_or_else(|| local.clone(), |r| merged(&r.body, &local));
                    lock::write_state(&self.manifest, &file.name, &content)
                        .map_err(|e| e.to_string())?;
                    etag = remote.map(|r| r.etag);
                }
                Err(err) => return Err(err.to_string()),
            }
        }
        Err("other machines kept writing it".to_owned())
    }
}

fn bucket_hint(kind: CloudErrorKind) -> &'static str {
    match kind {
        CloudErrorKind::NotFound => {
            "create the bucket first (labctl never creates or deletes buckets), or fix `state` in the manifest"
        }
        CloudErrorKind::AccessDenied => {
            "labctl needs s3:ListBucket on the bucket and s3:GetObject, s3:PutObject, s3:DeleteObject under the prefix"
        }
        _ => "check the network and the credentials, then run again",
    }
}

/// The command that releases a lock a crashed run left behind.
fn release_command(state: &SharedState, lock: &str, profile: Option<&str>) -> String {
    let key = if state.prefix.is_empty() {
        lock.to_owned()
    } else {
        format!("{}/{lock}", state.prefix)
    };
    let profile = profile
        .map(|p| format!(" --profile {}", shell_word(p)))
        .unwrap_or_default();
    format!(
        "aws s3api delete-object --bucket {} --key {}{profile}",
        shell_word(&state.bucket),
        shell_word(&key)
    )
}

/// `text` as one shell word: as it is when it holds only safe characters, else in single
/// quotes (a quote inside closed, escaped and reopened).
fn shell_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@+=,".contains(&b))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_merge_keeps_the_buckets_records_and_adds_the_local_ones() {
        let remote = b"create\t01\ta\nsaved\t01\ta\n";
        let local = b"create\t01\ta\ncreate\t02\tb\n";
        assert_eq!(
            super::merged(remote, local),
            b"create\t01\ta\nsaved\t01\ta\ncreate\t02\tb\n".to_vec()
        );
        assert_eq!(super::merged(b"", b"x\n"), b"x\n".to_vec());
    }

    #[test]
    fn a_release_command_is_safe_to_paste() {
        let key = "berlin-2026/labctl.yaml.lock";
        assert_eq!(super::shell_word(key), key);
        assert_eq!(super::shell_word("a b"), "'a b'");
        assert_eq!(super::shell_word("x'y"), r"'x'\''y'");
    }

    #[test]
    fn a_bucket_journal_never_brings_another_machines_files_or_accounts() {
        let remote =
            b"made\t01\tSHA256:x\t/home/v/.ssh/id\nreached\t01\t{}\nretired\t01\tSHA256:y\n";
        assert_eq!(
            super::merged(remote, b""),
            b"retired\t01\tSHA256:y\n".to_vec()
        );
    }

    #[test]
    fn lock_times_read_as_a_date_a_clock_time_and_an_age() {
        let text = super::local_clock(1_796_513_315, 1_796_513_315 + 150);
        assert!(text.contains("local time (UTC"), "{text}");
        assert!(text.ends_with("2 minutes ago"), "{text}");
    }
}
