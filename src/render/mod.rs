//! Plans and reports as people read them, and as JSON (see `docs/json.md`).
//!
//! Rendering only formats: it decides nothing and prints nothing itself. Colors only when
//! asked for (a terminal without `NO_COLOR`); the text reads the same without them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::plan::{Action, AfterDelete, Change, KeyPairAction, KeyPairOp, Plan};
use crate::report::{Problem, Report, Status};

mod json;

pub(crate) use json::{plan_json, report_json};

/// One pretty-printed JSON document with a final newline: the one place labctl turns data
/// into JSON text. labctl's documents are plain data (string keys, no custom serializers), so
/// this cannot fail; if it ever did, the document says so instead of printing nothing.
pub(crate) fn json_document(value: &impl Serialize) -> String {
    match serde_json::to_string_pretty(value) {
        Ok(text) => text + "\n",
        Err(err) => {
            serde_json::json!({ "error": format!("labctl could not write this JSON document: {err}") })
                .to_string()
                + "\n"
        }
    }
}

/// Output settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

fn symbol(change: Change) -> (&'static str, &'static str) {
    match change {
        Change::Create => ("+", "32"),
        Change::Import => (">", "36"),
        Change::Replace => ("±", "35"),
        Change::UpdateTags | Change::FixMode | Change::Write => ("~", "33"),
        Change::Adopt => ("*", "36"),
        Change::Restore => ("<", "36"),
        Change::Store => ("^", "36"),
        Change::NoOp => ("=", "2"),
        Change::Conflict => ("!", "31"),
        Change::Orphan => ("?", "33"),
        Change::Delete | Change::Retire => ("-", "31"),
    }
}

fn op_label(action: &Action) -> String {
    match action.conflict() {
        Some(c) => format!("conflict: {}", c.as_str()),
        None => action.change().as_str().to_owned(),
    }
}

/// The words of the human summary line for a kind: (in a plan, after apply).
fn words_of(change: Change) -> (&'static str, &'static str) {
    match change {
        Change::Create => ("to create", "created"),
        Change::Import => ("to import", "imported"),
        Change::Replace => ("to replace", "replaced"),
        Change::Adopt => ("to adopt", "adopted"),
        Change::UpdateTags => ("to retag", "retagged"),
        Change::FixMode => ("to fix", "fixed"),
        Change::Write => ("to write", "written"),
        Change::Restore => ("to restore", "restored"),
        Change::Store => ("to store", "stored"),
        Change::Delete => ("to delete", "deleted"),
        Change::Retire => ("to retire", "retired"),
        Change::Orphan => ("orphaned (kept)", "orphaned (kept)"),
        Change::NoOp => ("unchanged", "unchanged"),
        Change::Conflict => ("in conflict", "in conflict"),
    }
}

/// Counts per kind of change; every kind is present (0 when none), `failed` only for apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    counts: BTreeMap<Change, usize>,
    /// Actions apply tried and that failed or were skipped (`None` for a plan).
    failed: Option<usize>,
    /// Of those, the ones never started (Ctrl-C, `--timeout`, a region that failed): said
    /// apart in the words for people; JSON's `failed` counts both, as it always did.
    not_started: usize,
}

impl Serialize for Summary {
    /// A map from each kind's name to its count (and `failed` for apply), keys sorted.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries: BTreeMap<&'static str, usize> =
            self.counts.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        if let Some(failed) = self.failed {
            entries.insert("failed", failed);
        }
        entries.serialize(serializer)
    }
}

impl Summary {
    fn empty(failed: Option<usize>) -> Self {
        Summary {
            counts: Change::ALL.iter().map(|k| (*k, 0)).collect(),
            failed,
            not_started: 0,
        }
    }

    fn add(&mut self, change: Change) {
        *self.counts.entry(change).or_default() += 1;
    }

    pub(crate) fn get(&self, change: Change) -> usize {
        self.counts.get(&change).copied().unwrap_or(0)
    }

    pub(crate) fn of_plan(plan: &Plan) -> Self {
        let mut s = Summary::empty(None);
        for a in &plan.actions {
            s.add(a.change());
        }
        s
    }

    /// Counts of what apply did: a change counts under its kind only when it was done.
    pub(crate) fn of_report(report: &Report) -> Self {
        let mut s = Summary::empty(Some(0));
        for o in &report.outcomes {
            let a = &o.action;
            match o.status {
                Status::Done => s.add(a.change()),
                Status::Unchanged => s.add(if a.change() == Change::Orphan {
                    Change::Orphan
                } else {
                    Change::NoOp
                }),
                Status::Conflict => s.add(Change::Conflict),
                Status::Failed => {
                    *s.failed.get_or_insert(0) += 1;
                }
                Status::Skipped => {
                    *s.failed.get_or_insert(0) += 1;
                    s.not_started += 1;
                }
            }
        }
        s
    }

