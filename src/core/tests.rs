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

/// The lines of `traffic`, as text.
fn traffic_lines(n: u64) -> Vec<String> {
    String::from_utf8(traffic(n))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A gorouter line with its timestamp moved by `shift_ns`.
fn shifted(line: &str, shift_ns: i64) -> String {
    let start = line.find('[').unwrap_or(0) + 1;
    let end = line[start..].find(']').map_or(start, |i| start + i);
    let t = crate::time::parse_iso8601(&line.as_bytes()[start..end]).unwrap_or(0);
    let moved = chrono::DateTime::from_timestamp_nanos(t + shift_ns)
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string();
    format!("{}{moved}{}", &line[..start], &line[end..])
}

/// Feeds `lines` as one source and finishes; what came out.
fn run_lines(
    lines: &[String],
    wall_ns: Option<i64>,
) -> (Counts, Vec<WindowStats>, Vec<DeadLetter>) {
    let mut core = Core::new(WindowConfig::default());
    core.set_wall_clock(wall_ns);
    let src = core.add_source(Format::Gorouter, Mapping::new());
    let mut out = Produced::default();
    let text = lines.join("\n") + "\n";
    core.process_bytes(src, "t", 0, text.as_bytes(), &mut out);
    core.finish(&mut out);
    (core.counts, out.windows, out.dead_letters)
}

const YEAR_NS: i64 = 365 * 86_400 * NANOS_PER_SEC;

/// One valid line a year ahead in 6,000 (issue 18): it used to move the
/// stream's time, and every later record was late. Now it is a dead letter
/// with its reason, and the windows are those of the other 5,999.
#[test]
fn one_line_a_year_ahead_does_not_move_time() {
    let clean = traffic_lines(6_000);
    let mut skewed = clean.clone();
    skewed[3_000] = shifted(&clean[3_000], YEAR_NS);
    let (counts, windows, dead) = run_lines(&skewed, None);
    assert_eq!(counts.late, 0, "{counts:?}");
    assert_eq!(counts.decoded, 5_999, "{counts:?}");
    assert_eq!(counts.dead_letters, 1);
    assert!(
        dead[0].reason.contains("ahead of its stream"),
        "{}",
        dead[0].reason
    );
    assert_eq!(dead[0].line, skewed[3_000]);
    let mut without = clean.clone();
    without.remove(3_000);
    let (_, want, _) = run_lines(&without, None);
    assert_eq!(windows, want, "the windows of the other lines, unchanged");
}

/// A stream whose time really jumps (a gap in the traffic, here an hour)
/// goes on from the new time: nothing is lost or late.
#[test]
fn a_real_jump_in_time_is_followed() {
    let lines = traffic_lines(6_000);
    let gap = 3_600 * NANOS_PER_SEC;
    let jumped: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i >= 3_000 {
                shifted(l, gap)
            } else {
                l.clone()
            }
        })
        .collect();
    let (counts, windows, dead) = run_lines(&jumped, None);
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!((counts.decoded, counts.late), (6_000, 0), "{counts:?}");
    let requests: u64 = windows
        .iter()
        .filter(|w| w.instance.is_none())
        .map(|w| w.requests)
        .sum();
    assert_eq!(requests, 6_000);
    // A jump at the very end (nothing after it) is followed too.
    let mut last = lines.clone();
    let n = last.len();
    last[n - 1] = shifted(&lines[n - 1], gap);
    let (counts, _, dead) = run_lines(&last, None);
    assert!(dead.is_empty() && counts.decoded == 6_000, "{counts:?}");
}

/// Live, a record further ahead of the wall clock than `max_future` is a
/// dead letter at once, even as a stream's first record.
#[test]
fn a_live_run_refuses_times_ahead_of_the_wall_clock() {
    let mut lines = traffic_lines(600);
    lines[0] = shifted(&lines[0], YEAR_NS);
    let first = crate::time::parse_iso8601(b"2025-12-01T00:00:00Z").unwrap_or(0);
    let (counts, windows, dead) = run_lines(&lines, Some(first + 3_600 * NANOS_PER_SEC));
    assert_eq!(
        (counts.decoded, counts.dead_letters, counts.late),
        (599, 1, 0)
    );
    assert!(dead[0].reason.contains("wall clock"), "{}", dead[0].reason);
    assert!(windows.iter().all(|w| w.end.nanos() < first + YEAR_NS));
}

