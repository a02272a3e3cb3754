use std::borrow::Cow;

use super::*;

const S: i64 = NANOS_PER_SEC;

fn rec(
    t_ms: i64,
    app: &str,
    inst: Option<&str>,
    status: u16,
    rt_us: Option<u64>,
) -> AccessRecord<'static> {
    AccessRecord {
        time_ns: t_ms * 1_000_000,
        app: Cow::Owned(app.to_string()),
        instance: inst.map(|i| Cow::Owned(i.to_string())),
        status,
        bytes_received: 10,
        bytes_sent: 100,
        response_time_us: rt_us,
        ..AccessRecord::default()
    }
}

fn agg() -> WindowAggregator {
    WindowAggregator::new(WindowConfig::default())
}

#[test]
fn window_closes_when_watermark_passes_its_end() {
    let mut w = agg();
    let mut out = Vec::new();
    w.push(&rec(1_000, "a", Some("0"), 200, Some(1000)), &mut out);
    w.push(&rec(11_999, "a", Some("0"), 200, Some(1000)), &mut out);
    assert!(out.is_empty(), "watermark 9.999 s has not reached 10 s");
    w.push(&rec(12_000, "a", Some("0"), 500, Some(3000)), &mut out);
    assert_eq!(out.len(), 2, "app and instance rows for [0, 10)");
    assert_eq!(out[0].instance, None);
    assert_eq!(out[1].instance.as_deref(), Some("0"));
    assert_eq!(out[0].start, "1970-01-01T00:00:00Z");
    assert_eq!(out[0].end, "1970-01-01T00:00:10Z");
    assert_eq!(out[0].requests, 1);
    out.clear();
    w.flush(&mut out);
    assert_eq!(out[0].requests, 2);
    assert_eq!(out[0].status.c5xx, 1);
    assert_eq!(out[0].error_ratio, 0.5);
    assert_eq!(out[0].rps, 0.2);
    assert!(
        (out[0].concurrency - 0.0004).abs() < 1e-12,
        "4 ms over 10 s"
    );
    assert_eq!(out[0].latency_ms.max, Some(3.0));
    assert_eq!((out[0].bytes_in, out[0].bytes_out), (20, 200));
}

#[test]
fn late_records_are_counted_not_folded() {
    let mut w = agg();
    let mut out = Vec::new();
    w.push(&rec(5_000, "a", None, 200, None), &mut out);
    w.push(&rec(15_000, "a", None, 200, None), &mut out); // wm 13 s closes [0,10)
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].requests, 1);
    assert_eq!(
        w.push(&rec(9_000, "a", None, 200, None), &mut out),
        Pushed::Late
    );
    out.clear();
    w.flush(&mut out);
    assert_eq!((out[0].requests, out[0].late), (1, 1));
    assert_eq!(w.counters().late, 1);
}

#[test]
fn known_apps_get_zero_windows_and_idle_ones_expire() {
    let cfg = WindowConfig {
        idle_expiry_ns: 30 * S,
        ..WindowConfig::default()
    };
    let mut w = WindowAggregator::new(cfg);
    w.register_app("pinned");
    let mut out = Vec::new();
    w.push(&rec(1_000, "a", Some("0"), 200, Some(5)), &mut out);
    w.push(&rec(100_000, "b", None, 200, Some(5)), &mut out);
    let a_rows: Vec<_> = out
        .iter()
        .filter(|s| s.app == "a" && s.instance.is_none())
        .collect();
    // [0,10) with traffic, then zero windows until idle for 30 s: ends 10..=40 → 4 more
    assert_eq!(
        a_rows.len(),
        4,
        "{:?}",
        a_rows.iter().map(|r| &r.start).collect::<Vec<_>>()
    );
    assert_eq!(a_rows[0].requests, 1);
    assert!(
        a_rows[1..]
            .iter()
            .all(|r| r.requests == 0 && r.latency_ms.p99.is_none())
    );
    let pinned: Vec<_> = out.iter().filter(|s| s.app == "pinned").collect();
    assert_eq!(
        pinned.len(),
        9,
        "pinned app reported for every window up to the watermark"
    );
    assert!(w.counters().series_expired >= 2);
}

