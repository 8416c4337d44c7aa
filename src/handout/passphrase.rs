//! Passphrases for bundles: generated, and listed for the instructor in an owner-only CSV.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::keys::folder::KeyFolder;

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
    let mut fields = Vec::new();
    let mut field = Zeroizing::new(String::new());
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => {
                fields.push(std::mem::replace(&mut field, Zeroizing::new(String::new())));
            }
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// One row of a passphrase list, and the list it is in.
struct Row {
    list: std::ffi::OsString,
    seat: String,
    name: String,
    passphrase: Zeroizing<String>,
    /// The bundle's file name in the handout folder (`seat-1` or `seat-1.zip`); `None` in a
    /// list written before lists said it.
    bundle: Option<String>,
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
            let mut fields = csv_fields(line).into_iter();
            let (Some(seat), Some(name), Some(passphrase), bundle, None) = (
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
            ) else {
                continue;
            };
            out.push(Row {
                list: list.clone(),
                seat: unformula(&seat),
                name: unformula(&name),
                passphrase,
                bundle: bundle.map(|b| unformula(&b)),
            });
        }
    }
    out
}

/// The newest passphrase of each bundle the lists in `folder` hold, by (key pair name, bundle
/// file name): a folder bundle and a zip of one key pair have passphrases of their own.
pub(super) fn known(folder: &KeyFolder) -> Known {
    known_of(&rows(folder))
}

/// The passphrases lists hold, by (key pair name, bundle file name).
pub(super) type Known = BTreeMap<(String, String), Zeroizing<String>>;

fn known_of(rows: &[Row]) -> Known {
    let mut known = BTreeMap::new();
    for row in rows {
        if let Some(bundle) = &row.bundle {
            known
                .entry((row.name.clone(), bundle.clone()))
                .or_insert_with(|| row.passphrase.clone());
        }
    }
    known
}

/// One seat's passphrase, found again.
pub(crate) struct ShownPassphrase {
    pub seat: String,
    pub name: String,
    /// The bundle it opens (its file name in the handout folder), when the list says.
    pub bundle: Option<String>,
    pub passphrase: Zeroizing<String>,
    /// The list it is in.
    pub list: PathBuf,
    /// Whether the bundle is still what the key file and manifest make (else its key or seat
    /// changed since, and the passphrase opens an out-of-date bundle).
    pub current: bool,
}

/// The newest passphrase of each bundle the lists in `folder` hold for `seat`: a seat label
/// (looked for first), else a key pair name, each with whether `is_current` says its bundle
/// still is (given what the lists know); the lists are read once.
pub(super) fn find(
    folder: &KeyFolder,
    out: &Path,
    seat: &str,
    is_current: impl Fn(&str, &str, &Known) -> bool,
) -> Vec<ShownPassphrase> {
    let all = rows(folder);
    let known = known_of(&all);
    let by_seat = all.iter().any(|row| row.seat == seat);
    let mut shown: Vec<ShownPassphrase> = Vec::new();
    for row in all {
        let matches = if by_seat {
            row.seat == seat
        } else {
            row.name == seat
        };
        if matches
            && !shown
                .iter()
                .any(|s| s.name == row.name && s.bundle == row.bundle)
        {
            let bundle = row.bundle.as_deref().unwrap_or_default();
            shown.push(ShownPassphrase {
                current: is_current(&row.name, bundle, &known),
                list: out.join(&row.list),
                seat: row.seat,
                name: row.name,
                bundle: row.bundle,
                passphrase: row.passphrase,
            });
        }
    }
    shown
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
    rows: &[(&str, &str, &str, &str)],
) -> Result<PathBuf, String> {
    let mut text = Zeroizing::new(String::from("seat,key_name,passphrase,bundle\n"));
    for (seat, name, passphrase, bundle) in rows {
        let _ = writeln!(
            text,
            "{},{},{passphrase},{}",
            csv_field(seat),
            csv_field(name),
            csv_field(bundle)
        );
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

/// A CSV field, quoted when it needs to be (key names never do; seats from `for_each` may),
/// and never a formula to a spreadsheet: a cell starting with `=`, `+`, `-`, `@` (or a tab or
/// carriage return) gets a leading `'`, as OWASP's CSV-injection advice says.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(FORMULA_STARTS) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// What a spreadsheet would take for the start of a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A field as it was before [`csv_field`] guarded it against spreadsheets.
fn unformula(field: &str) -> String {
    match field.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest.to_owned(),
        _ => field.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{csv_field, csv_fields, unformula};

    /// What a list holds reads back as written, and no cell is a formula to a spreadsheet.
    #[test]
    fn fields_survive_the_list_and_are_never_formulas() {
        for text in ["seat-1", "eu, \"west\"", "=HYPERLINK(\"x\")", "-x", "@a"] {
            let written = csv_field(text);
            assert!(
                !written
                    .trim_start_matches('"')
                    .starts_with(['=', '+', '-', '@']),
                "{written}"
            );
            let read = csv_fields(&written);
            assert_eq!(read.len(), 1);
            assert_eq!(unformula(&read[0]), text);
        }
    }
}
