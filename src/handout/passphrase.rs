//! Passphrases for bundles: generated, and listed for the instructor in an owner-only CSV.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::keys::folder::{FolderError, KeyFolder};

/// A passphrase list is read back up to this size (a thousand seats fit many times over).
const MAX_LIST: usize = 1024 * 1024;

/// The passphrase lists in `folder` (`passphrases-<time>[-<n>].csv`), newest first.
fn lists(folder: &KeyFolder) -> Vec<std::ffi::OsString> {
    let mut named: Vec<((u64, u32), std::ffi::OsString)> = folder
        .names()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|name| {
            let text = name.to_str()?;
            let stem = text.strip_prefix("passphrases-")?.strip_suffix(".csv")?;
            let (time, n) = match stem.split_once('-') {
                Some((time, n)) => (time.parse().ok()?, n.parse().ok()?),
                None => (stem.parse().ok()?, 1),
            };
            Some(((time, n), name))
        })
        .collect();
    named.sort_by_key(|(order, _)| std::cmp::Reverse(*order));
    named.into_iter().map(|(_, name)| name).collect()
}

/// The fields of one CSV line (quoted fields, `""` inside them, as [`csv_field`] writes).
fn csv_fields(line: &str) -> Vec<Zeroizing<String>> {
    let mut fields = vec![Zeroizing::new(String::new())];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("one field at least");
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(Zeroizing::new(String::new())),
            c => field.push(c),
        }
    }
    fields
}

/// One row of a passphrase list, and the list it is in.
struct Row {
    list: std::ffi::OsString,
    seat: String,
    name: String,
    passphrase: Zeroizing<String>,
}

/// The rows of the lists in `folder`, newest list first.
fn rows(folder: &KeyFolder) -> Vec<Row> {
    let mut out = Vec::new();
    for list in lists(folder) {
        let Ok((_, Some(bytes))) = folder.read(&list, MAX_LIST) else {
            continue;
        };
        let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
        for line in text.lines().skip(1) {
            let mut fields = csv_fields(line);
            if fields.len() == 3 {
                let passphrase = fields.pop().expect("three fields");
                let name = fields.pop().expect("two fields").to_string();
                let seat = fields.pop().expect("one field").to_string();
                out.push(Row {
                    list: list.clone(),
                    seat,
                    name,
                    passphrase,
                });
            }
        }
    }
    out
}

/// The newest passphrase of each key pair (by name) the lists in `folder` hold.
pub(super) fn known(folder: &KeyFolder) -> BTreeMap<String, Zeroizing<String>> {
    let mut known = BTreeMap::new();
    for row in rows(folder) {
        known.entry(row.name).or_insert(row.passphrase);
    }
    known
}

/// One seat's passphrase, found again.
pub(crate) struct ShownPassphrase {
    pub seat: String,
    pub name: String,
    pub passphrase: Zeroizing<String>,
    /// The list it is in.
    pub list: PathBuf,
}

/// The newest passphrase the lists in `out` hold for `seat` (a seat label or a key pair
/// name); `None` when none does.
///
/// # Errors
/// `out` is not a folder labctl can trust.
pub(crate) fn show_passphrase(out: &Path, seat: &str) -> Result<Option<ShownPassphrase>, String> {
    let folder = match KeyFolder::open(out) {
        Ok(folder) => folder,
        Err(FolderError::Missing) => return Ok(None),
        Err(err) => return Err(format!("cannot use {}: {err}", out.display())),
    };
    Ok(rows(&folder)
        .into_iter()
        .find(|row| row.seat == seat || row.name == seat)
        .map(|row| ShownPassphrase {
            list: out.join(&row.list),
            seat: row.seat,
            name: row.name,
            passphrase: row.passphrase,
        }))
}

pub(super) fn new_passphrase() -> Zeroizing<String> {
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

pub(super) fn write_passphrases(
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
