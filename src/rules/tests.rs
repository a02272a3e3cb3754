//! The engine, one constraint at a time, driven with explicit windows and times.

use super::engine::{AppState, Observation, decide};
use super::load::load_str;
use super::policy::Policy;
use crate::model::{LatencyMs, WindowStats};

const S: i64 = 1_000_000_000;

fn policy(spec: &str) -> Policy {
    let yaml =
        format!("apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {{name: web}}\nspec:\n{spec}");
    let mut p = load_str(&yaml, "test.yaml").unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    p.remove(0)
}

fn window(rps: f64, p99: Option<f64>) -> WindowStats {
    WindowStats {
        requests: (rps * 10.0) as u64,
        rps,
        latency_ms: LatencyMs {
            p99,
            ..LatencyMs::default()
        },
        ..WindowStats::empty("web")
    }
}

struct Run {
    policy: Policy,
    state: AppState,
    current: u32,
    t: i64,
}

impl Run {
    fn new(spec: &str, current: u32) -> Self {
        Run {
            policy: policy(spec),
            state: AppState::default(),
            current,
            t: 0,
        }
    }

    /// One window of `rps` (None: no data); applies the decision (dry-run).
    fn step(&mut self, rps: Option<f64>) -> super::Decision {
        self.t += 10 * S;
        let w = rps.map(|r| window(r, None));
        let obs = Observation {
            app: "web",
            name: None,
            now_ns: self.t,
            window_ns: 10 * S,
            window: w.as_ref(),
            instances: &[],
            current: self.current,
            forecast: None,
        };
        let d = decide(&self.policy, &mut self.state, &obs);
        self.current = d.desired;
        d
    }
}

const BASE: &str = "  selector: {names: [\"web\"]}\n  min: 1\n  max: 20\n  targets:\n    - {metric: rps_per_instance, value: 120}\n";

#[test]
fn proportional_target_tracking() {
    let mut r = Run::new(BASE, 3);
    let d = r.step(Some(636.0)); // 212 per instance
    assert_eq!((d.current, d.desired), (3, 6));
    assert!(
        d.reason
            .starts_with("scale web from 3 to 6: rps/instance 212 > target 120 (10 s window)"),
        "{}",
        d.reason
    );
    assert!(d.constraints.is_empty());
}

#[test]
fn tolerance_keeps_small_deviations() {
    let mut r = Run::new(BASE, 4);
    let d = r.step(Some(4.0 * 128.0)); // 6.7 % above target
    assert_eq!(d.desired, 4);
    assert_eq!(d.constraints[0].name, "tolerance");
    assert_eq!((d.constraints[0].from, d.constraints[0].to), (5, 4));
}

#[test]
fn largest_recommendation_wins() {
    let spec = format!("{BASE}    - {{metric: p99_ms, value: 200}}\n");
    let p = policy(&spec);
    let mut state = AppState::default();
    let w = window(240.0, Some(800.0)); // rps says 2, latency says 4× → 12
    let obs = Observation {
        app: "web",
        name: None,
        now_ns: 10 * S,
        window_ns: 10 * S,
        window: Some(&w),
        instances: &[],
        current: 3,
        forecast: None,
    };
    let d = decide(&p, &mut state, &obs);
    assert_eq!(d.desired, 12);
    assert!(d.reason.contains("p99 ms 800 > target 200"), "{}", d.reason);
}

#[test]
fn scale_down_is_stabilized_for_five_minutes() {
    let mut r = Run::new(BASE, 2);
    assert_eq!(r.step(Some(1200.0)).desired, 10);
    let d = r.step(Some(120.0)); // wants 10 → 10 (rps/instance 12 → 1)
    assert_eq!(d.desired, 10);
    let c = &d.constraints[0];
    assert_eq!(c.name, "stabilization");
    assert!(
        c.note
            .contains("scale-down stabilization 300 s: highest recommendation 10"),
        "{}",
        c.note
    );
    // After 300 s of low load the high recommendation has left the window.
    let mut last = d;
    for _ in 0..30 {
        last = r.step(Some(120.0));
    }
    assert_eq!(last.desired, 1);
}

