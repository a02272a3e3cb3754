//! Window and decision records as polars tables: one row per record, flat
//! columns (nested latency and status fields spread out), times as
//! datetimes, with `hour` and `day` buckets ready to group by.

use polars::prelude::*;

use crate::model::Decision;
use crate::model::WindowStats;
use crate::time::NANOS_PER_SEC;

const HOUR_NS: i64 = 3600 * NANOS_PER_SEC;
const DAY_NS: i64 = 24 * HOUR_NS;

fn datetime(name: &str, ns: Vec<i64>) -> PolarsResult<Column> {
    Column::new(name.into(), ns).cast(&DataType::Datetime(TimeUnit::Nanoseconds, None))
}

/// The `windows` table. Columns: `app`, `name`, `instance` (null on app
/// rows), `start`, `end`, `hour`, `day`, `window_s`, `requests`, `rps`,
/// `concurrency`, `p50_ms` … `max_ms`, `status_1xx` … `status_5xx`,
/// `status_other`, `error_ratio`, `bytes_in`, `bytes_out`, `cpu_pct`,
/// `memory_bytes`, `memory_pct`, `late`.
pub fn windows_frame(rows: &[WindowStats]) -> PolarsResult<DataFrame> {
    let mut start = Vec::with_capacity(rows.len());
    let mut end = Vec::with_capacity(rows.len());
    for w in rows {
        start.push(w.start.nanos());
        end.push(w.end.nanos());
    }
    let hour: Vec<i64> = start.iter().map(|s| s - s.rem_euclid(HOUR_NS)).collect();
    let day: Vec<i64> = start.iter().map(|s| s - s.rem_euclid(DAY_NS)).collect();
    let window_s: Vec<f64> = start
        .iter()
        .zip(&end)
        .map(|(s, e)| (e - s) as f64 / NANOS_PER_SEC as f64)
        .collect();
    let str_col = |name: &str, f: &dyn Fn(&WindowStats) -> Option<String>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let f64_col = |name: &str, f: &dyn Fn(&WindowStats) -> Option<f64>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let u64_col = |name: &str, f: &dyn Fn(&WindowStats) -> u64| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    DataFrame::new_infer_height(vec![
        str_col("app", &|w| Some(w.app.clone())),
        str_col("name", &|w| w.name.clone()),
        str_col("instance", &|w| w.instance.clone()),
        datetime("start", start)?,
        datetime("end", end)?,
        datetime("hour", hour)?,
        datetime("day", day)?,
        Column::new("window_s".into(), window_s),
        u64_col("requests", &|w| w.requests),
        f64_col("rps", &|w| Some(w.rps)),
        f64_col("concurrency", &|w| Some(w.concurrency)),
        f64_col("p50_ms", &|w| w.latency_ms.p50),
        f64_col("p90_ms", &|w| w.latency_ms.p90),
        f64_col("p95_ms", &|w| w.latency_ms.p95),
        f64_col("p99_ms", &|w| w.latency_ms.p99),
        f64_col("max_ms", &|w| w.latency_ms.max),
        u64_col("status_1xx", &|w| w.status.c1xx),
        u64_col("status_2xx", &|w| w.status.c2xx),
        u64_col("status_3xx", &|w| w.status.c3xx),
        u64_col("status_4xx", &|w| w.status.c4xx),
        u64_col("status_5xx", &|w| w.status.c5xx),
        u64_col("status_other", &|w| w.status.other),
        f64_col("error_ratio", &|w| Some(w.error_ratio)),
        u64_col("bytes_in", &|w| w.bytes_in),
        u64_col("bytes_out", &|w| w.bytes_out),
        f64_col("cpu_pct", &|w| w.cpu_pct),
        f64_col("memory_bytes", &|w| w.memory_bytes),
        f64_col("memory_pct", &|w| w.memory_pct),
        u64_col("late", &|w| w.late),
    ])
}

fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The `decisions` table. Columns: `time`, `hour`, `day`, `app`, `name`,
/// `policy`, `algorithm`, `source`, `direction`, `current`, `recommended`,
/// `desired`, `reason`, `error`.
pub fn decisions_frame(rows: &[Decision]) -> PolarsResult<DataFrame> {
    let time: Vec<i64> = rows.iter().map(|d| d.time.nanos()).collect();
    let hour: Vec<i64> = time.iter().map(|s| s - s.rem_euclid(HOUR_NS)).collect();
    let day: Vec<i64> = time.iter().map(|s| s - s.rem_euclid(DAY_NS)).collect();
    let str_col = |name: &str, f: &dyn Fn(&Decision) -> Option<String>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let u32_col = |name: &str, f: &dyn Fn(&Decision) -> u32| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    DataFrame::new_infer_height(vec![
        datetime("time", time)?,
        datetime("hour", hour)?,
        datetime("day", day)?,
        str_col("app", &|d| Some(d.app.clone())),
        str_col("name", &|d| d.name.clone()),
        str_col("policy", &|d| Some(d.policy.clone())),
        str_col("algorithm", &|d| Some(d.algorithm.clone())),
        str_col("source", &|d| Some(name_of(&d.source))),
        str_col("direction", &|d| Some(name_of(&d.direction))),
        u32_col("current", &|d| d.current),
        u32_col("recommended", &|d| d.recommended),
        u32_col("desired", &|d| d.desired),
        str_col("reason", &|d| Some(d.reason.clone())),
        str_col("error", &|d| d.error.clone()),
    ])
}
