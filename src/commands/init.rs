//! `labctl init`: a commented starter manifest that validates, the schema file its modeline
//! points at, and the key folder in `.gitignore`. Nothing that exists is overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::InitArgs;
use crate::diagnostic;
use crate::error::{Error, Exit};
use crate::manifest::{self, Source};
use crate::validate::Context;

use super::{Terminal, print_diagnostics};

/// The schema file written beside the manifest; the modeline names it relatively, so it works
/// in any clone of the workshop repository.
const SCHEMA_FILE: &str = "labctl.schema.json";

fn starter(project: &str, region: &str) -> String {
    format!(
        r#"# yaml-language-server: $schema=./{SCHEMA_FILE}
#
# labctl manifest: the EC2 key pairs of this workshop.
#   labctl validate    check this file (offline)
#   labctl plan        show what would change
#   labctl apply       make it so; private keys land in keys/ with mode 0400
#   labctl handout     one bundle per key pair for its attendee (--zip, --passphrase)
# Reference: `labctl schema`, and docs/manifest.md in labctl's repository.
version: 1
project: {project}

defaults:
  region: {region}
  key_type: ed25519          # or rsa (EC2-generated unless `source: local`)
  # formats: [pem, ppk]      # also write PuTTY keys (.ppk) for Windows attendees
  tags:
    Project: ${{project}}

keypairs:
  # One key pair for the instructor.
  - name: ${{project}}-instructor

  # One per seat: ${{project}}-seat-1 ... -seat-3, saved as keys/${{project}}-seat-N.pem.
  # Use ${{index:02}} for seat-01, seat-02, ...
  - name: ${{project}}-seat-${{index}}
    count: 3
    tags:
      Seat: "${{index}}"
"#
    )
}

/// A project name from a folder's name: lowercase letters, digits and dashes.
fn project_from(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').chars().take(40).collect::<String>();
    if out.is_empty() {
        "workshop".to_owned()
    } else {
        out
    }
}

/// The region of the starter manifest, and where it came from: `--region`, else the
/// environment (`AWS_REGION`, `AWS_DEFAULT_REGION`), else the AWS profile's `region` in the
/// config file (`AWS_PROFILE`, else `default`), else us-east-1.
fn starting_region(given: Option<&str>) -> (String, String) {
    if let Some(region) = given {
        return (region.to_owned(), "--region".to_owned());
    }
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(region) = std::env::var(var).ok().filter(|r| !r.trim().is_empty()) {
            return (region.trim().to_owned(), var.to_owned());
        }
    }
    let config = std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws/config")));
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
    if let Some(region) = config
        .and_then(|c| std::fs::File::open(c).ok())
        .and_then(|f| {
            crate::keys::folder::read_bounded(f, 256 * 1024)
                .ok()
                .flatten()
        })
        .and_then(|bytes| profile_region(&String::from_utf8_lossy(&bytes), &profile))
    {
        return (region, format!("the AWS profile `{profile}`"));
    }
    ("us-east-1".to_owned(), "the default".to_owned())
}

/// The `region` of `profile` in an AWS config file's text.
fn profile_region(text: &str, profile: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            let name = section.strip_prefix("profile").map_or(section, str::trim);
            inside = name == profile;
        } else if inside
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "region"
            && !value.trim().is_empty()
        {
            return Some(value.trim().to_owned());
        }
    }
    None
}

