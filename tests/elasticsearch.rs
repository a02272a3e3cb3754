//! The Elasticsearch sink against a real server speaking its API (osmem, an
//! OpenSearch-compatible server started by scripts/services.sh on
//! 127.0.0.1:9200): real Kafka broker logs with stack traces are indexed one
//! document per event, exactly once across a replay and through a 30 s
//! outage; mapping errors are dead-lettered with the server's reason.
//!
//! The bulk protocol edge cases a real server will not produce on demand
//! (413, per-item 429) are checked against a recording server at the end.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::scripted::ScriptedServer;
use common::store::get;
use common::{shared_data, vane, wait_for, write_config};

const ES: &str = "http://127.0.0.1:9200";

/// A fresh index prefix per test run (osmem keeps everything until restarted).
fn prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t-{name}-{nanos}")
}

fn count(index: &str) -> u64 {
    let body = get(&format!("{ES}/{index}/_count"));
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["count"].as_u64())
        .unwrap_or(0)
}

fn search(index: &str, query: &str) -> serde_json::Value {
    let body = get(&format!("{ES}/{index}/_search?size=5000&{query}"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn ids(index: &str) -> BTreeSet<String> {
    search(index, "_source=false")["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_id"].as_str().unwrap().to_string())
        .collect()
}

/// Events counted from the text itself: a line starting `[20` opens one.
fn heads(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("[20")).count()
}

/// Events whose next line names a `java.io.IOException`.
fn io_exceptions(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].starts_with("[20") && w[1].starts_with("java.io.IOException"))
        .count()
}

const KAFKA_LOGS: [(&str, &str); 3] = [
    ("kafka0", "app-logs/elastic_kafka0_server.log.2016-12-19-20"),
    ("kafka1", "app-logs/elastic_kafka1_server.log.2016-12-19-20"),
    (
        "kafka0-controller",
        "app-logs/elastic_kafka0_controller.log.2016-12-19-18",
    ),
];

/// `vane run` to idle on an app log of `text` (app `shop`), indexing into
/// the Elasticsearch at `url`.
fn index_app_log(dir: &Path, text: &str, url: &str) {
    let log = dir.join("app.log");
    std::fs::write(&log, text).unwrap();
    let cfg = write_config(
        dir,
        &format!(
            "[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"app-log\"\nstart_at = \"beginning\"\napp = \"shop\"\n[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1s\"\n[elasticsearch]\nurl = \"{url}\"\n",
            log.display()
        ),
    );
    run_to_idle(&cfg);
}

