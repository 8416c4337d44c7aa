//! The member accounts of a run beyond what the manifest says: the ones labctl placed key
//! pairs in and the manifest no longer names (read, so that `--prune` and `destroy` reach what
//! is left there), those that cannot be reached any more (said, with what is left), and the
//! record of how each account was reached (`reached` lines in the project's keys).

use std::collections::{BTreeMap, BTreeSet};

use crate::cloud::CloudError;
use crate::desired::{Desired, Reach, Region};
use crate::error::Error;
use crate::journal::{Event, Journal, Reached};
use crate::observe::Observed;
use crate::resource::{Account, MemberAccount, Scope};

use super::{Terminal, problem_json};

/// Add to `desired` what the state remembers and the manifest no longer places: accounts it
/// dropped (how they are reached) and regions of any remembered account it no longer uses.
pub(super) fn add_former(desired: &mut Desired, reached: &BTreeMap<String, Reached>) {
    let placed: BTreeSet<Scope> = desired
        .keypairs
        .iter()
        .flat_map(|k| k.scopes.iter().cloned())
        .collect();
    for account in reached.values() {
        // A record is the state folder's (trusted as the journal is), and still checked as
        // the manifest's accounts are: above all, its role must be in its account (STS's
        // answer is checked again when it is assumed).
        if !crate::validate::reach_is_sound(
            &account.name,
            &account.id,
            &account.role_arn,
            account.external_id.as_deref(),
            &account.session_name,
        ) {
            tracing::debug!(id = %account.id, "a reached record labctl could not have written is ignored");
            continue;
        }
        let known = desired
            .accounts
            .iter()
            .find(|r| r.account.id == account.id)
            .map(|reach| reach.account.clone());
        let member = known.unwrap_or_else(|| {
            // A name the manifest now gives another account reads with its id too.
            let taken = desired
                .accounts
                .iter()
                .any(|r| r.account.name == account.name);
            let name = if taken {
                format!("{}-{}", account.name, account.id)
            } else {
                account.name.clone()
            };
            let member = std::sync::Arc::new(MemberAccount {
                id: account.id.clone(),
                name,
            });
            desired.accounts.push(Reach {
                account: member.clone(),
                role_arn: account.role_arn.clone(),
                external_id: account.external_id.clone(),
                session_name: account.session_name.clone(),
                former: true,
            });
            member
        });
        for region in &account.regions {
            let Ok(region) = Region::parse(region) else {
                continue;
            };
            let scope = Scope {
                account: Account::Member(member.clone()),
                region,
            };
            if !placed.contains(&scope) && !desired.former_scopes.contains(&scope) {
                desired.former_scopes.push(scope);
            }
        }
    }
}

/// Leave out of the run the former accounts that could not be reached, each said as a
/// warning with the key pairs labctl last placed there (left as they are).
pub(super) fn leave_unreached(
    desired: &mut Desired,
    unreached: Vec<(Reach, CloudError)>,
    reached: &BTreeMap<String, Reached>,
    json: bool,
    term: Terminal,
) -> Unreached {
    let mut out = Unreached::default();
    for (reach, err) in unreached {
        if err.message.contains(crate::cloud::OWN_ACCOUNT) {
            out.own.push(reach.account.id.clone());
        } else {
            out.left
                .push(format!("{} ({})", reach.account.name, reach.account.id));
        }
        // Out of this run altogether: not read, and not recorded (its record stays as it
        // was, so that the next run tries again and nothing there is forgotten).
        desired
            .former_scopes
            .retain(|s| s.account.id() != Some(reach.account.id.as_str()));
        desired.accounts.retain(|r| r.account != reach.account);
        let left = reached.get(&reach.account.id);
        let regions = left.map(|r| r.regions.join(", ")).unwrap_or_default();
        let names = left.map(|r| r.names.join(", ")).unwrap_or_default();
        let message = format!(
            "account {} ({}) is no longer in the manifest, and its role {} cannot be assumed ({}); what labctl last recorded there is left as it is: {names} (in {regions})",
            reach.account.name, reach.account.id, reach.role_arn, err.message
        );
        let hint = "restore the role's trust, or put the account back in `accounts:` for a run of `labctl destroy`; labctl reads it again on every run until nothing of this project is left there";
        if json {
            let mut warning = problem_json("account-unreachable", &message, Some(hint));
            warning["account"] = serde_json::Value::from(reach.account.id.as_str());
            out.warnings.push(warning);
        } else {
            eprintln!("{} {message}", term.warning_prefix());
            eprintln!("hint: {hint}");
        }
    }
    out
}

/// The former accounts a run left out.
#[derive(Default)]
pub(super) struct Unreached {
    /// What was said of them, for the JSON document.
    pub(super) warnings: Vec<serde_json::Value>,
    /// Those whose key pairs are left as they are (`name (id)`): a destroy or prune of this
    /// run is not complete.
    pub(super) left: Vec<String>,
    /// Former records of the caller's own account (read directly now): forgotten.
    pub(super) own: Vec<String>,
}