    /// `1 to create, 2 unchanged` (zero counts left out, `nothing` when empty).
    fn words(&self, past: bool) -> String {
        let mut parts: Vec<String> = Change::ALL
            .iter()
            .filter(|k| self.get(**k) > 0)
            .map(|k| {
                let (future, done) = words_of(*k);
                format!("{} {}", self.get(*k), if past { done } else { future })
            })
            .collect();
        let failed = self.failed.unwrap_or(0) - self.not_started;
        if failed > 0 {
            parts.push(format!("{failed} failed"));
        }
        if self.not_started > 0 {
            parts.push(format!("{} not started", self.not_started));
        }
        if parts.is_empty() {
            "nothing".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// The widest line labctl's plans and reports print (names up to 40 characters included):
/// what does not fit goes on the lines under it, indented.
const WIDTH: usize = 100;

struct Widths {
    name: usize,
    region: usize,
    /// 0: the file column is left out (every file is `<folder>/<name>.pem` of one folder,
    /// said once in the heading).
    file: usize,
}

/// The one key folder every shown action keeps its file in as `<name>.pem`, when there is
/// one: then the heading says `key files: <folder>/<name>.pem` and the lines leave it out.
fn common_folder<'a>(actions: impl Iterator<Item = &'a Action>) -> Option<String> {
    crate::desired::common_key_folder(actions.map(|a| (a.name().as_str(), a.file_display())))
}

/// The member accounts the actions are in, each once (by id), as `Accounts: team-a
/// 111111111111, …`: a scope line reads `team-a/eu-west-1`, and this says which account that
/// is. `None` when every action is in the caller's own account.
fn accounts_line<'a>(actions: impl Iterator<Item = &'a Action>) -> Option<String> {
    crate::resource::accounts_line(actions.filter_map(|a| match &a.scope().account {
        crate::resource::Account::Member(m) => {
            Some((printable(&m.name).into_owned(), m.id.clone()))
        }
        crate::resource::Account::Caller => None,
    }))
}

fn widths<'a>(actions: impl Iterator<Item = &'a Action>, with_file: bool) -> Widths {
    let mut w = Widths {
        name: 4,
        region: 6,
        file: if with_file { 4 } else { 0 },
    };
    for a in actions {
        w.name = w.name.max(a.name().as_str().len());
        w.region = w.region.max(a.scope().to_string().len());
        if with_file {
            w.file = w.file.max(a.file_display().len());
        }
    }
    w
}

fn line(out: &mut String, style: Style, a: &Action, w: &Widths, tail: &str) {
    let (sym, color) = symbol(a.change());
    let mut head = format!(
        "  {} {:<nw$}  {:<rw$}",
        style.paint(color, sym),
        a.name().as_str(),
        a.scope().to_string(),
        nw = w.name,
        rw = w.region,
    );
    let mut plain = 2 + sym.len() + 1 + w.name + 2 + w.region;
    if w.file > 0 {
        let _ = write!(head, "  {:<fw$}", printable(a.file_display()), fw = w.file);
        plain += 2 + w.file;
    }
    let tail = printable(tail);
    if plain + 2 + tail.chars().count() <= WIDTH {
        let _ = writeln!(out, "{head}  {tail}");
    } else {
        // What does not fit goes under the line, wrapped.
        let _ = writeln!(out, "{}", head.trim_end());
        out.push_str(&wrap(&tail, 6, 6));
    }
}

/// The words of `text` for wrapping: split on spaces, except inside backticks (a command to
/// copy stays on one line).
fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for word in text.split(' ') {
        match out.last_mut() {
            Some(last) if open => {
                last.push(' ');
                last.push_str(word);
            }
            _ => out.push(word.to_owned()),
        }
        if word.matches('`').count() % 2 == 1 {
            open = !open;
        }
    }
    out
}

