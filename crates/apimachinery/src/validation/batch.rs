//! `batch/v1`: Jobs and CronJobs.

use serde_json::Value;

use super::field::{Errs, go_string_map, invalid, key, not_supported, raw, required, too_long};
use super::formats;
use super::json::{Node, same};
use super::meta::{self, MetaRules, NameRule, Selector};
use super::pod;
use super::{Input, meta_create_or_update};

const RULES: MetaRules = MetaRules::kube(NameRule::Subdomain);

fn nonnegative(node: &Node, errs: &mut Errs) -> Option<i64> {
    let v = node.int(errs)?;
    meta::validate_nonnegative(&node.path, v, errs);
    Some(v)
}

fn indexed(spec: &Node) -> bool {
    spec.field("completionMode").peek_str() == "Indexed"
}

/// `validateJobSpec`: counts, completion mode, policies, the template and its restart policy.
fn validate_job_spec(spec: &Node, errs: &mut Errs) {
    let parallelism = nonnegative(&spec.field("parallelism"), errs);
    let completions = nonnegative(&spec.field("completions"), errs);
    for field in [
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        nonnegative(&spec.field(field), errs);
    }
    let max_failed = nonnegative(&spec.field("maxFailedIndexes"), errs);
    let per_index = spec.field("backoffLimitPerIndex").peek_int();
    if max_failed.is_some() && per_index.is_none() {
        errs.push(required(
            &spec.field("backoffLimitPerIndex").path,
            "when maxFailedIndexes is specified",
        ));
    }
    validate_managed_by(&spec.field("managedBy"), errs);
    let mode = spec.field("completionMode");
    match mode.str(errs) {
        Some("Indexed") => validate_indexed(spec, parallelism, completions, max_failed, errs),
        Some("NonIndexed") | None => {
            if let Some(v) = per_index {
                errs.push(invalid(
                    &spec.field("backoffLimitPerIndex").path,
                    v,
                    "requires indexed completion mode",
                ));
            }
            if let Some(v) = max_failed {
                errs.push(invalid(
                    &spec.field("maxFailedIndexes").path,
                    v,
                    "requires indexed completion mode",
                ));
            }
        }
        Some(other) => errs.push(not_supported(&mode.path, other, &["NonIndexed", "Indexed"])),
    }
    let failure_policy = spec.field("podFailurePolicy").object(errs);
    if failure_policy.present() {
        validate_pod_failure_policy(&failure_policy, errs);
    }
    let success = spec.field("successPolicy").object(errs);
    if success.present() && !indexed(spec) {
        errs.push(invalid(
            &success.path,
            raw(success.value.map(Value::to_string).unwrap_or_default()),
            "requires indexed completion mode",
        ));
    }
    let replacement = spec.field("podReplacementPolicy");
    if let Some(p) = replacement.str(errs) {
        if failure_policy.present() {
            if p != "Failed" {
                errs.push(not_supported(&replacement.path, p, &["Failed"]));
            }
        } else if p != "Failed" && p != "TerminatingOrFailed" {
            errs.push(not_supported(&replacement.path, p, &["Failed", "TerminatingOrFailed"]));
        }
    }
    let template = spec.field("template").object(errs);
    pod::validate_pod_template_spec(&template, errs);
    let template_spec = template.field("spec");
    let restart = template_spec.field("restartPolicy");
    match restart.peek_str() {
        "Always" | "" => errs.push(required(&restart.path, "valid values: \"OnFailure\", \"Never\"")),
        "Never" => {}
        "OnFailure" if failure_policy.present() => errs.push(invalid(
            &restart.path,
            "OnFailure",
            "only \"Never\" is supported when podFailurePolicy is specified",
        )),
        "OnFailure" => {}
        other => errs.push(not_supported(&restart.path, other, &["OnFailure", "Never"])),
    }
}

