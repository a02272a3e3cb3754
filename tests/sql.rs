//! SQL roll-ups: the bundled example runs through `vane run` with `[sql]`
//! scheduled every second; the scheduled run writes its results, and
//! `vane sql` on the hourly and daily queries agrees with the same
//! statistics computed here, independently, from the JSON lines Vane wrote.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{read_windows, vane};
use vane::rules::{Decision, Direction};
use vane::time::parse_iso8601;

#[derive(Debug, Default, PartialEq)]
struct Stats {
    requests: u64,
    peak_rps: Option<f64>,
    max_p99_ms: Option<f64>,
    errors: u64,
    instance_hours: f64,
    scale_actions: u64,
}

fn bucket(t: &str, len_s: i64) -> i64 {
    let s = parse_iso8601(t.as_bytes()).unwrap() / 1_000_000_000;
    s - s.rem_euclid(len_s)
}

fn expected(dir: &Path, len_s: i64) -> BTreeMap<(String, i64), Stats> {
    let mut out: BTreeMap<(String, i64), Stats> = BTreeMap::new();
    for w in read_windows(&dir.join("data/windows.jsonl")) {
        let s = out
            .entry((w.app.clone(), bucket(&w.start.to_string(), len_s)))
            .or_default();
        if w.instance.is_none() {
            s.requests += w.requests;
            s.errors += w.status.c5xx;
            s.peak_rps = Some(s.peak_rps.map_or(w.rps, |p| p.max(w.rps)));
            if let Some(p99) = w.latency_ms.p99 {
                s.max_p99_ms = Some(s.max_p99_ms.map_or(p99, |m| m.max(p99)));
            }
        } else {
            let len = (w.end.nanos() - w.start.nanos()) as f64 / 1e9;
            s.instance_hours += len / 3600.0;
        }
    }
    let decisions = std::fs::read_to_string(dir.join("data/decisions.jsonl")).unwrap();
    for d in decisions
        .lines()
        .map(|l| serde_json::from_str::<Decision>(l).unwrap())
    {
        if d.direction != Direction::None
            && let Some(s) = out.get_mut(&(d.app.clone(), bucket(&d.time.to_string(), len_s)))
        {
            s.scale_actions += 1;
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn check(dir: &Path, cfg: &Path, query: &str, key: &str, len_s: i64) {
    let out = vane()
        .args(["sql", "--format", "json", "--config"])
        .arg(cfg)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("sql")
                .join(query),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = expected(dir, len_s);
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), want.len(), "{query}: {text}");
    let mut actions = 0;
    for r in &rows {
        let k = (
            r["app"].as_str().unwrap().to_string(),
            bucket(r[key].as_str().unwrap(), len_s),
        );
        let w = want
            .get(&k)
            .unwrap_or_else(|| panic!("{query}: unexpected row {r}"));
        assert_eq!(r["requests"].as_u64(), Some(w.requests), "{r}");
        assert_eq!(r["scale_actions"].as_u64(), Some(w.scale_actions), "{r}");
        assert_eq!(r["peak_rps"].as_f64(), w.peak_rps, "{r}");
        assert_eq!(r["max_p99_ms"].as_f64(), w.max_p99_ms, "{r}");
        let ratio = if w.requests > 0 {
            w.errors as f64 / w.requests as f64
        } else {
            0.0
        };
        assert!(
            close(r["error_ratio"].as_f64().unwrap(), ratio),
            "{r} vs {ratio}"
        );
        assert!(
            close(r["instance_hours"].as_f64().unwrap(), w.instance_hours),
            "{r} vs {}",
            w.instance_hours
        );
        actions += w.scale_actions;
    }
    assert!(actions > 0, "the example scales some apps: {text}");
}

#[test]
fn roll_ups_agree_with_an_independent_computation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(root.join("vane.toml"))
        .unwrap()
        .replace(
            "data_dir = \"data\"",
            &format!("data_dir = \"{}\"", dir.path().join("data").display()),
        )
        .replace("\"examples/", &format!("\"{}/examples/", root.display()))
        .replace("[\"rules\"]", &format!("[\"{}/rules\"]", root.display()))
        .replace(
            "queries = \"sql\"",
            &format!("queries = \"{}/sql\"", root.display()),
        )
        .replace("schedule = \"0 * * * * *\"", "schedule = \"* * * * * *\"");
    assert!(
        cfg.contains("schedule = \"* * * * * *\""),
        "the default config schedules roll-ups"
    );
    let cfg_path = dir.path().join("vane.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let out = vane()
        .args(["run", "--exit-when-idle", "3s", "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The schedule ran while Vane did (and once more at the end): results
    // and segments are there.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.matches("roll-ups done").count() >= 2,
        "a scheduled run and the last one: {log}"
    );
    for name in ["hourly_app_stats", "daily_app_stats"] {
        let p = dir.path().join(format!("data/rollups/{name}.parquet"));
        assert!(p.exists(), "{} missing", p.display());
        assert!(vane::rollup::segments::read_parquet(&p).unwrap().height() > 0);
    }
    check(dir.path(), &cfg_path, "hourly_app_stats.sql", "hour", 3600);
    check(dir.path(), &cfg_path, "daily_app_stats.sql", "day", 86_400);
}