/// A record far behind the first ones, before any window closed, is late
/// like any record behind the watermark (it used to open a window of its
/// own, reported as if on time).
#[test]
fn a_record_behind_the_watermark_is_late_before_the_first_close() {
    let mut w = WindowAggregator::new(WindowConfig::default());
    let mut out = Vec::new();
    let year_ms = 365 * 86_400 * 1_000;
    w.push(&rec(year_ms, "a", None, 200, Some(5)), &mut out);
    w.push(&rec(year_ms + 3_000, "a", None, 200, Some(5)), &mut out);
    assert_eq!(
        w.push(&rec(1_000, "a", None, 200, Some(5)), &mut out),
        Pushed::Late
    );
    // Within the allowed lateness of the newest record: on time.
    assert_eq!(
        w.push(&rec(year_ms + 2_000, "a", None, 200, Some(5)), &mut out),
        Pushed::Accepted
    );
    w.flush(&mut out);
    let requests: u64 = out.iter().map(|r| r.requests).sum();
    assert_eq!(requests, 3);
    assert!(out.iter().all(|r| r.start.nanos() >= year_ms * 1_000_000));
}

/// A real jump of two years with a pinned app: zero rows for an hour of
/// the gap, then the rest is jumped over (it used to be 6.3 M rows).
#[test]
fn a_jump_in_time_costs_rows_for_an_hour_not_for_the_gap() {
    let mut w = WindowAggregator::new(WindowConfig::default());
    w.register_app("pinned");
    let mut out = Vec::new();
    let two_years_ms = 2 * 365 * 86_400 * 1_000;
    w.push(&rec(1_000, "a", None, 200, Some(5)), &mut out);
    w.push(&rec(two_years_ms, "a", None, 200, Some(5)), &mut out);
    w.push(
        &rec(two_years_ms + 20_000, "a", None, 200, Some(5)),
        &mut out,
    );
    let pinned = out.iter().filter(|s| s.app == "pinned").count();
    assert!((360..=370).contains(&pinned), "{pinned}");
    // After the jump, every window is reported again.
    let last = out.iter().rfind(|s| s.app == "pinned").unwrap();
    assert_eq!(last.end.nanos(), (two_years_ms + 10_000) * 1_000_000);
    let a: u64 = out
        .iter()
        .filter(|s| s.app == "a")
        .map(|s| s.requests)
        .sum();
    assert_eq!(a, 2, "both records before the last open window counted");
}

#[test]
fn percentiles_are_within_hdr_precision() {
    let mut w = agg();
    let mut out = Vec::new();
    for i in 1..=1000u64 {
        w.push(&rec(1_000, "a", None, 200, Some(i * 1000)), &mut out);
    }
    w.flush(&mut out);
    let l = out[0].latency_ms;
    for (got, want) in [
        (l.p50, 500.0),
        (l.p90, 900.0),
        (l.p95, 950.0),
        (l.p99, 990.0),
        (l.max, 1000.0),
    ] {
        let got = got.unwrap();
        assert!((got - want).abs() / want <= 0.01, "{got} vs {want}");
    }
}

#[test]
fn heartbeat_closes_quiet_windows() {
    let mut w = agg();
    let mut out = Vec::new();
    w.push(&rec(1_000, "a", None, 200, None), &mut out);
    w.advance_watermark(9 * S, &mut out);
    assert!(out.is_empty());
    w.advance_watermark(10 * S, &mut out);
    assert_eq!(out.len(), 1);
    w.advance_watermark(5 * S, &mut out);
    assert_eq!(w.watermark(), Some(10 * S), "never moves back");
}

