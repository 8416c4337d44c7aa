//! `labctl output`: what a lab guide needs after apply — each key pair's id, fingerprints
//! and key file — as a table, JSON, or shell assignments to `eval`.
//!
//! Reads the observed state and the key files; never prints key material.

use std::fmt::Write as _;

use serde::Serialize;

use crate::desired::{Desired, KeySource};
use crate::keys::{FileCustody, FileState, KeyCustody as _, KeyRef, fingerprint};
use crate::observe::Observed;

/// One key pair in one scope (a region of an account).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Row {
    pub name: String,
    pub region: String,
    /// The member account's 12-digit id; `None` in the caller's own account.
    pub account: Option<String>,
    /// The member account's name in the manifest; `None` in the caller's own account.
    pub account_name: Option<String>,
    /// The scope as people read it (`eu-west-1`, `team-a/eu-west-1`): the table's column.
    #[serde(skip)]
    pub scope: String,
    /// The key pair's id; `None` when it does not exist (yet).
    pub id: Option<String>,
    /// The fingerprint EC2 reports.
    pub fingerprint: Option<String>,
    /// The fingerprint computed from the local key as AWS documents it.
    pub local_fingerprint: Option<String>,
    /// The private key file (`None` for `public_key` entries).
    pub private_key: Option<String>,
}

/// The rows, in manifest order.
pub(crate) fn rows(desired: &Desired, observed: &Observed, store: FileCustody) -> Vec<Row> {
    let mut out = Vec::new();
    for spec in &desired.keypairs {
        let file_public = spec
            .output
            .as_ref()
            .and_then(|path| match observed.local.get(path) {
                Some(FileState::Key { public, .. }) => Some(public.clone()),
                _ => None,
            });
        let public = match &spec.source {
            KeySource::PublicKey(given) => Some(given.clone()),
            KeySource::Aws | KeySource::Local { .. } => file_public,
        };
        let secret = spec
            .output
            .as_ref()
            .and_then(|path| store.read(KeyRef::Pem(path)));
        // One key, one pair of fingerprints, whatever the number of regions.
        let imported = public.as_ref().and_then(fingerprint::imported);
        let created = match (&secret, &public) {
            (Some(secret), Some(public)) => fingerprint::created(secret, public),
            _ => None,
        };
        for (i, region) in spec.scopes.iter().enumerate() {
            let remote = observed.pair(region, &spec.name);
            let remote_fingerprint = remote.and_then(|r| r.fingerprint.clone());
            // The one that matches EC2's, else the one AWS's rules predict for this region.
            let expected = if i == 0 && matches!(spec.source, KeySource::Aws) {
                &created
            } else {
                &imported
            };
            let local_fingerprint = [&created, &imported]
                .into_iter()
                .find(|f| f.is_some() && **f == remote_fingerprint)
                .unwrap_or(expected)
                .clone();
            out.push(Row {
                name: spec.name.to_string(),
                region: region.region.to_string(),
                account: region.account.id().map(str::to_owned),
                account_name: region.account.name().map(str::to_owned),
                scope: region.to_string(),
                id: remote.and_then(|r| r.id.clone()),
                fingerprint: remote_fingerprint,
                local_fingerprint,
                private_key: spec.output.as_ref().map(|_| spec.output_display.clone()),
            });
        }
    }
    out
}

/// The compact table for people (fits 100 columns for names up to 40 characters): name,
/// region, key pair id; the key files said once above it when they are all
/// `<folder>/<name>.pem`, else in a last column. `--format wide` adds the fingerprints.
pub(crate) fn text(rows: &[Row]) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let folder = one_folder(rows);
    let mut out = String::new();
    if let Some(folder) = &folder {
        let _ = writeln!(out, "Key files: {folder}/<name>.pem");
    }
    out.push_str(&accounts_line(rows));
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![r.name.clone(), r.scope.clone(), dash(&r.id)];
            if folder.is_none() {
                row.push(dash(&r.private_key));
            }
            row
        })
        .collect();
    let place = place_header(rows);
    let header: &[&str] = if folder.is_none() {
        &["NAME", place, "KEY PAIR ID", "KEY FILE"]
    } else {
        &["NAME", place, "KEY PAIR ID"]
    };
    out.push_str(&columns(header, &table));
    out
}

/// The one folder every key file is `<folder>/<name>.pem` in, when there is one.
fn one_folder(rows: &[Row]) -> Option<String> {
    crate::desired::common_key_folder(rows.iter().map(|r| {
        (
            r.name.as_str(),
            r.private_key.as_deref().unwrap_or_default(),
        )
    }))
}

