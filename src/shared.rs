//! The shared state (`state: s3://bucket/prefix`): one lock and one journal for every machine
//! of a team. The lock is an object written with `If-None-Match: *` (S3 refuses a second
//! one), released only while it still holds this run's record. Beside it, the project's
//! journal of keys (`<project>.keys`) holds what every machine must know: which keys left
//! (`retired`), so that no machine hands last cohort's key out again. It is brought into the
//! local file when the lock is taken (the bucket's records added to this machine's, never
//! replacing them) and written back once when the lock is released, with `If-Match` on the
//! version read: a write that would lose another machine's records is refused, and the two are
//! merged first; nothing is written when this run added nothing. One write per run: the
//! journal of 200 keys costs one request, not 400.
//!
//! Records about one machine stay on it: the files it wrote (`made`: a path means nothing
//! elsewhere, and a forged one would make a file of this machine labctl's to retire), the
//! accounts it reached (`reached`: a forged one would point this machine's credentials at
//! another account), its creates in flight and deletes (`create`, `deleted`: a forged one would
//! make recovery replace a live key pair, or `destroy` skip one). Whoever may write the bucket
//! can mark keys retired; with `store: ssm`, a key the store holds as a key pair's current key
//! is never replaced for it (see `plan::store::keeps_current_key`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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
    let ago = lock::ago(now.saturating_sub(unix));
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
    /// The bucket's shared records then (nothing is written back when they are unchanged).
    pulled: Vec<u8>,
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

/// The records every machine shares: `retired` lines, as written.
fn shared_lines(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(text).lines() {
        if line.starts_with("retired\t") {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// The bucket's shared records (as `shared_lines` gives them), then the local copy's lines
/// they do not have (in order): nothing of either is lost.
fn merged(remote: &[u8], local: &[u8]) -> Vec<u8> {
    let remote_text = String::from_utf8_lossy(remote);
    let have: std::collections::HashSet<&str> = remote_text.lines().collect();
    let mut out = remote.to_vec();
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
        let [_, keys] = lock::journal_files(manifest, project);
        for name in [keys] {
            match shared.pull(&name).await {
                Ok((etag, pulled)) => shared.files.push(Synced { name, etag, pulled }),
                Err(reason) => {
                    let _ = shared.bucket.delete(&shared.lock).await;
                    return Err(shared_err(reason, CloudErrorKind::Other));
                }
            }
        }
        Ok(shared)
    }

    /// Without the lock (`plan`, `output`): the keys the bucket's journal says left, so that
    /// a plan shows what an apply with the lock would do.
    ///
    /// # Errors
    /// Why the bucket's journal could not be read.
    pub(crate) async fn peek(
        options: &Ec2Options,
        state: &SharedState,
        manifest: &Path,
        project: &str,
        fallback: &Region,
    ) -> Result<Vec<String>, String> {
        let bucket = Bucket::connect(options, &state.bucket, &state.prefix, fallback).await;
        let [_, keys] = lock::journal_files(manifest, project);
        let remote = bucket
            .get(&name_text(&keys), MAX_OBJECT)
            .await
            .map_err(|e| e.to_string())?;
        let lines = remote.map(|r| shared_lines(&r.body)).unwrap_or_default();
        Ok(String::from_utf8_lossy(&lines)
            .lines()
            .filter_map(|l| l.splitn(3, '\t').nth(2).map(str::to_owned))
            .collect())
    }

    /// Bring one journal file in: this machine's records, and the bucket's shared records it
    /// does not have. Returns the bucket's version and its shared records.
    async fn pull(&self, name: &OsStr) -> Result<(Option<Etag>, Vec<u8>), String> {
        let remote = self
            .bucket
            .get(&name_text(name), MAX_OBJECT)
            .await
            .map_err(|e| e.to_string())?;
        let local = lock::read_state(&self.manifest, name).map_err(|e| e.to_string())?;
        let Some(remote) = remote else {
            return Ok((None, Vec::new()));
        };
        let pulled = shared_lines(&remote.body);
        let content = merged(&pulled, &local);
        if content != local {
            lock::write_state(&self.manifest, name, &content).map_err(|e| e.to_string())?;
        }
        Ok((Some(remote.etag), pulled))
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
        let mut there = file.pulled.clone();
        for _ in 0..MERGES {
            let local = lock::read_state(&self.manifest, &file.name).map_err(|e| e.to_string())?;
            let shared = merged(&there, &shared_lines(&local));
            if etag.is_some() && shared == there {
                return Ok(());
            }
            match self.bucket.put(&name, shared, etag.as_ref()).await {
                Ok(_) => return Ok(()),
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
                    there = remote
                        .as_ref()
                        .map(|r| shared_lines(&r.body))
                        .unwrap_or_default();
                    etag = remote.map(|r| r.etag);
                    let content = merged(&there, &local);
                    if content != local {
                        lock::write_state(&self.manifest, &file.name, &content)
                            .map_err(|e| e.to_string())?;
                    }
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
        let remote = b"retired\t01\tSHA256:a\nretired\t02\tSHA256:b\n";
        let local = b"made\t01\tSHA256:a\t/k/a.pem\nretired\t01\tSHA256:a\n";
        assert_eq!(
            super::merged(remote, local),
            b"retired\t01\tSHA256:a\nretired\t02\tSHA256:b\nmade\t01\tSHA256:a\t/k/a.pem\n"
                .to_vec()
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
    fn a_bucket_journal_brings_only_which_keys_left() {
        let remote = b"made\t01\tSHA256:x\t/home/v/.ssh/id\nreached\t01\t{}\ncreate\t01\tk\ndeleted\t0\tkey-1\nretired\t01\tSHA256:y\n";
        assert_eq!(
            super::shared_lines(remote),
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
