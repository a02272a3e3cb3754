//! Converts Cloud Foundry App Autoscaler policies (JSON) into Vane rule files:
//! `vane import-cf POLICY.json --name web --app web.apps.example.com`.
//!
//! Scaling rules become step rules (`breach_duration_secs` → `for`, the
//! largest `cool_down_secs` → `cooldown`, no stabilization, as in the
//! autoscaler); recurring schedules become cron schedules in the policy's time
//! zone (`days_of_week` 1 = Monday), bounded by `start_date`/`end_date`;
//! specific dates become date ranges. Metrics without a Vane counterpart
//! (disk, custom metrics, CPU entitlement) are reported, not guessed.

use std::fmt::Write as _;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use serde_json::Value;

fn metric(cf: &str) -> Option<&'static str> {
    Some(match cf {
        "memoryused" => "memory_mb",
        "memoryutil" => "memory_pct",
        "cpu" => "cpu_pct",
        "throughput" => "rps",
        "responsetime" => "response_time_ms",
        _ => return None,
    })
}

fn local_to_utc(tz: Tz, t: NaiveDateTime) -> Option<String> {
    tz.from_local_datetime(&t).earliest().map(|d| {
        d.with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    })
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The YAML of one Vane policy, or every reason the policy cannot be converted.
pub fn convert(json: &str, name: &str, app: &str) -> Result<String, Vec<String>> {
    let v: Value = serde_json::from_str(json).map_err(|e| vec![format!("not JSON: {e}")])?;
    // Service-broker payloads wrap the policy.
    let p = ["scaling_policy", "default_policy"]
        .iter()
        .find_map(|k| v.get(*k))
        .unwrap_or(&v);
    let mut errors = Vec::new();
    let int = |k: &str| p.get(k).and_then(Value::as_i64);
    let (Some(min), Some(max)) = (int("instance_min_count"), int("instance_max_count")) else {
        return Err(vec![
            "instance_min_count and instance_max_count are required".into(),
        ]);
    };
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Converted from a Cloud Foundry App Autoscaler policy by `vane import-cf`."
    );
    let _ = writeln!(
        y,
        "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata:\n  name: {}\nspec:",
        quoted(name)
    );
    let _ = writeln!(
        y,
        "  selector:\n    apps: [{}]\n  min: {min}\n  max: {max}\n  algorithm: step\n  steps:",
        quoted(app)
    );
    let rules = p
        .get("scaling_rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut cooldown = 0;
    for (i, r) in rules.iter().enumerate() {
        let cf = r.get("metric_type").and_then(Value::as_str).unwrap_or("");
        let Some(m) = metric(cf) else {
            errors.push(format!("scaling_rules[{i}]: metric_type `{cf}` has no Vane metric (Vane has memoryused, memoryutil, cpu, throughput, responsetime)"));
            continue;
        };
        let op = r.get("operator").and_then(Value::as_str).unwrap_or(">");
        let threshold = r.get("threshold").and_then(Value::as_f64).unwrap_or(0.0);
        let breach = r
            .get("breach_duration_secs")
            .and_then(Value::as_i64)
            .unwrap_or(120);
        let adjust = r.get("adjustment").and_then(Value::as_str).unwrap_or("");
        cooldown = cooldown.max(
            r.get("cool_down_secs")
                .and_then(Value::as_i64)
                .unwrap_or(300),
        );
        let _ = writeln!(
            y,
            "    - {{metric: {m}, operator: {}, threshold: {threshold}, for: {breach}s, adjust: {}}}",
            quoted(op),
            quoted(adjust)
        );
    }
    if rules.is_empty() {
        // A schedule-only policy: keep the step list valid with a rule that never fires.
        let _ = writeln!(
            y,
            "    - {{metric: rps, operator: \"<\", threshold: -1, for: 0s, adjust: \"+1\"}}"
        );
    }
    let _ = writeln!(
        y,
        "  behavior:\n    cooldown: {cooldown}s\n    scaleDown: {{stabilization: 0s}}"
    );
    if let Some(s) = p.get("schedules") {
        let tz_name = s.get("timezone").and_then(Value::as_str).unwrap_or("UTC");
        let tz: Tz = match tz_name.parse() {
            Ok(tz) => tz,
            Err(_) => {
                errors.push(format!(
                    "schedules.timezone `{tz_name}` is not an IANA time zone"
                ));
                Tz::UTC
            }
        };
        let _ = writeln!(y, "  schedules:");
        for (i, r) in s
            .get("recurring_schedule")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let time = |k: &str| {
                r.get(k)
                    .and_then(Value::as_str)
                    .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok())
            };
            let (Some(start), Some(end)) = (time("start_time"), time("end_time")) else {
                errors.push(format!(
                    "recurring_schedule[{i}]: start_time and end_time must be HH:MM"
                ));
                continue;
            };
            let minutes = (end - start).num_minutes().rem_euclid(24 * 60);
            let list = |k: &str| {
                r.get(k)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_i64).collect::<Vec<_>>())
            };
            const DAYS: [&str; 7] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
            let (dom, dow) = match (list("days_of_month"), list("days_of_week")) {
                (Some(d), _) => (
                    d.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
                    "*".to_string(),
                ),
                (None, Some(w)) if w.iter().all(|d| (1..=7).contains(d)) => (
                    "*".to_string(),
                    w.iter()
                        .map(|d| DAYS[(*d - 1) as usize])
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => {
                    errors.push(format!(
                        "recurring_schedule[{i}]: needs days_of_week (1-7) or days_of_month"
                    ));
                    continue;
                }
            };
            let cron = format!(
                "{} {} {dom} * {dow}",
                start.format("%-M"),
                start.format("%-H")
            );
            let _ = write!(
                y,
                "    - {{name: recurring-{i}, cron: {}, timezone: {}, duration: {minutes}m",
                quoted(&cron),
                quoted(tz_name)
            );
            let date = |k: &str| {
                r.get(k)
                    .and_then(Value::as_str)
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            };
            if let (Some(from), Some(to)) = (date("start_date"), date("end_date")) {
                let from = local_to_utc(tz, from.and_time(NaiveTime::MIN));
                let to = to
                    .succ_opt()
                    .and_then(|t| local_to_utc(tz, t.and_time(NaiveTime::MIN)));
                if let (Some(f), Some(t)) = (from, to) {
                    let _ = write!(y, ", from: {}, to: {}", quoted(&f), quoted(&t));
                }
            }
            write_bounds(&mut y, r);
        }
        for (i, r) in s
            .get("specific_date")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at = |k: &str| {
                r.get(k)
                    .and_then(Value::as_str)
                    .and_then(|t| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M").ok())
                    .and_then(|t| local_to_utc(tz, t))
            };
            let (Some(from), Some(to)) = (at("start_date_time"), at("end_date_time")) else {
                errors.push(format!(
                    "specific_date[{i}]: start_date_time and end_date_time must be YYYY-MM-DDTHH:MM"
                ));
                continue;
            };
            let _ = write!(
                y,
                "    - {{name: specific-date-{i}, from: {}, to: {}",
                quoted(&from),
                quoted(&to)
            );
            write_bounds(&mut y, r);
        }
    }
    if errors.is_empty() {
        Ok(y)
    } else {
        Err(errors)
    }
}