/// When every place that could not be read is a former one (an account or region the
/// manifest no longer names), leave those out of the run, each said as a warning (returned
/// with the places left out); `None`
/// when a place the manifest names failed (the run stops, nothing changed).
pub(super) fn leave_unread(
    desired: &mut Desired,
    errors: &[CloudError],
    json: bool,
    term: Terminal,
) -> Option<(Vec<serde_json::Value>, Vec<String>)> {
    let former = |e: &CloudError| {
        desired
            .former_scopes
            .iter()
            .find(|s| s.to_string() == e.scope)
            .cloned()
    };
    let unread: Vec<(Scope, &CloudError)> = errors
        .iter()
        .map(|e| former(e).map(|s| (s, e)))
        .collect::<Option<_>>()?;
    if unread.is_empty() {
        return None;
    }
    let mut warnings = Vec::new();
    let mut left = Vec::new();
    for (scope, err) in unread {
        desired.former_scopes.retain(|s| *s != scope);
        left.push(scope.to_string());
        let message = format!(
            "{scope} is no longer in the manifest and could not be read ({}): what labctl placed there is left as it is, and read again on the next run",
            err.message
        );
        let hint = err.hint();
        if json {
            let mut warning = problem_json("former-place-unread", &message, Some(hint));
            warning["region"] = serde_json::Value::from(scope.region.as_str());
            warning["account"] = serde_json::Value::from(scope.account.id());
            warnings.push(warning);
        } else {
            eprintln!("{} {message}", term.warning_prefix());
            eprintln!("hint: {hint}");
        }
    }
    Some((warnings, left))
}

/// Record how each member account of this run was reached and where the project's key pairs
/// are there, when that changed: the manifest's places, those read this run that still hold
/// one of its key pairs, and those of the last record this run did not read (a region that
/// could not be read is never forgotten). An account with nothing left is forgotten.
pub(super) fn remember(
    journal: &Journal,
    desired: &Desired,
    observed: &Observed,
    apply_id: &str,
    own: &[String],
) -> Result<(), Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for reach in &desired.accounts {
        let id = reach.account.id.as_str();
        let before = journal.state.reached.get(id);
        let (regions, names) = still_there(desired, observed, id, before);
        let record = Reached {
            id: id.to_owned(),
            // A former account keeps the name it was recorded with.
            name: match (reach.former, before) {
                (true, Some(before)) => before.name.clone(),
                _ => reach.account.name.clone(),
            },
            role_arn: reach.role_arn.clone(),
            external_id: reach.external_id.clone(),
            session_name: reach.session_name.clone(),
            regions,
            names,
            empty_since: None,
        };
        let next = match before {
            None if record.regions.is_empty() => continue,
            // Nothing of the project found where labctl placed key pairs: maybe EC2's listing
            // lag. Forgotten only when still so at least the lag window later.
            Some(before) if record.regions.is_empty() => match before.empty_since {
                None => Reached {
                    empty_since: Some(now),
                    ..before.clone()
                },
                Some(since) if now.saturating_sub(since) >= crate::cloud::LISTING_LAG.as_secs() => {
                    Reached {
                        regions: Vec::new(),
                        ..before.clone()
                    }
                }
                Some(_) => continue,
            },
            _ => record,
        };
        if before == Some(&next) {
            continue;
        }
        write(journal, apply_id, &next)?;
    }
    // A former record of the caller's own account: its key pairs are read directly now.
    for id in own {
        if let Some(before) = journal.state.reached.get(id) {
            let mut record = before.clone();
            record.regions.clear();
            write(journal, apply_id, &record)?;
        }
    }
    Ok(())
}

/// Where the project's key pairs are in the account `id`, and their names: the manifest's
/// places, those read this run that still hold one of its key pairs, and those of the last
/// record this run did not read (a region that could not be read is never forgotten).
fn still_there(
    desired: &Desired,
    observed: &Observed,
    id: &str,
    before: Option<&Reached>,
) -> (Vec<String>, Vec<String>) {
    let mut regions = BTreeSet::new();
    let mut names = BTreeSet::new();
    for spec in &desired.keypairs {
        for scope in spec.scopes.iter().filter(|s| s.account.id() == Some(id)) {
            regions.insert(scope.region.to_string());
            names.insert(spec.name.to_string());
        }
    }
    let mut read = BTreeSet::new();
    for (scope, pairs) in observed
        .remote
        .iter()
        .filter(|(s, _)| s.account.id() == Some(id))
    {
        read.insert(scope.region.to_string());
        for pair in pairs.values() {
            if crate::ownership::is_ours(&pair.tags, &desired.project) {
                regions.insert(scope.region.to_string());
                names.insert(pair.name.clone());
            }
        }
    }
    if let Some(before) = before {
        for region in before.regions.iter().filter(|r| !read.contains(*r)) {
            regions.insert(region.clone());
            names.extend(before.names.iter().cloned());
        }
    }
    (regions.into_iter().collect(), names.into_iter().collect())
}

fn write(journal: &Journal, apply_id: &str, record: &Reached) -> Result<(), Error> {
    let line = serde_json::to_string(record).map_err(|e| Error::Journal(e.into()))?;
    journal
        .record(Event::Reached, apply_id, &line)
        .map_err(Error::Journal)
}
