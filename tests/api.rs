//! `vane run`'s HTTP server: `/metrics` parses as Prometheus text and its
//! counters move as lines are appended; `/healthz` and `/readyz` answer;
//! apps and decisions are served; rule edits reload (invalid ones are
//! rejected and the old rules decide on); manual scaling reaches the local
//! supervisor; `vane logs -f` streams what is appended.

mod common;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::shop::{alive, append, decisions, local_orchestrator_toml, shop_policy};
use common::store::get;
use common::{free_port, vane, wait_for, write_config};
use vane::rules::{Decision, DecisionSource, Direction};

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

const TOKEN: &str = "s3cret-token";

/// `vane run` with the API's token variable set.
fn spawn_with_token(cfg: &Path) -> std::process::Child {
    vane()
        .args(["run", "--config"])
        .arg(cfg)
        .env("VANE_TEST_API_TOKEN", TOKEN)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A request with curl: (status, body).
fn request(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-s",
        "--max-time",
        "10",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data", b]);
    }
    let out = cmd.arg(url).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn get_json(url: &str) -> serde_json::Value {
    serde_json::from_str(&get(url)).unwrap_or(serde_json::Value::Null)
}

fn api_decisions(url: &str) -> Vec<Decision> {
    serde_json::from_value(get_json(&format!(
        "{url}/api/v1/decisions?app=shop.example.com&limit=1000"
    )))
    .unwrap_or_default()
}

fn api_config(dir: &Path, port: u16, log: &Path, extra: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "rules = [\"{rules}\"]\n[[sources]]\ntype = \"file\"\npath = \"{log}\"\nformat = \"gorouter\"\n[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1s\"\n[api]\nlisten = \"127.0.0.1:{port}\"\ntoken_env = \"VANE_TEST_API_TOKEN\"\n{extra}",
            rules = dir.join("rules").display(),
            log = log.display(),
        ),
    )
}

