//! `vane run` following a file through rotation, a `kill -9` and a restart:
//! the windows it writes must equal those of one uninterrupted replay of the
//! same lines (no loss, no duplicate).

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use common::{vane, wait_for};
use vane::decode::Format;
use vane::generate::{TrafficSpec, generate};
use vane::sources::Checkpoint;

fn lines(n: u64) -> Vec<String> {
    let spec = TrafficSpec {
        format: Format::Gorouter,
        lines: n,
        apps: 4,
        instances: 9,
        rps: 400.0,
        seed: 11,
        ..TrafficSpec::default()
    };
    let mut buf = Vec::new();
    generate(&spec, &mut buf).unwrap();
    String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect()
}

fn append(path: &Path, lines: &[String]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        f.write_all(l.as_bytes()).unwrap();
    }
}

fn checkpoint_offset(cp: &Path) -> u64 {
    Checkpoint::load(cp)
        .ok()
        .flatten()
        .map_or(0, |c| c.positions.values().map(|p| p.offset).sum())
}

/// The windows of one uninterrupted replay of `log` (written to
/// `reference.jsonl` in `dir`): what a run with crashes must equal.
fn replayed(log: &Path, dir: &Path) -> String {
    let reference = dir.join("reference.jsonl");
    let ok = vane()
        .args(["replay", "--format", "gorouter", "--out"])
        .arg(&reference)
        .arg("--dead-letters")
        .arg(dir.join("ref-dead.jsonl"))
        .arg(log)
        .status()
        .unwrap();
    assert!(ok.success());
    fs::read_to_string(&reference).unwrap()
}

/// A `vane.toml` in `dir` following `dir/app.log` (with `source` keys added
/// to the source, `run` keys to `[run]`), writing to `dir/data`: the log,
/// the data dir and the config.
fn file_run(dir: &Path, source: &str, run: &str) -> (PathBuf, PathBuf, PathBuf) {
    let log = dir.join("app.log");
    let data = dir.join("data");
    let config = dir.join("vane.toml");
    fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[[sources]]\ntype = \"file\"\npath = \"{}\"\n{source}[run]\npoll_interval = \"20ms\"\n{run}idle_timeout = \"1h\"\n",
            data.display(),
            log.display()
        ),
    )
    .unwrap();
    (log, data, config)
}

fn spawn(config: &Path, extra: &[&str]) -> Child {
    vane()
        .arg("run")
        .arg("--config")
        .arg(config)
        .args(extra)
        .env("VANE_LOG", "warn")
        .spawn()
        .unwrap()
}

#[test]
fn rotation_crash_and_restart_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let data = dir.path().join("data");
    let config = dir.path().join("vane.toml");
    fs::write(
        &config,
        format!(
            r#"data_dir = "{}"
[[sources]]
type = "file"
path = "{}"
format = "gorouter"
[run]
poll_interval = "20ms"
checkpoint_interval = "50ms"
idle_timeout = "1h"
stats_interval = "1h"
"#,
            data.display(),
            log.display()
        ),
    )
    .unwrap();
    let all = lines(30_000);
    let cp = data.join("checkpoint.json");

    // First run: read 10k lines, then crash while more arrive.
    append(&log, &all[..10_000]);
    let mut first = spawn(&config, &[]);
    wait_for("the first checkpoint", || checkpoint_offset(&cp) > 0);
    for piece in all[10_000..15_000].chunks(100) {
        append(&log, piece);
        std::thread::sleep(Duration::from_millis(3));
    }
    first.kill().unwrap(); // SIGKILL: no chance to flush or checkpoint
    first.wait().unwrap();
    let resumed_at = checkpoint_offset(&cp);
    assert!(
        resumed_at < fs::metadata(&log).unwrap().len(),
        "killed mid-file, with lines left to resume"
    );

    // While it is down the file is rotated by rename and a new one started.
    fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, &all[15_000..20_000]);

    // Second run resumes the rotated file, then follows the new one...
    let mut second = spawn(&config, &["--exit-when-idle", "4s"]);
    let new_inode = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(&log).unwrap().ino()
    };
    wait_for("the second run to reach the new file", || {
        Checkpoint::load(&cp).ok().flatten().is_some_and(|c| {
            c.positions
                .values()
                .any(|p| p.file.ino == new_inode && p.offset > 0)
        })
    });
    // ...through a rotation while running, and more lines.
    fs::rename(&log, dir.path().join("app.log.2")).unwrap();
    append(&log, &all[20_000..25_000]);
    std::thread::sleep(Duration::from_millis(200));
    append(&log, &all[25_000..]);
    let status = second.wait().unwrap();
    assert!(status.success());

    // The reference: one replay of the same 30k lines.
    let whole = dir.path().join("whole.log");
    append(&whole, &all);
    let want = replayed(&whole, dir.path());
    let got = fs::read_to_string(data.join("windows.jsonl")).unwrap();
    assert!(!want.is_empty());
    let total = |s: &str| -> u64 {
        s.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["instance"].is_null())
            .map(|v| v["requests"].as_u64().unwrap() + v["late"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(total(&got), 30_000, "every line once");
    assert_eq!(got, want, "same windows as an uninterrupted replay");
}

#[test]
fn truncation_is_followed_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (log, data, config) = file_run(dir.path(), "", "checkpoint_interval = \"50ms\"\n");
    let all = lines(6_000);
    append(&log, &all[..4_000]);
    let cp = data.join("checkpoint.json");
    let mut child = spawn(&config, &["--exit-when-idle", "3s"]);
    let len = fs::metadata(&log).unwrap().len();
    wait_for("the whole file to be read", || {
        checkpoint_offset(&cp) == len
    });
    // copytruncate: the content moves elsewhere and the file starts again, shorter.
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &all[4_000..]);
    assert!(child.wait().unwrap().success());
    let windows = common::read_windows(&data.join("windows.jsonl"));
    let total: u64 = windows
        .iter()
        .filter(|w| w.instance.is_none())
        .map(|w| w.requests + w.late)
        .sum();
    assert_eq!(total, 6_000);
}

