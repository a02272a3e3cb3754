//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use vane::model::WindowStats;

/// A file of the public test corpus beside the repository (`../shared/data`).
pub fn shared_data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel)
}

pub fn vane() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vane"))
}

pub fn read_windows(path: &Path) -> Vec<WindowStats> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Pods of a transcribed Kubernetes test case; `request_key` names the CPU
/// request field, multiplied by `containers` to give the pod's request.
pub fn hpa_pods(
    case: &serde_json::Value,
    request_key: &str,
    containers: i64,
) -> Vec<vane::rules::hpa::Pod> {
    use vane::rules::hpa::{Phase, Pod, Started};
    case["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Pod {
            name: p["name"].as_str().unwrap().to_string(),
            phase: match p["phase"].as_str().unwrap() {
                "Running" => Phase::Running,
                "Pending" => Phase::Pending,
                "Failed" => Phase::Failed,
                other => panic!("phase {other}"),
            },
            ready: p["ready"].as_bool().unwrap(),
            started: match p["start_time"].as_str().unwrap() {
                s if s.starts_with("hot") => Started::Hot,
                s if s.starts_with("cool") => Started::Cool,
                _ => Started::LongAgo,
            },
            deleting: p["being_deleted"].as_bool().unwrap(),
            request_milli: p[request_key].as_i64().map(|r| r * containers),
        })
        .collect()
}

/// Writes `dir/vane.toml`: `data_dir` in `dir/data`, then `body`.
pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("vane.toml");
    std::fs::write(
        &path,
        format!("data_dir = \"{}\"\n{body}", dir.join("data").display()),
    )
    .unwrap();
    path
}

/// Polls `cond` every 20 ms for up to a minute.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