/// `text` wrapped at [`WIDTH`] columns on spaces (never inside backticks): the first line indented by `first`, the
/// others by `rest`; a word longer than a line stays whole on its own line.
fn wrap(text: &str, first: usize, rest: usize) -> String {
    let mut out = String::new();
    let mut current = " ".repeat(first);
    let mut empty = true;
    for word in words(text) {
        let fits = current.chars().count() + usize::from(!empty) + word.chars().count() <= WIDTH;
        if !empty && !fits {
            out.push_str(current.trim_end());
            out.push('\n');
            current = " ".repeat(rest);
            empty = true;
        }
        if !empty {
            current.push(' ');
        }
        current.push_str(&word);
        empty = false;
    }
    out.push_str(current.trim_end());
    out.push('\n');
    out
}

/// Text from the manifest or from EC2 (tag values, paths) as one safe line on a terminal or in
/// a Markdown code block: control characters (a newline, an escape sequence) are shown
/// escaped, never acted on, so no text starts a line of its own (a line of backticks that
/// would close the job summary's code block, say).
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A problem as text, the one place its hint is placed: the message, then `  hint: …`.
fn problem_text(problem: &Problem) -> String {
    match &problem.hint {
        Some(hint) => format!("{}\n  hint: {hint}", problem.message),
        None => problem.message.clone(),
    }
}

/// The plan for people: one line per key pair and region, then a summary line.
pub(crate) fn plan_human(plan: &Plan, style: Style, verbose: bool) -> String {
    let mut out = String::new();
    // Changes, conflicts and anything with a note in full; key pairs in sync as one count
    // (listed with -v): 200 unchanged seats are one line, not 200.
    let shown: Vec<&Action> = plan
        .actions
        .iter()
        .filter(|a| verbose || a.is_change() || a.change() != Change::NoOp || a.reason != "in sync")
        .collect();
    let folder = common_folder(shown.iter().copied());
    let w = widths(shown.iter().copied(), folder.is_none());
    match &folder {
        Some(folder) => {
            let _ = writeln!(
                out,
                "Plan for project {} (key files: {}/<name>.pem):",
                plan.project,
                printable(folder)
            );
        }
        None => {
            let _ = writeln!(out, "Plan for project {}:", plan.project);
        }
    }
    if let Some(accounts) = accounts_line(plan.actions.iter()) {
        out.push_str(&wrap(&accounts, 0, 2));
    }
    for a in &shown {
        line(
            &mut out,
            style,
            a,
            &w,
            &format!("{}: {}", op_label(a), short_reason(a)),
        );
    }
    let hidden = plan.actions.len() - shown.len();
    if hidden > 0 {
        let _ = writeln!(
            out,
            "  {} {hidden} key pair{} in sync (-v lists them)",
            style.paint("2", "="),
            if hidden == 1 { "" } else { "s" },
        );
    }
    let s = Summary::of_plan(plan);
    if plan.has_changes() {
        let _ = writeln!(out, "Plan: {}.", s.words(false));
    } else {
        let _ = writeln!(out, "No changes. {}.", s.words(false));
    }
    let mut hinted = Vec::new();
    for action in &plan.actions {
        if let Some(a) = action.key_pair()
            && let KeyPairOp::Conflict(c) = a.op
            && !hinted.contains(&(a.entry, c))
        {
            hinted.push((a.entry, c));
            out.push_str(&wrap(
                &format!(
                    "hint: {} ({}): {}",
                    action.name(),
                    c.as_str(),
                    c.hint_for(&action.address, a)
                ),
                0,
                6,
            ));
        }
    }
    out
}

/// The successes of a report as one line per kind of change: `+ 200 key pairs created`.
fn done_counts(out: &mut String, report: &Report, style: Style) {
    let mut counts: Vec<(Change, usize)> = Vec::new();
    for o in report.outcomes.iter().filter(|o| o.status == Status::Done) {
        match counts.iter_mut().find(|(c, _)| *c == o.action.change()) {
            Some(entry) => entry.1 += 1,
            None => counts.push((o.action.change(), 1)),
        }
    }
    for (change, n) in counts {
        let (sym, color) = symbol(change);
        let (_, past) = words_of(change);
        let _ = writeln!(
            out,
            "  {} {n} key pair{} {past} (-v lists them)",
            style.paint(color, sym),
            if n == 1 { "" } else { "s" }
        );
    }
}

/// Successes listed one per line in a report up to this many (more are counted, -v lists).
const LIST_DONE: usize = 20;

/// The reason without the key file's path: the line shows it in its own column already.
fn short_reason(a: &Action) -> String {
    if a.file_display().is_empty() {
        a.reason.clone()
    } else {
        a.reason.replace(a.file_display(), "the key file")
    }
}

