use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::FileId;
use crate::core::Counts;
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
    pub kafka_handoffs: Vec<(usize, crate::core::Handoff)>,
    /// Lines held by the time guard (their positions are before the ones
    /// above, so they must be kept here).
    #[serde(default)]
    pub time_guard: Option<crate::core::TimeGuard>,
    pub counts: Counts,
}

/// A [`Checkpoint`] as it is written: the same JSON, borrowing the state
/// from where it lives instead of copying it first.
#[derive(Serialize)]
pub struct CheckpointRef<'a> {
    pub version: u32,
    pub positions: BTreeMap<String, FilePosition>,
    pub windows: crate::window::WindowSnapshotRef<'a>,
    pub windows_file_len: u64,
    pub dead_letters_file_len: u64,
    pub decisions_file_len: Option<u64>,
    pub decider: Option<&'a DeciderState>,
    pub alerts_file_len: Option<u64>,
    pub alerter: Option<&'a crate::rules::alert::Alerter>,
    pub health: Option<&'a crate::rules::health::HealthWatcher>,
    pub kafka_offsets: BTreeMap<String, i64>,
    pub stream_clocks: Vec<(usize, String, usize)>,
    pub logs_file_len: Option<u64>,
    pub log_assembler: Option<&'a crate::logs::Assembler>,
    pub kafka_low_water: Vec<(usize, i64, u64)>,
    pub kafka_handoffs: Vec<(usize, crate::core::Handoff)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_guard: Option<&'a crate::core::TimeGuard>,
    pub counts: Counts,
}

impl CheckpointRef<'_> {
    /// The JSON, to be stored later with [`store_bytes`] (once the sinks
    /// have delivered what came before it).
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }
}

impl Checkpoint {
    /// The layout this build writes and reads. A checkpoint of another
    /// version is refused with a message rather than half understood.
    pub const VERSION: u32 = 1;

    pub fn load(path: &Path) -> io::Result<Option<Checkpoint>> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
        let cp: Checkpoint = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        if cp.version != Self::VERSION {
            return Err(invalid(format!(
                "{}: checkpoint format version {}, this vane reads version {}: move the data directory aside to start afresh",
                path.display(),
                cp.version,
                Self::VERSION
            )));
        }
        Ok(Some(cp))
    }

    /// Writes atomically and durably (see `store_json`).
    pub fn store(&self, path: &Path) -> io::Result<()> {
        store_json(self, path)
    }
}

/// Writes atomically and durably: serialized in memory (one `write(2)`,
/// not one per JSON token), a temporary file fsynced, renamed over the old
/// one, and the directory fsynced so the rename itself survives a crash.
fn store_json(value: &impl Serialize, path: &Path) -> io::Result<()> {
    store_bytes(&serde_json::to_vec(value)?, path)
}

/// Writes a serialized checkpoint atomically and durably (see `store_json`).
pub fn store_bytes(bytes: &[u8], path: &Path) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// fsyncs the directory holding `path` (where its entry lives).
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}