fn validate_managed_by(node: &Node, errs: &mut Errs) {
    let Some(value) = node.str(errs) else { return };
    if value.is_empty() {
        errs.push(required(&node.path, ""));
    } else {
        for (bad, msg) in formats::is_domain_prefixed_path(value) {
            errs.push(invalid(&node.path, bad, &msg));
        }
    }
    if value.len() > 63 {
        errs.push(too_long(&node.path, 63));
    }
}

fn validate_indexed(
    spec: &Node,
    parallelism: Option<i64>,
    completions: Option<i64>,
    max_failed: Option<i64>,
    errs: &mut Errs,
) {
    if completions.is_none() {
        errs.push(required(
            &spec.field("completions").path,
            "when completion mode is Indexed",
        ));
    }
    if let Some(p) = parallelism.filter(|p| *p > 100_000) {
        errs.push(invalid(
            &spec.field("parallelism").path,
            p,
            "must be less than or equal to 100000 when completion mode is Indexed",
        ));
    }
    if let (Some(c), Some(m)) = (completions, max_failed)
        && m > c
    {
        errs.push(invalid(
            &spec.field("maxFailedIndexes").path,
            m,
            "must be less than or equal to completions",
        ));
    }
    if let Some(m) = max_failed.filter(|m| *m > 100_000) {
        errs.push(invalid(
            &spec.field("maxFailedIndexes").path,
            m,
            "must be less than or equal to 100000",
        ));
    }
}

fn validate_pod_failure_policy(policy: &Node, errs: &mut Errs) {
    let rules = policy.field("rules");
    if rules.len() > 20 {
        errs.push(super::field::too_many(&rules.path, rules.len(), 20));
    }
    for rule in rules.items(errs) {
        let rule = rule.object(errs);
        let action = rule.field("action");
        match action.string(errs) {
            "" => errs.push(required(
                &action.path,
                "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
            )),
            "Count" | "FailIndex" | "FailJob" | "Ignore" => {}
            other => errs.push(not_supported(
                &action.path,
                other,
                &["Count", "FailIndex", "FailJob", "Ignore"],
            )),
        }
        let on_exit = rule.field("onExitCodes").present();
        let on_conditions = rule.field("onPodConditions").len() > 0;
        if on_exit && on_conditions {
            errs.push(invalid(
                &rule.path,
                raw("field.OmitValueType{}"),
                "specifying both OnExitCodes and OnPodConditions is not supported",
            ));
        }
        if !on_exit && !on_conditions {
            errs.push(invalid(
                &rule.path,
                raw("field.OmitValueType{}"),
                "specifying one of OnExitCodes and OnPodConditions is required",
            ));
        }
    }
}

/// Upstream's selector generation check: with a server-generated selector, the template must
/// carry the job's uid and name labels and the selector must select exactly them.
fn validate_generated_selector(obj: &Node, errs: &mut Errs) {
    let spec = obj.field("spec");
    let uid = obj.field("metadata").field("uid").peek_str();
    let name = obj.field("metadata").field("name").peek_str();
    if spec.field("manualSelector").peek_bool() || !spec.field("selector").present() || uid.is_empty() {
        return;
    }
    let labels_node = spec.field("template").field("metadata").field("labels");
    let labels = labels_node.peek_string_map().unwrap_or_default();
    let expected = [
        ("controller-uid", uid),
        ("job-name", name),
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
    ];
    for (label, want) in expected {
        if labels.get(label).is_some_and(|v| *v != want) {
            errs.push(invalid(
                &key("spec.template.metadata.labels", label),
                raw(go_string_map(Some(&labels))),
                &format!("must be '{want}'"),
            ));
        }
    }
    let expected_set = expected.iter().copied().collect();
    if let Some(selector) = Selector::read(&spec.field("selector"))
        && !selector.unparseable
        && !selector.matches(&expected_set)
    {
        errs.push(invalid(
            "spec.selector",
            raw(selector.go_repr()),
            "`selector` not auto-generated",
        ));
    }
}

