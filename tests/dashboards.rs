//! The Grafana dashboards read what Vane writes: the bundled example runs
//! through `vane run` into a real InfluxDB 1.x (v1 `/write`), then every
//! panel, annotation and variable query of every dashboard runs with
//! `$timeFilter`, `$__interval` and `$app` substituted as Grafana does, and
//! each must return data.

mod common;

use std::path::Path;

use common::{read_windows, vane};

const INFLUXDB: &str = "http://127.0.0.1:8086";

fn influxql(db: &str, q: &str) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "30", "-G", &format!("{INFLUXDB}/query")])
        .args(["--data-urlencode", &format!("db={db}")])
        .args(["--data-urlencode", &format!("q={q}")])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Whether a query's answer holds at least one non-null value besides time.
fn has_data(answer: &serde_json::Value) -> bool {
    let result = &answer["results"][0];
    assert!(result["error"].is_null(), "query failed: {answer}");
    result["series"].as_array().is_some_and(|series| {
        series.iter().any(|s| {
            s["values"].as_array().is_some_and(|rows| {
                rows.iter().any(|row| {
                    row.as_array()
                        .is_some_and(|cells| cells.iter().skip(1).any(|c| !c.is_null()))
                })
            })
        })
    })
}

/// Every query of a dashboard: (where, query).
fn queries(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                format!("panel {:?}", p["title"].as_str().unwrap()),
                t["query"].as_str().unwrap().to_string(),
            ));
        }
    }
    for a in d["annotations"]["list"].as_array().unwrap() {
        if let Some(q) = a["query"].as_str() {
            out.push((format!("annotation {:?}", a["name"]), q.to_string()));
        }
    }
    out
}

/// Grafana's substitutions: the time range in epoch milliseconds, the
/// interval, and a variable's value escaped for a regex.
fn substitute(q: &str, from_ms: i64, to_ms: i64, app: &str) -> String {
    let escaped: String = app
        .chars()
        .flat_map(|c| {
            let special = r"\^$.|?*+()[]{}/-".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect();
    q.replace(
        "$timeFilter",
        &format!("time >= {from_ms}ms and time <= {to_ms}ms"),
    )
    .replace("$__interval", "10s")
    .replace("$app", &escaped)
}

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn every_dashboard_query_returns_data_from_influxdb() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let db = format!("vane_dash_{}", std::process::id());
    assert!(has_no_error(&influxql(
        "",
        &format!("CREATE DATABASE {db}")
    )));
    // The embedded default, pointed at InfluxDB.
    let cfg = std::fs::read_to_string(root.join("vane.toml"))
        .unwrap()
        .replace(
            "data_dir = \"data\"",
            &format!("data_dir = \"{}\"", dir.path().join("data").display()),
        )
        .replace("\"examples/", &format!("\"{}/examples/", root.display()))
        .replace("[\"rules\"]", &format!("[\"{}/rules\"]", root.display()))
        + &format!("\n[influxdb]\nurl = \"{INFLUXDB}\"\nbucket = \"{db}\"\napi = \"v1\"\n");
    let cfg_path = dir.path().join("vane.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    common::succeeded(
        vane()
            .args(["run", "--exit-when-idle", "2s", "--config"])
            .arg(&cfg_path),
    );
    let windows = read_windows(&dir.path().join("data/windows.jsonl"));
    let ms = |t: vane::time::Timestamp| t.nanos() / 1_000_000;
    let from_ms = windows.iter().map(|w| ms(w.start)).min().unwrap();
    let to_ms = windows.iter().map(|w| ms(w.end)).max().unwrap();
    // Every window row arrived.
    let count = influxql(&db, "SELECT count(\"requests\") FROM \"vane_window\"");
    assert_eq!(
        count["results"][0]["series"][0]["values"][0][1],
        windows.len(),
        "{count}"
    );

    // The app with the most scaling decisions: every panel of the app
    // dashboard must show it.
    let decisions: Vec<vane::rules::Decision> =
        std::fs::read_to_string(dir.path().join("data/decisions.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let mut moves = std::collections::BTreeMap::<&str, usize>::new();
    for d in &decisions {
        if d.direction != vane::rules::Direction::None {
            *moves.entry(d.app.as_str()).or_default() += 1;
        }
    }
    let busiest = moves
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(a, _)| *a)
        .unwrap();

    let mut checked = 0;
    for name in ["vane-fleet", "vane-app", "vane-alerts"] {
        let text = std::fs::read_to_string(root.join(format!("dashboards/{name}.json"))).unwrap();
        let d: serde_json::Value = serde_json::from_str(&text).unwrap();
        // The variable lists the apps written.
        let mut apps = Vec::new();
        for v in d["templating"]["list"].as_array().unwrap() {
            let answer = influxql(&db, v["query"].as_str().unwrap());
            assert!(
                has_data(&answer),
                "{name}: variable {}: {answer}",
                v["name"]
            );
            for row in answer["results"][0]["series"][0]["values"]
                .as_array()
                .unwrap()
            {
                apps.push(row[1].as_str().unwrap().to_string());
            }
            assert!(apps.iter().any(|a| a == busiest), "{apps:?}");
        }
        for (place, q) in queries(&d) {
            let candidates: Vec<&str> = if !q.contains("$app") {
                vec![""]
            } else if place.starts_with("annotation") {
                // An annotation needs an app where it happened (alerts fire
                // for other apps than the one that scaled most).
                apps.iter().map(String::as_str).collect()
            } else {
                vec![busiest]
            };
            let ok = candidates.iter().any(|app| {
                let sql = substitute(&q, from_ms, to_ms, app);
                has_data(&influxql(&db, &sql))
            });
            assert!(ok, "{name}: {place} returned no data: {q}");
            checked += 1;
        }
    }
    assert_eq!(checked, 7 + 10 + 2 + 3);
    influxql("", &format!("DROP DATABASE {db}"));
}

fn has_no_error(answer: &serde_json::Value) -> bool {
    answer["results"][0]["error"].is_null()
}
