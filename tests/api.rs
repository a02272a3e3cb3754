//! `vane run`'s HTTP server: `/metrics` parses as Prometheus text and its
//! counters move as lines are appended; `/healthz` and `/readyz` answer.

mod common;

use std::io::Write;

use common::store::get;
use common::{vane, wait_for, write_config};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn lines_total(url: &str) -> Option<f64> {
    let text = get(&format!("{url}/metrics"));
    let samples = vane::decode::prometheus::parse(&text)
        .unwrap_or_else(|(line, e)| panic!("line {line}: {e}\n{text}"));
    samples
        .iter()
        .find(|s| s.name == "vane_lines_total")
        .map(|s| s.value)
}

#[test]
fn metrics_parse_and_move_as_lines_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("gen.log");
    let out = vane()
        .args([
            "generate", "--lines", "3000", "--apps", "3", "--seed", "9", "--out",
        ])
        .arg(&generated)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&generated).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let log = dir.path().join("access.log");
    std::fs::write(&log, lines[..2000].join("\n") + "\n").unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"gorouter\"\n[run]\npoll_interval = \"50ms\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n",
            log.display()
        ),
    );
    let mut child = common::spawn_run(&cfg);
    wait_for("healthz", || get(&format!("{url}/healthz")) == "ok\n");
    wait_for("readyz", || get(&format!("{url}/readyz")) == "ready\n");
    wait_for("2000 lines counted", || lines_total(&url) == Some(2000.0));
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all((lines[2000..].join("\n") + "\n").as_bytes())
        .unwrap();
    drop(f);
    wait_for("3000 lines counted", || lines_total(&url) == Some(3000.0));
    let metrics = get(&format!("{url}/metrics"));
    assert!(
        metrics.contains("# TYPE vane_decoded_total counter"),
        "{metrics}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