#[test]
fn rate_limit_caps_the_step() {
    let spec = format!("{BASE}  behavior:\n    scaleUp: {{maxInstances: 2, period: 60s}}\n");
    let mut r = Run::new(&spec, 3);
    let d = r.step(Some(3.0 * 400.0));
    assert_eq!((d.recommended, d.desired), (10, 5));
    assert!(
        d.reason
            .contains("rate limit (10 → 5): max_scale_up 2 instances per 60 s"),
        "{}",
        d.reason
    );
    // Within the same minute, no more room.
    assert_eq!(r.step(Some(5.0 * 400.0)).desired, 5);
}

#[test]
fn cooldown_holds_after_a_change() {
    let spec =
        format!("{BASE}  behavior:\n    cooldown: 30s\n    scaleDown: {{stabilization: 0s}}\n");
    let mut r = Run::new(&spec, 2);
    assert_eq!(r.step(Some(480.0)).desired, 4);
    let d = r.step(Some(1200.0));
    assert_eq!(d.desired, 4);
    assert_eq!(d.constraints.last().unwrap().name, "cooldown");
    r.step(Some(1200.0));
    assert_eq!(r.step(Some(1200.0)).desired, 10, "cooldown over after 30 s");
}

#[test]
fn bounds_and_schedules() {
    let spec = format!(
        "{BASE}  schedules:\n    - {{name: sale, from: \"1970-01-01T00:00:00Z\", to: \"1970-01-01T00:01:00Z\", min: 8}}\n"
    );
    let mut r = Run::new(&spec, 2);
    let d = r.step(Some(0.0));
    assert_eq!(d.desired, 8);
    assert_eq!(d.constraints.last().unwrap().name, "schedule");
    assert!(
        d.reason.contains("schedule sale sets min 8"),
        "{}",
        d.reason
    );
    let mut r = Run::new(BASE, 2);
    let d = r.step(Some(100_000.0));
    assert_eq!(d.desired, 20);
    assert_eq!(d.constraints.last().unwrap().name, "bounds");
}

#[test]
fn missing_data_never_scales_down_then_falls_back() {
    let spec = format!(
        "{BASE}  missingData: {{fallback: 6, fallbackAfter: 3}}\n  behavior:\n    scaleDown: {{stabilization: 0s}}\n"
    );
    let mut r = Run::new(&spec, 4);
    let d = r.step(None);
    assert_eq!(d.desired, 4);
    assert!(d.reason.contains("no metrics"), "{}", d.reason);
    r.step(None);
    let d = r.step(None);
    assert_eq!(d.desired, 6);
    assert!(
        d.constraints
            .iter()
            .any(|c| c.name == "missing_data" && c.note.contains("fallback 6"))
    );
    // Data again: zero traffic is data, so scale down is allowed.
    assert_eq!(r.step(Some(0.0)).desired, 1);
}

#[test]
fn burst_reacts_within_one_window() {
    let spec = format!(
        "{BASE}  behavior:\n    burst: {{factor: 2}}\n    scaleUp: {{stabilization: 60s, maxInstances: 1, period: 60s}}\n"
    );
    let mut r = Run::new(&spec, 2);
    r.step(Some(240.0));
    let d = r.step(Some(2.0 * 120.0 * 3.0)); // 3× capacity
    assert_eq!(d.desired, 6);
    assert_eq!(d.constraints[0].name, "burst");
    // Below the burst factor the scale-up stabilization and rate limit apply.
    let mut r = Run::new(&spec, 2);
    r.step(Some(240.0));
    assert_eq!(r.step(Some(2.0 * 120.0 * 1.5)).desired, 2);
}