fn write_bounds(y: &mut String, r: &Value) {
    for (cf, vane) in [("instance_min_count", "min"), ("instance_max_count", "max")] {
        if let Some(n) = r.get(cf).and_then(Value::as_i64) {
            let _ = write!(y, ", {vane}: {n}");
        }
    }
    let _ = writeln!(y, "}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::load_str;

    fn policy(file: &str) -> String {
        let path = format!(
            "{}/../shared/data/autoscaler-cases/cf-app-autoscaler-policies/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn every_upstream_policy_converts_or_says_why() {
        let dir = format!(
            "{}/../shared/data/autoscaler-cases/cf-app-autoscaler-policies",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.ends_with(".json") && !f.starts_with("schema__"))
            .collect();
        files.sort();
        let mut valid = 0;
        for f in &files {
            let outcome = convert(&policy(f), "p", "app")
                .map_err(|e| e.join("; "))
                .and_then(|yaml| {
                    load_str(&yaml, f).map(|_| ()).map_err(|e| {
                        e.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                });
            match (f.as_str(), outcome) {
                // Custom metrics have no Vane counterpart.
                (
                    "acceptance__policy-with-configuration.json" | "docs__customemetricpolicy.json",
                    Err(e),
                ) => assert!(e.contains("has no Vane metric"), "{f}: {e}"),
                // The upstream invalid policies are rejected, by Vane's own checks.
                ("acceptance__invalid.json", Err(e)) => {
                    assert!(e.contains("`+a1` is not an adjustment"), "{f}: {e}")
                }
                ("integration__fakeInvalidPolicy.json", Err(e)) => {
                    assert!(e.contains("min (10) is larger than max (4)"), "{f}: {e}")
                }
                // A printf template upstream (`"timezone": "%s"`), not a policy.
                ("integration__fakePolicyWithSpecificDateSchedule.json", Err(e)) => {
                    assert!(e.contains("`%s` is not an IANA time zone"), "{f}: {e}")
                }
                (_, Ok(())) => valid += 1,
                (_, Err(e)) => panic!("{f}: {e}"),
            }
        }
        assert_eq!(valid, files.len() - 5);
    }

    #[test]
    fn full_policy_maps_rules_and_schedules() {
        let yaml = convert(&policy("docs__fullpolicy.json"), "web", "web-guid").unwrap();
        let p = load_str(&yaml, "web.yaml").unwrap().remove(0);
        assert_eq!(
            (p.min, p.max, p.steps.len(), p.schedules.len()),
            (1, 4, 2, 3)
        );
        assert_eq!(p.cooldown_ns, 300_000_000_000);
        assert!(
            yaml.contains(
                "cron: \"0 10 * * MON,TUE,WED\", timezone: \"Asia/Shanghai\", duration: 480m"
            ),
            "{yaml}"
        );
        // 2099-01-01T10:00 in Shanghai is 02:00 UTC.
        assert!(yaml.contains("from: \"2099-01-01T02:00:00Z\""), "{yaml}");
        // Wednesday 10:30 in Shanghai (02:30 UTC): the first recurring schedule applies.
        let t = chrono::DateTime::parse_from_rfc3339("2025-12-03T02:30:00Z")
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap();
        assert!(p.schedules[0].active_at(t));
        assert!(
            !p.schedules[1].active_at(t),
            "the second is bounded to 2099"
        );
    }
}
