//! `vane backtest` end to end: generated shapes, CSV rate series and access
//! logs in; the comparison table, JSON and the plot out.

mod common;

use common::vane;
use serde_json::Value;

fn backtest_json(args: &[&str]) -> Value {
    let out = common::succeeded(vane().arg("backtest").args(args).arg("--json"));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn run<'a>(app: &'a Value, contender: &str) -> &'a Value {
    app["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["contender"] == contender)
        .unwrap_or_else(|| panic!("no {contender} run in {app}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// On a step spike, Vane's default reaches capacity sooner than the HPA, with
/// fewer actions and less under-provisioning (the HPA doubles per 15 s at
/// most; Vane meets a burst in one step).
#[test]
fn vane_meets_a_step_sooner_than_the_hpa() {
    let all = backtest_json(&["--shape", "step", "--startup", "60s"]);
    let app = &all[0];
    assert_eq!(app["input"], "step");
    assert_eq!(app["windows"], 720);
    let (v, h, k) = (run(app, "vane"), run(app, "hpa"), run(app, "kpa"));
    assert_eq!(h["algorithm"], "hpa");
    assert_eq!(k["algorithm"], "kpa");
    for r in [v, h, k] {
        assert!(f(r, "instance_seconds") > 0.0);
        // Two load steps in the shape, each met within the input.
        let steps = r["step_response_s"].as_array().unwrap();
        assert_eq!(steps.len(), 2, "{r}");
        assert!(steps.iter().all(Value::is_f64), "{r}");
    }
    let worst = |r: &Value| {
        r["step_response_s"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .fold(0.0, f64::max)
    };
    assert!(
        worst(v) < worst(h),
        "vane {} s, hpa {} s",
        worst(v),
        worst(h)
    );
    assert!(
        f(v, "under_provisioned_instance_seconds") < f(h, "under_provisioned_instance_seconds")
    );
    assert!(v["scale_actions"].as_u64() <= h["scale_actions"].as_u64());
}

/// The same shape from a CSV file gives the same result as generated in memory.
#[test]
fn a_csv_rate_series_replays_like_the_generated_shape() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("step.csv");
    let out = vane()
        .args([
            "generate",
            "--shape",
            "step",
            "--start",
            "1767225600",
            "--out",
        ])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success());
    let from_csv = backtest_json(&[csv.to_str().unwrap(), "--compare", "vane,hpa"]);
    let generated = backtest_json(&["--shape", "step", "--compare", "vane,hpa"]);
    for c in ["vane", "hpa"] {
        let (a, b) = (run(&from_csv[0], c), run(&generated[0], c));
        assert_eq!(a["scale_actions"], b["scale_actions"], "{c}");
        let (x, y) = (f(a, "instance_seconds"), f(b, "instance_seconds"));
        assert!((x - y).abs() <= y * 0.001, "{c}: {x} vs {y}");
    }
}

#[test]
fn a_bad_csv_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "time,rps\n2026-01-01T00:00:00Z,10\n2026-01-01T00:00:10Z,lots\n",
    )
    .unwrap();
    let out = vane().arg("backtest").arg(&csv).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv:3") && err.contains("lots"), "{err}");
}