#[test]
fn step_rules_need_their_breach_duration() {
    let spec = "  selector: {apps: [web]}\n  min: 1\n  max: 10\n  algorithm: step\n  steps:\n    - {metric: rps_per_instance, operator: \">\", threshold: 100, for: 30s, adjust: \"+2\"}\n    - {metric: rps_per_instance, operator: \"<\", threshold: 20, for: 20s, adjust: \"-50%\"}\n  behavior:\n    scaleDown: {stabilization: 0s}\n";
    let mut r = Run::new(spec, 2);
    assert_eq!(r.step(Some(400.0)).desired, 2);
    assert_eq!(r.step(Some(400.0)).desired, 2);
    let d = r.step(Some(400.0));
    assert_eq!(d.desired, 4, "{}", d.reason);
    assert!(
        d.reason.contains("rps/instance 200 > 100 for 30 s: +2"),
        "{}",
        d.reason
    );
    r.step(Some(10.0));
    assert_eq!(r.step(Some(10.0)).desired, 2);
    // A rule whose condition does not hold says so instead of printing the
    // comparison as if it did.
    let d = r.step(Some(60.0));
    let notes: Vec<&str> = d.recommendations.iter().map(|r| r.note.as_str()).collect();
    assert_eq!(
        notes,
        ["rps/instance 30, not > 100", "rps/instance 30, not < 20"],
        "{}",
        d.reason
    );
}

/// `algorithm: hpa` without instance rows says the load was shared evenly,
/// not "0 of N instances reporting".
#[test]
fn hpa_without_instance_rows_says_how_it_counted() {
    let spec = "  selector: {apps: [web]}\n  min: 1\n  max: 10\n  algorithm: hpa\n  targets:\n    - {metric: rps_per_instance, value: 100}\n";
    let mut r = Run::new(spec, 2);
    let d = r.step(Some(400.0));
    assert_eq!(d.desired, 4, "{}", d.reason);
    assert!(
        d.reason.contains(
            "rps/instance 200 (no instance rows: the app's load shared by 2) vs target 100"
        ),
        "{}",
        d.reason
    );
}

#[test]
fn rule_errors_are_located_and_explained() {
    let bad = "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec:\n  selector: {apps: [web]}\n  min: 1\n  max: 5\n  algorithm: step\n  steps:\n    - metric: rps_per_instance\n      operator: \">\"\n      treshold: 3\n";
    let e = load_str(bad, "rules/web.yaml").unwrap_err();
    let text = e[0].to_string();
    assert!(text.starts_with("rules/web.yaml:12:"), "{text}");
    assert!(
        text.contains("treshold") && text.contains("did you mean `threshold`?"),
        "{text}"
    );

    let bad = "apiVersion: vane/v2\nkind: ScalingPolcy\nmetadata: {name: web}\nspec:\n  selector: {apps: [web]}\n  min: 9\n  max: 5\n  targets:\n    - {metric: rps_per_instance, value: -1}\n";
    let e: Vec<String> = load_str(bad, "w.yaml")
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(
        e[0].starts_with(
            "w.yaml:1:13: policy \"web\": apiVersion `vane/v2` is not supported (use `vane/v1`)"
        ),
        "{}",
        e[0]
    );
    assert!(e[1].contains("did you mean `ScalingPolicy`?"), "{}", e[1]);
    assert!(
        e[2].starts_with("w.yaml:6:8:") && e[2].contains("min (9) is larger than max (5)"),
        "{}",
        e[2]
    );
    assert!(
        e[3].starts_with("w.yaml:9:41:") && e[3].contains("positive"),
        "{}",
        e[3]
    );
}

fn instance_rows(rps: &[f64]) -> Vec<WindowStats> {
    rps.iter()
        .enumerate()
        .map(|(i, r)| WindowStats {
            instance: Some(i.to_string()),
            ..window(*r, None)
        })
        .collect()
}

