//! Parquet segments of the records Vane wrote (embedded mode): the window
//! and decision JSON lines are cut into segments by byte range, only up to
//! what the last checkpoint made durable, so a segment never holds a record
//! that a restart could write differently. Segment names carry the byte
//! range and the newest event time:
//! `segments/{table}/{from}-{to}-{newest_s}.parquet`. Writing is a temp file
//! and a rename, and the position reached is kept beside them, so cutting
//! again after a crash rewrites the same segment instead of adding one.
//!
//! Small segments are merged (a merged segment covers its parts' ranges;
//! a part left behind by a crash is recognised as covered and removed), and
//! segments whose newest record is older than the retention are deleted.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use tracing::{info, warn};

use super::RollupError;
use super::tables::{decisions_frame, windows_frame};

/// The record kinds that are cut into segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Windows,
    Decisions,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Windows, Table::Decisions];

    /// The SQL table name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Windows => "windows",
            Table::Decisions => "decisions",
        }
    }

    /// Parses complete JSON lines into a frame and the newest event time
    /// (Unix seconds). Lines that do not parse are skipped and counted.
    fn frame(self, text: &str) -> Result<(DataFrame, i64, usize), RollupError> {
        let mut bad = 0;
        let mut newest = i64::MIN;
        let df = match self {
            Table::Windows => {
                let mut rows = Vec::new();
                for l in text.lines().filter(|l| !l.trim().is_empty()) {
                    match serde_json::from_str::<crate::model::WindowStats>(l) {
                        Ok(w) => {
                            newest = newest.max(w.end.secs());
                            rows.push(w);
                        }
                        Err(_) => bad += 1,
                    }
                }
                windows_frame(&rows)?
            }
            Table::Decisions => {
                let mut rows = Vec::new();
                for l in text.lines().filter(|l| !l.trim().is_empty()) {
                    match serde_json::from_str::<crate::rules::Decision>(l) {
                        Ok(d) => {
                            newest = newest.max(d.time.secs());
                            rows.push(d);
                        }
                        Err(_) => bad += 1,
                    }
                }
                decisions_frame(&rows)?
            }
        };
        Ok((df, newest, bad))
    }

    pub fn empty(self) -> Result<DataFrame, RollupError> {
        Ok(match self {
            Table::Windows => windows_frame(&[])?,
            Table::Decisions => decisions_frame(&[])?,
        })
    }
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub from: u64,
    pub to: u64,
    /// Newest event time in it, Unix seconds.
    pub newest_s: i64,
    pub path: PathBuf,
}

impl Segment {
    fn parse(path: &Path) -> Option<Segment> {
        let stem = path.file_name()?.to_str()?.strip_suffix(".parquet")?;
        let mut parts = stem.splitn(3, '-');
        let from = parts.next()?.parse().ok()?;
        let to = parts.next()?.parse().ok()?;
        let newest_s = parts.next()?.parse().ok()?;
        Some(Segment {
            from,
            to,
            newest_s,
            path: path.to_path_buf(),
        })
    }

    fn covers(&self, other: &Segment) -> bool {
        self != other && self.from <= other.from && other.to <= self.to
    }
}

/// The segments of every table under one folder (`{data_dir}/segments`).
pub struct SegmentStore {
    dir: PathBuf,
}

fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<(), RollupError> {
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| RollupError::io(&tmp, e))?;
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Snappy)
        .finish(df)?;
    std::fs::rename(&tmp, path).map_err(|e| RollupError::io(path, e))
}

pub fn read_parquet(path: &Path) -> Result<DataFrame, RollupError> {
    let file = std::fs::File::open(path).map_err(|e| RollupError::io(path, e))?;
    Ok(ParquetReader::new(file).finish()?)
}

impl SegmentStore {
    pub fn new(data_dir: &Path) -> Self {
        SegmentStore {
            dir: data_dir.join("segments"),
        }
    }

    fn table_dir(&self, t: Table) -> PathBuf {
        self.dir.join(t.name())
    }

    fn position_path(&self, t: Table) -> PathBuf {
        self.table_dir(t).join("position")
    }