pub(super) fn init_command(
    args: &InitArgs,
    file: Option<&Path>,
    term: Terminal,
) -> Result<Exit, Error> {
    let path: PathBuf = file.map_or_else(|| PathBuf::from(super::locate::NAMES[0]), Path::to_owned);
    // The folder of the manifest; empty for the current one (so messages say `.gitignore`).
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let project = match &args.project {
        Some(project) => project.clone(),
        None => project_from(&std::path::absolute(dir.join(".")).map_err(Error::Output)?),
    };
    let (region, from) = starting_region(args.region.as_deref());
    let known = crate::desired::Region::parse(&region).is_ok_and(|r| r.is_known());
    if !known {
        let hint =
            crate::diagnostic::suggest(&region.to_ascii_lowercase(), crate::desired::KNOWN_REGIONS)
                .map_or_else(String::new, |r| format!(" (did you mean `{r}`?)"));
        return Err(Error::Usage(format!(
            "`{}` ({from}) is not an AWS region labctl knows{hint}; nothing was written",
            crate::render::printable(&region)
        )));
    }
    let text = starter(&project, &region);

    // The starter must validate with these values; say why not before writing anything.
    let source = Source::from_text(&path, &text);
    let (parsed, mut diagnostics) = manifest::parse(&source);
    if let Some(parsed) = parsed {
        let context = Context {
            base_dir: dir.clone(),
            home: None,
            overrides: Vec::new(),
        };
        diagnostics.extend(crate::validate::validate(&parsed, &context).1);
    }
    if diagnostic::has_errors(&diagnostics) {
        diagnostic::sort(&mut diagnostics);
        print_diagnostics(&source, &diagnostics, term);
        return Err(Error::Usage(
            "the starter manifest would not validate with that --project or --region".to_owned(),
        ));
    }

    for name in super::locate::NAMES {
        let other = dir.join(name);
        if other.exists() {
            return Err(Error::Usage(format!(
                "{} already exists; labctl init never overwrites a manifest",
                other.display()
            )));
        }
    }
    write_new(&path, &text)?;
    eprintln!(
        "Wrote {} (project {project}, region {region} from {from})",
        path.display(),
    );

    let schema = dir.join(SCHEMA_FILE);
    if write_new(&schema, &crate::schema::json_schema()).is_ok() {
        eprintln!(
            "Wrote {} (for editors: the manifest's first line points at it)",
            schema.display()
        );
    } else {
        eprintln!("Left {} as it was", schema.display());
    }

    if ignore_keys(&dir)? {
        eprintln!("Added keys/ to {}", dir.join(".gitignore").display());
    }
    eprintln!("Next: labctl validate, then labctl plan and labctl apply.");
    Ok(Exit::Success)
}

/// Create `path` with `text`; never replace an existing file.
fn write_new(path: &Path, text: &str) -> Result<(), Error> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|err| Error::Usage(format!("cannot create {}: {err}", path.display())))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// The most of an existing `.gitignore` labctl reads.
const MAX_GITIGNORE: usize = 1024 * 1024;

/// Make sure `.gitignore` in `dir` ignores `keys/`; true if a line was added. The file is
/// opened once, never through a link and without blocking (a FIFO is refused, not waited on),
/// only when it is a regular file, read with a bound, and appended to through that same handle.
fn ignore_keys(dir: &Path) -> Result<bool, Error> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(".gitignore");
    let refuse = |why: String| Error::Usage(format!("cannot update {}: {why}", path.display()));
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(i32::try_from(flags.bits()).unwrap_or(0))
        .open(&path)
        .map_err(|err| {
            if err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                refuse("it is a symbolic link; labctl does not write through links".to_owned())
            } else {
                refuse(err.to_string())
            }
        })?;
    if !file.metadata()?.is_file() {
        return Err(refuse("it is not a regular file".to_owned()));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(u64::try_from(MAX_GITIGNORE).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| refuse(err.to_string()))?;
    if bytes.len() > MAX_GITIGNORE {
        return Err(refuse(format!("it is larger than {MAX_GITIGNORE} bytes")));
    }
    let existing = String::from_utf8_lossy(&bytes);
    let ignored = existing
        .lines()
        .map(str::trim)
        .any(|l| matches!(l, "keys" | "keys/" | "/keys" | "/keys/" | "keys/*"));
    if ignored {
        return Ok(false);
    }
    let sep = if existing.is_empty() || existing.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    write!(file, "{sep}# Private keys written by labctl\nkeys/\n")?;
    file.sync_all()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn project_names_come_from_the_folder() {
        assert_eq!(
            super::project_from(Path::new("/w/K8s Workshop 2026")),
            "k8s-workshop-2026"
        );
        assert_eq!(super::project_from(Path::new("/")), "workshop");
        assert_eq!(super::project_from(Path::new("/w/--é--")), "workshop");
    }
}