/// A skewed instance whose every record is a year ahead, interleaved with
/// the others': each of its lines is a dead letter, the rest count.
#[test]
fn a_skewed_instance_among_good_ones_is_dead_lettered() {
    let mut lines = traffic_lines(6_000);
    let mut skewed = 0;
    for l in lines.iter_mut().skip(10).step_by(7) {
        *l = shifted(l, YEAR_NS);
        skewed += 1;
    }
    let (counts, _, dead) = run_lines(&lines, None);
    assert_eq!(counts.late, 0, "{counts:?}");
    assert_eq!(counts.dead_letters, skewed, "{counts:?}");
    assert_eq!(counts.decoded, 6_000 - skewed);
    assert_eq!(dead.len() as u64, skewed);
}

/// Records beyond the series limits count under `__overflow__`, which no
/// rule acts on: failing spoofed hosts fire no alert for a made-up app.
#[test]
fn overflow_rows_are_counted_but_never_acted_on() {
    let rules = repo_rules();
    let mut core = Core::new(WindowConfig::default());
    core.windows.set_limits(crate::window::SeriesLimits {
        max_series: 10,
        max_instances_per_app: 2,
    });
    core.evaluate.alerter = Some(Alerter::new(rules.alerts.clone()));
    core.evaluate.health = Some(HealthWatcher::new(rules.health.clone()));
    let src = core.add_source(Format::Gorouter, Mapping::new());
    let lines: Vec<String> = traffic_lines(3_000)
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let at = l.find("app_id:\"").unwrap_or(0) + 8;
            let spoofed = format!("{}spoof-{i:032}{}", &l[..at], &l[at + 36..]);
            spoofed.replacen("HTTP/1.1\" 200 ", "HTTP/1.1\" 500 ", 1)
        })
        .collect();
    let mut out = Produced::default();
    let text = lines.join("\n") + "\n";
    core.process_bytes(src, "t", 0, text.as_bytes(), &mut out);
    core.finish(&mut out);
    let overflow: u64 = out
        .windows
        .iter()
        .filter(|r| r.app == crate::window::OVERFLOW)
        .map(|r| r.requests)
        .sum();
    assert!(overflow > 2_900, "{overflow}");
    assert_eq!(core.windows.counters().overflow, overflow);
    assert!(core.windows.series_count() <= 11);
    // The repo's `names: ["*"]` error alert would fire on these rows.
    assert!(out.windows.iter().any(|r| r.app == crate::window::OVERFLOW
        && r.instance.is_none()
        && r.error_ratio > 0.1
        && r.rps > 0.5));
    assert!(
        out.alerts.iter().all(|a| a.app != crate::window::OVERFLOW),
        "{:?}",
        out.alerts.iter().map(|a| &a.app).collect::<Vec<_>>()
    );
    assert!(
        out.decisions
            .iter()
            .all(|d| d.app != crate::window::OVERFLOW)
    );
}

/// A paused app is not restarted either: the health rule's restart is
/// recorded, held with the reason, and marked so that nothing carries it
/// out; the other apps' restarts go on.
#[test]
fn a_paused_app_gets_no_health_restarts() {
    let rules = repo_rules();
    let mut core = Core::new(WindowConfig::default());
    let mut decider = Decider::new(rules.clone(), WindowConfig::default().length_ns);
    let lines: Vec<String> = traffic_lines(3_000)
        .iter()
        .map(|l| l.replacen("HTTP/1.1\" 200 ", "HTTP/1.1\" 500 ", 1))
        .collect();
    let paused_app = lines
        .first()
        .and_then(|l| l.split("app_id:\"").nth(1))
        .and_then(|rest| rest.get(..36))
        .unwrap_or_default()
        .to_string();
    assert!(decider.set_paused(&paused_app, true));
    core.evaluate.decider = Some(decider);
    core.evaluate.health = Some(HealthWatcher::new(rules.health.clone()));
    let src = core.add_source(Format::Gorouter, Mapping::new());
    let mut out = Produced::default();
    let text = lines.join("\n") + "\n";
    core.process_bytes(src, "t", 0, text.as_bytes(), &mut out);
    core.finish(&mut out);
    let restarts: Vec<&Decision> = out
        .decisions
        .iter()
        .filter(|d| d.source == crate::model::DecisionSource::Health)
        .collect();
    let (held, carried): (Vec<&Decision>, Vec<&Decision>) =
        restarts.iter().partition(|d| d.app == paused_app);
    assert!(!held.is_empty() && !carried.is_empty(), "{restarts:?}");
    for d in &held {
        assert!(d.is_paused(), "{}", d.reason);
        assert!(d.reason.starts_with("paused (by api)"), "{}", d.reason);
    }
    assert!(carried.iter().all(|d| !d.is_paused()));
}