#[test]
fn snapshot_restore_continues_exactly() {
    let recs: Vec<_> = (0..400)
        .map(|i| {
            rec(
                i * 97,
                if i % 3 == 0 { "a" } else { "b" },
                Some(if i % 2 == 0 { "0" } else { "1" }),
                200 + (i % 4) as u16 * 100,
                Some(i as u64 * 13),
            )
        })
        .collect();
    let mut whole = agg();
    let mut want = Vec::new();
    for r in &recs {
        whole.push(r, &mut want);
    }
    whole.flush(&mut want);

    let mut first = agg();
    let mut got = Vec::new();
    for r in &recs[..211] {
        first.push(r, &mut got);
    }
    let snap = serde_json::to_string(&first.snapshot()).unwrap();
    // A checkpoint serializes without a copy: the same JSON.
    assert_eq!(serde_json::to_string(&first.snapshot_ref()).unwrap(), snap);
    let mut second = agg();
    second.restore(&serde_json::from_str(&snap).unwrap());
    for r in &recs[211..] {
        second.push(r, &mut got);
    }
    second.flush(&mut got);
    assert_eq!(got, want);
}

/// A snapshot may list an instance before its app (slots are reused in
/// any order): restored, the instance is still found with its app, not
/// made again beside itself.
#[test]
fn an_instance_listed_before_its_app_is_restored_with_it() {
    let mut first = agg();
    let mut out = Vec::new();
    first.push(&rec(1_000, "a", Some("0"), 200, Some(10)), &mut out);
    first.flush(&mut out);
    let mut snap = first.snapshot();
    assert!(snap.open.is_empty(), "no aggregates to renumber");
    snap.series.reverse();
    assert_eq!(snap.series[0].instance.as_deref(), Some("0"));
    let mut second = agg();
    second.restore(&snap);
    out.clear();
    second.push(&rec(21_000, "a", Some("0"), 200, Some(10)), &mut out);
    second.flush(&mut out);
    let rows: Vec<_> = out
        .iter()
        .filter(|r| r.requests > 0)
        .map(|r| (r.app.as_str(), r.instance.as_deref()))
        .collect();
    assert_eq!(rows, [("a", None), ("a", Some("0"))]);
    assert_eq!(second.series_count(), 2, "{out:?}");
}

#[test]
fn the_slowest_active_input_holds_the_watermark() {
    let mut w = agg();
    let mut out = Vec::new();
    w.set_input(1);
    w.set_input(0);
    w.push(&rec(100_000, "a", None, 200, None), &mut out);
    assert!(out.is_empty(), "input 1 has seen nothing yet");
    w.set_input(1);
    w.push(&rec(5_000, "b", None, 200, None), &mut out);
    assert!(out.is_empty(), "input 1 is at 5 s");
    w.push(&rec(13_000, "b", None, 200, None), &mut out);
    assert!(
        out.iter().any(|r| r.end == "1970-01-01T00:00:10Z"),
        "both inputs past 12 s close [0, 10)"
    );
    assert!(!out.iter().any(|r| r.end == "1970-01-01T00:00:20Z"));
    out.clear();
    w.set_input_idle(1, true, &mut out);
    assert!(
        out.iter().any(|r| r.end == "1970-01-01T00:01:30Z"),
        "idle input no longer holds it back"
    );
    let m = crate::model::ContainerMetric {
        time_ns: 95_000_000_000,
        app: "a".into(),
        cpu_pct: Some(50.0),
        ..Default::default()
    };
    w.set_input(1);
    assert_eq!(w.push_metric(&m, &mut out), Pushed::Accepted);
    assert_eq!(w.counters().metrics, 1);
}

/// Two Kafka partitions, each a shard with its own clock.
fn two_partitions() -> WindowAggregator {
    let mut w = agg();
    w.own_shard(1);
    w.own_shard(2);
    w
}