#[test]
fn hpa_algorithm_uses_the_replica_calculator_and_hpa_behavior() {
    let spec = "  selector: {apps: [web]}\n  min: 1\n  max: 20\n  algorithm: hpa\n  targets:\n    - {metric: rps_per_instance, value: 100}\n";
    let p = policy(spec);
    assert_eq!(
        p.down.stabilization_ns,
        300 * S,
        "HPA default scale-down stabilization"
    );
    let mut state = AppState::default();
    let rows = instance_rows(&[100.0, 200.0, 300.0]);
    let w = window(600.0, None);
    let obs = Observation {
        app: "web",
        name: None,
        now_ns: 10 * S,
        window_ns: 10 * S,
        window: Some(&w),
        instances: &rows,
        current: 3,
        forecast: None,
    };
    let d = decide(&p, &mut state, &obs);
    assert_eq!((d.algorithm.as_str(), d.desired), ("hpa", 6));
    assert!(d.reason.contains("HPA replica calculator"), "{}", d.reason);
    // Two of four instances report, at half the target: the missing ones count
    // as at the target (HPA's scale-down rule), so 4 → 3, not 4 → 2.
    let mut state = AppState::default();
    let rows = instance_rows(&[50.0, 50.0]);
    let w = window(100.0, None);
    let obs = Observation {
        app: "web",
        name: None,
        now_ns: 10 * S,
        window_ns: 10 * S,
        window: Some(&w),
        instances: &rows,
        current: 4,
        forecast: None,
    };
    assert_eq!(decide(&p, &mut state, &obs).recommended, 3);
}

#[test]
fn kpa_algorithm_panics_and_does_not_scale_down_while_panicking() {
    let spec = "  selector: {apps: [web]}\n  min: 1\n  max: 50\n  algorithm: kpa\n  targets:\n    - {metric: concurrency_per_instance, value: 10}\n";
    let p = policy(spec);
    let mut state = AppState::default();
    let mut current = 1;
    let mut step = |t: i64, conc: f64, current: &mut u32| {
        let w = WindowStats {
            concurrency: conc,
            ..window(0.0, None)
        };
        let obs = Observation {
            app: "web",
            name: None,
            now_ns: t * S,
            window_ns: 10 * S,
            window: Some(&w),
            instances: &[],
            current: *current,
            forecast: None,
        };
        let d = decide(&p, &mut state, &obs);
        *current = d.desired;
        d
    };
    let d = step(10, 50.0, &mut current);
    assert_eq!(d.desired, 5);
    assert!(d.reason.contains("panic mode"), "{}", d.reason);
    let d = step(20, 10.0, &mut current);
    assert_eq!(d.desired, 5, "no scale-down in panic: {}", d.reason);
    for t in 3..=9 {
        step(t * 10, 10.0, &mut current);
    }
    let d = step(100, 10.0, &mut current);
    assert!(d.reason.contains("stable mode"), "{}", d.reason);
    assert_eq!(d.desired, 1);
}

#[test]
fn label_selectors_use_the_configured_labels() {
    use super::decider::Decider;
    let yaml = "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {name: shop}\nspec:\n  selector: {labels: {team: shop}}\n  min: 1\n  max: 5\n  targets:\n    - {metric: rps_per_instance, value: 10}\n";
    let rules = super::RuleSet {
        policies: load_str(yaml, "shop.yaml").unwrap(),
        alerts: Vec::new(),
        health: Vec::new(),
    };
    let row = WindowStats {
        end: "1970-01-01T00:00:10Z".parse().unwrap(),
        ..window(50.0, None)
    };
    let mut out = Vec::new();
    let mut unlabelled = Decider::new(rules.clone(), 10 * S);
    unlabelled.on_window(10 * S, std::slice::from_ref(&row), &mut out);
    assert!(out.is_empty(), "no labels, no policy");
    let labels = [(
        "web".to_string(),
        [("team".to_string(), "shop".to_string())].into(),
    )]
    .into();
    let mut labelled = Decider::new(rules, 10 * S).with_labels(labels);
    labelled.on_window(10 * S, std::slice::from_ref(&row), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].policy, "shop");
}

