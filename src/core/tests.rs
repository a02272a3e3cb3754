//! The core driven directly: records and time in, what it produced out.

use super::*;
use crate::generate::{TrafficSpec, generate};
use crate::sources::Chunk;

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

/// Two Kafka partitions, apps keyed to them; one is read long after the
/// other (taken over from a crashed consumer). Every record counts, and
/// each app is decided on once per window with its own data: the rows of
/// one partition's window are no evidence that the other's apps are
/// missing.
#[test]
fn partitions_close_and_decide_on_their_own_clocks() {
    let rules = repo_rules();
    let window = WindowConfig::default();
    let mut core = Core::new(window);
    core.evaluate.decider = Some(Decider::new(rules.clone(), window.length_ns));
    core.rules_changed();
    let src = core.add_source(Format::Gorouter, Mapping::new());
    let lines = traffic(6_000);
    let text = String::from_utf8(lines).unwrap_or_default();
    let app_of = |line: &str| {
        line.find("app_id:\"")
            .map(|i| line[i + 8..].split('"').next().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let first_app = text.lines().next().map(app_of).unwrap_or_default();
    let (p0, p1): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| app_of(l) == first_app);
    assert!(!p0.is_empty() && !p1.is_empty());
    let mut out = Produced::default();
    for (stream, records) in [("t/0", &p0), ("t/1", &p1)] {
        let clock = core.clock_for(src, stream);
        for (i, line) in records.iter().enumerate() {
            let chunk = Chunk {
                source: stream.to_string(),
                file: None,
                offset: i as u64,
                data: format!("{line}\n").into_bytes(),
                key: None,
                time_ns: None,
            };
            core.process_on_clock(src, clock, &chunk, &mut out);
        }
    }
    core.finish(&mut out);
    assert_eq!(core.counts.late, 0, "{:?}", core.counts);
    assert_eq!(core.counts.decoded, 6_000);
    let requests: u64 = out
        .windows
        .iter()
        .filter(|r| r.instance.is_none())
        .map(|r| r.requests)
        .sum();
    assert_eq!(requests, 6_000);
    let mut seen = std::collections::BTreeSet::new();
    for d in &out.decisions {
        assert!(
            seen.insert((d.app.clone(), d.time)),
            "one decision per app and window: {d:?}"
        );
        assert!(!d.reason.contains("no data"), "{d:?}");
    }
    assert!(!out.decisions.is_empty());
}
