//! Property tests of the window core against simple models.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use vane::decode::{Format, Mapping};
use vane::model::{AccessRecord, WindowStats};
use vane::pipeline::Pipeline;
use vane::sinks::JsonlFile;
use vane::window::{WindowAggregator, WindowConfig};

const MS: i64 = 1_000_000;

/// (app, instance, window start in seconds)
type SeriesWindow = (String, Option<String>, i64);

#[derive(Debug, Clone)]
struct Req {
    t_ms: i64,
    app: u8,
    inst: Option<u8>,
    status: u16,
    rt_us: Option<u64>,
}

fn req() -> impl Strategy<Value = Req> {
    (
        0i64..120_000,
        0u8..4,
        proptest::option::weighted(0.8, 0u8..3),
        prop::sample::select(vec![200u16, 200, 201, 302, 404, 500, 503, 0]),
        proptest::option::weighted(0.9, 1u64..5_000_000),
    )
        .prop_map(|(t_ms, app, inst, status, rt_us)| Req {
            t_ms,
            app,
            inst,
            status,
            rt_us,
        })
}

fn record(r: &Req) -> AccessRecord<'static> {
    AccessRecord {
        time_ns: 1_700_000_000_000 * MS + r.t_ms * MS,
        app: Cow::Owned(format!("app-{}", r.app)),
        instance: r.inst.map(|i| Cow::Owned(i.to_string())),
        status: r.status,
        bytes_received: 7,
        bytes_sent: u64::from(r.status),
        response_time_us: r.rt_us,
        ..AccessRecord::default()
    }
}

fn run(reqs: &[Req]) -> (Vec<WindowStats>, u64) {
    let mut w = WindowAggregator::new(WindowConfig::default());
    let mut out = Vec::new();
    for r in reqs {
        w.push(&record(r), &mut out);
    }
    w.flush(&mut out);
    (out, w.counters().late)
}

/// Arrival order where every record arrives at most `lateness` after the
/// newest one seen: sort by event time plus a delay in [0, lateness].
fn disorder_within(reqs: &[Req], delays_ms: &[i64]) -> Vec<Req> {
    let mut keyed: Vec<(i64, usize)> = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.t_ms + delays_ms[i % delays_ms.len()], i))
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, i)| reqs[i].clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reordering_within_allowed_lateness_gives_identical_windows(
        mut reqs in proptest::collection::vec(req(), 1..400),
        delays_ms in proptest::collection::vec(0i64..=2_000, 1..50),
    ) {
        reqs.sort_by_key(|r| r.t_ms);
        let (ordered, late_ordered) = run(&reqs);
        let (shuffled, late_shuffled) = run(&disorder_within(&reqs, &delays_ms));
        prop_assert_eq!(late_ordered, 0);
        prop_assert_eq!(late_shuffled, 0);
        prop_assert_eq!(ordered, shuffled);
    }

    #[test]
    fn windows_agree_with_a_naive_group_by(mut reqs in proptest::collection::vec(req(), 1..300)) {
        reqs.sort_by_key(|r| r.t_ms);
        let (out, late) = run(&reqs);
        prop_assert_eq!(late, 0);
        let mut model: BTreeMap<SeriesWindow, (u64, u64, u64)> = BTreeMap::new();
        for r in &reqs {
            let start = (1_700_000_000_000 + r.t_ms).div_euclid(10_000) * 10;
            let series = std::iter::once(None).chain(r.inst.map(|i| Some(i.to_string())));
            for inst in series {
                let e = model.entry((format!("app-{}", r.app), inst, start)).or_default();
                e.0 += 1;
                e.1 += u64::from((500..600).contains(&r.status));
                e.2 += r.rt_us.unwrap_or(0);
            }
        }
        let mut got = BTreeMap::new();
        for w in out.iter().filter(|w| w.requests > 0) {
            let start = chrono::DateTime::parse_from_rfc3339(&w.start.to_string()).unwrap().timestamp();
            let conc_us = (w.concurrency * 10.0 * 1e6).round() as u64;
            got.insert((w.app.clone(), w.instance.clone(), start), (w.requests, w.status.c5xx, conc_us));
        }
        prop_assert_eq!(got, model);
    }
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn gorouter_line(r: &Req) -> String {
    let t = 1_700_000_000_000 + r.t_ms;
    let secs = t / 1000;
    let dt = chrono::DateTime::from_timestamp(secs, ((t % 1000) * 1_000_000) as u32).unwrap();
    let index = r
        .inst
        .map_or(String::new(), |i| format!(" app_index:\"{i}\""));
    let rt = r
        .rt_us
        .map_or("\"-\"".to_string(), |us| format!("{:.6}", us as f64 / 1e6));
    format!(
        "h{app}.example.com - [{}] \"GET /x HTTP/1.1\" {st} 0 5 \"-\" \"ua\" \"1.2.3.4:5\" \"10.0.0.1:6\" vcap_request_id:\"r\" response_time:{rt} app_id:\"app-{app}\"{index}",
        dt.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        app = r.app,
        st = r.status,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any order at all, with garbage lines mixed in: every line read is in a
    /// window, counted late, or a dead letter.
    #[test]
    fn windows_plus_late_plus_dead_letters_equals_lines_read(
        reqs in proptest::collection::vec(req(), 1..300),
        garbage in proptest::collection::vec((0usize..300, "[ -~]{0,40}"), 0..20),
    ) {
        let mut lines: Vec<String> = reqs.iter().map(gorouter_line).collect();
        for (at, g) in &garbage {
            let at = at % (lines.len() + 1);
            lines.insert(at, format!("garbage {g}"));
        }
        let input = lines.join("\n") + "\n";
        let windows = SharedBuf::default();
        let dead = SharedBuf::default();
        let mut p = Pipeline::new(WindowConfig::default(), JsonlFile::writer(windows.clone()), JsonlFile::writer(dead.clone()));
        let src = p.add_source(Format::Gorouter, Mapping::new());
        p.process_bytes(src, "test", 0, input.as_bytes()).unwrap();
        p.finish().unwrap();
        let out = String::from_utf8(windows.0.lock().unwrap().clone()).unwrap();
        let stats: Vec<WindowStats> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let app_level = stats.iter().filter(|w| w.instance.is_none());
        let in_windows: u64 = app_level.clone().map(|w| w.requests).sum();
        let late: u64 = app_level.map(|w| w.late).sum();
        let dead_letters = dead.0.lock().unwrap().split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as u64;
        prop_assert_eq!(dead_letters, garbage.len() as u64);
        prop_assert_eq!(in_windows + late + dead_letters, lines.len() as u64);
        prop_assert_eq!(p.core.counts.lines, lines.len() as u64);
    }
}
