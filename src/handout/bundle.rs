//! A bundle on disk: its files, written as a folder or one zip, and what is already there.

use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::path::Path;

use zeroize::Zeroizing;

use super::readme::{identity, ssh_config};
use crate::desired::KeyPairSpec;
use crate::keys::folder::{Entry, FolderError, KeyFolder};
use crate::keys::{self, Secret};

/// A bundle's README is read back (to see whether the bundle is current) up to this size.
const MAX_README: usize = 64 * 1024;
/// A bundle zip is read back up to this size (a few keys and two text files).
const MAX_ZIP: usize = 1024 * 1024;

/// The files of a bundle, in the order written (README last: a folder with one is whole).
pub(super) fn bundle_files(
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

pub(super) fn write_folder(
    out: &KeyFolder,
    name: &str,
    files: &[(String, Secret)],
) -> Result<(), String> {
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
pub(super) fn zip_bundle(
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

pub(super) enum Existing {
    None,
    Same,
    Different,
    /// The bundle is labctl's and these of its key, formats and passphrase setting changed.
    Changed(Vec<&'static str>),
    /// The same bundle, encrypted, but no passphrase list here holds its passphrase.
    PassphraseLost,
    /// A folder without its README (a run stopped while writing it).
    Incomplete,
    /// A folder holding files labctl never writes into a bundle: someone's own, never moved.
    Foreign,
}

/// Whether a bundle is already at `path`, and whether it holds the same key, formats and
/// protection (`expected`, from the README it would get).
pub(super) fn existing(
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
    let found = identity(&text);
    if found == expected {
        return Existing::Same;
    }
    let line_of =
        |lines: &[String], prefix: &str| lines.iter().find(|l| l.starts_with(prefix)).cloned();
    let mut changed: Vec<&'static str> = [
        ("Seat:", "seat"),
        // The accounts and regions it opens (a team gone, a region added).
        ("Regions:", "places"),
        ("Where:", "places"),
        ("Public key:", "key"),
        ("Files:", "formats"),
        ("Passphrase:", "passphrase setting"),
    ]
    .into_iter()
    .filter(|(prefix, _)| line_of(&found, prefix) != line_of(expected, prefix))
    .map(|(_, what)| what)
    .collect();
    changed.dedup();
    if changed.is_empty() {
        Existing::Different
    } else {
        Existing::Changed(changed)
    }
}