fn run_to_idle(cfg: &Path) {
    common::succeeded(
        vane()
            .args(["run", "--exit-when-idle", "2s", "--config"])
            .arg(cfg),
    );
}

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn broker_logs_are_indexed_once_per_event_across_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let index = prefix("kafka");
    let mut sources = String::new();
    let (mut want, mut want_io) = (0, 0);
    for (instance, rel) in KAFKA_LOGS {
        let path = shared_data(rel);
        let text = std::fs::read_to_string(&path).unwrap();
        want += heads(&text);
        want_io += io_exceptions(&text);
        sources += &format!(
            "[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"app-log\"\nstart_at = \"beginning\"\napp = \"kafka\"\ninstance = \"{instance}\"\n",
            path.display()
        );
    }
    assert_eq!(want, 706 + 426 + 803);
    let cfg = write_config(
        dir.path(),
        &format!(
            "{sources}[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1s\"\n[elasticsearch]\nurl = \"{ES}\"\nindex_prefix = \"{index}\"\nbatch_docs = 300\n"
        ),
    );
    run_to_idle(&cfg);
    // The alias (from the template) covers the daily indices.
    assert_eq!(count(&index) as usize, want);
    let indices = get(&format!("{ES}/_alias/{index}"));
    assert!(
        indices.contains(&format!("{index}-2016.12.19")),
        "{indices}"
    );
    let traces = search(&index, "q=error.type:%22java.io.IOException%22");
    assert_eq!(
        traces["hits"]["total"]["value"].as_u64().unwrap() as usize,
        want_io
    );
    let hit = &traces["hits"]["hits"][0]["_source"];
    assert!(
        hit["error"]["stack_trace"]
            .as_str()
            .unwrap()
            .contains("\tat "),
        "{hit}"
    );
    assert_eq!(hit["service"]["name"], "kafka");
    // The ids are the ones written locally (event.id), all distinct.
    let local: BTreeSet<String> = std::fs::read_to_string(dir.path().join("data/logs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["event"]["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(local.len(), want);
    assert_eq!(ids(&index), local);
    // Everything again from scratch: `create` answers 409, nothing doubles.
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    run_to_idle(&cfg);
    assert_eq!(count(&index) as usize, want);
    assert_eq!(ids(&index), local);
}

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn an_outage_of_elasticsearch_loses_nothing_and_pauses_the_input() {
    let pid =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".services/osmem.pid"))
            .expect("osmem started by scripts/services.sh")
            .trim()
            .to_string();
    let dir = tempfile::tempdir().unwrap();
    let index = prefix("outage");
    let text = std::fs::read_to_string(shared_data(KAFKA_LOGS[2].1)).unwrap();
    let want = heads(&text);
    let lines: Vec<&str> = text.lines().collect();
    let log = dir.path().join("controller.log");
    std::fs::write(&log, lines[..200].join("\n") + "\n").unwrap();
    // A small buffer: the input must pause while the server is away.
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"app-log\"\napp = \"kafka\"\n[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1s\"\nmultiline_timeout = \"500ms\"\n[elasticsearch]\nurl = \"{ES}\"\nindex_prefix = \"{index}\"\nbatch_docs = 50\nmax_pending_bytes = 20000\nflush_interval = \"200ms\"\n",
            log.display()
        ),
    );
    let mut child = vane()
        .args(["run", "--exit-when-idle", "3s", "--config"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the first documents", || count(&index) > 0);
    let signal = |sig: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    signal("-STOP");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all((lines[200..].join("\n") + "\n").as_bytes())
        .unwrap();
    drop(f);
    let events = dir.path().join("data/logs.jsonl");
    std::thread::sleep(Duration::from_secs(10));
    let during_a = std::fs::metadata(&events).unwrap().len();
    std::thread::sleep(Duration::from_secs(18));
    let during_b = std::fs::metadata(&events).unwrap().len();
    std::thread::sleep(Duration::from_secs(2));
    signal("-CONT");
    assert_eq!(
        during_a, during_b,
        "the input paused while the server was away"
    );
    assert!(child.wait().unwrap().success());
    assert_eq!(count(&index) as usize, want);
    assert_eq!(ids(&index).len(), want);
    let dead =
        std::fs::read_to_string(dir.path().join("data/dead-letters.jsonl")).unwrap_or_default();
    assert!(dead.is_empty(), "{dead}");
}

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn mapping_errors_index_the_good_documents_and_dead_letter_the_bad() {
    let dir = tempfile::tempdir().unwrap();
    let index = prefix("mapping");
    // JSON log lines whose `order` field is a number, then (a bug in the
    // app) a string: the first maps `json.order` as a number.
    let mut text = String::new();
    for i in 0..30 {
        let order = if i % 10 == 9 {
            format!("\"order-{i}\"")
        } else {
            i.to_string()
        };
        text += &format!(
            "{{\"@timestamp\":\"2026-03-01T10:00:{i:02}.000Z\",\"level\":\"INFO\",\"message\":\"placed {i}\",\"order\":{order}}}\n"
        );
    }
    let log = dir.path().join("app.log");
    std::fs::write(&log, &text).unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"app-log\"\nstart_at = \"beginning\"\napp = \"orders\"\n[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1s\"\n[elasticsearch]\nurl = \"{ES}\"\nindex_prefix = \"{index}\"\n",
            log.display()
        ),
    );
    run_to_idle(&cfg);
    assert_eq!(count(&index), 27);
    let dead: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("data/dead-letters.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(dead.len(), 3, "{dead:?}");
    for d in &dead {
        assert_eq!(d["source"], "elasticsearch");
        let reason = d["reason"].as_str().unwrap();
        assert!(reason.contains("HTTP 400"), "{reason}");
        assert!(
            reason.contains("mapper_parsing_exception") || reason.contains("json.order"),
            "the server's reason: {reason}"
        );
        assert!(d["line"].as_str().unwrap().contains("order-"), "{d}");
    }
}

/// Against a recording server: a 413 splits the batch, per-item 429s are
/// sent again alone, a 409 counts as indexed, a 400 is dead-lettered.
/// With `access_logs`, every router log line is a document too (one per
/// request, `event.dataset` `vane.access`), counted once across a replay,
/// its fields those of the line.
#[test]
#[ignore = "needs services: scripts/test.sh"]
fn access_logs_are_indexed_once_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("router.log");
    let out = vane()
        .args([
            "generate",
            "--lines",
            "2000",
            "--apps",
            "4",
            "--seed",
            "11",
            "--error-burst",
            "20,60,0.4",
            "--out",
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    // Counted from the text: the status follows the quoted request.
    let status = |l: &str| -> u16 {
        l.split('"')
            .nth(2)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let want_5xx = text.lines().filter(|l| status(l) >= 500).count() as u64;
    assert!(want_5xx > 0);
    let index = prefix("access");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"gorouter\"\n[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1s\"\n[elasticsearch]\nurl = \"{ES}\"\nindex_prefix = \"{index}\"\naccess_logs = true\n",
            log.display()
        ),
    );
    run_to_idle(&cfg);
    assert_eq!(count(&index), 2000);
    let errors = search(
        &index,
        "q=http.response.status_code:%5B500%20TO%20599%5D&size=0",
    );
    assert_eq!(
        errors["hits"]["total"]["value"].as_u64(),
        Some(want_5xx),
        "{errors}"
    );
    // One request, field by field.
    let line = text.lines().nth(1234).unwrap();
    let field = |key: &str| -> &str {
        let at = line.find(&format!("{key}:")).unwrap() + key.len() + 1;
        line[at..]
            .split([' ', '"'])
            .find(|s| !s.is_empty())
            .unwrap()
    };
    let hit = search(
        &index,
        &format!("q=http.request.id:%22{}%22", field("vcap_request_id")),
    );
    assert_eq!(hit["hits"]["total"]["value"].as_u64(), Some(1), "{hit}");
    let doc = &hit["hits"]["hits"][0]["_source"];
    assert_eq!(doc["message"], line);
    assert_eq!(doc["event"]["dataset"], "vane.access");
    assert_eq!(doc["http"]["response"]["status_code"], status(line));
    assert_eq!(doc["cloudfoundry"]["app"]["id"], field("app_id"));
    assert_eq!(doc["service"]["node"]["name"], field("app_index"));
    let request = line.split('"').nth(1).unwrap();
    assert_eq!(doc["url"]["path"], request.split(' ').nth(1).unwrap());
    let seconds: f64 = field("response_time").parse().unwrap();
    let ns = doc["event"]["duration"].as_f64().unwrap();
    assert!((ns - seconds * 1e9).abs() <= 1_000.0, "{ns} vs {seconds} s");
    // Everything again from scratch: still one document per request.
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    run_to_idle(&cfg);
    assert_eq!(count(&index), 2000);
}

