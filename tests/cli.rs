//! The command line end to end, one test per behaviour a user relies on.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{read_windows, vane};

/// A run reading standard input until it closes.
const STDIN_SOURCE: &str = "[[sources]]\ntype = \"stdin\"\n[run]\npoll_interval = \"20ms\"\n";

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/input/gorouter.log")
}

fn config(dir: &Path, extra_run: &str) -> std::path::PathBuf {
    let path = dir.join("vane.toml");
    fs::write(
        &path,
        format!(
            "data_dir = \"{}\"\n[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"gorouter\"\n[run]\npoll_interval = \"50ms\"\n{extra_run}\n",
            dir.join("data").display(),
            example().display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn run_on_the_bundled_example_writes_windows_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let out = common::succeeded(
        vane()
            .args(["run", "--exit-when-idle", "1s", "--config"])
            .arg(&cfg),
    );
    let windows = read_windows(&dir.path().join("data/windows.jsonl"));
    let apps: std::collections::BTreeSet<_> = windows.iter().map(|w| w.app.clone()).collect();
    assert_eq!(apps.len(), 6, "six apps in the example");
    // The example's spike: one app's peak rps is several times its median.
    let mut by_app: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for w in windows.iter().filter(|w| w.instance.is_none()) {
        by_app.entry(&w.app).or_default().push(w.rps);
    }
    let spiky = by_app.values().any(|v| {
        let mut s = v.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() - 1] > 2.5 * s[s.len() / 2]
    });
    assert!(spiky, "the example has a spike");
    assert!(
        windows.iter().any(|w| w.error_ratio > 0.2),
        "the example has a 5xx burst"
    );
    let dead = fs::read_to_string(dir.path().join("data/dead-letters.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 2);
    for l in dead.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["reason"].as_str().unwrap().contains("column"), "{v}");
        assert!(v["offset"].as_u64().unwrap() > 0);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dead_letters 2"), "{stderr}");
}

#[test]
fn idle_input_still_closes_the_last_windows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "idle_timeout = \"200ms\"\nstats_interval = \"1h\"",
    );
    // What replay says the last window is.
    let reference = dir.path().join("ref.jsonl");
    assert!(
        vane()
            .args(["replay", "--dead-letters"])
            .arg(dir.path().join("d.jsonl"))
            .arg("--out")
            .arg(&reference)
            .arg(example())
            .status()
            .unwrap()
            .success()
    );
    let last_start = read_windows(&reference).last().unwrap().start;
    let mut child = vane()
        .args(["run", "--config"])
        .arg(&cfg)
        .env("VANE_LOG", "warn")
        .spawn()
        .unwrap();
    let windows_file = dir.path().join("data/windows.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = read_windows(&windows_file);
        if got.iter().any(|w| w.start == last_start) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the last window never closed without new input"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_bad_config_names_the_file_the_key_and_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    fs::write(
        &path,
        "[[sources]]\ntype = \"file\"\npath = \"x.log\"\nformat = \"apache\"\n",
    )
    .unwrap();
    let out = vane()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("format"), "{err}");
    assert!(
        err.contains("gorouter") && err.contains("nginx-json"),
        "{err}"
    );
}

#[test]
fn the_built_in_default_outside_the_repository_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = vane().arg("run").current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no vane.toml here"), "{err}");
    assert!(
        err.contains("missing rules, examples/input/gorouter.log"),
        "{err}"
    );
    assert!(err.contains("--config"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing written");
}

#[test]
fn replay_reads_stdin_and_detects_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let text = fs::read(common::shared_data(
        "access-logs/beats_nginx_ingress_controller_test.log",
    ))
    .unwrap();
    let mut child = vane()
        .args(["replay", "--dead-letters"])
        .arg(dir.path().join("dead.jsonl"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let windows: Vec<vane::model::WindowStats> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        windows.iter().any(
            |w| w.app == "default-web-8080" && w.instance.as_deref() == Some("172.17.0.5:8080")
        )
    );
    let requests: u64 = windows
        .iter()
        .filter(|w| w.instance.is_none())
        .map(|w| w.requests + w.late)
        .sum();
    // 29 lines: one malformed, and two from 2022 between lines of 2020 —
    // the stream goes on in 2020 after them: a skewed clock, not time.
    assert_eq!(requests, 26, "29 lines, one malformed, two skewed");
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("dead_letters 3"), "{summary}");
    let dead = fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert_eq!(dead.matches("a skewed clock").count(), 2, "{dead}");
    let kinds: Vec<String> = dead
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(
        kinds,
        [r#""malformed""#, r#""skewed_clock""#, r#""skewed_clock""#],
        "{dead}"
    );
}

#[test]
fn run_reads_stdin_until_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(dir.path(), STDIN_SOURCE);
    let mut child = vane()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let text = fs::read(example()).unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap(); // dropped: stdin closes
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let windows = read_windows(&dir.path().join("data/windows.jsonl"));
    let total: u64 = windows
        .iter()
        .filter(|w| w.instance.is_none())
        .map(|w| w.requests + w.late)
        .sum();
    assert_eq!(total, 9_000, "every decodable line of the example");
}

