//! Reading back what Vane stored in VictoriaMetrics (started by
//! scripts/services.sh), and counting the same from the input independently.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const VM: &str = "http://127.0.0.1:8428";

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
            "{VM}/api/v1/export?match[]=vane_window_requests{{app=\"{app}\",instance=\"\"}}"
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
