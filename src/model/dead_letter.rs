use serde::{Deserialize, Serialize};

/// A line that could not be decoded, kept with where it came from and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub source: String,
    /// Byte offset of the line in its source.
    pub offset: u64,
    pub format: String,
    /// The class of `reason`, a bounded set (a label on `/metrics`).
    #[serde(default)]
    pub kind: DeadKind,
    pub reason: String,
    pub line: String,
}

/// Why a line or document became a dead letter, as a class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadKind {
    /// The decoder could not read it (a field missing or out of range).
    #[default]
    Malformed,
    /// Not UTF-8 text.
    InvalidUtf8,
    /// Its event time is further ahead than `window.max_future` allows.
    SkewedClock,
    /// A kind of input this run has no output for (app logs in `replay`
    /// of an access format, for one).
    NoOutput,
    /// An external sink refused it for good (a mapping error, a 400).
    RefusedBySink,
}

impl DeadKind {
    pub const ALL: [DeadKind; 5] = [
        DeadKind::Malformed,
        DeadKind::InvalidUtf8,
        DeadKind::SkewedClock,
        DeadKind::NoOutput,
        DeadKind::RefusedBySink,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DeadKind::Malformed => "malformed",
            DeadKind::InvalidUtf8 => "invalid_utf8",
            DeadKind::SkewedClock => "skewed_clock",
            DeadKind::NoOutput => "no_output",
            DeadKind::RefusedBySink => "refused_by_sink",
        }
    }
}

/// Dead letters by kind (checkpointed with the other counts, so that they
/// add up to `dead_letters` across restarts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeadKindCounts {
    pub malformed: u64,
    pub invalid_utf8: u64,
    pub skewed_clock: u64,
    pub no_output: u64,
    pub refused_by_sink: u64,
}

impl DeadKindCounts {
    fn slot(&mut self, kind: DeadKind) -> &mut u64 {
        match kind {
            DeadKind::Malformed => &mut self.malformed,
            DeadKind::InvalidUtf8 => &mut self.invalid_utf8,
            DeadKind::SkewedClock => &mut self.skewed_clock,
            DeadKind::NoOutput => &mut self.no_output,
            DeadKind::RefusedBySink => &mut self.refused_by_sink,
        }
    }

    pub fn add(&mut self, kind: DeadKind) {
        let n = self.slot(kind);
        *n = n.saturating_add(1);
    }

    pub fn get(&self, kind: DeadKind) -> u64 {
        let mut copy = *self;
        *copy.slot(kind)
    }
}
