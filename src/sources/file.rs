use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::StartAt;
use super::{Chunk, FileId, FilePosition, MAX_CHUNK};

/// Follows one path like `tail -F`.
///
/// - Rotation by rename: when the path names a new file, the old handle is read
///   to its end first, then the new file from its start.
/// - Truncation (copytruncate): when the file is shorter than the position, it is
///   read again from the start.
/// - Restart: [`FileTail::resume`] finds the checkpointed file by identity, even if
///   it has been renamed since, and continues at the checkpointed byte.
///
/// Only whole lines are handed out; a partial last line waits for its newline,
/// unless the file has been rotated away, where nothing more will come.
pub struct FileTail {
    path: PathBuf,
    name: String,
    start_at: StartAt,
    current: Option<Open>,
    buf: Vec<u8>,
    /// When the missing file was last warned about (once a minute).
    warned: Option<std::time::Instant>,
}

/// How often a file source waiting for its file says so.
const WAITING_WARNING_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

struct Open {
    file: File,
    id: FileId,
    offset: u64,
}

impl FileTail {
    pub fn new(path: &Path, start_at: StartAt) -> Self {
        FileTail {
            path: path.to_path_buf(),
            name: path.display().to_string(),
            start_at,
            current: None,
            buf: Vec::new(),
            warned: None,
        }
    }

    /// No file is open: it does not exist (yet).
    pub fn is_waiting(&self) -> bool {
        self.current.is_none()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The position to checkpoint: everything before it has been handed out.
    pub fn position(&self) -> Option<FilePosition> {
        self.current.as_ref().map(|o| FilePosition {
            file: o.id,
            offset: o.offset,
        })
    }

    /// Continues from a checkpoint. If the path now names another file, the
    /// checkpointed file is looked for by identity among its siblings
    /// (`app.log.1` after a rename) and drained first.
    pub fn resume(&mut self, pos: FilePosition) -> io::Result<()> {
        let candidates = std::iter::once(self.path.clone()).chain(siblings(&self.path));
        for p in candidates {
            let Ok(file) = File::open(&p) else { continue };
            let meta = file.metadata()?;
            if FileId::of(&meta) == pos.file {
                let offset = if meta.len() < pos.offset {
                    0
                } else {
                    pos.offset
                };
                if p != self.path {
                    info!(path = %p.display(), source = %self.name, "resuming a rotated file before the current one");
                }
                self.current = Some(Open {
                    file,
                    id: pos.file,
                    offset,
                });
                return Ok(());
            }
        }
        warn!(source = %self.name, "checkpointed file is gone; starting the current file from its beginning");
        self.start_at = StartAt::Beginning;
        Ok(())
    }

    fn open_path(&mut self, from: StartAt) -> io::Result<bool> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let offset = match from {
            StartAt::Beginning => 0,
            StartAt::End => meta.len(),
        };
        self.current = Some(Open {
            file,
            id: FileId::of(&meta),
            offset,
        });
        Ok(true)
    }

    /// What is left of the open file after the last whole line (a last line
    /// without its newline): for a file that gets no more writes.
    pub fn rest(&mut self) -> io::Result<Option<Chunk>> {
        let Some(open) = self.current.as_mut() else {
            return Ok(None);
        };
        let mut rest = Vec::new();
        open.file.seek(SeekFrom::Start(open.offset))?;
        // Bounded like every read: a longer remainder is cut, loudly (its
        // parts fail to decode).
        (&mut open.file)
            .take(MAX_CHUNK as u64)
            .read_to_end(&mut rest)?;
        if rest.is_empty() {
            return Ok(None);
        }
        let chunk = Chunk {
            source: self.name.clone(),
            file: Some(open.id),
            offset: open.offset,
            data: rest,
            key: None,
            time_ns: None,
        };
        open.offset += chunk.data.len() as u64;
        Ok(Some(chunk))
    }

    /// Reads what is new. `Ok(None)` means nothing new right now.
    pub fn poll(&mut self) -> io::Result<Option<Chunk>> {
        if self.current.is_none() {
            let from = self.start_at;
            // Files that appear later are read from their start.
            self.start_at = StartAt::Beginning;
            if !self.open_path(from)? {
                if self
                    .warned
                    .is_none_or(|w| w.elapsed() >= WAITING_WARNING_EVERY)
                {
                    warn!(source = %self.name, "file source: no such file yet; waiting for it");
                    self.warned = Some(std::time::Instant::now());
                }
                return Ok(None);
            }
        }
        let Some(open) = self.current.as_mut() else {
            return Ok(None);
        };
        let len = open.file.metadata()?.len();
        if len < open.offset {
            info!(source = %self.name, "file was truncated; reading it again from the start");
            open.offset = 0;
        }
        if len > open.offset {
            let want = ((len - open.offset) as usize).min(MAX_CHUNK);
            self.buf.resize(want, 0);
            open.file.seek(SeekFrom::Start(open.offset))?;
            let got = read_full(&mut open.file, &mut self.buf)?;
            self.buf.truncate(got);
            let whole = match memchr::memrchr(b'\n', &self.buf) {
                Some(i) => i + 1,
                // A line longer than a whole chunk: hand it out as is.
                None if got == MAX_CHUNK => got,
                None => 0,
            };
            if whole > 0 {
                let chunk = Chunk {
                    source: self.name.clone(),
                    file: Some(open.id),
                    offset: open.offset,
                    data: self.buf[..whole].to_vec(),
                    key: None,
                    time_ns: None,
                };
                open.offset += whole as u64;
                return Ok(Some(chunk));
            }
        }
        // At the end of the open file: has the path moved on to a new file?
        let rotated = match std::fs::metadata(&self.path) {
            Ok(m) => FileId::of(&m) != open.id,
            Err(_) => false,
        };
        if !rotated {
            return Ok(None);
        }
        // The old file gets no more writes: its unterminated last line is final.
        let tail = self.rest()?;
        info!(source = %self.name, "file was rotated; following the new file");
        self.current = None;
        self.open_path(StartAt::Beginning)?;
        match tail {
            Some(t) => Ok(Some(t)),
            None => self.poll(),
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Files next to `path` whose name starts with its name (`app.log.1`, `app.log-20250101`).
fn siblings(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n != name && n.starts_with(name))
        })
        .collect();
    out.sort();
    out
}