#[test]
fn a_dropped_input_takes_its_shards_apps_and_nothing_else() {
    let mut w = two_partitions();
    let mut out = Vec::new();
    w.set_input(1);
    w.push(&rec(1_000, "kept", Some("0"), 200, Some(1000)), &mut out);
    w.set_input(2);
    w.push(&rec(1_500, "moved", Some("0"), 200, Some(1000)), &mut out);
    w.set_input(1);
    w.push(&rec(20_000, "kept", Some("0"), 200, Some(1000)), &mut out);
    // Partition 1 closes [0, 10) by its own clock; partition 2 holds its own open.
    assert!(out.iter().all(|r| r.app == "kept"), "{out:?}");
    assert_eq!(out.len(), 2, "{out:?}");
    let snap = w.snapshot();
    out.clear();
    assert_eq!(w.drop_input(2, &mut out), 2, "app and instance series");
    assert!(
        out.is_empty(),
        "nothing of the dropped partition is emitted: {out:?}"
    );
    assert_eq!(w.series_count(), 2);
    w.set_input(1);
    w.push(&rec(31_000, "kept", Some("0"), 200, Some(1000)), &mut out);
    assert!(out.iter().all(|r| r.app == "kept"), "{out:?}");
    // Which shard a series belongs to survives a checkpoint.
    let mut restored = agg();
    restored.restore(&snap);
    let mut out2 = Vec::new();
    assert_eq!(restored.drop_input(2, &mut out2), 2);
    assert_eq!(restored.series_count(), 2);
    assert_eq!(restored.closed_through_of(1), Some(10 * S));
    assert_eq!(restored.closed_through_of(2), None);
}

/// A partition taken over from a crashed consumer is read from where that
/// consumer committed, long behind this consumer's own partitions: its
/// records build their own windows, none of them late.
#[test]
fn a_partition_behind_the_others_counts_none_of_its_records_late() {
    let mut w = two_partitions();
    let mut out = Vec::new();
    w.set_input(1);
    for t in (0..100).map(|s| s * 1_000) {
        w.push(&rec(t, "ahead", None, 200, Some(1000)), &mut out);
    }
    assert_eq!(w.closed_through_of(1), Some(90 * S));
    w.set_input(2);
    for t in (0..40).map(|s| 30_000 + s * 1_000) {
        assert_eq!(
            w.push(&rec(t, "behind", None, 200, Some(1000)), &mut out),
            Pushed::Accepted
        );
    }
    assert_eq!(w.counters().late, 0);
    let behind: Vec<(i64, u64)> = out
        .iter()
        .filter(|r| r.app == "behind")
        .map(|r| (r.end.nanos() / S, r.requests))
        .collect();
    assert_eq!(
        behind,
        [(40, 10), (50, 10), (60, 10)],
        "its own clock closes them"
    );
    assert_eq!(w.closed_through_of(2), Some(60 * S));
    // Each window of each shard is one group of rows.
    let groups = w.take_closed_groups();
    assert_eq!(groups.iter().map(|g| g.rows).sum::<usize>(), out.len());
    assert_eq!(
        groups
            .iter()
            .filter(|g| g.shard == w.shard_of("behind").unwrap())
            .count(),
        3
    );
    assert!(w.is_sharded());
    // The process-wide end is the slowest shard's.
    assert_eq!(w.closed_through(), Some(60 * S));
}

/// A record of an app that lives in another clock's shard (a topic not
/// keyed by app) goes there, and that shard then waits for both clocks.
#[test]
fn an_app_on_two_partitions_closes_by_the_slower() {
    let mut w = two_partitions();
    let mut out = Vec::new();
    w.set_input(1);
    w.push(&rec(1_000, "shared", None, 200, None), &mut out);
    w.set_input(2);
    w.push(&rec(2_000, "shared", None, 200, None), &mut out);
    w.set_input(1);
    w.push(&rec(30_000, "shared", None, 200, None), &mut out);
    assert!(out.is_empty(), "partition 2 is at 2 s: {out:?}");
    w.set_input(2);
    w.push(&rec(13_000, "shared", None, 200, None), &mut out);
    let ends: Vec<i64> = out.iter().map(|r| r.end.nanos() / S).collect();
    assert_eq!(ends, [10], "{out:?}");
    assert_eq!(out[0].requests, 2);
    assert_eq!(w.series_count(), 1, "one series, in one shard");
    assert_eq!(
        w.counters().cross_partition,
        2,
        "partition 2's records are counted"
    );
}

