//! The `shop` app of the end-to-end tests: gorouter lines for it, appended
//! to an access log at a given rate, and what to read back (decisions, the
//! local supervisor's running instances).

use std::io::Write;
use std::path::Path;

use vane::rules::Decision;

pub const BASE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// One gorouter line for the `shop` app at `ms` after BASE.
pub fn line(ms: i64, index: u32) -> String {
    line_with_status(ms, index, 200)
}

pub fn line_with_status(ms: i64, index: u32, status: u16) -> String {
    let t = BASE + ms / 1000;
    let (h, m, s) = (t % 86_400 / 3600, t % 3600 / 60, t % 60);
    format!(
        "shop.example.com - [2026-01-01T{h:02}:{m:02}:{s:02}.{:03}Z] \"GET /cart HTTP/1.1\" {status} 0 512 \"-\" \"test\" \"10.0.0.1:5000\" \"10.0.1.1:61000\" x_forwarded_for:\"10.0.0.1\" x_forwarded_proto:\"https\" vcap_request_id:\"r-{ms}\" response_time:0.020 gorouter_time:0.0001 app_id:\"5b7c2a1e-0000-4000-8000-000000000001\" app_index:\"{index}\"\n",
        ms % 1000
    )
}

/// Appends `rps` requests per second for the event-time seconds `from..to`.
pub fn append(path: &Path, from_s: i64, to_s: i64, rps: i64) {
    let mut text = String::new();
    for s in from_s..to_s {
        for i in 0..rps {
            text.push_str(&line(s * 1000 + i * 1000 / rps, (i % 4) as u32));
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Process ids of the instances whose pid files are in `dir` and that still run.
pub fn alive(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.retain(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    });
    pids.sort_unstable();
    pids
}

pub fn decisions(path: &Path) -> Vec<Decision> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `[orchestrator]` block of a `local` supervisor running `shop` as
/// `sleep` processes that write their pid files into `pids`.
pub fn local_orchestrator_toml(pids: &Path, base_port: u16) -> String {
    format!(
        r#"[orchestrator]
kind = "local"
refresh_interval = "500ms"
[orchestrator.apps."shop.example.com"]
command = ["sh", "-c", "echo $$ > \"$PID_DIR/$INSTANCE_INDEX.pid\"; echo listening on $PORT; exec sleep 300"]
base_port = {base_port}
env = {{ PID_DIR = "{}" }}
"#,
        pids.display()
    )
}

/// A scaling policy for `shop` (`min`..`max` instances, 10 requests/s each).
pub fn shop_policy(name: &str, min: u32, max: u32) -> String {
    format!(
        "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {{name: {name}}}\nspec:\n  selector: {{names: [\"shop.example.com\"]}}\n  min: {min}\n  max: {max}\n  targets:\n    - {{metric: rps_per_instance, value: 10}}\n  behavior:\n    scaleUp: {{stabilization: 0s}}\n    scaleDown: {{stabilization: 0s}}\n"
    )
}
