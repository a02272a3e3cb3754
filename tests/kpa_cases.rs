//! Replays Knative's KPA decider unit tests (transcribed in
//! ../shared/data/autoscaler-cases/knative_kpa_autoscaler_cases.json) against
//! `vane::rules::kpa`: desired pods, excess burst capacity (±1, as upstream),
//! validity and panic mode, step by step with state kept across steps.

mod common;

use serde_json::Value;
use vane::rules::kpa::{DeciderSpec, Kpa};

fn apply(spec: &mut DeciderSpec, v: &Value) {
    let f = |k: &str| v.get(k).and_then(Value::as_f64);
    if let Some(x) = f("target_value") {
        spec.target_value = x;
        spec.total_value = x / 0.75;
    }
    if let Some(x) = f("total_value") {
        spec.total_value = x;
    }
    if let Some(x) = f("target_burst_capacity") {
        spec.target_burst_capacity = x;
    }
    if let Some(x) = f("panic_threshold") {
        spec.panic_threshold = x;
    }
    if let Some(x) = f("stable_window_s") {
        spec.stable_window_s = x;
    }
    if let Some(x) = f("max_scale_up_rate") {
        spec.max_scale_up_rate = x;
    }
    if let Some(x) = f("max_scale_down_rate") {
        spec.max_scale_down_rate = x;
    }
    if let Some(x) = f("scale_down_delay_s") {
        spec.scale_down_delay_s = x;
    }
    if let Some(x) = v.get("reachable").and_then(Value::as_bool) {
        spec.reachable = x;
    }
    if let Some(x) = f("activation_scale") {
        spec.activation_scale = x as i32;
    }
}

#[test]
fn upstream_kpa_cases_reproduce() {
    let path = common::shared_data("autoscaler-cases/knative_kpa_autoscaler_cases.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    let mut steps_total = 0;
    // Subtests that share one autoscaler upstream share it here too.
    let mut previous: Option<(String, Kpa)> = None;
    for case in cases {
        let name = case["test_name"].as_str().unwrap();
        let mut spec = DeciderSpec {
            max_scale_up_rate: 10.0,
            max_scale_down_rate: 10.0,
            ..DeciderSpec::default()
        };
        apply(&mut spec, &case["decider_spec"]);
        let continues = case["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("continues the instance"));
        let mut kpa = match previous.take() {
            Some((_, k)) if continues => k,
            _ => Kpa::new(spec),
        };
        if let Some(init) = case.get("initial_state").filter(|v| !v.is_null()) {
            kpa.panic_since = init["panic_started_s_ago"].as_f64().map(|ago| -ago);
            kpa.max_panic_pods = init["max_panic_pods"].as_i64().unwrap_or(0) as i32;
        }
        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            if let Some(action) = step["action"].as_str() {
                if action.contains("reachable=false") {
                    kpa.spec.reachable = false;
                }
                if step.get("decider_spec").is_some() {
                    apply(&mut kpa.spec, &step["decider_spec"]);
                }
                continue;
            }
            steps_total += 1;
            let now = step["t_offset_s"].as_f64().unwrap();
            let ready = if step.get("ready_pods_error").is_some() {
                None
            } else {
                Some(step["ready_pods"].as_u64().unwrap() as u32)
            };
            let observed = if step.get("metrics_error").is_some() {
                None
            } else {
                Some((
                    step["stable"].as_f64().unwrap(),
                    step["panic"].as_f64().unwrap(),
                ))
            };
            let got = kpa.scale(now, ready, observed);
            let mut problems = Vec::new();
            let want = step["expected_desired_pods"].as_i64().unwrap() as i32;
            if got.desired != want {
                problems.push(format!("desired {} (want {want})", got.desired));
            }
            if let Some(valid) = step["expected_scale_valid"].as_bool()
                && got.valid != valid
            {
                problems.push(format!("valid {} (want {valid})", got.valid));
            }
            if let Some(ebc) = step["expected_excess_burst_capacity"].as_i64()
                && (i64::from(got.excess_burst_capacity) - ebc).abs() > 1
            {
                problems.push(format!(
                    "excess burst capacity {} (want {ebc})",
                    got.excess_burst_capacity
                ));
            }
            if let Some(panic) = step["panic_mode"].as_bool()
                && kpa.panic_since.is_some() != panic
            {
                problems.push(format!(
                    "panic {} (want {panic})",
                    kpa.panic_since.is_some()
                ));
            }
            if !problems.is_empty() {
                failures.push(format!("{name} step {i}: {}", problems.join("; ")));
            }
        }
        previous = Some((name.to_string(), kpa));
    }
    eprintln!(
        "KPA decider: {} of {} upstream cases ({} steps) reproduce exactly",
        cases.len()
            - failures
                .iter()
                .map(|f| f.split(" step ").next().unwrap_or(""))
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
        cases.len(),
        steps_total
    );
    assert_eq!(cases.len(), 33);
    assert!(failures.is_empty(), "{failures:#?}");
}