#[test]
fn a_schedule_replaces_the_bounds_while_active() {
    let spec = "  selector: {apps: [web]}\n  min: 1\n  max: 4\n  targets:\n    - {metric: rps_per_instance, value: 10}\n  schedules:\n    - {name: peak, from: \"1970-01-01T00:00:00Z\", to: \"1970-01-01T00:00:30Z\", max: 10}\n";
    let mut r = Run::new(spec, 2);
    let d = r.step(Some(80.0)); // wants 8: above max 4, allowed by the schedule's 10
    assert_eq!(d.desired, 8, "{}", d.reason);
    r.step(Some(80.0));
    r.step(Some(80.0));
    let d = r.step(Some(640.0)); // after the schedule: max 4 again
    assert_eq!(d.desired, 4);
    assert_eq!(d.constraints.last().unwrap().name, "bounds");
}

#[test]
fn lookahead_sizes_a_rising_load_for_the_start_up_time_ahead() {
    let spec = format!("{BASE}  behavior:\n    scaleUp: {{lookahead: 60s}}\n");
    let mut with = Run::new(&spec, 4);
    let mut without = Run::new(BASE, 4);
    // +3 req/s every second: 480, 510, 540, 570 req/s.
    let mut last = (None, None);
    for rps in [480.0, 510.0, 540.0, 570.0] {
        last = (Some(with.step(Some(rps))), Some(without.step(Some(rps))));
    }
    let (w, wo) = (last.0.unwrap(), last.1.unwrap());
    // 570 req/s now; the trend is read from 30 s of history, so it is
    // extrapolated 30 s ahead, not the full 60: 660 req/s.
    assert_eq!(wo.desired, 5, "{}", wo.reason);
    assert_eq!(w.desired, 6, "{}", w.reason);
    assert!(
        w.recommendations[0].note.contains("rising")
            && w.recommendations[0].note.contains("expected in 60 s")
            && w.recommendations[0].value == Some(660.0 / 5.0),
        "{}",
        w.recommendations[0].note
    );
    // Three windows on, 60 s of history: 660 req/s now, 840 in 60 s.
    let mut d = None;
    for rps in [600.0, 630.0, 660.0] {
        d = Some(with.step(Some(rps)));
    }
    let d = d.unwrap();
    let per_instance = d.recommendations[0].value.unwrap();
    assert!(
        (per_instance * f64::from(d.current) - 840.0).abs() < 1e-6,
        "{}",
        d.recommendations[0].note
    );
    assert_eq!(d.desired, 7, "840 req/s at 120 per instance: {}", d.reason);
}

/// What a forecast asked for beyond the load that came is given back once
/// the lookahead has passed, not held for the whole scale-down stabilization.
#[test]
fn a_wrong_forecast_is_returned_after_the_lookahead() {
    let spec = format!("{BASE}  behavior:\n    scaleUp: {{lookahead: 30s}}\n");
    let mut r = Run::new(&spec, 4);
    for rps in [400.0, 430.0, 460.0, 490.0] {
        r.step(Some(rps));
    }
    let raised = r.current;
    assert!(raised >= 5, "the ramp was sized ahead: {raised}");
    // The rise stops: 490 req/s asks for 5 (4.1 beyond the tolerance).
    let mut counts = Vec::new();
    for _ in 0..6 {
        counts.push(r.step(Some(490.0)).desired);
    }
    assert_eq!(
        counts.last(),
        Some(&5),
        "back to what the load asks within the lookahead, not after 300 s: {counts:?}"
    );
    let mut r = Run::new(BASE, 4);
    r.step(Some(800.0));
    for _ in 0..6 {
        r.step(Some(490.0));
    }
    assert_eq!(
        r.current, 7,
        "without a forecast the stabilization holds what the load asked"
    );
}

/// `scaleDown.minPercent`: a fading load comes down in steps of at least
/// that share of the count.
#[test]
fn min_percent_batches_small_scale_downs() {
    let spec = format!("{BASE}  behavior:\n    scaleDown: {{stabilization: 0s, minPercent: 20}}\n");
    let mut r = Run::new(&spec, 20);
    // 20 → wants 19: one instance is under 20 % of 20, it waits.
    let d = r.step(Some(19.0 * 120.0));
    assert_eq!(d.desired, 20, "{}", d.reason);
    // Wants 16: four instances, 20 %: it goes.
    let d = r.step(Some(16.0 * 120.0));
    assert_eq!(d.desired, 16, "{}", d.reason);
    // At 4, one instance (25 %) may go.
    let mut r = Run::new(&spec, 4);
    assert_eq!(r.step(Some(3.0 * 120.0)).desired, 3);
}

