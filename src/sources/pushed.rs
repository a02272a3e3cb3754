//! Lines that arrive pushed rather than read (the router's and apps' log
//! envelopes of an RLP gateway stream, later a syslog drain): a task hands
//! them over as [`Chunk`]s through a bounded channel, so a pipeline that
//! falls behind slows the task instead of letting lines pile up.
//!
//! A pushed line has no position to resume from: what was in flight when
//! the process stopped is not read again (at most once, unlike files and
//! Kafka). Its "offset" only names it (dead letters, document ids): the
//! process's start time in nanoseconds plus the bytes pushed before it, so
//! it grows across restarts too (no run pushes a byte per nanosecond) and
//! an app log event's id never repeats one of an earlier run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::Chunk;

/// Chunks a channel holds before the sending task waits.
const IN_FLIGHT: usize = 256;

pub struct PushedLines {
    name: String,
    rx: mpsc::Receiver<Item>,
    /// What the task could not make a line of, waiting to be dead-lettered.
    rejected: Vec<Rejected>,
}

/// Something pushed that is not a line (a syslog frame that is no syslog
/// message): a dead letter with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub reason: String,
    pub text: String,
}

enum Item {
    Chunk(Chunk),
    Rejected(Rejected),
}

/// The sending half, owned by the task that receives the lines.
#[derive(Clone)]
pub struct LineSender {
    name: String,
    tx: mpsc::Sender<Item>,
    next_offset: Arc<AtomicU64>,
}

impl PushedLines {
    /// `name` names the lines in dead letters and `/metrics` (`rlp:router`).
    pub fn channel(name: &str) -> (LineSender, PushedLines) {
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        (
            LineSender {
                name: name.to_string(),
                tx,
                next_offset: Arc::new(AtomicU64::new(start_ns())),
            },
            PushedLines {
                name: name.to_string(),
                rx,
                rejected: Vec::new(),
            },
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next chunk waiting, if any (what was rejected on the way is
    /// kept for [`PushedLines::take_rejected`]).
    pub fn poll(&mut self) -> Option<Chunk> {
        while let Ok(item) = self.rx.try_recv() {
            match item {
                Item::Chunk(c) => return Some(c),
                Item::Rejected(r) => self.rejected.push(r),
            }
        }
        None
    }

    pub fn take_rejected(&mut self) -> Vec<Rejected> {
        std::mem::take(&mut self.rejected)
    }
}

impl LineSender {
    /// Lines that carry their own app and time (access log lines), one
    /// chunk. `false` once the pipeline is gone.
    pub async fn lines<'a>(&self, lines: impl IntoIterator<Item = &'a str>) -> bool {
        let mut data = Vec::new();
        for line in lines {
            data.extend_from_slice(line.as_bytes());
            data.push(b'\n');
        }
        if data.is_empty() {
            return true;
        }
        self.send(data, None, None).await
    }

    /// One line of `app` (`app/instance`) written at `time_ns` (an app log
    /// line whose own text may carry no time).
    pub async fn line_of(&self, app_instance: String, time_ns: i64, line: &str) -> bool {
        let mut data = Vec::with_capacity(line.len() + 1);
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
        self.send(data, Some(app_instance), Some(time_ns)).await
    }

    async fn send(&self, data: Vec<u8>, key: Option<String>, time_ns: Option<i64>) -> bool {
        let offset = self
            .next_offset
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let chunk = Chunk {
            source: self.name.clone(),
            file: None,
            offset,
            data,
            key,
            time_ns,
        };
        self.tx.send(Item::Chunk(chunk)).await.is_ok()
    }

    /// Something that is not a line, for a dead letter.
    pub async fn reject(&self, reason: String, text: String) -> bool {
        let item = Item::Rejected(Rejected { reason, text });
        self.tx.send(item).await.is_ok()
    }
}

fn start_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2))
}
