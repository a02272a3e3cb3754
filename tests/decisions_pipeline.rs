//! Decisions inside the pipeline: windows closed by the idle heartbeat carry
//! no evidence, so a silent source never scales an app down.

use std::io::Write;
use std::sync::{Arc, Mutex};

use vane::decode::{Format, Mapping};
use vane::generate::{TrafficSpec, generate};
use vane::pipeline::Pipeline;
use vane::rules::decider::Decider;
use vane::rules::{Decision, load_str};
use vane::sinks::JsonlFile;
use vane::window::WindowConfig;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const POLICY: &str = "apiVersion: vane/v1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec:\n  selector: {names: [\"web.*\"]}\n  min: 1\n  max: 20\n  targets:\n    - {metric: rps_per_instance, value: 5}\n  behavior:\n    scaleDown: {stabilization: 0s}\n";

#[test]
fn an_idle_source_is_missing_data_not_zero_traffic() {
    let rules = vane::rules::RuleSet {
        policies: load_str(POLICY, "web.yaml").unwrap(),
        alerts: Vec::new(),
        health: Vec::new(),
    };
    let decisions = Buf::default();
    let mut p = Pipeline::new(
        WindowConfig::default(),
        JsonlFile::writer(std::io::sink()),
        JsonlFile::writer(std::io::sink()),
    )
    .with_decisions(
        Decider::new(rules, 10_000_000_000),
        JsonlFile::writer(decisions.clone()),
    );
    let src = p.add_source(Format::Gorouter, Mapping::new());
    let spec = TrafficSpec {
        lines: 3_000,
        apps: 2,
        instances: 6,
        rps: 50.0,
        jitter_ms: 0,
        ..TrafficSpec::default()
    };
    let mut lines = Vec::new();
    generate(&spec, &mut lines).unwrap();
    p.process_bytes(src, "test", 0, &lines).unwrap();
    // The source goes quiet for five minutes of processing time.
    p.heartbeat(300_000_000_000).unwrap();
    p.finish().unwrap();
    let text = String::from_utf8(decisions.0.lock().unwrap().clone()).unwrap();
    let all: Vec<Decision> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let with_data: Vec<_> = all.iter().filter(|d| !d.observed.is_empty()).collect();
    let silent: Vec<_> = all.iter().filter(|d| d.observed.is_empty()).collect();
    assert!(
        !with_data.is_empty() && !silent.is_empty(),
        "{} with data, {} silent",
        with_data.len(),
        silent.len()
    );
    let before = with_data.last().unwrap().desired;
    assert!(
        before > 1,
        "the web app needed more than one instance while traffic flowed"
    );
    for d in &silent {
        assert!(
            d.desired >= before,
            "scaled down without data: {}",
            d.reason
        );
        assert!(d.reason.contains("no metrics"), "{}", d.reason);
    }
}
