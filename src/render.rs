//! Plans and reports as people read them, and as JSON (see `docs/json.md`).
//!
//! Rendering only formats: it decides nothing and prints nothing itself. Colors only when
//! asked for (a terminal without `NO_COLOR`); the text reads the same without them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::apply::{Report, Status};
use crate::plan::{Action, KeyPairAction, KeyPairOp, Plan};

/// Output settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
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

fn symbol(op: &KeyPairOp) -> (&'static str, &'static str) {
    match op {
        KeyPairOp::Create => ("+", "32"),
        KeyPairOp::Import { .. } => (">", "36"),
        KeyPairOp::FixMode { .. } => ("~", "33"),
        KeyPairOp::Noop => ("=", "2"),
        KeyPairOp::Conflict(_) => ("!", "31"),
    }
}

fn op_label(op: &KeyPairOp) -> String {
    match op {
        KeyPairOp::Conflict(c) => format!("conflict: {}", c.as_str()),
        other => other.name().to_owned(),
    }
}

/// Counts per action kind, in a fixed order.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub create: usize,
    pub import: usize,
    #[serde(rename = "fix-mode")]
    pub fix_mode: usize,
    pub noop: usize,
    pub conflict: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<usize>,
}

impl Summary {
    pub fn of_plan(plan: &Plan) -> Self {
        let mut s = Summary::default();
        for Action::KeyPair(a) in &plan.actions {
            match a.op {
                KeyPairOp::Create => s.create += 1,
                KeyPairOp::Import { .. } => s.import += 1,
                KeyPairOp::FixMode { .. } => s.fix_mode += 1,
                KeyPairOp::Noop => s.noop += 1,
                KeyPairOp::Conflict(_) => s.conflict += 1,
            }
        }
        s
    }

    /// Counts of what apply did: only successful changes count as create/import/fix-mode.
    pub fn of_report(report: &Report) -> Self {
        let mut s = Summary {
            failed: Some(0),
            ..Summary::default()
        };
        for o in &report.outcomes {
            let Action::KeyPair(a) = &o.action;
            match (o.status, &a.op) {
                (Status::Done, KeyPairOp::Create) => s.create += 1,
                (Status::Done, KeyPairOp::Import { .. }) => s.import += 1,
                (Status::Done, KeyPairOp::FixMode { .. }) => s.fix_mode += 1,
                (Status::Unchanged, _) => s.noop += 1,
                (Status::Conflict, _) => s.conflict += 1,
                (Status::Failed | Status::Skipped, _) => *s.failed.get_or_insert(0) += 1,
                (Status::Done, KeyPairOp::Noop | KeyPairOp::Conflict(_)) => {}
            }
        }
        s
    }
}

struct Widths {
    name: usize,
    region: usize,
    file: usize,
}

fn widths<'a>(actions: impl Iterator<Item = &'a KeyPairAction>) -> Widths {
    let mut w = Widths {
        name: 4,
        region: 6,
        file: 4,
    };
    for a in actions {
        w.name = w.name.max(a.name.as_str().len());
        w.region = w.region.max(a.region.as_str().len());
        w.file = w.file.max(a.output_display.len());
    }
    w
}

fn line(out: &mut String, style: Style, a: &KeyPairAction, w: &Widths, tail: &str) {
    let (sym, color) = symbol(&a.op);
    let _ = writeln!(
        out,
        "  {} {:<nw$}  {:<rw$}  {:<fw$}  {}",
        style.paint(color, sym),
        a.name.as_str(),
        a.region.as_str(),
        a.output_display,
        tail,
        nw = w.name,
        rw = w.region,
        fw = w.file,
    );
}

