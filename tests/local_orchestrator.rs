//! End to end on one machine: `vane run` with the `local` orchestrator follows
//! an access log the test appends to (a rate step up, then down), starts and
//! stops real processes accordingly, and its decision records say why.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::{wait_for, write_config};
use vane::rules::{Decision, Direction};

use common::shop::{alive, append, decisions, line_with_status};

#[test]
fn local_orchestrator_follows_a_rate_step_with_real_processes() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/shop.yaml"),
        "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {name: shop}\nspec:\n  selector: {names: [\"shop.example.com\"]}\n  min: 1\n  max: 6\n  targets:\n    - {metric: rps_per_instance, value: 10}\n  behavior:\n    scaleUp: {stabilization: 0s}\n    scaleDown: {stabilization: 0s}\n",
    )
    .unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"rules = ["{rules}"]
[[sources]]
type = "file"
path = "{log}"
format = "gorouter"
[run]
poll_interval = "50ms"
idle_timeout = "1s"
[orchestrator]
kind = "local"
refresh_interval = "500ms"
[orchestrator.apps."shop.example.com"]
command = ["sh", "-c", "echo $$ > \"$PID_DIR/$INSTANCE_INDEX.pid\"; echo listening on $PORT; exec sleep 300"]
base_port = 18100
env = {{ PID_DIR = "{pids}" }}
"#,
            rules = dir.path().join("rules").display(),
            log = log.display(),
            pids = pids.display(),
        ),
    );
    let mut child = common::spawn_run(&cfg);
    let decisions_path = dir.path().join("data/decisions.jsonl");

    // The supervisor starts one instance with Vane.
    wait_for("the first instance", || alive(&pids).len() == 1);
    // 5 requests/s for 30 s: one instance is enough.
    append(&log, 0, 30, 5);
    wait_for("decisions on the quiet phase", || {
        decisions(&decisions_path).len() >= 2
    });
    let quiet = decisions(&decisions_path);
    assert!(
        quiet.iter().all(|d| d.current == 1 && d.desired == 1),
        "the first decision starts from the one running instance: {quiet:#?}"
    );
    assert_eq!(alive(&pids).len(), 1);

    // 40 requests/s: four instances at 10 requests/s each.
    append(&log, 30, 90, 40);
    wait_for("four instances", || alive(&pids).len() == 4);
    let is_up = |d: &Decision| d.direction == Direction::Up;
    wait_for("the scale-up decision", || {
        decisions(&decisions_path).iter().any(is_up)
    });
    let all = decisions(&decisions_path);
    let up = all.iter().find(|d| is_up(d)).unwrap();
    assert_eq!(up.desired, 4, "{all:#?}");
    assert!(
        up.reason.contains("rps/instance"),
        "the record says which metric asked: {}",
        up.reason
    );
    let rec = &up.recommendations[0];
    assert_eq!(rec.metric, "rps/instance");
    assert!(rec.value.is_some_and(|v| v > 30.0), "{rec:?}");

    // Back to 5 requests/s: down to one instance again.
    append(&log, 90, 150, 5);
    wait_for("one instance again", || alive(&pids).len() == 1);
    let is_down = |d: &Decision| d.direction == Direction::Down;
    wait_for("the scale-down decision", || {
        decisions(&decisions_path).iter().any(is_down)
    });
    let all = decisions(&decisions_path);
    let down = all.iter().find(|d| is_down(d)).unwrap();
    assert_eq!(down.desired, 1, "{all:#?}");
    assert!(down.reason.contains("rps/instance"), "{}", down.reason);
    assert!(
        all.iter().all(|d| d.error.is_none()),
        "no action failed: {all:?}"
    );
    // Each instance got its own port.
    let first =
        std::fs::read_to_string(dir.path().join("data/local/shop.example.com-0.log")).unwrap();
    assert!(first.contains("listening on 18100"), "{first}");
    let fourth =
        std::fs::read_to_string(dir.path().join("data/local/shop.example.com-3.log")).unwrap();
    assert!(fourth.contains("listening on 18103"), "{fourth}");

    // Stopping Vane stops its instances.
    let still = alive(&pids);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "vane exited with {status}");
    std::thread::sleep(Duration::from_millis(200));
    for pid in still {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "instance {pid} still runs after Vane stopped"
        );
    }
}

/// A health rule restarts the instance whose requests fail, through the
/// local supervisor: a new process takes its place, and the record says why.
#[test]
fn a_failing_instance_is_restarted_by_its_health_rule() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/shop-health.yaml"),
        "apiVersion: vane/v1\nkind: HealthRule\nmetadata: {name: shop-health}\nspec:\n  selector: {names: [\"shop.example.com\"]}\n  errorRatio: {above: 0.5, windows: 2, minRequests: 10}\n  restarts: {max: 2, per: 10m}\n",
    )
    .unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"rules = ["{rules}"]
[[sources]]
type = "file"
path = "{log}"
format = "gorouter"
[run]
poll_interval = "50ms"
idle_timeout = "1s"
[orchestrator]
kind = "local"
[orchestrator.apps."shop.example.com"]
command = ["sh", "-c", "echo $$ > \"$PID_DIR/$INSTANCE_INDEX.pid\"; exec sleep 300"]
initial = 2
env = {{ PID_DIR = "{pids}" }}
"#,
            rules = dir.path().join("rules").display(),
            log = log.display(),
            pids = pids.display(),
        ),
    );
    let mut child = common::spawn_run(&cfg);
    wait_for("two instances", || alive(&pids).len() == 2);
    let pid_of =
        |i: u32| std::fs::read_to_string(pids.join(format!("{i}.pid"))).unwrap_or_default();
    let (first0, first1) = (pid_of(0), pid_of(1));
    // 40 s: instance 0 answers, instance 1 fails every request.
    let mut text = String::new();
    for s in 0..40 {
        for k in 0..10 {
            let ms = s * 1000 + k * 100;
            text.push_str(&line_with_status(ms, 0, 200));
            text.push_str(&line_with_status(ms + 50, 1, 503));
        }
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let decisions_path = dir.path().join("data/decisions.jsonl");
    wait_for("the restart record", || {
        decisions(&decisions_path)
            .iter()
            .any(|d| d.action.as_deref() == Some("restart"))
    });
    wait_for("a new process for instance 1", || {
        let p = pid_of(1);
        !p.is_empty() && p != first1
    });
    assert_eq!(pid_of(0), first0, "the healthy instance is left alone");
    assert_eq!(alive(&pids).len(), 2);
    let all = decisions(&decisions_path);
    let restart = all
        .iter()
        .find(|d| d.action.as_deref() == Some("restart"))
        .unwrap();
    assert_eq!(restart.instance.as_deref(), Some("1"));
    assert!(
        restart.reason.starts_with(
            "restart instance 1 of shop.example.com: 5xx ratio above 0.5 for 2 windows"
        ),
        "{}",
        restart.reason
    );
    assert!(all.iter().all(|d| d.error.is_none()), "{all:#?}");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}
