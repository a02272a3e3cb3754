//! A query result for people (an aligned table) or programs (CSV, JSON lines).

use polars::prelude::*;

use crate::time::{NANOS_PER_SEC, format_rfc3339};

fn datetime_text(v: i64, unit: TimeUnit) -> String {
    let ns = match unit {
        TimeUnit::Nanoseconds => v,
        TimeUnit::Microseconds => v.saturating_mul(1_000),
        TimeUnit::Milliseconds => v.saturating_mul(1_000_000),
    };
    let secs = ns.div_euclid(NANOS_PER_SEC);
    let frac = ns.rem_euclid(NANOS_PER_SEC);
    let text = format_rfc3339(secs);
    if frac == 0 {
        text
    } else {
        // 2025-12-01T00:00:00Z → 2025-12-01T00:00:00.250Z
        let millis = frac / 1_000_000;
        format!("{}.{millis:03}Z", text.trim_end_matches('Z'))
    }
}

/// One cell as JSON (times as RFC 3339 text).
pub fn cell_json(v: &AnyValue) -> serde_json::Value {
    use serde_json::json;
    match v {
        AnyValue::Null => serde_json::Value::Null,
        AnyValue::Boolean(b) => json!(b),
        AnyValue::String(s) => json!(s),
        AnyValue::StringOwned(s) => json!(s.as_str()),
        AnyValue::UInt8(x) => json!(x),
        AnyValue::UInt16(x) => json!(x),
        AnyValue::UInt32(x) => json!(x),
        AnyValue::UInt64(x) => json!(x),
        AnyValue::Int8(x) => json!(x),
        AnyValue::Int16(x) => json!(x),
        AnyValue::Int32(x) => json!(x),
        AnyValue::Int64(x) => json!(x),
        AnyValue::Float32(x) => json!(x),
        AnyValue::Float64(x) => json!(x),
        AnyValue::Datetime(x, unit, _) | AnyValue::DatetimeOwned(x, unit, _) => {
            json!(datetime_text(*x, *unit))
        }
        other => json!(other.to_string()),
    }
}

fn cell_text(v: &AnyValue) -> String {
    match cell_json(v) {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                let s = format!("{f:.4}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            }
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn rows(df: &DataFrame, mut each: impl FnMut(Vec<AnyValue<'_>>)) {
    let cols = df.columns();
    for i in 0..df.height() {
        each(
            cols.iter()
                .map(|c| c.get(i).unwrap_or(AnyValue::Null))
                .collect(),
        );
    }
}

/// JSON lines: one object per row.
pub fn to_json_lines(df: &DataFrame) -> String {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let mut out = String::new();
    rows(df, |cells| {
        let obj: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .cloned()
            .zip(cells.iter().map(cell_json))
            .collect();
        out.push_str(&serde_json::Value::Object(obj).to_string());
        out.push('\n');
    });
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn to_csv(df: &DataFrame) -> String {
    let mut out = df
        .get_column_names()
        .iter()
        .map(|n| csv_field(n))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    rows(df, |cells| {
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_field(&cell_text(c)))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    });
    out
}

/// An aligned text table with every row.
pub fn to_table(df: &DataFrame) -> String {
    let header: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let mut body: Vec<Vec<String>> = Vec::new();
    rows(df, |cells| body.push(cells.iter().map(cell_text).collect()));
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            body.iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(header[i].chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(&header);
    out.push('\n');
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  "),
    );
    out.push('\n');
    for r in &body {
        out.push_str(&line(r));
        out.push('\n');
    }
    out.push_str(&format!("({} rows)\n", body.len()));
    out
}
