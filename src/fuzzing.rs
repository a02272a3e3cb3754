//! Entry points for coverage-guided fuzzing (`fuzz/`, `cargo +nightly fuzz`)
//! and for the corpus replay that a plain `cargo test` runs
//! (`tests/fuzz_corpus.rs`): each takes arbitrary bytes and must return
//! without panicking, however hostile the bytes are. One function per
//! target, so the fuzzer and the test run exactly the same code.

use std::sync::OnceLock;

use crate::decode::{Format, Mapping};
use crate::rules::RuleSet;
use crate::run::build;
use crate::sinks::JsonlFile;

/// What a fuzz target runs on one input.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (the file names under `fuzz/fuzz_targets/`
/// and the directories under `fuzz/corpus/`).
pub const TARGETS: [(&str, Target); 10] = [
    ("pipeline", pipeline),
    ("app_log", app_log),
    ("loggregator", loggregator),
    ("prometheus", prometheus),
    ("sse", sse),
    ("alert_expr", alert_expr),
    ("rules", rules),
    ("config", config),
    ("backtest_csv", backtest_csv),
    ("syslog", syslog),
];

/// The formats the first byte of a `pipeline` input chooses from.
const PIPELINE_FORMATS: [Format; 6] = [
    Format::Auto,
    Format::Gorouter,
    Format::NginxJson,
    Format::Combined,
    Format::IngressNginx,
    Format::Loggregator,
];

/// A rule set that matches every app: a target-tracking policy with a burst
/// factor (probes), an alert, and every health check.
const RULES: &str = r#"
apiVersion: vane/v1
kind: ScalingPolicy
metadata: {name: every-app}
spec:
  selector: {names: ["*"]}
  min: 1
  max: 20
  algorithm: target-tracking
  targets:
    - {metric: rps_per_instance, value: 2}
    - {metric: p99_ms, value: 800}
  behavior:
    burst: {factor: 2}
  missingData: {fallback: 2, fallbackAfter: 3}
---
apiVersion: vane/v1
kind: AlertRule
metadata: {name: Errors}
spec:
  selector: {names: ["*"]}
  expr: error_ratio > 0.1 and rps > 0.5 or p99_ms > 2000
  for: 10s
  keepFiringFor: 10s
  annotations: {summary: "{{ $labels.app_name }}: {{ $value }}"}
---
apiVersion: vane/v1
kind: HealthRule
metadata: {name: health}
spec:
  selector: {names: ["*"]}
  silent: {windows: 2}
  errorRatio: {above: 0.5, windows: 2, minRequests: 1}
  crashLoop: {returns: 2, within: 10m}
  nodeSilent: {windows: 2}
  restarts: {max: 3, per: 10m}
"#;

/// The rule set the pipeline targets evaluate (`None` would mean the text
/// above stopped loading: a test checks it does not).
pub fn rule_set() -> Option<&'static RuleSet> {
    static SET: OnceLock<Option<RuleSet>> = OnceLock::new();
    SET.get_or_init(|| crate::rules::load::load_str_set(RULES, "fuzz.yaml").ok())
        .as_ref()
}

fn discard() -> JsonlFile {
    JsonlFile::writer(std::io::sink())
}

/// Runs `data` through a whole pipeline, the way `vane replay` does: the
/// first byte picks the format; decode, time guard, windows, policies,
/// alerts and health rules, and every output serialized.
pub fn pipeline(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let format = PIPELINE_FORMATS[usize::from(pick) % PIPELINE_FORMATS.len()];
    run_pipeline(format, rest);
}

/// App logs: heads, levels, exception types and the multi-line assembler.
pub fn app_log(data: &[u8]) {
    run_pipeline(Format::AppLog, data);
}