/// A quiet partition (idle) does not hold its apps' windows open: they
/// close as far as the active partitions got.
#[test]
fn an_idle_partition_follows_the_active_ones() {
    let mut w = two_partitions();
    let mut out = Vec::new();
    w.set_input(2);
    w.push(&rec(1_000, "quiet", None, 200, None), &mut out);
    w.set_input(1);
    w.push(&rec(1_000, "busy", None, 200, None), &mut out);
    w.push(&rec(45_000, "busy", None, 200, None), &mut out);
    assert!(out.iter().all(|r| r.app == "busy"), "{out:?}");
    w.set_input_idle(2, true, &mut out);
    let quiet: Vec<i64> = out
        .iter()
        .filter(|r| r.app == "quiet")
        .map(|r| r.end.nanos() / S)
        .collect();
    assert_eq!(quiet, [10, 20, 30, 40], "{out:?}");
}

/// An app that expired and comes back gets series of its own again, not the
/// slots another app took over meanwhile (series ids are reused).
#[test]
fn an_expired_app_coming_back_does_not_count_into_its_old_slots() {
    let cfg = WindowConfig {
        idle_expiry_ns: 30 * S,
        ..WindowConfig::default()
    };
    let mut w = WindowAggregator::new(cfg);
    let mut out = Vec::new();
    w.push(&rec(1_000, "a", Some("0"), 200, Some(5)), &mut out);
    // "a" expires; "b" takes the freed slots.
    w.push(&rec(100_000, "b", Some("0"), 200, Some(5)), &mut out);
    assert!(w.counters().series_expired >= 2);
    w.push(&rec(101_000, "a", Some("0"), 500, Some(5)), &mut out);
    w.push(&rec(200_000, "c", None, 200, Some(5)), &mut out);
    let in_window = |app: &str| -> Vec<(Option<String>, u64, u64)> {
        out.iter()
            .filter(|s| s.app == app && s.start == "1970-01-01T00:01:40Z")
            .map(|s| (s.instance.clone(), s.requests, s.status.c5xx))
            .collect()
    };
    assert_eq!(
        in_window("a"),
        vec![(None, 1, 1), (Some("0".to_string()), 1, 1)]
    );
    assert_eq!(
        in_window("b"),
        vec![(None, 1, 0), (Some("0".to_string()), 1, 0)]
    );
}

/// One record a year ahead: the windows between are closed by a jump, not
/// one by one (there were three million of them to walk, for no row), and
/// the record still gets its row.
#[test]
fn a_record_far_ahead_is_reached_by_a_jump() {
    let mut w = agg();
    let mut out = Vec::new();
    w.push(&rec(1_000, "a", Some("0"), 200, Some(10)), &mut out);
    let year_ms = 365 * 86_400 * 1_000;
    w.push(&rec(year_ms, "b", Some("0"), 200, Some(10)), &mut out);
    w.flush(&mut out);
    let counters = w.counters();
    assert!(counters.windows_closed <= 40, "{counters:?}");
    let b = out
        .iter()
        .find(|r| r.app == "b" && r.instance.is_none())
        .unwrap();
    assert_eq!(b.start.nanos(), year_ms * 1_000_000);
    assert_eq!(b.requests, 1);
    // "a" gave zero rows while it was known (five minutes), then none.
    let a_rows = out
        .iter()
        .filter(|r| r.app == "a" && r.instance.is_none())
        .count();
    assert_eq!(a_rows, 1 + 30, "{a_rows}");
}

