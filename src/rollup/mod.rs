//! SQL roll-ups (embedded mode): the window and decision records Vane wrote
//! are cut into parquet segments ([`segments`]), and the queries in `sql/`
//! run over them with polars SQL on a cron schedule (`[sql]`), each result
//! written to `{data_dir}/rollups/{query}.parquet`. The same run merges small
//! segments and deletes those past retention. `vane sql FILE.sql` runs one
//! query on demand.
//!
//! Tables: `windows` and `decisions` (columns in [`tables`]).

pub mod output;
pub mod segments;
pub mod tables;

use std::path::{Path, PathBuf};
use std::time::Duration;

use polars::prelude::*;
use serde::Deserialize;
use tracing::{info, warn};

use segments::{SegmentStore, Table};

#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Polars(#[from] PolarsError),
    #[error("{file}: {source}")]
    Query {
        file: String,
        #[source]
        source: PolarsError,
    },
}

impl RollupError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        RollupError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// `[sql]`: scheduled roll-ups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// Folder of `*.sql` queries (each result is named after its file).
    #[serde(default = "queries_dir")]
    pub queries: PathBuf,
    /// When to run, as cron with seconds (`sec min hour day month weekday`, UTC).
    #[serde(default = "schedule")]
    pub schedule: String,
    /// Segments whose newest record is this much older than the newest
    /// record of the table are deleted (event time, like the windows: a
    /// replay of last year's traffic keeps its own last 30 days).
    #[serde(default = "retention", deserialize_with = "crate::time::duration")]
    pub retention: Duration,
    /// Segments with fewer rows are merged with their neighbours.
    #[serde(default = "compact_below_rows")]
    pub compact_below_rows: usize,
}

fn queries_dir() -> PathBuf {
    PathBuf::from("sql")
}
fn schedule() -> String {
    "0 */5 * * * *".into()
}
fn retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn compact_below_rows() -> usize {
    100_000
}

impl SqlConfig {
    /// Checks the cron expression as the scheduler will read it.
    pub fn validate(&self) -> Result<(), String> {
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .build()
            .parse(&self.schedule)
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "sql.schedule {:?}: {e} (six fields, seconds first: \"0 */5 * * * *\" is every five minutes)",
                    self.schedule
                )
            })
    }
}

/// Where the records are and how much of them is durable.
#[derive(Debug, Clone)]
pub struct Records {
    pub data_dir: PathBuf,
    pub windows: PathBuf,
    pub decisions: PathBuf,
    pub checkpoint: PathBuf,
}

impl Records {
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Records {
            data_dir: cfg.data_dir.clone(),
            windows: cfg.windows_path(),
            decisions: cfg.decisions_path(),
            checkpoint: cfg.checkpoint_path(),
        }
    }

    /// Durable lengths of (windows, decisions): what the checkpoint
    /// promises; without a checkpoint, nothing (a run that has not
    /// checkpointed yet may rewrite what it wrote).
    fn durable(&self) -> (u64, u64) {
        match crate::sources::Checkpoint::load(&self.checkpoint) {
            Ok(Some(cp)) => (cp.windows_file_len, cp.decisions_file_len.unwrap_or(0)),
            _ => (0, 0),
        }
    }

    /// Cuts what is new and durable into segments.
    pub fn ingest(&self, store: &SegmentStore) -> Result<(), RollupError> {
        let (w, d) = self.durable();
        store.ingest(Table::Windows, &self.windows, w)?;
        store.ingest(Table::Decisions, &self.decisions, d)?;
        Ok(())
    }
}

/// Runs one query over every segment.
pub fn query(store: &SegmentStore, sql: &str, file: &str) -> Result<DataFrame, RollupError> {
    let mut ctx = polars::sql::SQLContext::new();
    for t in Table::ALL {
        ctx.register(t.name(), store.load(t)?.lazy());
    }
    ctx.execute(sql)
        .and_then(LazyFrame::collect)
        .map_err(|source| RollupError::Query {
            file: file.to_string(),
            source,
        })
}

