//! App logs from the public corpus (../shared/data/app-logs): one event per
//! head line, stack traces joined, levels as written; and `vane run` killed
//! mid-stream still writes every event exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use common::{shared_data, vane, write_config};

fn replay(rel: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("events.jsonl");
    common::succeeded(
        vane()
            .args(["replay", "--format", "app-log", "--out"])
            .arg(&out_path)
            .arg("--dead-letters")
            .arg(dir.path().join("dead.jsonl"))
            .arg(shared_data(rel)),
    );
    std::fs::read_to_string(out_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn levels(events: &[serde_json::Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        let l = e["log"]["level"].as_str().unwrap_or("none").to_string();
        *out.entry(l).or_default() += 1;
    }
    out
}

/// The level word at `index` of each line (split on spaces), lower-cased
/// and normalised like ECS (`WARN` → `warn`).
fn word_levels(text: &str, index: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let w = line
            .split_whitespace()
            .nth(index)
            .unwrap_or("")
            .trim_matches(|c| c == '[' || c == ']')
            .to_lowercase();
        *out.entry(w).or_default() += 1;
    }
    out
}

#[test]
fn kafka_broker_logs_one_event_per_head_with_its_stack_trace() {
    for rel in [
        "app-logs/elastic_kafka0_server.log.2016-12-19-20",
        "app-logs/elastic_kafka1_server.log.2016-12-19-20",
        "app-logs/elastic_kafka0_controller.log.2016-12-19-18",
    ] {
        let text = std::fs::read_to_string(shared_data(rel)).unwrap();
        let events = replay(rel);
        let heads: Vec<&str> = text.lines().filter(|l| l.starts_with("[20")).collect();
        assert_eq!(events.len(), heads.len(), "{rel}");
        // Every line is in exactly one event.
        let lines: usize = events
            .iter()
            .map(|e| e["message"].as_str().unwrap().lines().count())
            .sum();
        assert_eq!(lines, text.lines().count(), "{rel}");
        // Levels: the third word of each head.
        let want = word_levels(&heads.join("\n"), 2);
        assert_eq!(levels(&events), want, "{rel}");
        // Each `java.` line after a head gives that event its error type.
        let traced = events
            .iter()
            .filter(|e| e["error"]["type"].is_string())
            .count();
        let want_traced = text
            .lines()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0].starts_with("[20") && w[1].starts_with("java."))
            .count();
        assert_eq!(traced, want_traced, "{rel}");
    }
}

#[test]
fn loghub_layouts_give_their_time_and_level() {
    // (file, index of the level word)
    for (rel, level_at) in [
        ("app-logs/loghub_HDFS_2k.log", 3),
        ("app-logs/loghub_Hadoop_2k.log", 2),
        ("app-logs/loghub_Spark_2k.log", 2),
        ("app-logs/loghub_Zookeeper_2k.log", 3),
    ] {
        let text = std::fs::read_to_string(shared_data(rel)).unwrap();
        let events = replay(rel);
        assert_eq!(events.len(), text.lines().count(), "{rel}");
        let want = word_levels(&text, level_at);
        assert_eq!(levels(&events), want, "{rel}");
        // Where the line starts `yyyy-mm-dd hh:mm:ss,mmm`, that is the time.
        for (e, line) in events.iter().zip(text.lines()) {
            let t = &line[..23];
            if t.as_bytes()[4] == b'-' {
                let want = format!("{}T{}Z", &t[..10], t[11..].replace(',', "."));
                assert_eq!(e["@timestamp"], want.as_str(), "{rel}: {line}");
            }
        }
    }
    // Apache error log: `[notice]` / `[error]` after a ctime date.
    let events = replay("app-logs/loghub_Apache_2k.log");
    assert_eq!(events[0]["@timestamp"], "2005-12-04T04:47:44.000Z");
    let l = levels(&events);
    assert_eq!(l.values().sum::<usize>(), 2000);
    assert!(l["error"] > 0 && l["notice"] > 0, "{l:?}");
}

/// `vane run` following a growing broker log, killed (`kill -9`) five times:
/// the events written locally are each there exactly once.
#[test]
fn killed_while_following_every_event_is_written_once() {
    let text = std::fs::read_to_string(shared_data(
        "app-logs/elastic_kafka0_controller.log.2016-12-19-18",
    ))
    .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let want = lines.iter().filter(|l| l.starts_with("[20")).count();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("controller.log");
    std::fs::write(&log, "").unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"app-log\"\nstart_at = \"beginning\"\napp = \"kafka\"\n[run]\npoll_interval = \"20ms\"\ncheckpoint_interval = \"100ms\"\nmultiline_timeout = \"300ms\"\n",
            log.display()
        ),
    );
    let mut written = 0;
    for round in 0..5 {
        let mut child = common::spawn_run(&cfg);
        // Append a slice in small pieces (a trace may be cut between them).
        let end = ((round + 1) * lines.len() / 6).min(lines.len());
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        for piece in lines[written..end].chunks(37) {
            f.write_all((piece.join("\n") + "\n").as_bytes()).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(60));
        }
        written = end;
        std::thread::sleep(Duration::from_millis(150 + 70 * round as u64));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all((lines[written..].join("\n") + "\n").as_bytes())
        .unwrap();
    drop(f);
    let out = vane()
        .args(["run", "--exit-when-idle", "2s", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    let events: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("data/logs.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len(), "no event written twice");
    assert_eq!(events.len(), want, "none lost");
    let lines_in_events: usize = events
        .iter()
        .map(|e| e["message"].as_str().unwrap().lines().count())
        .sum();
    assert_eq!(lines_in_events, lines.len(), "no trace cut apart");
}