#[test]
fn lookahead_ignores_noise_falls_and_level_shifts() {
    let spec = format!(
        "{BASE}  behavior:\n    scaleUp: {{lookahead: 60s}}\n    scaleDown: {{stabilization: 0s}}\n    burst: {{factor: 2}}\n"
    );
    // Flat with noise: no forecast.
    let mut r = Run::new(&spec, 4);
    for rps in [470.0, 480.0, 475.0, 478.0, 472.0] {
        let d = r.step(Some(rps));
        assert!(
            !d.recommendations[0].note.contains("rising"),
            "{}",
            d.reason
        );
    }
    // Falling: never a forecast downwards.
    let mut r = Run::new(&spec, 4);
    for rps in [470.0, 440.0, 410.0, 380.0] {
        let d = r.step(Some(rps));
        assert!(
            !d.recommendations[0].note.contains("rising"),
            "{}",
            d.reason
        );
    }
    // A step (burst) then flat: the step is not extrapolated.
    let mut r = Run::new(&spec, 4);
    for rps in [400.0, 400.0, 400.0, 1200.0, 1210.0, 1205.0] {
        let d = r.step(Some(rps));
        assert!(
            !d.recommendations[0].note.contains("rising"),
            "{rps}: {}",
            d.reason
        );
    }
    assert_eq!(r.current, 10, "1205 req/s at 120 per instance");
    // A stair (one rise of 15 %, then flat with noise) and an edge seen
    // half in one window: neither is a trend.
    for series in [
        [400.0, 402.0, 399.0, 460.0, 462.0, 465.0, 468.0],
        [100.0, 101.0, 250.0, 400.0, 402.0, 405.0, 407.0],
    ] {
        let mut r = Run::new(&spec, 4);
        for rps in series {
            let d = r.step(Some(rps));
            assert!(
                !d.recommendations[0].note.contains("rising"),
                "{series:?} at {rps}: {}",
                d.reason
            );
        }
    }
}

#[test]
fn lookahead_is_for_scaling_up_only() {
    let yaml = format!(
        "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {{name: web}}\nspec:\n{BASE}  behavior:\n    scaleDown: {{lookahead: 60s}}\n"
    );
    let errors = load_str(&yaml, "web.yaml").unwrap_err();
    assert!(
        errors[0]
            .to_string()
            .contains("lookahead applies to scaleUp only"),
        "{}",
        errors[0]
    );
}

/// Paused (issue 18), by the API or in the rule file: the decision is
/// recorded with the reason `paused` and what it would have done, held at
/// the current count; resumed, the app scales again.
#[test]
fn a_paused_app_is_decided_and_recorded_but_held() {
    use super::decider::Decider;
    let spec = |paused: &str| {
        format!(
            "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {{name: shop}}\nspec:\n  selector: {{names: [web]}}\n  min: 1\n  max: 20\n{paused}  targets:\n    - {{metric: rps_per_instance, value: 10}}\n"
        )
    };
    let rules = |paused: &str| super::RuleSet {
        policies: load_str(&spec(paused), "shop.yaml").unwrap(),
        alerts: Vec::new(),
        health: Vec::new(),
    };
    let row = |t: i64| WindowStats {
        end: crate::time::Timestamp::from_nanos(t),
        ..window(50.0, None)
    };
    let mut out = Vec::new();
    let mut d = Decider::new(rules(""), 10 * S);
    d.set_instances("web", None, 1);
    assert!(d.set_paused("web", true));
    assert!(!d.set_paused("web", true), "already paused");
    d.on_window(10 * S, &[row(10 * S)], &mut out);
    let held = &out[0];
    assert_eq!((held.current, held.desired), (1, 1), "{}", held.reason);
    assert_eq!(held.direction, crate::model::Direction::None);
    assert!(
        held.reason
            .starts_with("paused (by api): would have gone to 5"),
        "{}",
        held.reason
    );
    assert_eq!(
        held.constraints
            .last()
            .map(|c| (c.name.as_str(), c.from, c.to)),
        Some(("paused", 5, 1))
    );
    // It travels with the app's state to another decider.
    let mut other = Decider::new(rules(""), 10 * S);
    other.adopt(d.export(&["web".to_string()]));
    assert_eq!(other.paused_by("web", None).as_deref(), Some("api"));

    assert!(d.set_paused("web", false));
    out.clear();
    d.on_window(20 * S, &[row(20 * S)], &mut out);
    assert_eq!(out[0].desired, 5, "resumed: {}", out[0].reason);

    // `paused: true` in the rule file does the same for every app of the policy.
    let mut by_file = Decider::new(rules("  paused: true\n"), 10 * S);
    by_file.set_instances("web", None, 1);
    out.clear();
    by_file.on_window(10 * S, &[row(10 * S)], &mut out);
    assert_eq!(out[0].desired, 1);
    assert!(
        out[0].reason.starts_with("paused (by policy shop)"),
        "{}",
        out[0].reason
    );
}

