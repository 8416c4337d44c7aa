//! Passphrases for bundles: generated, and listed for the instructor in an owner-only CSV.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::keys::folder::KeyFolder;

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