/// A checkpoint saved after a record a year ahead moved the clock (before
/// the time guard held such records back): restored with that time
/// forgotten, the stream's next records count again instead of being late.
#[test]
fn a_restored_clock_forgets_a_skewed_future() {
    const YEAR_MS: i64 = 365 * 86_400 * 1_000;
    let mut w = agg();
    let mut out = Vec::new();
    for t in (0..30_000).step_by(500) {
        w.push(&rec(t, "a", Some("0"), 200, None), &mut out);
    }
    w.push(&rec(YEAR_MS, "a", Some("0"), 200, None), &mut out);
    let mut snap = w.snapshot();
    let mut blind = agg();
    blind.restore(&snap);
    assert_eq!(
        blind.push(&rec(31_000, "a", Some("0"), 200, None), &mut out),
        Pushed::Late
    );

    assert!(snap.forget_future(3_600 * S));
    assert!(!snap.forget_future(3_600 * S), "nothing left to forget");
    let mut healed = agg();
    healed.restore(&snap);
    out.clear();
    for t in (31_000..60_000).step_by(500) {
        assert_eq!(
            healed.push(&rec(t, "a", Some("0"), 200, None), &mut out),
            Pushed::Accepted
        );
    }
    healed.flush(&mut out);
    assert!(
        out.iter().all(|r| r.end.nanos() <= 60 * S),
        "no row a year ahead"
    );
    let requests: u64 = out
        .iter()
        .filter(|r| r.instance.is_none())
        .map(|r| r.requests)
        .sum();
    assert_eq!(requests, 58, "every record after the restore counted");
}

/// Issue 18: spoofed hosts (the app of nginx-json is `$host`) each became
/// a series until expiry. Beyond the limits new apps and instances are
/// counted under `__overflow__`: every request still counts, the state does not grow.
#[test]
fn series_beyond_the_limits_are_counted_under_overflow() {
    let mut w = agg();
    w.set_limits(SeriesLimits {
        max_series: 20,
        max_instances_per_app: 3,
    });
    let mut out = Vec::new();
    // Two real apps with 6 instances each, then 1,000 spoofed hosts.
    for i in 0..1_200 {
        let (app, inst) = if i < 200 {
            (format!("app{}", i % 2), Some(format!("{}", (i / 2) % 6)))
        } else {
            (format!("spoofed-{i}.example"), Some("0".to_string()))
        };
        w.push(&rec(i, &app, inst.as_deref(), 200, None), &mut out);
    }
    assert!(w.series_count() <= 20 + 2, "{}", w.series_count());
    w.flush(&mut out);
    let apps: Vec<&WindowStats> = out.iter().filter(|r| r.instance.is_none()).collect();
    let total: u64 = apps.iter().map(|r| r.requests).sum();
    assert_eq!(total, 1_200, "every request counted once");
    let of = |app: &str| apps.iter().find(|r| r.app == app).map_or(0, |r| r.requests);
    assert_eq!(
        (of("app0"), of("app1")),
        (100, 100),
        "the real apps keep their rows"
    );
    let instances_of_app0: Vec<&str> = out
        .iter()
        .filter(|r| r.app == "app0")
        .filter_map(|r| r.instance.as_deref())
        .collect();
    assert_eq!(
        instances_of_app0.len(),
        4,
        "3 instances and the overflow: {instances_of_app0:?}"
    );
    assert!(instances_of_app0.contains(&OVERFLOW));
    let spoofed_rows = apps.iter().filter(|r| r.app.starts_with("spoofed")).count();
    assert!(spoofed_rows <= 20, "{spoofed_rows}");
    let spoofed_kept: u64 = apps
        .iter()
        .filter(|r| r.app.starts_with("spoofed"))
        .map(|r| r.requests)
        .sum();
    assert_eq!(of(OVERFLOW) + spoofed_kept, 1_000);
    let overflow_instances: u64 = out
        .iter()
        .filter(|r| r.instance.as_deref() == Some(OVERFLOW))
        .map(|r| r.requests)
        .sum();
    // Of each app's 100 records, instances 0..2 had 17 each.
    assert_eq!(
        overflow_instances,
        2 * (100 - 3 * 17),
        "instances 3..5 of both apps"
    );
    assert_eq!(
        w.counters().overflow,
        of(OVERFLOW) + overflow_instances,
        "counted"
    );
}
