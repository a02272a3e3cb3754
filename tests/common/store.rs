//! Reading back what Vane stored in VictoriaMetrics (started by
//! scripts/services.sh), and counting the same from the input independently.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const VM: &str = "http://127.0.0.1:8428";

/// A tag unique to this test process, added to every point the tests'
/// configurations write (`tags = { run = ... }`) and matched on read-back,
/// so that runs sharing the server never see each other's windows.
pub fn run_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("r{}-{nanos}", std::process::id())
    })
}

/// The `[influxdb]` keys that tag this process's points.
pub fn influx_tags() -> String {
    format!("tags = {{ run = \"{}\" }}\n", run_tag())
}

pub fn get(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "10", "-g", url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Requests per app counted from the lines themselves (not by Vane's decoder).
pub fn expected(log: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        if let Some(i) = line.find("app_id:\"") {
            let rest = &line[i + 8..];
            let id = &rest[..rest.find('"').unwrap()];
            *out.entry(id.to_string()).or_default() += 1;
        }
    }
    out
}

/// `vane_window_requests` of app-level rows, summed per app, as stored.
pub fn stored(apps: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    get(&format!("{VM}/internal/force_flush"));
    let mut out = BTreeMap::new();
    for app in apps.keys() {
        let body = get(&format!(
            "{VM}/api/v1/export?match[]=vane_window_requests{{app=\"{app}\",instance=\"\",run=\"{}\"}}",
            run_tag()
        ));
        let mut total = 0.0;
        for line in body.lines().filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            total += v["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .sum::<f64>();
        }
        if total > 0.0 {
            out.insert(app.clone(), total as u64);
        }
    }
    out
}

/// Polls until the store holds `want` (new series need a flush), for up to 30 s.
pub fn wait_until_stored(want: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = stored(want);
        if &got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `vane_window_requests` of one app's app-level rows as stored: window
/// start (ms) → value.
pub fn stored_series(app: &str) -> BTreeMap<i64, f64> {
    get(&format!("{VM}/internal/force_flush"));
    let body = get(&format!(
        "{VM}/api/v1/export?match[]=vane_window_requests{{app=\"{app}\",instance=\"\",run=\"{}\"}}",
        run_tag()
    ));
    let mut out = BTreeMap::new();
    for line in body.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let values = v["values"].as_array().unwrap();
        let times = v["timestamps"].as_array().unwrap();
        for (t, x) in times.iter().zip(values) {
            *out.entry(t.as_i64().unwrap()).or_default() += x.as_f64().unwrap();
        }
    }
    out
}

/// Where the store differs from the app-level rows of a `windows.jsonl`
/// (the output of one uninterrupted pass): (app, start ms, file, store).
pub fn differences(windows_jsonl: &str) -> Vec<(String, i64, u64, f64)> {
    let mut file: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
    for line in windows_jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if !v["instance"].is_null() {
            continue;
        }
        let start = vane::time::parse_iso8601(v["start"].as_str().unwrap().as_bytes()).unwrap();
        *file
            .entry(v["app"].as_str().unwrap().to_string())
            .or_default()
            .entry(start / 1_000_000)
            .or_default() += v["requests"].as_u64().unwrap();
    }
    let mut out = Vec::new();
    for (app, rows) in &file {
        let stored = stored_series(app);
        for (t, n) in rows {
            let s = stored.get(t).copied().unwrap_or(0.0);
            if (s - *n as f64).abs() > 0.5 {
                out.push((app.clone(), *t, *n, s));
            }
        }
        for (t, s) in &stored {
            if !rows.contains_key(t) && *s != 0.0 {
                out.push((app.clone(), *t, 0, *s));
            }
        }
    }
    out
}