    /// How far into the JSON lines file the segments reach.
    pub fn position(&self, t: Table) -> u64 {
        std::fs::read_to_string(self.position_path(t))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn set_position(&self, t: Table, pos: u64) -> Result<(), RollupError> {
        let path = self.position_path(t);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{pos}\n")).map_err(|e| RollupError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| RollupError::io(&path, e))
    }

    /// The table's segments by range; leftovers of an interrupted merge
    /// (covered by a merged segment) are removed.
    pub fn list(&self, t: Table) -> Result<Vec<Segment>, RollupError> {
        let dir = self.table_dir(t);
        let mut all = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    if let Some(s) = Segment::parse(&e.path()) {
                        all.push(s);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RollupError::io(&dir, e)),
        }
        let (covered, mut kept): (Vec<Segment>, Vec<Segment>) = all
            .iter()
            .cloned()
            .partition(|s| all.iter().any(|o| o.covers(s)));
        for s in covered {
            let _ = std::fs::remove_file(&s.path);
        }
        kept.sort_by_key(|s| s.from);
        Ok(kept)
    }

    /// Cuts the complete lines of `jsonl` between the position reached and
    /// `durable_len` into a new segment. Returns it (None: nothing new).
    pub fn ingest(
        &self,
        t: Table,
        jsonl: &Path,
        durable_len: u64,
    ) -> Result<Option<Segment>, RollupError> {
        let dir = self.table_dir(t);
        std::fs::create_dir_all(&dir).map_err(|e| RollupError::io(&dir, e))?;
        let mut pos = self.position(t);
        let mut file = match std::fs::File::open(jsonl) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RollupError::io(jsonl, e)),
        };
        let len = file
            .metadata()
            .map_err(|e| RollupError::io(jsonl, e))?
            .len();
        if len < pos {
            warn!(file = %jsonl.display(), position = pos, length = len, "records file is shorter than the segments reach: it was replaced; cutting it from the start");
            pos = 0;
        }
        let end = durable_len.min(len);
        if end <= pos {
            return Ok(None);
        }
        let mut buf = vec![0; (end - pos) as usize];
        file.seek(SeekFrom::Start(pos))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(|e| RollupError::io(jsonl, e))?;
        // Only whole lines.
        let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
            return Ok(None);
        };
        buf.truncate(last_nl + 1);
        let to = pos + buf.len() as u64;
        let text = String::from_utf8_lossy(&buf);
        let (mut df, newest_s, bad) = t.frame(&text)?;
        if bad > 0 {
            warn!(file = %jsonl.display(), lines = bad, "records that do not parse were left out of the segment");
        }
        let segment = if df.height() > 0 {
            let path = dir.join(format!("{pos}-{to}-{newest_s}.parquet"));
            write_parquet(&mut df, &path)?;
            Segment::parse(&path)
        } else {
            None
        };
        self.set_position(t, to)?;
        Ok(segment)
    }

    /// Merges runs of consecutive segments smaller than `below_rows` rows
    /// into one segment each (of up to about `below_rows` rows). Returns how
    /// many segments were merged away.
    pub fn compact(&self, t: Table, below_rows: usize) -> Result<usize, RollupError> {
        let segments = self.list(t)?;
        let mut run: Vec<(Segment, DataFrame)> = Vec::new();
        let mut merged_away = 0;
        let mut flush = |run: &mut Vec<(Segment, DataFrame)>| -> Result<(), RollupError> {
            if run.len() >= 2 {
                let mut df = run[0].1.clone();
                for (_, part) in &run[1..] {
                    df.vstack_mut(part)?;
                }
                let from = run[0].0.from;
                let to = run[run.len() - 1].0.to;
                let newest = run.iter().map(|(s, _)| s.newest_s).max().unwrap_or(0);
                let path = self
                    .table_dir(t)
                    .join(format!("{from}-{to}-{newest}.parquet"));
                df.rechunk_mut();
                write_parquet(&mut df, &path)?;
                for (s, _) in run.iter() {
                    let _ = std::fs::remove_file(&s.path);
                }
                merged_away += run.len() - 1;
            }
            run.clear();
            Ok(())
        };
        for s in segments {
            let df = read_parquet(&s.path)?;
            let rows: usize = run.iter().map(|(_, d)| d.height()).sum();
            let contiguous = run.last().is_none_or(|(p, _)| p.to == s.from);
            if df.height() >= below_rows || !contiguous || rows + df.height() > below_rows {
                flush(&mut run)?;
            }
            if df.height() < below_rows {
                run.push((s, df));
            }
        }
        flush(&mut run)?;
        if merged_away > 0 {
            info!(table = t.name(), merged_away, "segments merged");
        }
        Ok(merged_away)
    }

    /// Deletes segments whose newest record is older than `before_s`
    /// (Unix seconds). Returns how many.
    pub fn expire(&self, t: Table, before_s: i64) -> Result<usize, RollupError> {
        let mut n = 0;
        for s in self.list(t)? {
            if s.newest_s < before_s {
                std::fs::remove_file(&s.path).map_err(|e| RollupError::io(&s.path, e))?;
                n += 1;
            }
        }
        if n > 0 {
            info!(
                table = t.name(),
                segments = n,
                "segments past retention deleted"
            );
        }
        Ok(n)
    }

    /// The newest event time (Unix seconds) of the table's segments.
    pub fn newest(&self, t: Table) -> Result<Option<i64>, RollupError> {
        Ok(self.list(t)?.iter().map(|s| s.newest_s).max())
    }

    /// The whole table, from every segment.
    pub fn load(&self, t: Table) -> Result<DataFrame, RollupError> {
        let mut df = t.empty()?;
        for s in self.list(t)? {
            df.vstack_mut(&read_parquet(&s.path)?)?;
        }
        df.rechunk_mut();
        Ok(df)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_line(app: &str, minute: u32, requests: u64) -> String {
        format!(
            r#"{{"app":"{app}","instance":null,"start":"2025-12-01T00:{minute:02}:00Z","end":"2025-12-01T00:{minute:02}:10Z","requests":{requests},"rps":{rps},"concurrency":0.5,"latency_ms":{{"p50":1.0,"p90":2.0,"p95":3.0,"p99":4.0,"max":5.0}},"status":{{"1xx":0,"2xx":{requests},"3xx":0,"4xx":0,"5xx":0,"other":0}},"error_ratio":0.0,"bytes_in":0,"bytes_out":0,"late":0}}"#,
            rps = requests as f64 / 10.0
        ) + "\n"
    }

    #[test]
    fn segments_follow_the_durable_length_merge_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("windows.jsonl");
        let store = SegmentStore::new(dir.path());
        let mut text = String::new();
        let mut durable = Vec::new();
        for minute in 0..6 {
            text.push_str(&window_line("web", minute, 10 + u64::from(minute)));
            durable.push(text.len() as u64);
        }
        // Half a line beyond the last durable length is never cut.
        std::fs::write(&jsonl, format!("{text}{{\"app\":\"web\"")).unwrap();
        for (i, len) in durable.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
            let s = store.ingest(Table::Windows, &jsonl, *len).unwrap().unwrap();
            assert_eq!(s.to, *len, "segment {i}");
        }
        assert!(
            store
                .ingest(Table::Windows, &jsonl, durable[5])
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .ingest(Table::Windows, &jsonl, u64::MAX)
                .unwrap()
                .is_none()
        );
        assert_eq!(store.list(Table::Windows).unwrap().len(), 3);
        let all = store.load(Table::Windows).unwrap();
        assert_eq!(all.height(), 6);
        let total: u64 = all
            .column("requests")
            .unwrap()
            .u64()
            .unwrap()
            .sum()
            .unwrap();
        assert_eq!(total, (10..16).sum::<u64>());

        // A merged copy left beside its parts (a crash mid-merge): the parts
        // are recognised as covered and removed.
        assert_eq!(store.compact(Table::Windows, 1000).unwrap(), 2);
        let merged = store.list(Table::Windows).unwrap();
        assert_eq!(merged.len(), 1);
        assert_eq!((merged[0].from, merged[0].to), (0, durable[5]));
        let leftover = dir
            .path()
            .join(format!("segments/windows/0-{}-0.parquet", durable[1]));
        std::fs::copy(&merged[0].path, &leftover).unwrap();
        assert_eq!(store.list(Table::Windows).unwrap().len(), 1);
        assert!(!leftover.exists());
        assert_eq!(store.load(Table::Windows).unwrap().height(), 6);

        // Retention: the newest record ends at 00:05:10.
        let newest = merged[0].newest_s;
        assert_eq!(store.expire(Table::Windows, newest).unwrap(), 0);
        assert_eq!(store.expire(Table::Windows, newest + 1).unwrap(), 1);
        assert_eq!(store.load(Table::Windows).unwrap().height(), 0);
        // What was cut is not cut again once deleted.
        assert!(
            store
                .ingest(Table::Windows, &jsonl, durable[5])
                .unwrap()
                .is_none()
        );
    }
}