fn run_pipeline(format: Format, data: &[u8]) {
    let Ok(cfg) = build::config_from_flags(|_| {}, |_| None) else {
        return;
    };
    let rules = rule_set();
    let files = build::OutputFiles {
        windows: discard(),
        dead_letters: discard(),
        decisions: rules.map(|_| discard()),
        alerts: rules.map(|_| discard()),
        logs: (format == Format::AppLog).then(discard),
    };
    let mut p = build::pipeline(&cfg, rules, files, None);
    let source = p.add_source(format, Mapping::new());
    // Errors are the outputs' (a sink never fails); what matters is that
    // nothing panics on the way.
    let _ = p.process_bytes(source, "fuzz", 0, data);
    let _ = p.heartbeat(60_000_000_000);
    let _ = p.finish();
}

/// Loggregator v2 envelopes, one JSON document (or SSE `data:` line) each.
pub fn loggregator(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let _ = crate::decode::decode_loggregator(line);
        let _ = crate::decode::decode_stream_event(line);
    }
}

/// Syslog framing (RFC 6587) cut at places the first byte chooses gives
/// the same frames as the stream whole; every message is parsed.
pub fn syslog(data: &[u8]) {
    use crate::sources::syslog::{Frame, Frames};
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let whole = Frames::default().push(stream);
    let mut frames = Frames::default();
    let cut: Vec<Frame> = stream
        .chunks(usize::from(step).max(1))
        .flat_map(|part| frames.push(part))
        .collect();
    // A bad frame's sample of bytes may depend on what had arrived; what
    // it is, and every message, must not.
    let shape = |frames: &[Frame]| -> Vec<Frame> {
        frames
            .iter()
            .map(|f| match f {
                Frame::Message(m) => Frame::Message(m.clone()),
                Frame::Bad(why, _) => Frame::Bad(why.clone(), Vec::new()),
            })
            .collect()
    };
    assert_eq!(
        shape(&whole),
        shape(&cut),
        "frames depend on where the stream was cut"
    );
    for f in whole {
        if let Frame::Message(bytes) = f {
            let _ = crate::decode::syslog::parse(&String::from_utf8_lossy(&bytes));
        }
    }
}

/// Prometheus text exposition, parsed and turned into container metrics
/// over two scrapes (the second one rates the first one's counters).
pub fn prometheus(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(samples) = crate::decode::prometheus::parse(&text) else {
        return;
    };
    let mut scrapes = crate::decode::prometheus::ContainerScrapes::default();
    let _ = scrapes.scrape(&samples, 1_700_000_000_000);
    let _ = scrapes.scrape(&samples, 1_700_000_010_000);
}

/// Server-sent event framing: the stream cut into chunks at places the
/// first bytes choose gives the same lines as the stream whole.
pub fn sse(data: &[u8]) {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let whole = crate::sources::rlp::split_lines(&[stream]);
    let step = usize::from(step).max(1);
    let parts: Vec<&[u8]> = stream.chunks(step).collect();
    let cut = crate::sources::rlp::split_lines(&parts);
    assert_eq!(whole, cut, "lines depend on where the stream was cut");
}

/// Alert expressions: parsed, and evaluated on one window where they parse.
pub fn alert_expr(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(expr) = crate::rules::alert::parse_expr(&text) {
        let series = vec![(0, 5.0), (10_000_000_000, 0.0)];
        for w in crate::backtest::series::windows("app", &series, 10_000_000_000, 50.0) {
            let _ = (expr.holds(&w), expr.value(&w));
        }
    }
}

/// Rule files (policies, alerts, health rules, schedules) as YAML.
pub fn rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::rules::load::load_str_set(&text, "fuzz.yaml");
}

/// `vane.toml`, with every validation `vane run` applies.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(cfg) = crate::config::Config::from_toml(&text, "fuzz.toml") {
        let _ = cfg.problems();
    }
}

/// Backtest demand CSV, parsed and turned into window rows.
pub fn backtest_csv(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(by_app) = crate::backtest::series::parse_csv(&text, "fuzz.csv", "app") else {
        return;
    };
    for (app, series) in by_app.iter().take(4) {
        let _ = crate::backtest::series::windows(app, series, 10_000_000_000, 50.0);
    }
}
