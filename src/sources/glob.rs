use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;

use tracing::{info, warn};

use super::StartAt;
use super::{Chunk, FilePosition, FileTail};

/// Follows every file that matches a glob pattern; the pattern is expanded
/// again on every poll, so new files are picked up (from their start), and
/// a file that no longer matches (deleted, or renamed away) is read to its
/// end and let go: its handle closed, its position out of the checkpoint.
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

    /// The files that match now (`None` when the pattern cannot be read:
    /// nothing is let go then).
    fn scan(&mut self) -> Option<BTreeSet<PathBuf>> {
        let paths = match glob::glob(&self.pattern) {
            Ok(p) => p,
            Err(e) => {
                warn!(pattern = %self.pattern, error = %e, "invalid glob pattern");
                return None;
            }
        };
        let mut present = BTreeSet::new();
        for p in paths.flatten() {
            if !p.is_file() {
                continue;
            }
            present.insert(p.clone());
            if !self.tails.contains_key(&p) {
                let start = if self.first_scan {
                    self.start_at
                } else {
                    StartAt::Beginning
                };
                self.tails.insert(p.clone(), FileTail::new(&p, start));
            }
        }
        self.first_scan = false;
        Some(present)
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
        let present = self.scan();
        let mut gone = Vec::new();
        for (path, tail) in &mut self.tails {
            if let Some(c) = tail.poll()? {
                return Ok(Some(c));
            }
            if present.as_ref().is_some_and(|p| !p.contains(path)) {
                // Read to its end: what is left is a last line without
                // its newline, and then nothing more will come.
                if let Some(c) = tail.rest()? {
                    return Ok(Some(c));
                }
                gone.push(path.clone());
            }
        }
        for path in gone {
            info!(path = %path.display(), pattern = %self.pattern, "file no longer matches; let go");
            self.tails.remove(&path);
        }
        Ok(None)
    }

    /// Files followed now.
    pub fn followed(&self) -> usize {
        self.tails.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(g: &mut GlobTail) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(c) = g.poll().unwrap() {
            out.push(String::from_utf8(c.data).unwrap());
        }
        out
    }

    #[test]
    fn a_deleted_file_is_read_to_its_end_and_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        std::fs::write(&a, "a1\n").unwrap();
        std::fs::write(&b, "b1\n").unwrap();
        let pattern = dir.path().join("*.log").display().to_string();
        let mut g = GlobTail::new(&pattern, StartAt::Beginning);
        assert_eq!(drain(&mut g), ["a1\n", "b1\n"]);
        assert_eq!(g.followed(), 2);
        // The last writes, then the file goes: its last line has no newline.
        std::fs::write(&a, "a1\na2\na3").unwrap();
        std::fs::remove_file(&a).unwrap();
        assert_eq!(drain(&mut g), ["a2\n", "a3"]);
        assert_eq!(g.followed(), 1, "the deleted file is let go");
        assert_eq!(g.positions().len(), 1);
        std::fs::write(&b, "b1\nb2\n").unwrap();
        assert_eq!(drain(&mut g), ["b2\n"]);
    }
}
