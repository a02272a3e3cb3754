//! `vane check`, `vane test` and decisions in `vane run`, end to end.

mod common;

use std::fs;
use std::path::Path;

use common::vane;

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn the_shipped_rules_pass_check_and_their_tests() {
    let out = vane().arg("check").arg(repo("rules")).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "6 policies, 2 alert rules and 1 health rule OK"
    );
    let out = vane().arg("test").arg(repo("rules")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("11 passed, 0 failed"), "{stdout}");
}

#[test]
fn a_broken_rule_file_is_rejected_with_file_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("web.yaml");
    fs::write(
        &f,
        "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec:\n  selector: {apps: [web]}\n  min: 1\n  max: 4\n  targets:\n    - {metric: rps_per_instance, valeu: 10}\n",
    )
    .unwrap();
    let out = vane().arg("check").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap();
    assert!(first.starts_with(&format!("{}:9:", f.display())), "{err}");
    assert!(
        first.contains("unknown field `valeu`") && first.contains("did you mean `value`?"),
        "{err}"
    );

    // Several errors at once, each located.
    fs::write(
        &f,
        "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec:\n  selector: {apps: [web]}\n  min: 5\n  max: 4\n  targets:\n    - {metric: rps_per_instance, value: 0}\n",
    )
    .unwrap();
    let out = vane().arg("check").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with(&f.display().to_string()))
            .count(),
        2,
        "{err}"
    );
    assert!(
        err.contains(":6:8: policy \"web\": min (5) is larger than max (4)"),
        "{err}"
    );
}

#[test]
fn a_failing_rule_test_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(repo("rules/web.yaml"), dir.path().join("web.yaml")).unwrap();
    fs::write(
        dir.path().join("web.test.yaml"),
        "tests:\n  - name: wrong on purpose\n    app: web.apps.example.com\n    instances: 4\n    series: {rps: \"8x3\"}\n    expect:\n      - {at: 30s, desired: 7}\n",
    )
    .unwrap();
    let out = vane().arg("test").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAIL") && stdout.contains("desired 4 (want 7)"),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
}

#[test]
fn run_writes_explained_decisions_for_the_example() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vane.toml");
    fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\nrules = [\"{}\"]\n[[sources]]\ntype = \"file\"\npath = \"{}\"\n[run]\npoll_interval = \"50ms\"\n",
            dir.path().join("data").display(),
            repo("rules").display(),
            repo("examples/input/gorouter.log").display()
        ),
    )
    .unwrap();
    let out = vane()
        .args(["run", "--exit-when-idle", "1s", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(dir.path().join("data/decisions.jsonl")).unwrap();
    let decisions: Vec<vane::rules::Decision> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let web: Vec<_> = decisions.iter().filter(|d| d.policy == "web").collect();
    assert!(!web.is_empty());
    assert!(
        web.iter()
            .all(|d| d.name.as_deref() == Some("web.apps.example.com"))
    );
    // The example's spike on web is met by a burst, and the sentence says so.
    let burst = web
        .iter()
        .find(|d| d.constraints.iter().any(|c| c.name == "burst"))
        .expect("a burst decision");
    assert!(burst.desired > burst.current);
    // Met seconds into the window by a burst probe, not at its end.
    assert!(
        burst.reason.starts_with(&format!(
            "burst seen 2 s into the window: scale web.apps.example.com from {} to {}",
            burst.current, burst.desired
        )),
        "{}",
        burst.reason
    );
    assert!(
        burst.time.secs() % 10 != 0,
        "a probe decides mid-window: {}",
        burst.time
    );
    // The december-sale schedule lifts catalog to 4.
    assert!(decisions.iter().any(|d| {
        d.policy == "catalog"
            && d.constraints
                .iter()
                .any(|c| c.name == "schedule" && c.to == 4)
    }));
    // The example's 5xx burst on checkout pages, then resolves.
    let alerts = fs::read_to_string(dir.path().join("data/alerts.jsonl")).unwrap();
    let events: Vec<vane::model::AlertEvent> = alerts
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let checkout: Vec<_> = events
        .iter()
        .filter(|e| {
            e.alertname == "HighErrorRatio"
                && e.labels.get("app_name").map(String::as_str) == Some("checkout.apps.example.com")
        })
        .map(|e| e.state)
        .collect();
    use vane::model::AlertState::*;
    assert_eq!(checkout, vec![Pending, Firing, Resolved], "{alerts}");
    // Every decision explains any difference between recommendation and outcome.
    for d in &decisions {
        if d.recommended != d.desired {
            assert!(!d.constraints.is_empty(), "{d:?}");
        }
    }
}

/// GOV.UK's production alert rules and their promtool tests, translated where
/// their expressions map onto window metrics (tests/cases/govuk/).
#[test]
fn translated_govuk_alert_tests_pass() {
    let out = vane()
        .arg("test")
        .arg(repo("tests/cases/govuk"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("5 passed, 0 failed"), "{stdout}");
}

/// `vane replay --rules` on both example files gives exactly what `vane run`
/// gives live: the same windows, decisions and alert transitions.
#[test]
fn replay_with_rules_matches_run() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, metrics) = (
        repo("examples/input/gorouter.log"),
        repo("examples/input/container-metrics.jsonl"),
    );
    let cfg = common::write_config(
        dir.path(),
        &format!(
            "rules = [\"{}\"]\n[[sources]]\ntype = \"file\"\npath = \"{}\"\n[[sources]]\ntype = \"file\"\npath = \"{}\"\n[run]\npoll_interval = \"50ms\"\n",
            repo("rules").display(),
            logs.display(),
            metrics.display()
        ),
    );
    let out = vane()
        .args(["run", "--exit-when-idle", "1s", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = dir.path().join("replay");
    let out = vane()
        .arg("replay")
        .arg("--rules")
        .arg(repo("rules"))
        .arg("--out")
        .arg(r.join("windows.jsonl"))
        .arg("--decisions")
        .arg(r.join("decisions.jsonl"))
        .arg("--alerts")
        .arg(r.join("alerts.jsonl"))
        .arg("--dead-letters")
        .arg(r.join("dead.jsonl"))
        .arg(&logs)
        .arg(&metrics)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["windows.jsonl", "decisions.jsonl", "alerts.jsonl"] {
        let live = fs::read_to_string(dir.path().join("data").join(f)).unwrap();
        let replayed = fs::read_to_string(r.join(f)).unwrap();
        assert!(!live.is_empty(), "{f}");
        assert!(live == replayed, "{f} differs between run and replay");
    }
}

/// An alert expression of 10,000 nested parentheses: a located error, not
/// a stack overflow (SIGABRT) of `vane check`.
#[test]
fn a_rule_nested_ten_thousand_deep_is_an_error_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("deep.yaml");
    let expr = format!("{}rps > 1{}", "(".repeat(10_000), ")".repeat(10_000));
    fs::write(
        &f,
        format!(
            "apiVersion: vane/v1\nkind: AlertRule\nmetadata: {{name: deep}}\nspec:\n  selector: {{names: [\"*\"]}}\n  expr: \"{expr}\"\n"
        ),
    )
    .unwrap();
    let out = vane().arg("check").arg(&f).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!("{}:6:", f.display())) && err.contains("nest deeper than 32"),
        "{}",
        &err[..err.len().min(500)]
    );
}
