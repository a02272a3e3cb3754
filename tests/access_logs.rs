//! The public access-log corpus in ../shared/data/access-logs: every line decodes
//! or fails for a stated reason, and window output agrees with an independent count.

mod common;

use std::collections::BTreeMap;

use chrono::DateTime;
use common::{read_windows, shared_data, vane};
use vane::decode::{Format, Mapping, SourceDecoder};

/// Lines of the corpus that really are malformed, with the reason Vane gives.
/// In file-name order.
const KNOWN_MALFORMED: &[(&str, usize, &str)] = &[
    // `[2a02:cf40::::::::4e36]:500000000`: the upstream filebeat test's deliberately bad address.
    (
        "beats_nginx_ingress_controller_test.log",
        27,
        "upstream_addr: port is larger than 65535",
    ),
    // Cut off inside the user agent: no closing quote.
    (
        "elastic_apache_logs.log",
        8899,
        "user_agent: quoted string is never closed (column 110)",
    ),
];

#[test]
fn every_line_decodes_or_fails_for_a_known_reason() {
    let dir = shared_data("access-logs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    let mut failures = Vec::new();
    let mut decoded = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        // Auto-detection per file, as a source would do it.
        let decoder = SourceDecoder::new(Format::Auto, Mapping::new());
        for (i, line) in text.lines().enumerate() {
            match decoder.decode(line) {
                Ok(_) => decoded += 1,
                Err(e) => failures.push((name.clone(), i + 1, e.to_string())),
            }
        }
        let want = match name.as_str() {
            "gorouter_access_log_samples.log" => Format::Gorouter,
            "elastic_apache_logs.log" => Format::Combined,
            _ => Format::IngressNginx,
        };
        assert_eq!(decoder.format(), want, "{name}");
    }
    assert_eq!(failures.len(), KNOWN_MALFORMED.len(), "{failures:#?}");
    for ((file, line, reason), (want_file, want_line, want_reason)) in
        failures.iter().zip(KNOWN_MALFORMED)
    {
        assert_eq!((file.as_str(), *line), (*want_file, *want_line));
        assert!(reason.starts_with(want_reason), "{reason} vs {want_reason}");
    }
    assert_eq!(decoded, 6 + 9_999 + 28);
}

/// Independent of Vane's decoder: split on the fixed punctuation of the
/// combined format and parse the time with chrono.
fn independent_apache_counts(text: &str) -> (BTreeMap<i64, [u64; 3]>, usize) {
    let mut by_window: BTreeMap<i64, [u64; 3]> = BTreeMap::new(); // requests, 5xx, bytes
    let mut skipped = 0;
    for line in text.lines() {
        if !line.ends_with('"') {
            skipped += 1;
            continue;
        }
        let ts = &line[line.find('[').unwrap() + 1..line.find(']').unwrap()];
        let t = DateTime::parse_from_str(ts, "%d/%b/%Y:%H:%M:%S %z")
            .unwrap()
            .timestamp();
        let after_request = line.splitn(3, '"').nth(2).unwrap();
        let mut fields = after_request.split_whitespace();
        let status: u16 = fields.next().unwrap().parse().unwrap();
        let bytes: u64 = fields.next().unwrap().parse().unwrap_or(0);
        let e = by_window.entry(t.div_euclid(10) * 10).or_default();
        e[0] += 1;
        e[1] += u64::from(status >= 500);
        e[2] += bytes;
    }
    (by_window, skipped)
}

#[test]
fn apache_windows_match_an_independent_count() {
    let input = shared_data("access-logs/elastic_apache_logs.log");
    let text = std::fs::read_to_string(&input).unwrap();
    let (want, skipped) = independent_apache_counts(&text);
    assert_eq!(skipped, 1);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    // The file is not time-ordered: with a lateness of a day nothing is late,
    // so every request must land in its window.
    let status = vane()
        .args([
            "replay",
            "--format",
            "combined",
            "--allowed-lateness",
            "24h",
            "--default-app",
            "semicomplete",
        ])
        .arg("--out")
        .arg(&out)
        .arg("--dead-letters")
        .arg(dir.path().join("dead.jsonl"))
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success());
    let windows = read_windows(&out);
    let mut got: BTreeMap<i64, [u64; 3]> = BTreeMap::new();
    for w in &windows {
        assert_eq!(w.app, "semicomplete");
        assert_eq!(w.instance, None, "combined lines name no backend");
        assert_eq!(w.late, 0);
        if w.requests > 0 {
            let t = DateTime::parse_from_rfc3339(&w.start.to_string())
                .unwrap()
                .timestamp();
            got.insert(t, [w.requests, w.status.c5xx, w.bytes_out]);
            assert!((w.rps - w.requests as f64 / 10.0).abs() < 1e-9);
        }
    }
    assert_eq!(got, want);
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 1);
    assert!(dead.contains("\"offset\":"), "{dead}");
}

#[test]
fn out_of_order_apache_lines_are_late_but_accounted_for() {
    let input = shared_data("access-logs/elastic_apache_logs.log");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let output = vane()
        .args(["replay", "--format", "combined"])
        .arg("--out")
        .arg(&out)
        .arg("--dead-letters")
        .arg(dir.path().join("dead.jsonl"))
        .arg(&input)
        .output()
        .unwrap();
    assert!(output.status.success());
    let windows = read_windows(&out);
    let requests: u64 = windows.iter().map(|w| w.requests).sum();
    let late: u64 = windows.iter().map(|w| w.late).sum();
    assert!(
        late > 0,
        "the file is not time-ordered, so some lines are more than 2 s late"
    );
    assert_eq!(
        requests + late + 1,
        10_000,
        "windows + late + dead letters = lines"
    );
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains(&format!("late {late}")), "{summary}");
    assert!(summary.contains("dead_letters 1"), "{summary}");
}
