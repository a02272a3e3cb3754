//! The core driven directly: records and time in, what it produced out.

use super::*;
use crate::generate::{TrafficSpec, generate};

fn repo_rules() -> crate::rules::RuleSet {
    let dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"));
    crate::rules::load_paths(&[dir]).unwrap_or_else(|e| panic!("{e:?}"))
}

fn traffic(lines: u64) -> Vec<u8> {
    let spec = TrafficSpec {
        lines,
        apps: 3,
        instances: 9,
        rps: 50.0,
        jitter_ms: 0,
        ..TrafficSpec::default()
    };
    let mut out = Vec::new();
    generate(&spec, &mut out).unwrap_or_else(|e| panic!("{e}"));
    out
}

/// Apps and instances whose windows expire leave the decider, the health
/// watcher and (through `forgotten`) every view: state follows the fleet.
#[test]
fn expired_series_are_forgotten_everywhere() {
    let rules = repo_rules();
    let window = WindowConfig {
        idle_expiry_ns: 60 * NANOS_PER_SEC,
        ..WindowConfig::default()
    };
    let mut core = Core::new(window);
    core.evaluate.decider = Some(Decider::new(rules.clone(), window.length_ns));
    core.evaluate.health = Some(HealthWatcher::new(rules.health.clone()));
    core.rules_changed();
    let src = core.add_source(Format::Gorouter, Mapping::new());
    let mut out = Produced::default();
    let lines = traffic(3_000);
    core.process_bytes(src, "t", 0, &lines, &mut out);
    // Container metrics for every instance seen, in the last open window:
    // the health rules keep instances whose metrics they have seen.
    let (mut instances_seen, t) = (Vec::new(), core.windows.max_event_ns().unwrap_or(0));
    for row in out.windows.iter().filter(|r| r.instance.is_some()) {
        let key = (row.app.clone(), row.instance.clone());
        if !instances_seen.contains(&key) {
            instances_seen.push(key);
        }
    }
    let metrics: Vec<ContainerMetric> = instances_seen
        .iter()
        .map(|(app, instance)| ContainerMetric {
            time_ns: t,
            app: app.clone(),
            instance: instance.clone(),
            cpu_pct: Some(10.0),
            ..ContainerMetric::default()
        })
        .collect();
    core.process_metrics(src, &metrics, &mut out);
    core.heartbeat(20 * NANOS_PER_SEC, &mut out);
    let tracked = |c: &Core| {
        c.evaluate
            .decider
            .as_ref()
            .map_or(0, |d| d.tracked().count())
    };
    let instances = |c: &Core| {
        c.evaluate
            .health
            .as_ref()
            .map_or(0, HealthWatcher::instances_tracked)
    };
    assert!(
        tracked(&core) > 0,
        "policies of the repo's rules track apps"
    );
    assert!(instances(&core) > 0, "health rules track instances");
    assert!(out.forgotten.is_empty());

    // Ten quiet minutes: every series expires.
    core.heartbeat(600 * NANOS_PER_SEC, &mut out);
    assert_eq!(core.windows.series_count(), 0);
    assert_eq!(tracked(&core), 0, "the decider forgot them");
    assert_eq!(instances(&core), 0, "the health watcher forgot them");
    let apps = out
        .forgotten
        .iter()
        .filter(|f| f.instance.is_none())
        .count();
    assert_eq!(apps, 3, "{:?}", out.forgotten);
    assert_eq!(out.forgotten.len(), 3 + 9);
}
