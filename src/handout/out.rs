//! Where bundles may go, and what they are named: never into a key folder, never where a key
//! folder or key file is, never into a git work tree that would commit them; a bundle is named
//! after its key pair, whose name must then be one plain file name.

use std::path::{Path, PathBuf};

use crate::desired::{Desired, KeyPairSpec};
use crate::keys;

/// Why bundles cannot go to `out`, if they cannot: never into a key folder, and no bundle
/// where a key folder or key file is (a bundle named like a key file would move a live
/// key aside, or become the key file), never into a git work tree unignored (every bundle, its
/// moved-aside copies and the passphrase list hold a secret; one folder labctl creates gets a
/// `.gitignore` of `*` first).
pub(crate) fn refuse_out(
    desired: &Desired,
    selected: &[&KeyPairSpec],
    out: &Path,
    zip: bool,
) -> Option<String> {
    let here = keys::path_identity(out);
    let bundles: Vec<PathBuf> = selected
        .iter()
        .filter(|spec| file_name_of(spec.name.as_str()))
        .map(|spec| keys::path_identity(&bundle_path(out, spec.name.as_str(), zip)))
        .collect();
    for spec in &desired.keypairs {
        for file in spec.output.iter().chain(spec.ppk.iter()) {
            let folder = keys::path_identity(&keys::parent_of(file));
            let file = keys::path_identity(file);
            if here == folder {
                return Some(format!(
                    "{} is a key folder (of `{}`); bundles go elsewhere: use another --out",
                    out.display(),
                    spec.name
                ));
            }
            if bundles
                .iter()
                .any(|b| folder.starts_with(b) || file.starts_with(b))
            {
                return Some(format!(
                    "a bundle in {} would be the key folder or key file of `{}`; bundles go elsewhere: use another --out",
                    out.display(),
                    spec.name
                ));
            }
        }
    }
    if !out.exists() {
        return None;
    }
    let mut probes: Vec<PathBuf> = vec![out.join("passphrases-0.csv")];
    for spec in selected {
        let bundle = bundle_path(out, spec.name.as_str(), zip);
        probes.extend(keys::aside_names(&bundle));
        probes.push(bundle);
    }
    let refs: Vec<&Path> = probes.iter().map(PathBuf::as_path).collect();
    let (_, root, why) = keys::git_exposure(&refs).into_iter().next()?;
    let how = match why {
        keys::Exposure::NotIgnored => "and not ignored",
        keys::Exposure::Tracked => "and git tracks files in it",
        keys::Exposure::Unchecked => "and git cannot say whether it would commit them",
    };
    Some(format!(
        "{} is inside the git work tree {} {how}: bundles and passphrase lists hold secrets; add it to .gitignore (and `git rm --cached` what is tracked) or use --out elsewhere",
        out.display(),
        root.display()
    ))
}

/// Whether a key pair's name can name its bundle: one plain file name, as for a key file
/// (EC2 takes `/` and `..` in a name, which would put the bundle, or a zip's entries,
/// elsewhere).
pub(super) fn file_name_of(name: &str) -> bool {
    crate::desired::key_file_name(name).is_some()
}

pub(super) fn bundle_path(out: &Path, name: &str, zip: bool) -> PathBuf {
    if zip {
        out.join(format!("{name}.zip"))
    } else {
        out.join(name)
    }
}