pub(super) fn validate_job(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_create_or_update(input, RULES, errs);
    validate_generated_selector(&obj, errs);
    let spec = obj.field("spec").object(errs);
    validate_job_spec(&spec, errs);
    let selector_node = spec.field("selector");
    if selector_node.present() {
        meta::validate_label_selector(&selector_node, errs);
    } else {
        errs.push(required(&selector_node.path, ""));
    }
    let selector = Selector::read(&selector_node);
    let labels = spec
        .field("template")
        .field("metadata")
        .field("labels")
        .peek_string_map();
    let matches = match &selector {
        Some(s) if s.unparseable => true,
        Some(s) => s.is_empty() || s.matches(&labels.clone().unwrap_or_default()),
        None => false,
    };
    if !matches {
        errs.push(invalid(
            "spec.template.metadata.labels",
            raw(go_string_map(labels.as_ref())),
            "`selector` does not match template `labels`",
        ));
    }
    match input.old() {
        None => validate_indexed_name(&obj, &spec, errs),
        Some(old) => validate_job_update(&spec, &old.field("spec"), errs),
    }
}

fn validate_indexed_name(obj: &Node, spec: &Node, errs: &mut Errs) {
    let completions = spec.field("completions").peek_int().unwrap_or(0);
    if indexed(spec) && completions > 0 {
        let name = obj.field("metadata").field("name").peek_str();
        let hostname = format!("{name}-{}", completions - 1);
        if !formats::is_dns1123_label(&hostname).is_empty() {
            errs.push(invalid(
                "metadata.name",
                name,
                &format!("will not able to create pod with invalid DNS label: {hostname}"),
            ));
        }
    }
}

/// Completions, selector, template (bar the scheduling directives of a never-started
/// suspended job) and the policies may not change.
fn validate_job_update(spec: &Node, old: &Node, errs: &mut Errs) {
    let completions = spec.field("completions");
    let old_completions = old.field("completions");
    let shown = completions.peek_int().map_or(raw("null"), Into::into);
    if !indexed(spec) {
        if !same(completions.value, old_completions.value) {
            errs.push(invalid(&completions.path, shown, "field is immutable"));
        }
    } else if let (Some(new), Some(previous)) = (completions.peek_int(), old_completions.peek_int())
        && new != previous
        && Some(new) != spec.field("parallelism").peek_int()
    {
        errs.push(invalid(
            &completions.path,
            shown,
            "can only be modified in tandem with spec.parallelism",
        ));
    }
    let selector = spec.field("selector");
    if !same(selector.value, old.field("selector").value) {
        let shown = Selector::read(&selector).map_or_else(|| "(*v1.LabelSelector)(nil)".to_string(), |s| s.go_repr());
        errs.push(invalid(&selector.path, raw(shown), "field is immutable"));
    }
    let mutable_scheduling = old.field("suspend").peek_bool();
    let strip = |n: &Node| -> Value {
        let mut v = n.field("template").value.cloned().unwrap_or(Value::Null);
        if mutable_scheduling {
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
            }
            if let Some(s) = v.get_mut("spec").and_then(Value::as_object_mut) {
                for f in ["nodeSelector", "tolerations", "schedulingGates"] {
                    s.remove(f);
                }
                if let Some(a) = s.get_mut("affinity").and_then(Value::as_object_mut) {
                    a.remove("nodeAffinity");
                }
            }
        }
        v
    };
    let (new_template, old_template) = (strip(spec), strip(old));
    if !same(Some(&new_template), Some(&old_template)) {
        errs.push(invalid(
            &spec.field("template").path,
            raw(spec.field("template").value.map(Value::to_string).unwrap_or_default()),
            "field is immutable",
        ));
    }
    for field in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        let node = spec.field(field);
        if !same(node.value, old.field(field).value) {
            let shown = match node.value {
                None => raw("null"),
                Some(Value::String(s)) => s.into(),
                Some(v) if v.is_i64() => v.as_i64().unwrap_or(0).into(),
                Some(v) => raw(v.to_string()),
            };
            errs.push(invalid(&node.path, shown, "field is immutable"));
        }
    }
}

