use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

/// An append-only JSON-lines file that knows its length, so a checkpoint can
/// record it and a restart can cut off what was written after the checkpoint.
pub struct JsonlFile {
    out: BufWriter<Box<dyn Write + Send>>,
    file: Option<File>,
    len: u64,
    scratch: Vec<u8>,
}

impl JsonlFile {
    /// Opens `path` for appending; with `truncate_to`, first cuts it to that length
    /// (output written after the checkpoint being resumed).
    pub fn open(path: &Path, truncate_to: Option<u64>) -> io::Result<JsonlFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut len = file.metadata()?.len();
        if let Some(keep) = truncate_to.filter(|&k| k < len) {
            file.set_len(keep)?;
            len = keep;
        }
        let handle = file.try_clone()?;
        Ok(JsonlFile {
            out: BufWriter::with_capacity(1 << 16, Box::new(file)),
            file: Some(handle),
            len,
            scratch: Vec::with_capacity(512),
        })
    }

    /// A fresh output at `path`: a regular file truncated to nothing;
    /// anything else (`/dev/null`, a FIFO) written as it is. Never removed
    /// and made anew: the path may be a device the whole machine uses.
    pub fn create(path: &Path) -> io::Result<JsonlFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // O_TRUNC is ignored for FIFOs and terminals, and harmless on
        // `/dev/null`; a regular file starts empty.
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        if !file.metadata()?.is_file() {
            return Ok(JsonlFile::writer(file));
        }
        let handle = file.try_clone()?;
        Ok(JsonlFile {
            out: BufWriter::with_capacity(1 << 16, Box::new(file)),
            file: Some(handle),
            len: 0,
            scratch: Vec::with_capacity(512),
        })
    }

    /// Any writer (stdout for `vane replay`); length is counted, not synced.
    pub fn writer(w: impl Write + Send + 'static) -> JsonlFile {
        JsonlFile {
            out: BufWriter::with_capacity(1 << 16, Box::new(w)),
            file: None,
            len: 0,
            scratch: Vec::new(),
        }
    }

    pub fn write<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, value)?;
        self.scratch.push(b'\n');
        self.out.write_all(&self.scratch)?;
        self.len += self.scratch.len() as u64;
        Ok(())
    }

    /// Appends one line that `line` writes (without its newline): for
    /// records with a writer faster than their `Serialize`.
    pub fn write_with(&mut self, line: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        self.scratch.clear();
        line(&mut self.scratch);
        self.scratch.push(b'\n');
        self.out.write_all(&self.scratch)?;
        self.len += self.scratch.len() as u64;
        Ok(())
    }

    /// Bytes written so far, including what is still buffered.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flush and fsync: after this the bytes survive a crash.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if let Some(f) = &self.file {
            f.sync_data()?;
        }
        Ok(())
    }
}
