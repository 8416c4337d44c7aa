//! The member accounts of a run beyond what the manifest says: the ones labctl placed key
//! pairs in and the manifest no longer names (read, so that `--prune` and `destroy` reach what
//! is left there), those that cannot be reached any more (said, with what is left), and the
//! record of how each account was reached (`reached` lines in the manifest's journal).

use std::collections::{BTreeMap, BTreeSet};

use crate::cloud::CloudError;
use crate::desired::{Desired, Reach, Region};
use crate::error::Error;
use crate::journal::{Event, Journal, Reached};
use crate::observe::Observed;
use crate::resource::{Account, MemberAccount, Scope};

use super::{Terminal, warn};

/// Add to `desired` what the state remembers and the manifest no longer places: accounts it
/// dropped (how they are reached) and regions of any remembered account it no longer uses.
pub(super) fn add_former(desired: &mut Desired, reached: &BTreeMap<String, Reached>) {
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
        read_as_former(desired, &account.regions, &Account::Member(member));
    }
}

/// Read the remembered `regions` of `account` in this run, those the manifest does not place
/// key pairs in, each once.
fn read_as_former(desired: &mut Desired, regions: &[String], account: &Account) {
    for region in regions {
        let Ok(region) = Region::parse(region) else {
            continue;
        };
        let scope = Scope {
            account: account.clone(),
            region,
        };
        let placed = desired.keypairs.iter().any(|k| k.scopes.contains(&scope));
        if !placed && !desired.former_scopes.contains(&scope) {
            desired.former_scopes.push(scope);
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
            // The caller's own account, remembered as a member: its places are read as the
            // caller's own (nothing there is stranded), and it is said once more below.
            out.own.push(reach.account.id.clone());
            if let Some(record) = reached.get(&reach.account.id) {
                read_as_former(desired, &record.regions, &Account::Caller);
            }
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
        out.warnings.extend(warn(
            json,
            term,
            ("account-unreachable", &message, hint),
            &[(
                "account",
                serde_json::Value::from(reach.account.id.as_str()),
            )],
        ));
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
    /// Former records of the caller's own account: their places are read as the caller's
    /// own, and the records kept until nothing of the project is left there.
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
        warnings.extend(warn(
            json,
            term,
            ("former-place-unread", &message, hint),
            &[
                ("region", serde_json::Value::from(scope.region.as_str())),
                ("account", serde_json::Value::from(scope.account.id())),
            ],
        ));
    }
    Some((warnings, left))
}

/// Record how each member account of this run was reached and where the project's key pairs
/// are there, when that changed. A remembered region this run read and found empty is
/// dropped only when it is still empty at least EC2's listing lag later (a key pair made
/// moments before may not be listed yet); a region it could not read is never dropped; an
/// account with no region left is forgotten. Former records of the caller's own account
/// (`own`) are kept the same way, their regions read as the caller's own.
pub(super) fn remember(
    journal: &Journal,
    desired: &Desired,
    observed: &Observed,
    apply_id: &str,
    own: &[String],
) -> Result<(), Error> {
    let now = unix_now();
    let accounts = desired
        .accounts
        .iter()
        .map(|reach| (reach.account.id.clone(), Some(reach)))
        .chain(own.iter().map(|id| (id.clone(), None)));
    for (id, reach) in accounts {
        let before = journal.state.reached.get(&id);
        let here = |s: &Scope| match reach {
            Some(_) => s.account.id() == Some(id.as_str()),
            None => s.account == Account::Caller,
        };
        let places = Places::of(desired, observed, &here, before);
        let Some(record) = places.record(before, reach, &id, now) else {
            continue;
        };
        if before == Some(&record) || (before.is_none() && record.regions.is_empty()) {
            continue;
        }
        write(journal, apply_id, &record)?;
    }
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Where the project's key pairs are in one account, as this run saw it.
struct Places {
    /// Placed there by the manifest, or read this run holding one of its key pairs.
    live: BTreeSet<String>,
    /// Remembered, and not read this run (unreachable, or not asked).
    unread: BTreeSet<String>,
    /// Remembered, read this run, and holding nothing of the project.
    emptied: BTreeSet<String>,
    names: BTreeSet<String>,
}

impl Places {
    fn of(
        desired: &Desired,
        observed: &Observed,
        here: &dyn Fn(&Scope) -> bool,
        before: Option<&Reached>,
    ) -> Places {
        let mut live = BTreeSet::new();
        let mut names = BTreeSet::new();
        for spec in &desired.keypairs {
            for scope in spec.scopes.iter().filter(|s| here(s)) {
                live.insert(scope.region.to_string());
                names.insert(spec.name.to_string());
            }
        }
        let mut read = BTreeSet::new();
        for (scope, pairs) in observed.remote.iter().filter(|(s, _)| here(s)) {
            read.insert(scope.region.to_string());
            for pair in pairs.values() {
                if crate::ownership::is_ours(&pair.tags, &desired.project) {
                    live.insert(scope.region.to_string());
                    names.insert(pair.name.clone());
                }
            }
        }
        let mut unread = BTreeSet::new();
        let mut emptied = BTreeSet::new();
        for region in before.iter().flat_map(|b| b.regions.iter()) {
            if !read.contains(region) {
                unread.insert(region.clone());
            } else if !live.contains(region) {
                emptied.insert(region.clone());
            }
        }
        Places {
            live,
            unread,
            emptied,
            names,
        }
    }

    /// The record to keep; `None` to leave the one there as it is.
    fn record(
        self,
        before: Option<&Reached>,
        reach: Option<&Reach>,
        id: &str,
        now: u64,
    ) -> Option<Reached> {
        let Places {
            live,
            unread,
            emptied,
            mut names,
        } = self;
        let lag = crate::cloud::LISTING_LAG.as_secs();
        let (keep_emptied, empty_since) =
            match (emptied.is_empty(), before.and_then(|b| b.empty_since)) {
                (true, _) => (false, None),
                (false, None) => (true, Some(now)),
                (false, Some(since)) if now.saturating_sub(since) >= lag => (false, None),
                (false, Some(_)) => return None,
            };
        if keep_emptied || !unread.is_empty() {
            names.extend(before.iter().flat_map(|b| b.names.iter().cloned()));
        }
        let mut regions: BTreeSet<String> = live.into_iter().chain(unread).collect();
        if keep_emptied {
            regions.extend(emptied);
        }
        let before_or = |f: fn(&Reached) -> String, fallback: String| before.map_or(fallback, f);
        Some(Reached {
            id: id.to_owned(),
            // A former account keeps the name it was recorded with.
            name: match reach {
                Some(reach) if !reach.former || before.is_none() => reach.account.name.clone(),
                _ => before_or(|b| b.name.clone(), id.to_owned()),
            },
            role_arn: reach.map_or_else(
                || before_or(|b| b.role_arn.clone(), String::new()),
                |r| r.role_arn.clone(),
            ),
            external_id: reach.map_or_else(
                || before.and_then(|b| b.external_id.clone()),
                |r| r.external_id.clone(),
            ),
            session_name: reach.map_or_else(
                || before_or(|b| b.session_name.clone(), String::new()),
                |r| r.session_name.clone(),
            ),
            regions: regions.into_iter().collect(),
            names: names.into_iter().collect(),
            empty_since,
        })
    }
}

/// What a run saw of each remembered account before its work: whether it read every
/// remembered region there, and the ids of the project's key pairs it found.
pub(super) struct Seen(Vec<(String, bool, bool, Vec<String>)>);

/// See [`Seen`]: taken before a destroy's or prune's work.
pub(super) fn seen(
    desired: &Desired,
    observed: &Observed,
    reached: &BTreeMap<String, Reached>,
) -> Seen {
    let mut out = Vec::new();
    for reach in &desired.accounts {
        let id = reach.account.id.as_str();
        let Some(record) = reached.get(id) else {
            continue;
        };
        let mut all_read = true;
        let mut ids = Vec::new();
        for region in &record.regions {
            let pairs = observed
                .remote
                .iter()
                .find(|(s, _)| s.account.id() == Some(id) && s.region.as_str() == region);
            match pairs {
                Some((_, pairs)) => ids.extend(
                    pairs
                        .values()
                        .filter(|p| crate::ownership::is_ours(&p.tags, &desired.project))
                        .filter_map(|p| p.id.clone()),
                ),
                None => all_read = false,
            }
        }
        out.push((id.to_owned(), reach.former, all_read, ids));
    }
    Seen(out)
}

/// After a destroy (every remembered account) or a prune (former accounts: nothing is made
/// there), forget each account this run read in full and emptied: every key pair of the
/// project it found there is one it deleted (the journal says so). A destroy that left
/// nothing behind leaves no record that could later hold a cohort's runs on an account
/// handed back.
pub(super) fn forget_emptied(
    journal: &Journal,
    seen: &Seen,
    destroy: bool,
    apply_id: &str,
) -> Result<(), Error> {
    if seen.0.is_empty() {
        // No remembered account: the journal need not be read again.
        return Ok(());
    }
    let deleted = journal.deleted_now().map_err(Error::Journal)?;
    for (id, former, all_read, ids) in &seen.0 {
        // A former account is never written to: emptied only when this run saw key pairs
        // there and deleted every one (an empty listing may be EC2's lag, left to
        // `remember`'s two reads). The manifest's accounts only by a destroy, whose read
        // waited for the key pairs labctl made moments ago.
        let eligible = if *former { !ids.is_empty() } else { destroy };
        if eligible
            && *all_read
            && ids.iter().all(|i| deleted.contains(i))
            && let Some(before) = journal.state.reached.get(id)
        {
            let mut record = before.clone();
            record.regions.clear();
            write(journal, apply_id, &record)?;
        }
    }
    Ok(())
}

fn write(journal: &Journal, apply_id: &str, record: &Reached) -> Result<(), Error> {
    let line = serde_json::to_string(record).map_err(|e| Error::Journal(e.into()))?;
    journal
        .record(Event::Reached, apply_id, &line)
        .map_err(Error::Journal)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{Places, Reached};

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn record(regions: &[&str], empty_since: Option<u64>) -> Reached {
        Reached {
            id: "111111111111".into(),
            name: "team-a".into(),
            role_arn: "arn:aws:iam::111111111111:role/R".into(),
            external_id: None,
            session_name: "labctl-lab".into(),
            regions: regions.iter().map(|r| (*r).to_owned()).collect(),
            names: vec!["lab".into()],
            empty_since,
        }
    }

    fn places(live: &[&str], unread: &[&str], emptied: &[&str]) -> Places {
        Places {
            live: set(live),
            unread: set(unread),
            emptied: set(emptied),
            names: BTreeSet::new(),
        }
    }

    #[test]
    fn a_region_read_empty_is_dropped_only_when_still_empty_a_listing_lag_later() {
        let id = "111111111111";
        let before = record(&["eu-west-1", "us-east-1"], None);
        // First empty read of us-east-1: kept, and the time noted.
        let first = places(&["eu-west-1"], &[], &["us-east-1"])
            .record(Some(&before), None, id, 1_000)
            .unwrap();
        assert_eq!(first.regions, ["eu-west-1", "us-east-1"]);
        assert_eq!(first.empty_since, Some(1_000));
        // Within the lag window: left as it is.
        assert!(
            places(&["eu-west-1"], &[], &["us-east-1"])
                .record(Some(&first), None, id, 1_005)
                .is_none()
        );
        // Still empty a window later: dropped.
        let later = places(&["eu-west-1"], &[], &["us-east-1"])
            .record(Some(&first), None, id, 1_011)
            .unwrap();
        assert_eq!(later.regions, ["eu-west-1"]);
        assert_eq!(later.empty_since, None);
        // A region that could not be read is never dropped.
        let unread = places(&[], &["eu-west-1", "us-east-1"], &[])
            .record(Some(&before), None, id, 2_000)
            .unwrap();
        assert_eq!(unread.regions, ["eu-west-1", "us-east-1"]);
        // Key pairs listed again: the wait is over.
        let back = places(&["eu-west-1", "us-east-1"], &[], &[])
            .record(Some(&first), None, id, 1_003)
            .unwrap();
        assert_eq!(back.empty_since, None);
    }
}