/// Whether `zone` names a time zone in the host's IANA database (format-checked when there is none).
pub(super) fn time_zone_exists(zone: &str) -> bool {
    if zone == "UTC" || zone == "Local" {
        return true;
    }
    if !zone.split('/').all(zone_part_ok) {
        return false;
    }
    let db = jiff::tz::db();
    if db.is_definitively_empty() {
        return true;
    }
    db.get(zone).is_ok()
}

/// One `/`-separated part of an IANA name, as upstream checks it before loading the zone.
fn zone_part_ok(part: &str) -> bool {
    part != "."
        && part != ".."
        && !part.starts_with('-')
        && (1..=14).contains(&part.len())
        && part.bytes().all(|c| c.is_ascii_alphanumeric() || b".-_+".contains(&c))
}

fn validate_time_zone(node: &Node, errs: &mut Errs) {
    let Some(zone) = node.str(errs) else { return };
    if zone.is_empty() {
        errs.push(invalid(&node.path, zone, "timeZone must be nil or non-empty string"));
        return;
    }
    if !zone.split('/').all(zone_part_ok) {
        errs.push(invalid(&node.path, zone, &format!("unknown time zone {zone}")));
        return;
    }
    if zone.eq_ignore_ascii_case("Local") {
        errs.push(invalid(
            &node.path,
            zone,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if !time_zone_exists(zone) {
        errs.push(invalid(&node.path, zone, &format!("unknown time zone {zone}")));
    }
}

pub(super) fn validate_cron_job(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_create_or_update(input, RULES, errs);
    let spec = obj.field("spec").object(errs);
    let old_spec = input.old().map(|o| o.field("spec"));
    let schedule = spec.field("schedule");
    let s = schedule.string(errs);
    if s.is_empty() {
        errs.push(required(&schedule.path, ""));
    } else {
        if let Err(e) = super::cron::parse_standard(s) {
            errs.push(invalid(&schedule.path, s, &e));
        }
        let allow_tz = old_spec
            .as_ref()
            .is_some_and(|o| o.field("schedule").peek_str().contains("TZ"));
        if allow_tz && s.contains("TZ") && spec.field("timeZone").present() {
            errs.push(invalid(
                &schedule.path,
                s,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && s.contains("TZ") {
            errs.push(invalid(
                &schedule.path,
                s,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    nonnegative(&spec.field("startingDeadlineSeconds"), errs);
    let zone = spec.field("timeZone");
    if old_spec
        .as_ref()
        .is_none_or(|o| !same(zone.value, o.field("timeZone").value))
    {
        validate_time_zone(&zone, errs);
    }
    let policy = spec.field("concurrencyPolicy");
    if let Some(p) = policy.str(errs)
        && !["Allow", "Forbid", "Replace"].contains(&p)
    {
        if p.is_empty() {
            errs.push(required(&policy.path, ""));
        } else {
            errs.push(not_supported(&policy.path, p, &["Allow", "Forbid", "Replace"]));
        }
    }
    validate_job_template(&spec.field("jobTemplate").object(errs), errs);
    for field in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        nonnegative(&spec.field(field), errs);
    }
    let name = obj.field("metadata").field("name").peek_str();
    if input.old.is_none() && name.len() > 52 {
        errs.push(invalid("metadata.name", name, "must be no more than 52 characters"));
    }
}

fn validate_job_template(template: &Node, errs: &mut Errs) {
    let spec = template.field("spec").object(errs);
    validate_job_spec(&spec, errs);
    let selector = spec.field("selector");
    if let Some(s) = Selector::read(&selector) {
        errs.push(invalid(
            &selector.path,
            raw(s.go_repr()),
            "`selector` will be auto-generated",
        ));
    }
    let manual = spec.field("manualSelector");
    if manual.bool(errs) == Some(true) {
        errs.push(not_supported(&manual.path, true, &["nil", "false"]));
    }
}
