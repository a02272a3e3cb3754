//! Where lines come from: followed files, globs of files, stdin. Each source
//! hands the pipeline [`Chunk`]s of whole lines with their byte positions, so
//! that dead letters can name the position and checkpoints can resume exactly.

mod checkpoint;
mod file;
mod glob;
pub mod kafka;
mod pushed;
pub(crate) mod rlp;
mod scrape;
mod stdin;
pub mod syslog;

use serde::{Deserialize, Serialize};

pub use checkpoint::{Checkpoint, CheckpointRef, FilePosition, store_bytes};
pub use file::FileTail;
pub use glob::GlobTail;
pub use kafka::KafkaSource;
pub use pushed::{LineSender, PushedLines};
pub use rlp::{RlpLines, RlpSource};
pub use scrape::{ScrapeAuth, ScrapeSource};
pub use stdin::StdinSource;

/// Where a followed file starts when there is no checkpoint for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartAt {
    #[default]
    Beginning,
    End,
}

/// Identity of a file independent of its name, so a renamed (rotated) file is
/// still recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Whole lines read from one file (or stdin), starting at byte `offset`.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The name dead letters and checkpoints use (the configured path).
    pub source: String,
    pub file: Option<FileId>,
    pub offset: u64,
    /// Complete lines, each ending in `\n` (except a final line of a rotated-away file).
    pub data: Vec<u8>,
    /// A Kafka record's key (app logs: `app` or `app/instance`).
    pub key: Option<String>,
    /// A Kafka record's timestamp, for app log lines that carry none.
    pub time_ns: Option<i64>,
}

impl Chunk {
    pub fn end_offset(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// The largest chunk a source hands over at once; also the longest line kept
/// whole (a longer line is split and its parts fail to decode, loudly).
pub const MAX_CHUNK: usize = 1 << 20;

/// Container metrics a task handed over since the last call: the batches
/// waiting in its bounded channel, joined.
fn take_batches(
    rx: &mut tokio::sync::mpsc::Receiver<Vec<crate::model::ContainerMetric>>,
) -> Vec<crate::model::ContainerMetric> {
    let mut out = Vec::new();
    while let Ok(batch) = rx.try_recv() {
        out.extend(batch);
    }
    out
}