/// Rows under a header, in columns two spaces apart.
fn columns(header: &[&str], table: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&head).chain(table) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// The wide table: every column, fingerprints included.
pub(crate) fn wide(rows: &[Row]) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.scope.clone(),
                dash(&r.id),
                // EC2's fingerprint; before EC2 has the key pair (or with `--offline`), the
                // one it will show, computed from the key file.
                dash(
                    &r.fingerprint
                        .clone()
                        .or_else(|| r.local_fingerprint.clone()),
                ),
                dash(&r.private_key),
            ]
        })
        .collect();
    let table: Vec<Vec<String>> = table.into_iter().map(Vec::from).collect();
    let mut out = accounts_line(rows);
    out.push_str(&columns(
        &[
            "NAME",
            place_header(rows),
            "KEY PAIR ID",
            "FINGERPRINT",
            "KEY FILE",
        ],
        &table,
    ));
    out
}

/// `Accounts: team-a 111111111111, …` when rows are in member accounts (the table says
/// `team-a/eu-west-1`; this says which account that is), else nothing.
fn accounts_line(rows: &[Row]) -> String {
    crate::resource::accounts_line(
        rows.iter()
            .filter_map(|r| Some((r.account_name.clone()?, r.account.clone()?))),
    )
    .map(|line| line + "\n")
    .unwrap_or_default()
}

/// The place column's heading: `REGION`, or `ACCOUNT/REGION` when a row is in a member
/// account.
fn place_header(rows: &[Row]) -> &'static str {
    if rows.iter().any(|r| r.account.is_some()) {
        "ACCOUNT/REGION"
    } else {
        "REGION"
    }
}

/// One JSON document (as data: the writer adds the run's warnings and makes it text).
pub(crate) fn json(project: &str, rows: &[Row]) -> serde_json::Value {
    serde_json::json!({ "project": project, "keypairs": rows })
}

/// A shell variable name from a key pair or region name: upper case, `_` for the rest.
fn ident(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A value in single quotes, safe for `eval`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Shell assignments: per key pair its name and file, per place its id (`_<REGION>`, or
/// `_<ACCOUNT>_<REGION>` in a member account); and when the manifest has one key pair, short
/// names for it (`LABCTL_KEY_NAME`, `LABCTL_KEY_FILE`). Two values that would become one
/// variable (`lab-a` and `lab_a`; the same name in two entries) are refused rather than let
/// the last silently win.
pub(crate) fn env(desired: &Desired, rows: &[Row]) -> Result<String, String> {
    let mut vars: Vec<(String, String, String)> = Vec::new();
    vars.push((
        "LABCTL_PROJECT".into(),
        desired.project.clone(),
        desired.project.clone(),
    ));
    if let [only] = desired.keypairs.as_slice() {
        let name = only.name.to_string();
        vars.push(("LABCTL_KEY_NAME".into(), name.clone(), name.clone()));
        if only.output.is_some() {
            vars.push(("LABCTL_KEY_FILE".into(), only.output_display.clone(), name));
        }
    }
    for (index, spec) in desired.keypairs.iter().enumerate() {
        let id = ident(spec.name.as_str());
        // The same key pair name in two entries (two accounts or regions) is two sources.
        let source = format!("{} (entry {})", spec.name, index + 1);
        vars.push((
            format!("LABCTL_KEY_NAME_{id}"),
            spec.name.to_string(),
            source.clone(),
        ));
        if spec.output.is_some() {
            vars.push((
                format!("LABCTL_KEY_FILE_{id}"),
                spec.output_display.clone(),
                source.clone(),
            ));
        }
        let here: std::collections::BTreeSet<String> =
            spec.scopes.iter().map(ToString::to_string).collect();
        for row in rows
            .iter()
            .filter(|r| r.name == spec.name.as_str() && here.contains(&r.scope))
        {
            if let Some(pair_id) = &row.id {
                vars.push((
                    format!("LABCTL_KEY_ID_{id}_{}", ident(&row.scope)),
                    pair_id.clone(),
                    format!("{} in {}", spec.name, row.scope),
                ));
            }
        }
    }
    // One variable, one value: the same assignment twice is said once.
    let mut seen: std::collections::BTreeMap<&str, (&str, &str)> =
        std::collections::BTreeMap::new();
    let mut out = String::new();
    for (var, value, source) in &vars {
        match seen.insert(var.as_str(), (value.as_str(), source.as_str())) {
            Some((before, _)) if before == value.as_str() => continue,
            Some((_, other)) => {
                return Err(format!(
                    "`{other}` and `{source}` both become {var} in --format env; use --format json, or rename one"
                ));
            }
            None => {}
        }
        let _ = writeln!(out, "{var}={}", quote(value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{ident, quote};

    #[test]
    fn shell_names_and_quoting_are_safe() {
        assert_eq!(ident("ecs-workshop.keypair"), "ECS_WORKSHOP_KEYPAIR");
        assert_eq!(ident("1lab"), "_1LAB");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
