//! `/metrics`: a snapshot (and the live view's per-app counters) in the
//! Prometheus text exposition format.

use std::fmt::Write as _;

use super::Snapshot;
use super::view::LiveView;

/// The Prometheus text exposition of a snapshot.
pub fn render(s: &Snapshot, v: &LiveView) -> String {
    let mut out = String::new();
    let c = &s.counts;
    for (name, help, v) in [
        ("vane_lines_total", "Non-blank lines read.", c.lines),
        ("vane_decoded_total", "Lines decoded.", c.decoded),
        (
            "vane_late_total",
            "Records that arrived after their window closed.",
            c.late,
        ),
        (
            "vane_windows_written_total",
            "Window rows written.",
            c.windows_written,
        ),
        (
            "vane_decisions_total",
            "Decision records written.",
            c.decisions,
        ),
        (
            "vane_alert_transitions_total",
            "Alert transitions written.",
            c.alert_events,
        ),
        (
            "vane_metric_samples_total",
            "Container metric samples read.",
            c.metric_samples,
        ),
        (
            "vane_log_events_total",
            "App log events completed.",
            c.log_events,
        ),
        (
            "vane_handed_over_total",
            "Kafka records skipped after a rebalance: counted by the partition's previous owner.",
            c.handed_over,
        ),
        ("vane_read_bytes_total", "Bytes read.", c.bytes),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP vane_window_series Series (apps and instances) the windows hold.\n# TYPE vane_window_series gauge\nvane_window_series {}\n# HELP vane_window_overflow_records_total Records counted under __overflow__: a new series would have passed window.max_series or window.max_instances_per_app.\n# TYPE vane_window_overflow_records_total counter\nvane_window_overflow_records_total {}",
        s.series, s.overflow
    );
    let _ = writeln!(
        out,
        "# HELP vane_tls_insecure_clients Connections configured with tls.insecure_skip_verify: certificates not checked.\n# TYPE vane_tls_insecure_clients gauge\nvane_tls_insecure_clients {}",
        crate::tls::insecure_clients()
    );
    family(
        &mut out,
        "vane_dead_letters_total",
        "Lines and documents kept as dead letters (data/dead-letters.jsonl), by reason.",
        "counter",
    );
    for kind in crate::model::DeadKind::ALL {
        let n = c.dead_letter_kinds.get(kind);
        let _ = writeln!(
            out,
            "vane_dead_letters_total{{reason=\"{}\"}} {n}",
            kind.name()
        );
    }
    family(
        &mut out,
        "vane_lost_total",
        "What was read or meant to be sent and is in no output, by reason (dead letters and late records are counted apart).",
        "counter",
    );
    for (loss, n) in crate::losses::all() {
        let _ = writeln!(out, "vane_lost_total{{reason=\"{}\"}} {n}", loss.label());
    }
    let _ = writeln!(
        out,
        "vane_lost_total{{reason=\"late_metric\"}} {}",
        s.late_metrics
    );
    if !s.kafka_lag.is_empty() {
        let _ = writeln!(
            out,
            "# HELP vane_kafka_lag Records between the next offset and the fetched high watermark.\n# TYPE vane_kafka_lag gauge"
        );
        for (p, l) in &s.kafka_lag {
            let _ = writeln!(out, "vane_kafka_lag{{partition=\"{}\"}} {l}", escape(p));
        }
    }
    if !s.partitions.is_empty() {
        let _ = writeln!(
            out,
            "# HELP vane_cross_partition_records_total Kafka records of apps whose windows another partition closes (topic not keyed by app).\n# TYPE vane_cross_partition_records_total counter\nvane_cross_partition_records_total {}",
            s.cross_partition
        );
        family(
            &mut out,
            "vane_kafka_partition_closed_through_seconds",
            "End of the newest window each owned partition closed (windows close per partition).",
            "gauge",
        );
        for p in &s.partitions {
            let end = p.closed_through.map_or(0, |t| t.nanos() / 1_000_000_000);
            let _ = writeln!(
                out,
                "vane_kafka_partition_closed_through_seconds{{partition=\"{}\"}} {end}",
                escape(&p.partition)
            );
        }
        family(
            &mut out,
            "vane_kafka_partition_series",
            "Series (apps and instances) whose windows each owned partition closes.",
            "gauge",
        );
        for p in &s.partitions {
            let _ = writeln!(
                out,
                "vane_kafka_partition_series{{partition=\"{}\"}} {}",
                escape(&p.partition),
                p.series
            );
        }
    }
    if !s.sinks.is_empty() {
        for (name, help, kind) in [
            (
                "vane_sink_batches_total",
                "Requests the server acknowledged.",
                "counter",
            ),
            (
                "vane_sink_delivered_total",
                "Points or documents acknowledged.",
                "counter",
            ),
            ("vane_sink_retries_total", "Requests retried.", "counter"),
            (
                "vane_sink_rejected_total",
                "Batches or documents refused for good.",
                "counter",
            ),
            (
                "vane_sink_pending",
                "1 while something waits to be acknowledged.",
                "gauge",
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (sink, st) in &s.sinks {
                let v = match name {
                    "vane_sink_batches_total" => st.batches,
                    "vane_sink_delivered_total" => st.delivered,
                    "vane_sink_retries_total" => st.retries,
                    "vane_sink_rejected_total" => st.rejected,
                    _ => u64::from(st.pending),
                };
                let _ = writeln!(out, "{name}{{sink=\"{sink}\"}} {v}");
            }
        }
    }
    family(
        &mut out,
        "vane_source_records_total",
        "Lines read per source, by what became of them (decoded, late, malformed).",
        "counter",
    );
    for src in &s.sources {
        let l = escape(&src.name);
        let f = escape(src.format);
        for (outcome, n) in [
            ("read", src.counts.lines),
            ("decoded", src.counts.decoded),
            ("late", src.counts.late),
            ("malformed", src.counts.dead_letters),
        ] {
            let _ = writeln!(
                out,
                "vane_source_records_total{{source=\"{l}\",decoder=\"{f}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "vane_source_waiting",
        "1 while a file source waits for its file to appear (wait_for_file).",
        "gauge",
    );
    for src in &s.sources {
        let _ = writeln!(
            out,
            "vane_source_waiting{{source=\"{}\"}} {}",
            escape(&src.name),
            u8::from(src.waiting)
        );
    }
    family(
        &mut out,
        "vane_app_decisions_total",
        "Decisions per app, direction and who took them (policy, manual, health, actuator).",
        "counter",
    );
    for ((app, direction, source), n) in &v.decisions_by {
        let _ = writeln!(
            out,
            "vane_app_decisions_total{{app=\"{}\",direction=\"{direction}\",source=\"{source}\"}} {n}",
            escape(app)
        );
    }
    family(
        &mut out,
        "vane_app_actions_total",
        "Orchestrator actions finished, per app, action (scale, restart) and result (ok, failed).",
        "counter",
    );
    for ((app, action, result), n) in &s.actions {
        let _ = writeln!(
            out,
            "vane_app_actions_total{{app=\"{}\",action=\"{action}\",result=\"{result}\"}} {n}",
            escape(app)
        );
    }
    family(
        &mut out,
        "vane_alerts",
        "Alerts pending or firing now.",
        "gauge",
    );
    for a in &v.active_alerts {
        let _ = writeln!(
            out,
            "vane_alerts{{alertname=\"{}\",app=\"{}\",state=\"{}\"}} 1",
            escape(&a.alertname),
            escape(&a.app),
            a.state
        );
    }
    if let Some(d) = v.close_delay_s {
        family(
            &mut out,
            "vane_window_close_delay_seconds",
            "Wall-clock time between the end of the newest closed window and its emission.",
            "gauge",
        );
        let _ = writeln!(out, "vane_window_close_delay_seconds {d}");
    }
    family(
        &mut out,
        "vane_rule_reloads_total",
        "Rule reloads, by result.",
        "counter",
    );
    let _ = writeln!(
        out,
        "vane_rule_reloads_total{{result=\"ok\"}} {}\nvane_rule_reloads_total{{result=\"rejected\"}} {}",
        v.rules.reloads, v.rules.reload_failures
    );
    out
}

fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SinkStats;

    #[test]
    fn the_exposition_parses_back() {
        let mut s = Snapshot::default();
        s.counts.lines = 42;
        s.counts.dead_letters = 3;
        s.counts
            .dead_letter_kinds
            .add(crate::model::DeadKind::SkewedClock);
        s.counts
            .dead_letter_kinds
            .add(crate::model::DeadKind::SkewedClock);
        s.counts
            .dead_letter_kinds
            .add(crate::model::DeadKind::Malformed);
        s.kafka_lag.insert("router/0".into(), 7);
        s.sources.push(crate::api::SourceStats {
            name: "file:/var/log/x.log".into(),
            format: "gorouter",
            counts: Default::default(),
            waiting: true,
        });
        s.partitions.push(crate::api::PartitionStatus {
            partition: "router/0".into(),
            series: 12,
            closed_through: Some(crate::time::Timestamp::from_secs(1_700_000_010)),
            ..Default::default()
        });
        s.sinks.insert(
            "influxdb",
            SinkStats {
                batches: 1,
                delivered: 10,
                retries: 2,
                rejected: 0,
                pending: true,
            },
        );
        (s.series, s.overflow) = (110_000, 31);
        let text = render(&s, &LiveView::default());
        let samples = crate::decode::prometheus::parse(&text).unwrap();
        let get = |n: &str| samples.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(get("vane_lines_total"), Some(42.0));
        assert_eq!(get("vane_window_series"), Some(110_000.0));
        assert_eq!(get("vane_window_overflow_records_total"), Some(31.0));
        let lost: Vec<&str> = samples
            .iter()
            .filter(|x| x.name == "vane_lost_total")
            .filter_map(|x| x.labels.get("reason").map(String::as_str))
            .collect();
        assert_eq!(lost.len(), crate::losses::Loss::ALL.len() + 1, "{lost:?}");
        assert!(lost.contains(&"notification_queue_full") && lost.contains(&"late_metric"));
        let dead: Vec<(&str, f64)> = samples
            .iter()
            .filter(|x| x.name == "vane_dead_letters_total")
            .map(|x| (x.label("reason"), x.value))
            .collect();
        assert_eq!(dead.len(), crate::model::DeadKind::ALL.len(), "{dead:?}");
        assert!(dead.contains(&("skewed_clock", 2.0)), "{dead:?}");
        assert_eq!(get("vane_kafka_lag"), Some(7.0));
        assert_eq!(get("vane_kafka_partition_series"), Some(12.0));
        assert_eq!(get("vane_cross_partition_records_total"), Some(0.0));
        assert_eq!(get("vane_source_waiting"), Some(1.0));
        assert_eq!(
            get("vane_kafka_partition_closed_through_seconds"),
            Some(1_700_000_010.0)
        );
        assert_eq!(get("vane_sink_pending"), Some(1.0));
    }
}
