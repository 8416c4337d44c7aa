//! Plans and reports as one JSON document each (the shape `docs/json.md` describes).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Summary, problem_text};
use crate::plan::{Action, Conflict, Plan};
use crate::report::{Report, Status};

#[derive(Serialize)]
struct JsonAction<'a> {
    action: &'static str,
    name: &'a str,
    region: String,
    /// The member account's 12-digit id; `null` in the caller's own account.
    account: Option<&'a str>,
    /// The member account's name in the manifest; `null` in the caller's own account.
    account_name: Option<&'a str>,
    output: Option<&'a str>,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct JsonDoc<'a> {
    project: &'a str,
    actions: Vec<JsonAction<'a>>,
    summary: Summary,
    api_calls: &'a BTreeMap<String, u64>,
}

fn json_action(a: &Action, status: Option<Status>, error: Option<String>) -> JsonAction<'_> {
    JsonAction {
        action: a.change().as_str(),
        name: a.name().as_str(),
        region: a.scope().region.to_string(),
        account: a.scope().account.id(),
        account_name: a.scope().account.name(),
        output: (!a.file_display().is_empty()).then_some(a.file_display()),
        reason: a.reason.clone(),
        conflict: a.conflict().map(Conflict::as_str),
        status: status.map(Status::as_str),
        error,
    }
}

/// The plan as one JSON document.
pub(crate) fn plan_json(plan: &Plan, api_calls: &BTreeMap<String, u64>) -> serde_json::Value {
    let doc = JsonDoc {
        project: &plan.project,
        actions: plan
            .actions
            .iter()
            .map(|a| json_action(a, None, None))
            .collect(),
        summary: Summary::of_plan(plan),
        api_calls,
    };
    serde_json::to_value(&doc).unwrap_or_default()
}

/// The apply report as one JSON document.
pub(crate) fn report_json(
    project: &str,
    report: &Report,
    api_calls: &BTreeMap<String, u64>,
) -> serde_json::Value {
    let doc = JsonDoc {
        project,
        actions: report
            .outcomes
            .iter()
            .map(|o| {
                json_action(
                    &o.action,
                    Some(o.status),
                    o.error.as_ref().map(problem_text),
                )
            })
            .collect(),
        summary: Summary::of_report(report),
        api_calls,
    };
    serde_json::to_value(&doc).unwrap_or_default()
}