#[test]
fn a_glob_follows_every_matching_file_and_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir_all(&logs).unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("vane.toml");
    fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[[sources]]\ntype = \"glob\"\npattern = \"{}/router-*.log\"\nformat = \"auto\"\n[run]\npoll_interval = \"20ms\"\nidle_timeout = \"1h\"\n",
            data.display(),
            logs.display()
        ),
    )
    .unwrap();
    let all = lines(9_000);
    append(&logs.join("router-a.log"), &all[..3_000]);
    append(&logs.join("router-b.log"), &all[3_000..6_000]);
    append(&logs.join("ignored.txt"), &all[..100]);
    let mut child = spawn(&config, &["--exit-when-idle", "3s"]);
    std::thread::sleep(Duration::from_millis(500));
    append(&logs.join("router-c.log"), &all[6_000..]); // appears while running
    assert!(child.wait().unwrap().success());
    let windows = common::read_windows(&data.join("windows.jsonl"));
    let total: u64 = windows
        .iter()
        .filter(|w| w.instance.is_none())
        .map(|w| w.requests + w.late)
        .sum();
    assert_eq!(total, 9_000, "all three matching files, nothing else");
    let cp = Checkpoint::load(&data.join("checkpoint.json"))
        .unwrap()
        .unwrap();
    assert_eq!(cp.positions.len(), 3, "{:?}", cp.positions.keys());
}

/// At fleet size (10,000 apps × 10 instances) a `kill -9` after the first
/// checkpoint and a restart give the windows of one uninterrupted replay.
#[test]
fn a_kill_at_a_hundred_thousand_series_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fleet.log");
    let data = dir.path().join("data");
    let config = dir.path().join("vane.toml");
    fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"gorouter\"\n[run]\npoll_interval = \"20ms\"\ncheckpoint_interval = \"50ms\"\nidle_timeout = \"1h\"\nstats_interval = \"1h\"\n",
            data.display(),
            log.display()
        ),
    )
    .unwrap();
    let spec = TrafficSpec {
        format: Format::Gorouter,
        lines: 600_000,
        apps: 10_000,
        instances: 100_000,
        rps: 20_000.0,
        seed: 7,
        ..TrafficSpec::default()
    };
    let mut out = std::io::BufWriter::new(fs::File::create(&log).unwrap());
    generate(&spec, &mut out).unwrap();
    out.flush().unwrap();
    drop(out);
    let cp = data.join("checkpoint.json");

    let mut first = spawn(&config, &[]);
    wait_for("the first checkpoint", || checkpoint_offset(&cp) > 0);
    first.kill().unwrap(); // SIGKILL: no chance to flush or checkpoint
    first.wait().unwrap();
    let resumed_at = checkpoint_offset(&cp);
    assert!(
        resumed_at < fs::metadata(&log).unwrap().len(),
        "killed mid-file"
    );
    let second = spawn(&config, &["--exit-when-idle", "2s"]);
    assert!(second.wait_with_output().unwrap().status.success());

    let want = replayed(&log, dir.path());
    let reference = dir.path().join("reference.jsonl");
    let got = fs::read_to_string(data.join("windows.jsonl")).unwrap();
    let series: std::collections::BTreeSet<(String, Option<String>)> =
        common::read_windows(&reference)
            .into_iter()
            .map(|w| (w.app, w.instance))
            .collect();
    assert!(series.len() >= 100_000, "{} series", series.len());
    assert!(
        got == want,
        "same windows as an uninterrupted replay ({} and {} bytes)",
        got.len(),
        want.len()
    );
}

/// The line with its gorouter timestamp moved a year ahead.
fn a_year_ahead(line: &str) -> String {
    let start = line.find('[').unwrap() + 1;
    let year: i32 = line[start..start + 4].parse().unwrap();
    format!("{}{}{}", &line[..start], year + 1, &line[start + 4..])
}

/// Issue 18: one valid line a year ahead in 6,000 made `vane run` count
/// every later line late (`decoded=5999 late=2999`). Now it is a dead
/// letter naming the skew, and the windows are those of the other lines.
#[test]
fn one_line_from_a_skewed_clock_does_not_blind_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let (log, data, config) = file_run(dir.path(), "format = \"gorouter\"\n", "");
    let mut all = lines(6_000);
    let skewed = a_year_ahead(&all[3_000]);
    let clean = all.remove(3_000);
    let reference = dir.path().join("clean.log");
    append(&reference, &all);
    all.insert(3_000, skewed.clone());
    append(&log, &all);
    let out = vane()
        .args(["run", "--exit-when-idle", "2s", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.lines()
            .any(|l| l.starts_with("lines 6000 decoded 5999 late 0 dead_letters 1 ")),
        "{said}"
    );
    let dead = fs::read_to_string(data.join("dead-letters.jsonl")).unwrap();
    let dead: serde_json::Value = serde_json::from_str(dead.trim()).unwrap();
    assert!(
        dead["reason"].as_str().unwrap().contains("a skewed clock"),
        "{dead}"
    );
    assert_eq!(dead["line"].as_str().unwrap(), skewed.trim_end());
    assert_eq!(dead["kind"], "skewed_clock");
    assert_ne!(clean, skewed);
    let got = fs::read_to_string(data.join("windows.jsonl")).unwrap();
    assert_eq!(
        got,
        replayed(&reference, dir.path()),
        "the windows of the other lines"
    );
}
