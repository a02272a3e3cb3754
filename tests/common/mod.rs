//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use vane::model::WindowStats;

pub mod scripted;
pub mod shop;
pub mod store;

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

/// Reads one HTTP request from `conn`: lower-cased headers and the body
/// (by Content-Length), then answers 200. For the loopback receivers of tests.
pub fn serve_one(
    conn: &mut std::net::TcpStream,
) -> (std::collections::BTreeMap<String, String>, Vec<u8>) {
    use std::io::{BufRead, Read, Write};
    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
    let mut headers = std::collections::BTreeMap::new();
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    (headers, body)
}

/// `vane run --config CFG` in the background, its log discarded.
pub fn spawn_run(cfg: &Path) -> std::process::Child {
    vane()
        .args(["run", "--config"])
        .arg(cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
