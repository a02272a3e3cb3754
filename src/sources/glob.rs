use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use tracing::warn;

use super::StartAt;
use super::{Chunk, FilePosition, FileTail};

/// Follows every file that matches a glob pattern; the pattern is expanded
/// again on every poll, so new files are picked up (from their start).
pub struct GlobTail {
    pattern: String,
    start_at: StartAt,
    tails: BTreeMap<PathBuf, FileTail>,
    first_scan: bool,
}

impl GlobTail {
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn new(pattern: &str, start_at: StartAt) -> Self {
        GlobTail {
            pattern: pattern.to_string(),
            start_at,
            tails: BTreeMap::new(),
            first_scan: true,
        }
    }

    fn scan(&mut self) {
        let paths = match glob::glob(&self.pattern) {
            Ok(p) => p,
            Err(e) => {
                warn!(pattern = %self.pattern, error = %e, "invalid glob pattern");
                return;
            }
        };
        for p in paths.flatten() {
            if p.is_file() && !self.tails.contains_key(&p) {
                let start = if self.first_scan {
                    self.start_at
                } else {
                    StartAt::Beginning
                };
                self.tails.insert(p.clone(), FileTail::new(&p, start));
            }
        }
        self.first_scan = false;
    }

    /// Whether a (checkpointed) file name belongs to this pattern.
    pub fn matches(&self, name: &str) -> bool {
        glob::Pattern::new(&self.pattern).is_ok_and(|p| p.matches(name))
    }

    /// Positions of every followed file, by path.
    pub fn positions(&self) -> Vec<(String, FilePosition)> {
        self.tails
            .values()
            .filter_map(|t| t.position().map(|p| (t.name().to_string(), p)))
            .collect()
    }

    pub fn resume(&mut self, name: &str, pos: FilePosition) -> io::Result<()> {
        let path = PathBuf::from(name);
        let mut tail = FileTail::new(&path, self.start_at);
        tail.resume(pos)?;
        self.tails.insert(path, tail);
        Ok(())
    }

    pub fn poll(&mut self) -> io::Result<Option<Chunk>> {
        self.scan();
        for tail in self.tails.values_mut() {
            if let Some(c) = tail.poll()? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}
