//! The InfluxDB sink against a real server speaking the v2 write API
//! (VictoriaMetrics, started by scripts/services.sh on 127.0.0.1:8428): window
//! totals read back equal totals counted independently from the input, also
//! through a 30 s outage of the server.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::store::{VM, expected, wait_until_stored};
use common::{vane, wait_for, write_config};

fn generate(dir: &Path, seed: &str, lines: &str) -> String {
    let path = dir.join("gen.log");
    let out = vane()
        .args([
            "generate",
            "--lines",
            lines,
            "--apps",
            "12",
            "--instances",
            "40",
            "--rps",
            "400",
            "--seed",
            seed,
            "--out",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::read_to_string(path).unwrap()
}

fn config(dir: &Path, log: &Path, extra: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"gorouter\"\n[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1s\"\n[influxdb]\nurl = \"{VM}\"\norg = \"vane\"\nbucket = \"test\"\nbatch_points = 500\n{}{extra}",
            log.display(),
            common::store::influx_tags()
        ),
    )
}

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn window_totals_in_the_store_equal_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let text = generate(dir.path(), "101", "40000");
    let want = expected(&text);
    let log = dir.path().join("access.log");
    std::fs::write(&log, &text).unwrap();
    let cfg = config(dir.path(), &log, "");
    common::succeeded(
        vane()
            .args(["run", "--exit-when-idle", "2s", "--config"])
            .arg(&cfg),
    );
    assert_eq!(want.values().sum::<u64>(), 40_000);
    assert_eq!(wait_until_stored(&want), want);
    // Replaying the same input overwrites the same points: still exact.
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let out = vane()
        .args(["run", "--exit-when-idle", "2s", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        wait_until_stored(&want),
        want,
        "a replay does not double-count"
    );
}

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn an_outage_of_the_store_loses_nothing_and_pauses_the_input() {
    let pid = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".services/victoriametrics.pid"),
    )
    .expect("VictoriaMetrics started by scripts/services.sh")
    .trim()
    .to_string();
    let dir = tempfile::tempdir().unwrap();
    let text = generate(dir.path(), "202", "60000");
    let want = expected(&text);
    let lines: Vec<&str> = text.lines().collect();
    let log = dir.path().join("access.log");
    std::fs::write(&log, lines[..20_000].join("\n") + "\n").unwrap();
    // A small buffer: the input must pause while the store is away.
    let cfg = config(
        dir.path(),
        &log,
        "max_pending_bytes = 20000\nflush_interval = \"200ms\"\n",
    );
    let mut child = vane()
        .args(["run", "--exit-when-idle", "3s", "--config"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let windows = dir.path().join("data/windows.jsonl");
    wait_for("the first windows", || {
        std::fs::metadata(&windows).is_ok_and(|m| m.len() > 0)
    });
    // The store stops answering for 30 s while the rest of the input arrives.
    let stop = |sig: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    stop("-STOP");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all((lines[20_000..].join("\n") + "\n").as_bytes())
        .unwrap();
    drop(f);
    std::thread::sleep(Duration::from_secs(10));
    let during_a = std::fs::metadata(&windows).unwrap().len();
    std::thread::sleep(Duration::from_secs(18));
    let during_b = std::fs::metadata(&windows).unwrap().len();
    std::thread::sleep(Duration::from_secs(2));
    stop("-CONT");
    assert_eq!(
        during_a, during_b,
        "the input paused while the store was away"
    );
    let status = child.wait().unwrap();
    assert!(status.success());
    let stored_now = wait_until_stored(&want);
    assert_eq!(stored_now, want);
    assert!(
        std::fs::metadata(&windows).unwrap().len() > during_b,
        "and resumed"
    );
}