/// What apply did, for people: the changes it tried (conflicts were shown with the plan),
/// then a summary line; "No changes" when there was nothing to do.
pub(crate) fn report_human(report: &Report, style: Style, noun: &str, verbose: bool) -> String {
    let mut out = String::new();
    let tried: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::Done | Status::Failed | Status::Skipped))
        .collect();
    // At workshop scale, what went well is a count (the plan listed it); what did not is
    // listed in full. Up to LIST_DONE successes, or with -v, each gets its line.
    let done = tried.iter().filter(|o| o.status == Status::Done).count();
    let list_done = verbose || done <= LIST_DONE;
    let tried: Vec<_> = tried
        .into_iter()
        .filter(|o| list_done || o.status != Status::Done)
        .collect();
    let s = Summary::of_report(report);
    if tried.is_empty() && done == 0 && s.get(Change::Conflict) == 0 {
        let _ = writeln!(out, "No changes. {}.", s.words(true));
        return out;
    }
    let actions = || tried.iter().map(|o| &o.action);
    // The plan's heading said where the key files are when they all follow one folder.
    let w = widths(actions(), common_folder(actions()).is_none());
    if !tried.is_empty() || !list_done {
        let heading = if noun == "Destroy" {
            "Destroyed:"
        } else {
            "Applied:"
        };
        let _ = writeln!(out, "{heading}");
        if let Some(accounts) = accounts_line(actions()) {
            out.push_str(&wrap(&accounts, 0, 2));
        }
    }
    if !list_done {
        done_counts(&mut out, report, style);
    }
    // A failure that repeats word for word in a region (a dead endpoint, missing credentials)
    // is shown once, with a count, not once per key pair.
    let mut seen: Vec<(String, String, usize)> = Vec::new();
    for o in &tried {
        let a = &o.action;
        if o.status != Status::Done
            && let Some(problem) = &o.error
        {
            let key = (a.scope().to_string(), problem_text(problem));
            if let Some(entry) = seen.iter_mut().find(|(r, t, _)| (r, t) == (&key.0, &key.1)) {
                entry.2 += 1;
                continue;
            }
            seen.push((key.0, key.1, 0));
        }
        let what = match (o.status, a.key_pair()) {
            (Status::Done, Some(pair)) => key_pair_done(a, pair),
            (Status::Done, None) => words_of(a.change()).1.to_owned(),
            (status, _) => format!("{} ({})", status.as_str(), op_label(a)),
        };
        line(&mut out, style, a, &w, &what);
        if let Some(problem) = &o.error {
            for l in problem_text(problem).lines() {
                let _ = writeln!(out, "      {l}");
            }
        }
    }
    for (region, text, more) in &seen {
        if *more > 0 {
            let first = text.lines().next().unwrap_or_default();
            let _ = writeln!(
                out,
                "  … and {more} more in {region} with the same problem: {first}"
            );
        }
    }
    let _ = writeln!(
        out,
        "{noun} {}: {}.",
        if report.succeeded() {
            "complete"
        } else {
            "incomplete"
        },
        s.words(true)
    );
    out
}

