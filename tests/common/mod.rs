//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use vane::model::WindowStats;

pub mod scripted;
pub mod shop;
pub mod store;
pub mod tls;

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
/// A port nobody listens on (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    use std::io::Write;
    let (headers, body) = read_request(conn);
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    (headers, body)
}

/// Reads one HTTP request from `conn` without answering it.
pub fn read_request(
    conn: &mut std::net::TcpStream,
) -> (std::collections::BTreeMap<String, String>, Vec<u8>) {
    use std::io::{BufRead, Read};
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

/// The input time `vane run` reports at its end ("run: input read in X s").
pub fn input_seconds(stderr: &[u8]) -> f64 {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with("run: input read in "))
        .unwrap_or_else(|| panic!("no run summary in {text}"));
    line["run: input read in ".len()..]
        .split(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no input time in {line}"))
}

/// `vane run` with the repository's rules, following a file to which the
/// bundled example is appended over ~3 s (so a loop that stalls leaves
/// input unread for as long as it waits), `extra` added to its config.
/// Returns the input time it reports and its window rows with traffic (a
/// run that waits longer to exit also closes a quiet window more by the
/// clock), and the data directory.
pub fn follow_example_slowly(
    extra: &str,
    env: &[(&str, &str)],
) -> (f64, String, tempfile::TempDir) {
    use std::io::Write;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(repo.join("examples/input/gorouter.log")).unwrap();
    let lines: Vec<&str> = example.lines().collect();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("router.log");
    std::fs::write(&log, "").unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "rules = [\"{}\"]\n[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"gorouter\"\n{extra}[run]\npoll_interval = \"50ms\"\n",
            repo.join("rules").display(),
            log.display()
        ),
    );
    let mut cmd = vane();
    cmd.args(["run", "--exit-when-idle", "1s", "--config"])
        .arg(&cfg)
        .env("VANE_LOG", "warn")
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    for piece in lines.chunks(lines.len() / 30 + 1) {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        for l in piece {
            writeln!(f, "{l}").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let windows: String = std::fs::read_to_string(dir.path().join("data/windows.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"requests\":0,"))
        .map(|l| format!("{l}\n"))
        .collect();
    (input_seconds(&out.stderr), windows, dir)
}

/// Runs `cmd` to its end and requires success; a failure shows its stderr.
/// Waits for a spawned `vane` and checks that it exited successfully.
pub fn finished_ok(child: std::process::Child) -> std::process::Output {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn succeeded(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A firing alert of `HighErrorRatio` for `app`, as the rules would raise it.
pub fn alert_event(app: &str) -> vane::model::AlertEvent {
    let now: vane::time::Timestamp = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
        .parse()
        .unwrap();
    vane::model::AlertEvent {
        time: now,
        alertname: "HighErrorRatio".into(),
        app: app.into(),
        state: vane::model::AlertState::Firing,
        labels: [
            ("alertname".to_string(), "HighErrorRatio".to_string()),
            ("app".to_string(), app.to_string()),
            ("severity".to_string(), "page".to_string()),
        ]
        .into(),
        annotations: [("summary".to_string(), format!("{app} fails"))].into(),
        value: Some(0.3),
        active_at: now,
    }
}

/// `vane run` on `sources` (quick intervals) until 3 s pass without input.
pub fn spawn_to_idle(dir: &Path, sources: &str) -> std::process::Child {
    let cfg = write_config(
        dir,
        &format!(
            "{sources}[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1s\"\nmultiline_timeout = \"300ms\"\n"
        ),
    );
    vane()
        .args(["run", "--exit-when-idle", "3s", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn dead_letters(data_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(data_dir.join("dead-letters.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The shared gorouter sample read from a file by `vane run`: what a
/// stream of the same lines (RLP, syslog) must give.
pub struct SampleBaseline {
    pub lines: Vec<String>,
    pub windows: Vec<WindowStats>,
    pub dead: Vec<serde_json::Value>,
    /// The start of the last window with traffic.
    pub last_start: i64,
}

impl SampleBaseline {
    pub fn from_file() -> SampleBaseline {
        let sample =
            std::fs::read_to_string(shared_data("access-logs/gorouter_access_log_samples.log"))
                .unwrap();
        let lines: Vec<String> = sample
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("router.log");
        std::fs::write(&log, lines.join("\n") + "\n").unwrap();
        let sources = format!(
            "[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"gorouter\"\n",
            log.display()
        );
        finished_ok(spawn_to_idle(dir.path(), &sources));
        let windows = read_windows(&dir.path().join("data/windows.jsonl"));
        let last_start = windows
            .iter()
            .filter(|r| r.requests > 0)
            .map(|r| r.start.nanos())
            .max()
            .unwrap();
        SampleBaseline {
            lines,
            dead: dead_letters(&dir.path().join("data")),
            windows: self_until(windows, last_start),
            last_start,
        }
    }

    /// `rows` up to the last window with traffic: rows after it depend on
    /// how long a run idled.
    pub fn until_last(&self, rows: Vec<WindowStats>) -> Vec<WindowStats> {
        self_until(rows, self.last_start)
    }
}

fn self_until(rows: Vec<WindowStats>, last_start: i64) -> Vec<WindowStats> {
    rows.into_iter()
        .filter(|r| r.start.nanos() <= last_start)
        .collect()
}
