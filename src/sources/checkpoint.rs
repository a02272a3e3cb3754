use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::FileId;
use crate::pipeline::Counts;
use crate::rules::decider::DeciderState;
use crate::window::WindowSnapshot;

/// Where a file source stands: every byte before `offset` of file `file` has
/// been read and its records folded into the window state saved beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    pub file: FileId,
    pub offset: u64,
}

/// Everything needed to resume exactly: source positions, the window state at
/// those positions, and how long the output files were, so output written after
/// the checkpoint (and so written again after a restart) is cut off first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub positions: BTreeMap<String, FilePosition>,
    pub windows: WindowSnapshot,
    pub windows_file_len: u64,
    pub dead_letters_file_len: u64,
    #[serde(default)]
    pub decisions_file_len: Option<u64>,
    /// Engine state (stabilization history, cooldowns, dry-run instances).
    #[serde(default)]
    pub decider: Option<DeciderState>,
    #[serde(default)]
    pub alerts_file_len: Option<u64>,
    /// Alert states (pending since, firing), so a restart neither re-sends nor forgets.
    #[serde(default)]
    pub alerter: Option<crate::rules::alert::Alerter>,
    /// Health rule state (silent and failing instances, restart budgets).
    #[serde(default)]
    pub health: Option<crate::rules::health::HealthWatcher>,
    /// Kafka: next offset per `topic/partition`.
    #[serde(default)]
    pub kafka_offsets: std::collections::BTreeMap<String, i64>,
    /// Event clocks of streams (Kafka partitions): (source, stream, clock).
    #[serde(default)]
    pub stream_clocks: Vec<(usize, String, usize)>,
    /// App logs: the output's length and the events still open (their
    /// lines are before the positions above, so they must be kept here).
    #[serde(default)]
    pub logs_file_len: Option<u64>,
    #[serde(default)]
    pub log_assembler: Option<crate::logs::Assembler>,
    /// Kafka: per partition clock, the first offset of each open window
    /// (window start, offset), and partitions taken over from another owner.
    #[serde(default)]
    pub kafka_low_water: Vec<(usize, i64, u64)>,
    #[serde(default)]
    pub kafka_handoffs: Vec<(usize, crate::pipeline::Handoff)>,
    pub counts: Counts,
}

impl Checkpoint {
    pub const VERSION: u32 = 1;

    pub fn load(path: &Path) -> io::Result<Option<Checkpoint>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes atomically: a temporary file, fsync, rename.
    pub fn store(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            serde_json::to_writer(&mut f, self)?;
            f.flush()?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }
}
