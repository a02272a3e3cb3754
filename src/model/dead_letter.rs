use serde::{Deserialize, Serialize};

/// A line that could not be decoded, kept with where it came from and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub source: String,
    /// Byte offset of the line in its source.
    pub offset: u64,
    pub format: String,
    pub reason: String,
    pub line: String,
}