/// What a report line says of a key pair action that was done.
fn key_pair_done(action: &Action, a: &KeyPairAction) -> String {
    match &a.op {
        op if op.makes_key_in(action.scope()) => match op {
            KeyPairOp::Replace { .. } if a.store == crate::plan::StoreStep::Put => {
                "replaced, new private key saved (0400) and kept in SSM".to_owned()
            }
            KeyPairOp::Replace { .. } => "replaced, new private key saved (0400)".to_owned(),
            _ if a.store == crate::plan::StoreStep::Put => {
                "created, private key saved (0400) and kept in SSM".to_owned()
            }
            _ => "created, private key saved (0400)".to_owned(),
        },
        // Say what became of the file shown on the line, not only of the key pair.
        KeyPairOp::Delete { file } => {
            let text = match file {
                AfterDelete::Retire(..) => "deleted, key file retired (moved aside)",
                AfterDelete::Purge(..) => "deleted, key file removed",
                AfterDelete::Keep if a.output.is_some() => "deleted, key file kept",
                AfterDelete::Keep => "deleted",
            };
            if a.unstore.is_some() {
                format!("{text}, its key deleted from SSM")
            } else {
                text.to_owned()
            }
        }
        _ => {
            let (_, done) = words_of(a.change());
            let mut text = done.to_owned();
            if a.restore.is_some() && a.change() != Change::Restore {
                text.push_str(", key file restored (0400)");
            } else if a.restore.is_some() {
                text.push_str(" (0400)");
            }
            if a.fix_mode {
                text.push_str(", file set to 0400");
            }
            match (a.store, &a.unstore) {
                (crate::plan::StoreStep::None, None) => {}
                (_, Some(_)) => text.push_str(", its key deleted from SSM"),
                (crate::plan::StoreStep::Adopt, None) => text.push_str(", SSM entry taken over"),
                (crate::plan::StoreStep::Put, None) if a.change() != Change::Store => {
                    text.push_str(", key kept in SSM");
                }
                (crate::plan::StoreStep::Put, None) => text.push_str(" in SSM"),
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    //! Snapshots of what people read: a change to the wording shows up as a diff to review.

    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::{Style, plan_human, plan_json, report_human};
    use crate::desired::{KeyName, KeyType, TagSet};
    use crate::plan::fixtures::scope;
    use crate::plan::{
        Action, AfterDelete, Conflict, Generator, ImportSource, KeyPairAction, KeyPairOp, Op, Plan,
    };
    use crate::report::{Outcome, Problem, Report, Status};
    use crate::resource::Address;

    fn action(name: &str, region: &str, op: KeyPairOp, reason: &str) -> Action {
        let op = Op::KeyPair(KeyPairAction {
            entry: Some(0),
            output: Some(PathBuf::from(format!("keys/{name}.pem"))),
            output_display: format!("keys/{name}.pem"),
            tags: TagSet::default(),
            op,
            remote_id: None,
            fix_mode: false,
            ppk: None,
            write_ppk: false,
            retires: Vec::new(),
            owned: true,
            restore: None,
            store: crate::plan::StoreStep::None,
            unstore: None,
        });
        Action {
            address: Address::key_pair(KeyName::parse(name).unwrap(), scope(region)),
            reason: reason.to_owned(),
            op,
        }
    }

    fn sample() -> Plan {
        let ec2 = Generator::Ec2 {
            key_type: KeyType::Ed25519,
        };
        Plan {
            project: "ecs-workshop".into(),
            actions: vec![
                action(
                    "ecs-workshop-seat-1",
                    "us-east-1",
                    KeyPairOp::Create { generator: ec2 },
                    "a new ed25519 key made by EC2",
                ),
                action(
                    "ecs-workshop-seat-1",
                    "eu-west-1",
                    KeyPairOp::Import {
                        source: ImportSource::CreatedIn(scope("us-east-1")),
                    },
                    "the key created in us-east-1",
                ),
                action(
                    "ecs-workshop-seat-2",
                    "us-east-1",
                    KeyPairOp::Conflict(Conflict::MissingPrivateKey),
                    "the key pair exists but keys/ecs-workshop-seat-2.pem does not",
                ),
                action(
                    "ecs-workshop-seat-3",
                    "us-east-1",
                    KeyPairOp::FixMode { mode: 0o644 },
                    "keys/ecs-workshop-seat-3.pem has mode 0644; set it to 0400",
                ),
                action(
                    "ecs-workshop-old",
                    "us-east-1",
                    KeyPairOp::Delete {
                        file: AfterDelete::Keep,
                    },
                    "no longer in the manifest; delete it",
                ),
                action(
                    "ecs-workshop-seat-4",
                    "us-east-1",
                    KeyPairOp::Noop,
                    "in sync",
                ),
            ],
        }
    }

    #[test]
    fn the_plan_for_people() {
        insta::assert_snapshot!(plan_human(&sample(), Style { color: false }, false));
    }

    #[test]
    fn the_plan_as_json() {
        let calls = BTreeMap::from([("DescribeKeyPairs".to_owned(), 2)]);
        insta::assert_snapshot!(super::json_document(&plan_json(&sample(), &calls)));
    }

    #[test]
    fn the_report_for_people() {
        let plan = sample();
        let statuses = [
            (Status::Done, None),
            (
                Status::Failed,
                Some(
                    Problem::new("ImportKeyPair in eu-west-1 failed: RequestLimitExceeded")
                        .hint("EC2 is throttling requests; run again in a minute"),
                ),
            ),
            (
                Status::Conflict,
                Some(Problem::new("missing-private-key").hint("put the file back")),
            ),
            (Status::Done, None),
            (Status::Done, None),
            (Status::Unchanged, None),
        ];
        let report = Report {
            outcomes: plan
                .actions
                .into_iter()
                .zip(statuses)
                .map(|(action, (status, error))| Outcome {
                    action,
                    status,
                    error,
                })
                .collect(),
        };
        insta::assert_snapshot!(report_human(
            &report,
            Style { color: false },
            "Apply",
            false
        ));
    }
}