#[test]
fn container_metrics_join_the_request_windows_of_the_same_apps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vane.toml");
    let metrics =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/input/container-metrics.jsonl");
    fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\n[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"gorouter\"\n[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"auto\"\n[run]\npoll_interval = \"50ms\"\n",
            dir.path().join("data").display(),
            example().display(),
            metrics.display()
        ),
    )
    .unwrap();
    common::succeeded(
        vane()
            .args(["run", "--exit-when-idle", "1s", "--config"])
            .arg(&cfg),
    );
    let windows = read_windows(&dir.path().join("data/windows.jsonl"));
    let app_rows: Vec<_> = windows.iter().filter(|w| w.instance.is_none()).collect();
    // The fast source (requests) did not close windows the slower one (metrics) was filling.
    let total: u64 = app_rows.iter().map(|w| w.requests + w.late).sum();
    assert_eq!(total, 9_000);
    assert_eq!(app_rows.iter().map(|w| w.late).sum::<u64>(), 0);
    let with_cpu = app_rows
        .iter()
        .filter(|w| w.cpu_pct.is_some() && w.requests > 0)
        .count();
    assert!(
        with_cpu * 10 >= app_rows.iter().filter(|w| w.requests > 0).count() * 9,
        "{with_cpu} of {} rows",
        app_rows.len()
    );
    // An app's memory is the sum of its instances'.
    let w = app_rows
        .iter()
        .find(|w| w.memory_bytes.is_some() && w.requests > 0)
        .unwrap();
    let instances: f64 = windows
        .iter()
        .filter(|r| r.app == w.app && r.start == w.start && r.instance.is_some())
        .filter_map(|r| r.memory_bytes)
        .sum();
    assert!((w.memory_bytes.unwrap() - instances).abs() < 1.0);
    assert!(w.memory_pct.unwrap() > 0.0 && w.memory_pct.unwrap() < 100.0);
}