#[test]
fn predictive_settings_are_checked() {
    let load = |extra: &str, target: &str| {
        let yaml = format!(
            "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {{name: web}}\nspec:\n  selector: {{names: [\"web\"]}}\n  min: 1\n  max: 20\n  targets:\n    - {{metric: {target}, value: 120}}\n  predictive: {extra}\n"
        );
        load_str(&yaml, "p.yaml")
    };
    let p = load("{mode: enabled, leadTime: 2m}", "rps_per_instance").unwrap();
    let pred = p[0].predictive.unwrap();
    assert!(pred.enabled);
    assert_eq!(pred.settings.lead_ns, 120 * S);
    assert!(
        !load("{}", "rps_per_instance").unwrap()[0]
            .predictive
            .unwrap()
            .enabled
    );
    let errors = |r: Result<Vec<Policy>, Vec<super::error::RuleError>>| {
        r.unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let e = errors(load("{mode: on}", "rps_per_instance"));
    assert!(e.contains("use `forecast-only` or `enabled`"), "{e}");
    let e = errors(load("{maxError: 3}", "rps_per_instance"));
    assert!(e.contains("maxError is a wMAPE"), "{e}");
    let e = errors(load("{mode: enabled}", "p99_ms"));
    assert!(e.contains("needs a target on rps_per_instance"), "{e}");
}

/// In `enabled` mode the forecast raises the count ahead of the load and is
/// recorded; in `forecast-only` it is only recorded; refused, it says why.
#[test]
fn a_forecast_raises_the_floor_only_when_enabled() {
    use crate::forecast::Outlook;
    let spec = |mode: &str| format!("{BASE}  predictive: {{mode: {mode}}}\n");
    let rate = Outlook::Rate {
        rps: 1_200.0,
        error: 0.08,
    };
    for (mode, outlook, desired, applied) in [
        ("enabled", &rate, 10, true),
        ("forecast-only", &rate, 4, false),
        (
            "enabled",
            &Outlook::Refused("no seasonality".into()),
            4,
            false,
        ),
    ] {
        let p = policy(&spec(mode));
        let w = window(480.0, None);
        let obs = Observation {
            app: "web",
            name: None,
            now_ns: 10 * S,
            window_ns: 10 * S,
            window: Some(&w),
            instances: &[],
            current: 4,
            forecast: Some(outlook),
        };
        let d = decide(&p, &mut AppState::default(), &obs);
        let f = d.forecast.clone().unwrap();
        assert_eq!(
            (d.desired, f.applied),
            (desired, applied),
            "{mode}: {}",
            d.reason
        );
        if applied {
            assert_eq!(f.instances, Some(10));
            assert!(
                d.reason
                    .contains("predictive (4 → 10): forecast 1200 req/s"),
                "{}",
                d.reason
            );
        }
    }
}
