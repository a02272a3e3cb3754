//! Replays the Kubernetes HPA controller unit tests (transcribed in
//! ../shared/data/autoscaler-cases/k8s_hpa_controller_cases.json) against
//! `vane::rules::hpa::reconcile`: desired replicas and condition reasons.

mod common;

use serde_json::Value;
use vane::rules::hpa::{ControllerBehavior, ControllerInput, Source, TOLERANCE, reconcile};

/// Kubernetes quantities as the tests write them: `15.0` = 15000m, `6666m`.
fn milli(q: &Value) -> i64 {
    let s = q.as_str().unwrap();
    match s.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => (s.parse::<f64>().unwrap() * 1000.0).round() as i64,
    }
}

fn metric(m: &Value, case: &Value) -> Option<Source> {
    let levels: Vec<i64> = case["reported_levels_milli"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let names: Vec<String> = case["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let kind = m["type"].as_str().unwrap();
    let spec = match kind {
        "Resource" => &m["resource"],
        "ContainerResource" => &m["containerResource"],
        "Pods" => &m["pods"],
        "Object" => &m["object"],
        "External" => &m["external"],
        _ => return None,
    };
    let target = &spec["target"];
    let per_pod = target["type"] == "AverageValue";
    Some(match kind {
        "Resource" | "ContainerResource" => Source::Resource {
            usage: names.iter().cloned().zip(levels.iter().copied()).collect(),
            target_percent: target["averageUtilization"].as_i64().unwrap() as i32,
            cpu: true,
        },
        "Pods" => Source::Pods {
            values: names.iter().cloned().zip(levels.iter().copied()).collect(),
            target: milli(&target["averageValue"]),
        },
        "Object" if per_pod => Source::ObjectPerPod {
            value: levels[0],
            target_per_pod: milli(&target["averageValue"]),
        },
        "Object" => Source::Object {
            value: levels[0],
            target: milli(&target["value"]),
        },
        _ if per_pod => Source::ExternalPerPod {
            values: levels,
            target_per_pod: milli(&target["averageValue"]),
        },
        _ => Source::External {
            values: levels,
            target: milli(&target["value"]),
        },
    })
}

fn behavior(case: &Value) -> Option<ControllerBehavior> {
    let b = case.get("behavior").filter(|b| !b.is_null())?;
    let up = &b["scaleUp"];
    Some(ControllerBehavior {
        scale_up_stabilization_s: up["stabilizationWindowSeconds"].as_i64().unwrap_or(0),
        scale_down_stabilization_s: b["scaleDown"]["stabilizationWindowSeconds"]
            .as_i64()
            .unwrap_or(300),
        scale_up_pods: up["pods_policy"]["value"].as_i64().map(|v| v as i32),
        scale_up_percent: up["percent_policy"]["value"].as_i64().map(|v| v as i32),
    })
}

#[test]
fn upstream_controller_cases_reproduce() {
    let path = common::shared_data("autoscaler-cases/k8s_hpa_controller_cases.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let factor = doc["semantics"]["defaults"]["scaleUpLimitFactor_override_in_tests"]
        .as_f64()
        .unwrap();
    let cases = doc["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let input = ControllerInput {
            min_replicas: case["min_replicas"].as_i64().unwrap() as i32,
            max_replicas: case["max_replicas"].as_i64().unwrap() as i32,
            spec_replicas: case["spec_replicas"].as_i64().unwrap() as i32,
            status_replicas: case["status_replicas"].as_i64().unwrap() as i32,
            metrics: case["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| metric(m, case))
                .collect(),
            pods: common::hpa_pods(case, "cpu_request_milli", 1),
            history: case["prior_recommendations"].as_array().map(|a| {
                a.iter()
                    .map(|r| r["recommendation"].as_i64().unwrap_or(0) as i32)
                    .collect()
            }),
            behavior: behavior(case),
        };
        let got = reconcile(&input, factor, TOLERANCE);
        let want_desired = case["expected_desired_replicas"].as_i64().unwrap() as i32;
        let mut problems = Vec::new();
        if got.desired != want_desired {
            problems.push(format!("desired {} (want {want_desired})", got.desired));
        }
        for c in case["expected_conditions"].as_array().unwrap() {
            let reason = c["reason"].as_str().unwrap();
            let ours = match c["type"].as_str().unwrap() {
                "AbleToScale" => Some(got.able_to_scale),
                "ScalingActive" => Some(got.scaling_active),
                "ScalingLimited" => got.scaling_limited,
                _ => None,
            };
            if ours != Some(reason) {
                problems.push(format!("{} {:?} (want {reason})", c["type"], ours));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}",
                case["test_name"].as_str().unwrap(),
                problems.join("; ")
            ));
        }
    }
    eprintln!(
        "HPA controller: {} of {} upstream cases reproduce exactly",
        cases.len() - failures.len(),
        cases.len()
    );
    assert_eq!(cases.len(), 36);
    assert!(failures.is_empty(), "{failures:#?}");
}