/// `vane replay`'s flags go through the same validation as `vane run`'s
/// configuration: a setting one refuses, the other refuses with the same words.
#[test]
fn replay_and_run_reject_the_same_settings_with_the_same_messages() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "window",
            "length",
            "0s",
            "must be a positive whole number of milliseconds",
        ),
        (
            "window",
            "allowed_lateness",
            "2d",
            "must be at most 1d (windows stay open this long",
        ),
        ("window", "idle_expiry", "40d", "must be at most 30d"),
        (
            "window",
            "idle_expiry",
            "1s",
            "must be at least one window length",
        ),
    ];
    for (section, key, value, message) in cases {
        let cfg = dir.path().join(format!("{key}-{value}.toml"));
        fs::write(
            &cfg,
            format!(
                "data_dir = \"{}\"\n[{section}]\n{key} = \"{value}\"\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let run = vane()
            .args(["run", "--exit-when-idle", "1s", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let flag = match key {
            "length" => "--window".to_string(),
            k => format!("--{}", k.replace('_', "-")),
        };
        let replay = vane()
            .args(["replay", &format!("{flag}={value}")])
            .arg(example())
            .output()
            .unwrap();
        for (what, out) in [("run", &run), ("replay", &replay)] {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{what} {key}={value}: {stderr}");
            assert!(stderr.contains(message), "{what} {key}={value}: {stderr}");
        }
        assert!(
            String::from_utf8_lossy(&replay.stderr).contains(&flag),
            "replay names its flag"
        );
    }
}

/// One run per data dir: a second run, and a replay writing its default
/// files into it, are refused with the holder's PID while the first runs;
/// once it is gone (the kernel drops the lock), both may.
#[test]
fn a_running_data_dir_is_refused_to_a_second_run_and_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(dir.path(), STDIN_SOURCE);
    let mut first = vane()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = dir.path().join("data/vane.lock");
    let pid = first.id().to_string();
    common::wait_for("the run's lock", || {
        fs::read_to_string(&lock).is_ok_and(|t| t.trim() == pid)
    });

    let second = vane()
        .args(["run", "--exit-when-idle", "1s", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{said}");
    assert!(
        said.contains(&format!("pid {pid}")) && said.contains("own data_dir"),
        "{said}"
    );

    let replay = || {
        vane()
            .current_dir(dir.path())
            .args(["replay", "--out"])
            .arg(dir.path().join("windows-replayed.jsonl"))
            .arg(example())
            .output()
            .unwrap()
    };
    let refused = replay();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("replay would overwrite data/dead-letters.jsonl") && said.contains(&pid),
        "{said}"
    );

    drop(first.stdin.take()); // stdin closes: the run ends
    assert!(first.wait().unwrap().success());
    let after = replay();
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
}

/// `--out` a FIFO (as `/dev/null` is a device): written to, never removed
/// and made a regular file in its place.
#[test]
fn replay_writes_into_a_fifo_and_leaves_it_one() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("rows.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read_to_string(fifo).unwrap())
    };
    common::succeeded(
        vane()
            .args(["replay", "--format", "gorouter", "--out"])
            .arg(&fifo)
            .arg("--dead-letters")
            .arg(dir.path().join("dead.jsonl"))
            .arg(example()),
    );
    // Before waiting on the reader: had the FIFO been replaced, nothing
    // would ever write to the one it opened.
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    let rows = reader.join().unwrap();
    let requests: u64 = rows
        .lines()
        .map(|l| serde_json::from_str::<vane::model::WindowStats>(l).unwrap())
        .filter(|w| w.instance.is_none())
        .map(|w| w.requests + w.late)
        .sum();
    assert_eq!(requests, 9_000, "every decodable line of the example");
}

/// A config file that is not there: its path and the cause, said once.
#[test]
fn a_missing_config_file_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let out = vane()
        .args(["run", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&missing.display().to_string()), "{said}");
    assert_eq!(said.matches("os error 2").count(), 1, "{said}");
}

/// `vane check --config` validates a configuration exactly as `vane run`
/// reads it (and `vane check vane.toml` means the same), then the rules it
/// names.
#[test]
fn check_validates_a_config_as_run_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = config(dir.path(), "");
    let out = common::succeeded(vane().args(["check", "--config"]).arg(&good));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
    let as_path = common::succeeded(vane().arg("check").arg(&good));
    assert!(String::from_utf8_lossy(&as_path.stdout).contains("OK"));
    // The same error `vane run` gives, with its line.
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, "[window]\nlength = true\n").unwrap();
    for args in [vec!["check", "--config"], vec!["run", "--config"]] {
        let out = vane().args(&args).arg(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.toml") && err.contains("line 2"),
            "{args:?}: {err}"
        );
    }
    // The rules it names are checked too.
    let rules = dir.path().join("rules");
    fs::create_dir_all(&rules).unwrap();
    fs::write(
        rules.join("broken.yaml"),
        "apiVersion: vane/v1\nkind: Nonsense\n",
    )
    .unwrap();
    let with_rules = dir.path().join("with-rules.toml");
    let text = fs::read_to_string(&good).unwrap();
    fs::write(
        &with_rules,
        format!("rules = [\"{}\"]\n{text}", rules.display()),
    )
    .unwrap();
    let out = vane()
        .args(["check", "--config"])
        .arg(&with_rules)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.yaml"));
}

/// A file source whose path has a typo is an error at start, naming the
/// path and the way to wait for it; with `wait_for_file = true` the run
/// waits and says so (`/metrics`: `vane_source_waiting`).
#[test]
fn a_missing_file_source_is_an_error_unless_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("acess.log");
    let cfg = |extra: &str| {
        let path = dir.path().join("vane.toml");
        fs::write(
            &path,
            format!(
                "data_dir = \"{}\"\n[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"gorouter\"\n{extra}[run]\npoll_interval = \"20ms\"\n",
                dir.path().join("data").display(),
                missing.display()
            ),
        )
        .unwrap();
        path
    };
    let strict = cfg("");
    for cmd in ["run", "check"] {
        let out = vane()
            .args([cmd, "--config"])
            .arg(&strict)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&missing.display().to_string()) && err.contains("wait_for_file"),
            "{cmd}: {err}"
        );
    }
    let waiting = cfg("wait_for_file = true\n");
    let out = common::succeeded(
        vane()
            .args(["run", "--exit-when-idle", "1s", "--config"])
            .arg(&waiting),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such file yet; waiting"), "{err}");
}