#[test]
fn apps_and_decisions_are_served_and_rules_reload_safely() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    let rule_file = dir.path().join("rules/shop.yaml");
    std::fs::write(&rule_file, shop_policy("shop-v1", 1, 6)).unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cfg = api_config(dir.path(), port, &log, "");
    let mut child = spawn_with_token(&cfg);
    wait_for("readyz", || get(&format!("{url}/readyz")) == "ready\n");

    // 20 requests/s: each closed window holds 200 of them.
    append(&log, 0, 30, 20);
    wait_for("the app with its newest window", || {
        let apps = get_json(&format!("{url}/api/v1/apps"));
        apps.as_array().is_some_and(|a| {
            a.iter().any(|app| {
                app["name"] == "shop.example.com"
                    && app["window"]["requests"] == 200
                    && app["policy"] == "shop-v1"
                    && app["instances"].as_array().is_some_and(|i| i.len() == 4)
            })
        })
    });
    wait_for("decisions of shop-v1", || !api_decisions(&url).is_empty());
    assert!(api_decisions(&url).iter().all(|d| d.policy == "shop-v1"));
    let one = get_json(&format!("{url}/api/v1/apps/shop.example.com"));
    assert_eq!(one["policy"], "shop-v1", "{one}");
    assert_eq!(
        request("GET", &format!("{url}/api/v1/apps/nope"), None, None).0,
        404
    );

    // An invalid edit: rejected with file and line, the old rules decide on.
    std::fs::write(
        &rule_file,
        shop_policy("shop-v2", 1, 6).replace("min: 1", "min: many"),
    )
    .unwrap();
    wait_for("the rejected reload", || {
        get_json(&format!("{url}/api/v1/rules"))["reload_failures"] == 1
    });
    let status = get_json(&format!("{url}/api/v1/rules"));
    let first_error = status["last_error"][0].as_str().unwrap_or_default();
    assert!(
        first_error.contains("shop.yaml:6"),
        "the error names file and line: {status}"
    );
    // Reloading on demand needs the token, and reports the same errors.
    assert_eq!(
        request("POST", &format!("{url}/api/v1/reload"), None, None).0,
        401
    );
    let (code, body) = request("POST", &format!("{url}/api/v1/reload"), Some(TOKEN), None);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("shop.yaml:6"), "{body}");
    let before = api_decisions(&url).len();
    append(&log, 30, 60, 20);
    wait_for("more decisions", || api_decisions(&url).len() >= before + 2);
    assert!(
        api_decisions(&url).iter().all(|d| d.policy == "shop-v1"),
        "the old rules stay in force"
    );

    // A valid edit is in force within 2 s.
    std::fs::write(&rule_file, shop_policy("shop-v2", 1, 6)).unwrap();
    let written = std::time::Instant::now();
    wait_for("the reload", || {
        get_json(&format!("{url}/api/v1/rules"))["reloads"] == 1
    });
    let took = written.elapsed();
    assert!(took < Duration::from_secs(2), "reload took {took:?}");
    assert!(
        get_json(&format!("{url}/api/v1/rules"))["last_error"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    // SIGHUP reloads too, changed or not.
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status();
    wait_for("the reload on SIGHUP", || {
        get_json(&format!("{url}/api/v1/rules"))["reloads"] == 2
    });
    append(&log, 60, 90, 20);
    wait_for("decisions of shop-v2", || {
        api_decisions(&url).iter().any(|d| d.policy == "shop-v2")
    });
    // The first window of the new rules may close before the rest is read.
    wait_for("every line read", || {
        get(&format!("{url}/metrics")).lines().any(|l| {
            l.starts_with("vane_source_records_total")
                && l.contains("outcome=\"decoded\"")
                && l.ends_with(" 1800")
        })
    });
    let metrics = get(&format!("{url}/metrics"));
    let samples = vane::decode::prometheus::parse(&metrics).unwrap();
    let value = |name: &str, label: (&str, &str)| {
        samples
            .iter()
            .find(|s| s.name == name && s.labels.get(label.0).is_some_and(|v| v == label.1))
            .map(|s| s.value)
    };
    assert_eq!(
        value("vane_rule_reloads_total", ("result", "rejected")),
        Some(2.0)
    );
    assert_eq!(
        value("vane_rule_reloads_total", ("result", "ok")),
        Some(2.0)
    );
    assert_eq!(
        value("vane_source_records_total", ("outcome", "decoded")),
        Some(1800.0)
    );
    assert!(
        value(
            "vane_app_decisions_total",
            ("app", "5b7c2a1e-0000-4000-8000-000000000001")
        )
        .is_some_and(|v| v >= 1.0),
        "{metrics}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A `vane run` with its API (and a token) over an empty access log, the
/// shop policy (1 to 4 instances) and the local supervisor running the
/// shop app's instances from `base_port`, its first instance up.
struct ShopRun {
    pids: PathBuf,
    log: PathBuf,
    url: String,
    child: std::process::Child,
}

fn shop_run(dir: &Path, base_port: u16) -> ShopRun {
    let pids = dir.join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/shop.yaml"), shop_policy("shop", 1, 4)).unwrap();
    let log = dir.join("access.log");
    std::fs::write(&log, "").unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cfg = api_config(dir, port, &log, &local_orchestrator_toml(&pids, base_port));
    let child = spawn_with_token(&cfg);
    wait_for("the first instance", || alive(&pids).len() == 1);
    wait_for("readyz", || get(&format!("{url}/readyz")) == "ready\n");
    ShopRun {
        pids,
        log,
        url,
        child,
    }
}

#[test]
fn manual_scale_goes_through_the_local_orchestrator_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let ShopRun {
        pids,
        url,
        mut child,
        ..
    } = shop_run(dir.path(), 18300);
    let scale = format!("{url}/api/v1/apps/shop.example.com/scale");

    assert_eq!(
        request("POST", &scale, None, Some(r#"{"instances": 3}"#)).0,
        401
    );
    assert_eq!(
        request("POST", &scale, Some("wrong"), Some(r#"{"instances": 3}"#)).0,
        401
    );
    assert_eq!(
        request("POST", &scale, Some(TOKEN), Some(r#"{"instances": "x"}"#)).0,
        400
    );
    let (code, body) = request(
        "POST",
        &format!("{url}/api/v1/apps/no-such-app.example.com/scale"),
        Some(TOKEN),
        Some(r#"{"instances": 3}"#),
    );
    assert_eq!(code, 404, "an app never seen nor configured: {body}");
    let (code, body) = request(
        "POST",
        &scale,
        Some(TOKEN),
        Some(r#"{"instances": 4294967295, "force": true}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("api.max_manual_instances"), "{body}");
    let (code, body) = request("POST", &scale, Some(TOKEN), Some(r#"{"instances": 3}"#));
    assert_eq!(code, 202, "{body}");
    let d: Decision = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (d.source, d.desired, d.current, d.direction),
        (DecisionSource::Manual, 3, 1, Direction::Up)
    );
    wait_for("three instances", || alive(&pids).len() == 3);

    // Beyond the policy's bounds: bounded, and the record says so.
    let (code, body) = request("POST", &scale, Some(TOKEN), Some(r#"{"instances": 9}"#));
    assert_eq!(code, 202, "{body}");
    let d: Decision = serde_json::from_str(&body).unwrap();
    assert_eq!(d.desired, 4);
    assert_eq!(d.constraints[0].name, "bounds");
    wait_for("four instances", || alive(&pids).len() == 4);
    // Forced: the bounds do not apply.
    let (code, body) = request(
        "POST",
        &scale,
        Some(TOKEN),
        Some(r#"{"instances": 5, "force": true}"#),
    );
    assert_eq!(code, 202, "{body}");
    wait_for("five instances", || alive(&pids).len() == 5);

    let manual = || -> Vec<u32> {
        decisions(&dir.path().join("data/decisions.jsonl"))
            .iter()
            .filter(|d| d.source == DecisionSource::Manual)
            .map(|d| d.desired)
            .collect()
    };
    // The decision file is written through at each checkpoint.
    wait_for("three manual decisions written", || manual().len() == 3);
    assert_eq!(manual(), [3, 4, 5]);
    wait_for("the decisions served", || {
        api_decisions(&url)
            .iter()
            .filter(|d| d.source == DecisionSource::Manual)
            .count()
            == 3
    });
    // The actions are counted per app.
    wait_for("three scale actions counted", || {
        get(&format!("{url}/metrics")).contains(
            "vane_app_actions_total{app=\"shop.example.com\",action=\"scale\",result=\"ok\"} 3",
        )
    });
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}

/// Issue 18: a per-app pause through the API. While paused the policy's
/// decisions are recorded with the reason `paused` and nothing is carried
/// out; resumed, the app scales again.
#[test]
fn a_paused_app_is_decided_but_not_scaled_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let ShopRun {
        pids,
        log,
        url,
        mut child,
    } = shop_run(dir.path(), 18400);
    let pause = format!("{url}/api/v1/apps/shop.example.com/pause");
    assert_eq!(request("POST", &pause, None, None).0, 401);
    let (code, body) = request(
        "POST",
        &format!("{url}/api/v1/apps/no-such-app.example.com/pause"),
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = request("POST", &pause, Some(TOKEN), None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"changed\":true"), "{body}");

    // 40 requests/s against a target of 10 per instance: the policy wants 4.
    append(&log, 0, 60, 40);
    let paused = || {
        api_decisions(&url)
            .into_iter()
            .filter(|d| d.reason.starts_with("paused"))
            .collect::<Vec<_>>()
    };
    wait_for("paused decisions", || paused().len() >= 3);
    let d = &paused()[0];
    assert_eq!(
        (d.desired, d.direction),
        (d.current, Direction::None),
        "{}",
        d.reason
    );
    assert!(d.reason.contains("would have gone to 4"), "{}", d.reason);
    assert_eq!(
        d.constraints.last().map(|c| c.name.as_str()),
        Some("paused")
    );
    let app = get_json(&format!("{url}/api/v1/apps/shop.example.com"));
    assert_eq!(app["paused"], "api", "{app}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(alive(&pids).len(), 1, "nothing carried out while paused");

    let (code, body) = request(
        "POST",
        &format!("{url}/api/v1/apps/shop.example.com/resume"),
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 200, "{body}");
    // Later traffic: the quiet time meanwhile moved the windows on.
    append(&log, 3_600, 3_630, 40);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while alive(&pids).len() != 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        alive(&pids).len(),
        4,
        "{:#?}",
        api_decisions(&url)
            .iter()
            .rev()
            .take(3)
            .map(|d| (&d.reason, d.time, d.current, d.desired))
            .collect::<Vec<_>>()
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_log_tail_streams_events_appended_while_it_watches() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(
        &log,
        "2026-11-27 08:00:00,000 INFO  [main] Shop - started\n",
    )
    .unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"app-log\"\napp = \"shop\"\ninstance = \"0\"\n[run]\npoll_interval = \"50ms\"\nmultiline_timeout = \"300ms\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n",
            log.display()
        ),
    );
    let mut run = common::spawn_run(&cfg);
    wait_for("the first event kept", || {
        get_json(&format!("{url}/api/v1/apps/shop/logs"))
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let mut tail = vane()
        .args(["logs", "shop", "-f", "--api", &url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The kept event first.
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        first.contains("INFO") && first.contains("Shop - started"),
        "{first}"
    );
    // Then what is appended while the tail watches, a stack trace as one event.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(
        b"2026-11-27 08:00:01,000 ERROR [main] Shop - checkout failed\njava.lang.IllegalStateException: empty cart\n\tat shop.Cart.checkout(Cart.java:42)\n2026-11-27 08:00:02,000 WARN  [main] Shop - retrying\n",
    )
    .unwrap();
    drop(f);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("retrying")) {
        seen.push(
            rx.recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no more lines; seen {seen:?}")),
        );
    }
    let text = seen.join("\n");
    assert!(text.contains("[0] ERROR"), "{text}");
    assert!(
        text.contains(
            "checkout failed\njava.lang.IllegalStateException: empty cart\n\tat shop.Cart.checkout"
        ),
        "the stack trace stays with its event: {text}"
    );
    tail.kill().unwrap();
    tail.wait().unwrap();
    run.kill().unwrap();
    run.wait().unwrap();
}

/// Rules mounted from a Kubernetes ConfigMap: the files are symlinks into a
/// hidden, timestamped folder that the kubelet swaps atomically (`..data`).
/// Each rule is loaded once, and a swap is a reload.
#[test]
fn rules_from_a_configmap_volume_load_once_and_reload_on_a_swap() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let version = |n: u32, files: &[(&str, String)]| {
        let v = rules.join(format!("..2026_11_27_10_00_0{n}.{n}"));
        std::fs::create_dir_all(&v).unwrap();
        for (name, text) in files {
            std::fs::write(v.join(name), text).unwrap();
        }
        // ..data → the version, swapped by renaming a new link over it.
        let tmp = rules.join("..data_tmp");
        symlink(v.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, rules.join("..data")).unwrap();
        for (name, _) in files {
            let link = rules.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(name), &link).unwrap();
            }
        }
    };
    version(1, &[("shop.yaml", shop_policy("shop-v1", 1, 6))]);
    let check = vane().arg("check").arg(&rules).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cfg = api_config(dir.path(), port, &log, "");
    let mut child = spawn_with_token(&cfg);
    wait_for("readyz", || get(&format!("{url}/readyz")) == "ready\n");
    assert_eq!(get_json(&format!("{url}/api/v1/rules"))["policies"], 1);
    // The kubelet's update: a new version, then the swap.
    version(2, &[("shop.yaml", shop_policy("shop-v2", 2, 8))]);
    wait_for("the reload after the swap", || {
        get_json(&format!("{url}/api/v1/rules"))["reloads"] == 1
    });
    let status = get_json(&format!("{url}/api/v1/rules"));
    assert_eq!(status["policies"], 1, "{status}");
    assert_eq!(status["reload_failures"], 0, "{status}");
    child.kill().unwrap();
    child.wait().unwrap();
}