#[test]
fn bulk_protocol_splits_on_413_and_retries_only_failed_items() {
    let busy_once = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = ScriptedServer::start(move |req, _| {
        if req.path.starts_with("/_index_template/") {
            return (200, r#"{"acknowledged":true}"#.into());
        }
        let docs: Vec<serde_json::Value> = req
            .body
            .lines()
            .skip(1)
            .step_by(2)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if docs.len() > 4 {
            return (413, "too large".into());
        }
        let items: Vec<String> = docs
            .iter()
            .map(|d| {
                let msg = d["message"].as_str().unwrap();
                let status = if msg.contains("busy")
                    && !busy_once.swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    429
                } else if msg.contains("dup") {
                    409
                } else if msg.contains("bad") {
                    400
                } else {
                    201
                };
                if status == 400 {
                    r#"{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse"}}}"#.to_string()
                } else {
                    format!(r#"{{"create":{{"status":{status}}}}}"#)
                }
            })
            .collect();
        (
            200,
            format!(r#"{{"errors":true,"items":[{}]}}"#, items.join(",")),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let names = ["a", "b", "busy", "d", "dup", "f", "bad", "h"];
    let text: String = names
        .iter()
        .enumerate()
        .map(|(i, m)| format!("2026-03-01 10:00:0{i},000 INFO {m}\n"))
        .collect();
    index_app_log(dir.path(), &text, &server.url);
    let bulks: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/_bulk")
        .collect();
    let sizes: Vec<usize> = bulks.iter().map(|r| r.body.lines().count() / 2).collect();
    // A batch over 4 (413), then halves; the 429 item alone once more.
    assert!(sizes[0] > 4, "{sizes:?}");
    assert!(sizes[1..].iter().all(|&n| n <= 4), "{sizes:?}");
    let busy: Vec<usize> = bulks
        .iter()
        .filter(|r| r.body.contains(" busy\""))
        .map(|r| r.body.lines().count() / 2)
        .collect();
    assert_eq!(busy.len(), 3, "whole, half, alone: {sizes:?}");
    assert_eq!(busy[2], 1, "{sizes:?}");
    let sent: usize = sizes[1..].iter().sum();
    assert_eq!(
        sent,
        names.len() + 1,
        "every document once after the split, the 429 one twice"
    );
    let dead = std::fs::read_to_string(dir.path().join("data/dead-letters.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(dead.contains("mapper_parsing_exception"), "{dead}");
}

/// A server that asks to be retried in 2^64 − 1 seconds: the wait is bounded
/// (no overflow of the clock, no sink held for ever), the retry delivers.
#[test]
fn a_retry_after_of_two_to_the_sixty_four_seconds_is_bounded() {
    let tried = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&tried);
    let server = ScriptedServer::start_with_headers(move |req, _| {
        if req.path.starts_with("/_index_template/") {
            return (200, Vec::new(), r#"{"acknowledged":true}"#.into());
        }
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            let forever = ("Retry-After", u64::MAX.to_string());
            return (429, vec![forever], r#"{"error":"busy"}"#.into());
        }
        let docs = req.body.lines().count() / 2;
        let items = vec![r#"{"create":{"status":201}}"#; docs].join(",");
        (
            200,
            Vec::new(),
            format!(r#"{{"errors":false,"items":[{items}]}}"#),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    index_app_log(
        dir.path(),
        "2026-03-01 10:00:00,000 INFO hello\n",
        &server.url,
    );
    let bulks = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/_bulk")
        .count();
    assert_eq!(bulks, 2, "refused once, delivered on the retry");
}