/// Access logs go through the decoders and windows; each app is compared
/// under the user's rule that selects it, and the others on its target.
#[test]
fn access_logs_and_user_rules() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("router.log");
    let out = vane()
        .args([
            "generate",
            "--lines",
            "60000",
            "--apps",
            "2",
            "--instances",
            "4",
            "--rps",
            "100",
            "--spike",
            "200,400,6",
            "--out",
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success());
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {name: mine}\nspec:\n  selector: {names: [\"*\"]}\n  min: 1\n  max: 40\n  targets:\n    - {metric: rps_per_instance, value: 20}\n",
    )
    .unwrap();
    let all = backtest_json(&[
        log.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "--capacity",
        "30",
    ]);
    let apps = all.as_array().unwrap();
    assert_eq!(apps.len(), 2, "{all}");
    for app in apps {
        assert!(
            app["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(".apps.example.com"))
        );
        let mine = run(app, "rules");
        assert_eq!(mine["policy"], "mine");
        for c in ["vane", "hpa", "kpa"] {
            assert!(f(run(app, c), "instance_seconds") > 0.0);
        }
    }
    // The spiking app saw a load step; every contender met it.
    let spiking = apps
        .iter()
        .find(|a| {
            !run(a, "hpa")["step_response_s"]
                .as_array()
                .unwrap()
                .is_empty()
        })
        .expect("an app with a load step");
    assert!(
        run(spiking, "vane")["step_response_s"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_f64)
    );
}

#[test]
fn the_table_and_the_plot() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("sawtooth.png");
    let out = common::succeeded(
        vane()
            .args(["backtest", "--shape", "sawtooth", "--plot"])
            .arg(&png),
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("sawtooth / sawtooth (720 windows)"),
        "{table}"
    );
    assert!(table.contains("vane vs hpa: under-provisioned"), "{table}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 10_000, "a real chart, {} bytes", bytes.len());
}

/// Issue #4's bar for Vane's default policy, on the three generated shapes
/// (seed 1), against the HPA as deployed (15 s sync, 60 s rate): at most half
/// its under-provisioned instance-seconds, at most 105 % of its
/// instance-seconds, no more scale actions. Deterministic (seeded shapes, a
/// simulated orchestrator): a change to the engine that loses this fails here.
#[test]
fn vane_default_policy_against_the_hpa_on_the_three_shapes() {
    let all = backtest_json(&["--shape", "diurnal,step,sawtooth", "--compare", "vane,hpa"]);
    for app in all.as_array().unwrap() {
        let (v, h) = (run(app, "vane"), run(app, "hpa"));
        let shape = app["input"].as_str().unwrap();
        let (vu, hu) = (
            f(v, "under_provisioned_instance_seconds"),
            f(h, "under_provisioned_instance_seconds"),
        );
        assert!(
            vu <= 0.5 * hu,
            "{shape}: under-provisioned {vu} vs hpa {hu}"
        );
        let (vi, hi) = (f(v, "instance_seconds"), f(h, "instance_seconds"));
        assert!(
            vi <= 1.05 * hi,
            "{shape}: instance-seconds {vi} vs hpa {hi}"
        );
        assert!(
            v["scale_actions"].as_u64() <= h["scale_actions"].as_u64(),
            "{shape}: actions {} vs hpa {}",
            v["scale_actions"],
            h["scale_actions"]
        );
    }
}

/// Issue #20's shapes (on-off bursts, noisy flat load, a slow staircase, a
/// flash crowd, diurnal) and the two older ones, at start-up times of 30 s
/// and 90 s, against the HPA with Vane's view (`hpa-ideal`: every window,
/// the window's rate) and the KPA: Vane's default uses at most 105 % of
/// hpa-ideal's instance-seconds, no more scale actions than it and fewer
/// than the KPA, and is under-provisioned no more than hpa-ideal (or by less
/// than 0.2 % of its instance-seconds: noise on flat load, where both are
/// near zero). Seeded shapes and a simulated orchestrator: deterministic.
#[test]
fn vane_default_policy_holds_on_every_shape_against_hpa_ideal() {
    let shapes = "on-off,noisy,staircase,flash,diurnal,step,sawtooth";
    for startup in ["30s", "90s"] {
        let all = backtest_json(&[
            "--shape",
            shapes,
            "--startup",
            startup,
            "--compare",
            "vane,hpa-ideal,kpa",
        ]);
        assert_eq!(all.as_array().unwrap().len(), 7);
        for app in all.as_array().unwrap() {
            let shape = format!("{} at {startup}", app["input"].as_str().unwrap());
            let (v, h, k) = (run(app, "vane"), run(app, "hpa-ideal"), run(app, "kpa"));
            let (vi, hi) = (f(v, "instance_seconds"), f(h, "instance_seconds"));
            assert!(vi <= 1.05 * hi, "{shape}: instance-seconds {vi} vs {hi}");
            let (vu, hu) = (
                f(v, "under_provisioned_instance_seconds"),
                f(h, "under_provisioned_instance_seconds"),
            );
            assert!(
                vu <= hu || vu <= 0.002 * vi,
                "{shape}: under-provisioned {vu} vs {hu}"
            );
            let actions = |r: &Value| r["scale_actions"].as_u64().unwrap();
            assert!(
                actions(v) <= actions(h) && actions(v) < actions(k),
                "{shape}: actions {} vs hpa-ideal {} and kpa {}",
                actions(v),
                actions(h),
                actions(k)
            );
        }
    }
}

/// `--decisions` writes each contender's count changes with their reasons,
/// one JSON line each, as many as the table's actions.
#[test]
fn decisions_of_a_backtest_are_written_with_their_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let out = common::succeeded(
        vane()
            .args([
                "backtest",
                "--shape",
                "flash",
                "--compare",
                "vane,hpa",
                "--json",
                "--decisions",
            ])
            .arg(&path),
    );
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for c in ["vane", "hpa"] {
        let mine: Vec<&Value> = lines.iter().filter(|l| l["contender"] == c).collect();
        assert_eq!(
            mine.len() as u64,
            run(&all[0], c)["scale_actions"].as_u64().unwrap(),
            "{c}"
        );
        assert!(mine.iter().all(|d| {
            d["input"] == "flash"
                && d["desired"] != d["current"]
                && d["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("scale flash from"))
        }));
    }
}

/// Predictive scaling on two weeks of weekly-seasonal traffic (sharp
/// weekday mornings and lunch returns, slow weekends, one-off spikes):
/// trained on the first 7 days, scored on the last 7, at a 90 s start-up.
/// At least 50 % fewer under-provisioned instance-seconds than reactive
/// Vane at no more than 110 % of its instance-seconds, with the forecast's
/// wMAPE at the lead time (over the last day) reported.
#[test]
fn predictive_scaling_is_ready_before_the_weekday_mornings() {
    let all = backtest_json(&[
        "--shape",
        "weekly",
        "--train",
        "7d",
        "--startup",
        "90s",
        "--compare",
        "vane,vane-predictive",
    ]);
    let app = &all[0];
    let (v, p) = (run(app, "vane"), run(app, "vane-predictive"));
    let (vu, pu) = (
        f(v, "under_provisioned_instance_seconds"),
        f(p, "under_provisioned_instance_seconds"),
    );
    assert!(vu > 1_000.0, "the shape must hurt reactive scaling: {vu}");
    assert!(pu <= 0.5 * vu, "under-provisioned {pu} vs reactive {vu}");
    let (vi, pi) = (f(v, "instance_seconds"), f(p, "instance_seconds"));
    assert!(pi <= 1.10 * vi, "instance-seconds {pi} vs reactive {vi}");
    let wmape = f(p, "forecast_wmape");
    assert!(wmape > 0.0 && wmape < 1.0, "wMAPE {wmape}");
    // On the last day (a Sunday) a daily pattern learned mostly from
    // weekdays is refused for its error, and reactive scaling takes over.
    if let Some(why) = p.get("forecast_refused").and_then(Value::as_str) {
        assert!(why.contains("wMAPE"), "{why}");
    }
    assert!(v.get("forecast_wmape").is_none(), "{v}");
}

/// Three days of flat noise: nothing recurs, the forecast is refused, and
/// predictive Vane decides exactly as reactive Vane, saying why.
#[test]
fn a_series_without_seasonality_is_not_forecast() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("flat.csv");
    let mut text = String::from("time,rps\n");
    let mut x: u64 = 1;
    for minute in 0..3 * 1_440u64 {
        // A deterministic pseudo-random 200–400 req/s per minute.
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let rps = 200 + (x >> 33) % 200;
        text.push_str(&format!("{},{rps}\n", 1_767_225_600 + minute * 60));
    }
    std::fs::write(&csv, text).unwrap();
    let decisions = dir.path().join("d.jsonl");
    let all = backtest_json(&[
        csv.to_str().unwrap(),
        "--train",
        "2d",
        "--compare",
        "vane,vane-predictive",
        "--decisions",
        decisions.to_str().unwrap(),
    ]);
    let (v, p) = (run(&all[0], "vane"), run(&all[0], "vane-predictive"));
    for key in [
        "instance_seconds",
        "under_provisioned_instance_seconds",
        "scale_actions",
    ] {
        assert_eq!(v[key], p[key], "{key}");
    }
    let why = p["forecast_refused"].as_str().unwrap();
    assert!(why.contains("no seasonality"), "{why}");
    let text = std::fs::read_to_string(&decisions).unwrap();
    let predictive: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|d| d["contender"] == "vane-predictive")
        .collect();
    assert!(!predictive.is_empty());
    for d in predictive {
        assert_eq!(d["forecast"]["applied"], false, "{d}");
        assert!(
            d["forecast"]["note"]
                .as_str()
                .unwrap()
                .starts_with("no forecast"),
            "{d}"
        );
    }
}
