//! Replays the Kubernetes HPA replica-calculator unit tests (transcribed in
//! ../shared/data/autoscaler-cases/k8s_hpa_replica_calculator_cases.json)
//! against Vane's reference calculator, `vane::rules::hpa`.

mod common;

use std::collections::BTreeMap;

use serde_json::Value;
use vane::rules::hpa::{Outcome, Source, TOLERANCE, replicas};

fn source(case: &Value, containers: i64) -> Source {
    let kind = case["metric_source_type"].as_str().unwrap();
    let values: Vec<i64> = case["metric_values_milli"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_i64().unwrap()).collect())
        .unwrap_or_default();
    let target = case["target_value_milli"].as_i64();
    let per_pod = case["target_average_value_milli"].as_i64();
    if kind == "Resource" {
        let usage: BTreeMap<String, i64> = case["pod_metrics"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        (
                            m["pod"].as_str().unwrap().to_string(),
                            m["usage_milli_per_container"].as_i64().unwrap() * containers,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let cpu = case["resource"] == "cpu";
        return Source::Resource {
            usage,
            target_percent: case["target_utilization_percent"].as_i64().unwrap() as i32,
            cpu,
        };
    }
    if kind.starts_with("Pods") {
        let names: Vec<String> = case["pods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        return Source::Pods {
            values: names.into_iter().zip(values).collect(),
            target: target.unwrap(),
        };
    }
    if kind.starts_with("ObjectPerPod") {
        return Source::ObjectPerPod {
            value: values[0],
            target_per_pod: per_pod.or(target).unwrap(),
        };
    }
    if kind.starts_with("Object") {
        return Source::Object {
            value: values[0],
            target: target.unwrap(),
        };
    }
    if kind.starts_with("ExternalPerPod") {
        return Source::ExternalPerPod {
            values,
            target_per_pod: per_pod.or(target).unwrap(),
        };
    }
    if kind.starts_with("External") {
        return Source::External {
            values,
            target: target.unwrap(),
        };
    }
    panic!("unknown metric source {kind}");
}

fn check(case: &Value, got: &Result<Outcome, String>) -> Result<(), String> {
    match (case["expected_error_contains"].as_str(), got) {
        (Some(want), Err(e)) if e.contains(want) => return Ok(()),
        (Some(want), other) => {
            return Err(format!("want error containing {want:?}, got {other:?}"));
        }
        (None, Err(e)) => return Err(format!("unexpected error: {e}")),
        (None, Ok(_)) => {}
    }
    let Ok(o) = got else { unreachable!() };
    let want_replicas = case["expected_replicas"].as_i64().unwrap() as i32;
    let want_util = case["expected_utilization_percent"]
        .as_i64()
        .map(|u| u as i32);
    let want_usage = case["expected_raw_value_milli"]
        .as_i64()
        .or(case["expected_usage_milli"].as_i64());
    if o.replicas != want_replicas
        || (want_util.is_some() && o.utilization != want_util)
        || want_usage.is_some_and(|u| u != o.usage)
    {
        return Err(format!(
            "got {o:?}, want replicas {want_replicas} utilization {want_util:?} usage {want_usage:?}"
        ));
    }
    Ok(())
}

#[test]
fn upstream_replica_calculator_cases_reproduce() {
    let path = common::shared_data("autoscaler-cases/k8s_hpa_replica_calculator_cases.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(doc["semantics"]["tolerance"].as_f64(), Some(TOLERANCE));
    let cases = doc["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let containers = case["containers_per_pod"].as_i64().unwrap_or(1);
        let current = case["current_replicas"].as_i64().unwrap() as i32;
        let got = replicas(
            current,
            &common::hpa_pods(case, "cpu_request_milli_per_container", containers),
            &source(case, containers),
            TOLERANCE,
        );
        if let Err(why) = check(case, &got) {
            failures.push(format!("{}: {why}", case["test_name"].as_str().unwrap()));
        }
    }
    eprintln!(
        "HPA replica calculator: {} of {} upstream cases reproduce exactly",
        cases.len() - failures.len(),
        cases.len()
    );
    assert_eq!(cases.len(), 50);
    assert!(failures.is_empty(), "{failures:#?}");
}