/// The plan for people: one line per key pair and region, then a summary line.
pub fn plan_human(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    let w = widths(plan.actions.iter().map(|Action::KeyPair(a)| a));
    let _ = writeln!(out, "Plan for project {}:", plan.project);
    for Action::KeyPair(a) in &plan.actions {
        line(
            &mut out,
            style,
            a,
            &w,
            &format!("{}: {}", op_label(&a.op), a.reason),
        );
    }
    let s = Summary::of_plan(plan);
    if plan.has_changes() {
        let _ = writeln!(
            out,
            "Plan: {} to create, {} to import, {} to fix, {} unchanged, {} in conflict.",
            s.create, s.import, s.fix_mode, s.noop, s.conflict
        );
    } else {
        let _ = writeln!(
            out,
            "No changes. {} unchanged, {} in conflict.",
            s.noop, s.conflict
        );
    }
    let mut hinted = Vec::new();
    for Action::KeyPair(a) in &plan.actions {
        if let KeyPairOp::Conflict(c) = a.op
            && !hinted.contains(&(a.entry, c))
        {
            hinted.push((a.entry, c));
            let _ = writeln!(out, "hint: {} ({}): {}", a.name, c.as_str(), c.hint());
        }
    }
    out
}

/// What apply did, for people: the changes it tried (conflicts were shown with the plan),
/// then a summary line; "No changes" when there was nothing to do.
pub fn report_human(report: &Report, style: Style) -> String {
    let mut out = String::new();
    let tried: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::Done | Status::Failed | Status::Skipped))
        .collect();
    let s = Summary::of_report(report);
    if tried.is_empty() && s.conflict == 0 {
        let _ = writeln!(out, "No changes. {} key pair(s) in sync.", s.noop);
        return out;
    }
    let w = widths(tried.iter().map(|o| {
        let Action::KeyPair(a) = &o.action;
        a
    }));
    if !tried.is_empty() {
        let _ = writeln!(out, "Applied:");
    }
    for o in &tried {
        let Action::KeyPair(a) = &o.action;
        let what = match (o.status, &a.op) {
            (Status::Done, KeyPairOp::Create) => "created, private key saved (0400)".to_owned(),
            (Status::Done, KeyPairOp::Import { fix_mode: true, .. }) => {
                "imported, file set to 0400".to_owned()
            }
            (Status::Done, KeyPairOp::Import { .. }) => "imported".to_owned(),
            (Status::Done, KeyPairOp::FixMode { .. }) => "mode set to 0400".to_owned(),
            (status, op) => format!("{} ({})", status.as_str(), op_label(op)),
        };
        line(&mut out, style, a, &w, &what);
        if let Some(error) = &o.error {
            for l in error.lines() {
                let _ = writeln!(out, "      {l}");
            }
        }
    }
    let _ = writeln!(
        out,
        "Apply {}: {} created, {} imported, {} fixed, {} unchanged, {} in conflict, {} failed.",
        if report.succeeded() {
            "complete"
        } else {
            "incomplete"
        },
        s.create,
        s.import,
        s.fix_mode,
        s.noop,
        s.conflict,
        s.failed.unwrap_or(0)
    );
    out
}

#[derive(Serialize)]
struct JsonAction<'a> {
    action: &'static str,
    name: &'a str,
    region: &'a str,
    output: &'a str,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonDoc<'a> {
    project: &'a str,
    actions: Vec<JsonAction<'a>>,
    summary: Summary,
    api_calls: &'a BTreeMap<String, u64>,
}

fn json_action<'a>(
    a: &'a KeyPairAction,
    status: Option<Status>,
    error: Option<&'a str>,
) -> JsonAction<'a> {
    JsonAction {
        action: a.op.name(),
        name: a.name.as_str(),
        region: a.region.as_str(),
        output: &a.output_display,
        reason: a.reason.clone(),
        conflict: match a.op {
            KeyPairOp::Conflict(c) => Some(c.as_str()),
            _ => None,
        },
        status: status.map(Status::as_str),
        error,
    }
}

/// The plan as one JSON document.
pub fn plan_json(plan: &Plan, api_calls: &BTreeMap<String, u64>) -> String {
    let doc = JsonDoc {
        project: &plan.project,
        actions: plan
            .actions
            .iter()
            .map(|Action::KeyPair(a)| json_action(a, None, None))
            .collect(),
        summary: Summary::of_plan(plan),
        api_calls,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// The apply report as one JSON document.
pub fn report_json(project: &str, report: &Report, api_calls: &BTreeMap<String, u64>) -> String {
    let doc = JsonDoc {
        project,
        actions: report
            .outcomes
            .iter()
            .map(|o| {
                let Action::KeyPair(a) = &o.action;
                json_action(a, Some(o.status), o.error.as_deref())
            })
            .collect(),
        summary: Summary::of_report(report),
        api_calls,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}