/// The `*.sql` files of a folder, sorted.
pub fn query_files(dir: &Path) -> Result<Vec<PathBuf>, RollupError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| RollupError::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    out.sort();
    Ok(out)
}

/// What one scheduled run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub merged: usize,
    pub expired: usize,
    /// (query, rows) of every result written.
    pub results: Vec<(String, usize)>,
    pub failed: Vec<String>,
}

/// One scheduled run: cut, merge, expire, then every query, each result to
/// `{data_dir}/rollups/{name}.parquet`. A failing query is logged and the
/// others still run.
pub fn run_once(cfg: &SqlConfig, records: &Records, now_s: i64) -> Result<RunSummary, RollupError> {
    let store = SegmentStore::new(&records.data_dir);
    records.ingest(&store)?;
    let mut summary = RunSummary::default();
    for t in Table::ALL {
        summary.merged += store.compact(t, cfg.compact_below_rows)?;
        if let Some(newest) = store.newest(t)? {
            let cutoff = newest.min(now_s) - cfg.retention.as_secs() as i64;
            summary.expired += store.expire(t, cutoff)?;
        }
    }
    let out_dir = records.data_dir.join("rollups");
    std::fs::create_dir_all(&out_dir).map_err(|e| RollupError::io(&out_dir, e))?;
    // Without the queries folder (the built-in configuration run elsewhere)
    // the segments are still kept; `schedule_runs` said so at start.
    let files = if cfg.queries.is_dir() {
        query_files(&cfg.queries)?
    } else {
        Vec::new()
    };
    for file in files {
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("query")
            .to_string();
        let sql = std::fs::read_to_string(&file).map_err(|e| RollupError::io(&file, e))?;
        match query(&store, &sql, &file.display().to_string()) {
            Ok(mut df) => {
                let path = out_dir.join(format!("{name}.parquet"));
                let tmp = path.with_extension("parquet.tmp");
                let f = std::fs::File::create(&tmp).map_err(|e| RollupError::io(&tmp, e))?;
                ParquetWriter::new(f).finish(&mut df)?;
                std::fs::rename(&tmp, &path).map_err(|e| RollupError::io(&path, e))?;
                summary.results.push((name, df.height()));
            }
            Err(e) => {
                warn!(error = %e, "roll-up query failed");
                summary.failed.push(name);
            }
        }
    }
    info!(results = ?summary.results, merged = summary.merged, expired = summary.expired, "roll-ups done");
    Ok(summary)
}

/// Starts the cron schedule of `cfg` on the current runtime; the returned
/// scheduler runs until shut down.
pub async fn schedule_runs(
    cfg: &SqlConfig,
    records: Records,
) -> Result<tokio_cron_scheduler::JobScheduler, tokio_cron_scheduler::JobSchedulerError> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    if !cfg.queries.is_dir() {
        warn!(queries = %cfg.queries.display(), "sql.queries is not a folder: segments are kept, no roll-up query runs");
    }
    let sched = JobScheduler::new().await?;
    let cfg = cfg.clone();
    let schedule = cfg.schedule.clone();
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let job = Job::new_async(schedule.as_str(), move |_id, _lock| {
        let cfg = cfg.clone();
        let records = records.clone();
        let busy = std::sync::Arc::clone(&busy);
        Box::pin(async move {
            // One run at a time: a slow run makes the next tick a no-op.
            if busy.swap(true, std::sync::atomic::Ordering::AcqRel) {
                warn!("roll-ups still running from the last tick; skipped");
                return;
            }
            let now_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let r = tokio::task::spawn_blocking(move || run_once(&cfg, &records, now_s)).await;
            match r {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(error = %e, "roll-ups failed"),
                Err(e) => warn!(error = %e, "roll-up task failed"),
            }
            busy.store(false, std::sync::atomic::Ordering::Release);
        })
    })?;
    sched.add(job).await?;
    sched.start().await?;
    info!(schedule = %schedule, "roll-ups scheduled");
    Ok(sched)
}
