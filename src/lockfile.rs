//! One `vane run` per data directory.
//!
//! A run holds an advisory lock (`flock`) on `vane.lock` in its data dir for
//! as long as it lives, with its PID written inside; the kernel lets go of
//! it however the process ends, `kill -9` included, so a stale file never
//! blocks a restart. A second run on the same directory would resume the
//! first one's checkpoint and interleave its outputs; `vane replay` would
//! truncate its dead letters and decisions: both are refused instead,
//! naming the holder.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "vane.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{dir} is in use by another `vane run` (pid {pid}, holding {lock}): give each run its own data_dir"
    )]
    Held {
        dir: PathBuf,
        pid: String,
        lock: PathBuf,
    },
    #[error("cannot lock {lock}: {source}")]
    Io { lock: PathBuf, source: io::Error },
}

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Locks `dir` (which must exist) for this process.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let lock = dir.join(LOCK_FILE);
        let io_error = |source| LockError::Io {
            lock: lock.clone(),
            source,
        };
        // Not truncated on open: until the lock is ours, the PID inside is
        // the holder's, for the error message.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    pid: pid_in(&mut file),
                    lock,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_error(e)),
        }
        file.set_len(0).map_err(io_error)?;
        writeln!(file, "{}", std::process::id()).map_err(io_error)?;
        Ok(DataDirLock { _file: file })
    }

    /// The error a run holding `dir` means for a writer that is not that
    /// run; `Ok` when no run holds it (or there is no lock file at all).
    pub fn check_free(dir: &Path) -> Result<(), LockError> {
        let lock = dir.join(LOCK_FILE);
        let Ok(mut file) = File::open(&lock) else {
            return Ok(());
        };
        match file.try_lock_shared() {
            Err(TryLockError::WouldBlock) => Err(LockError::Held {
                dir: dir.to_path_buf(),
                pid: pid_in(&mut file),
                lock,
            }),
            // Free (the shared lock goes with `file`), or a file system
            // without locks: nothing to respect.
            Ok(()) | Err(TryLockError::Error(_)) => Ok(()),
        }
    }
}

/// The PID a lock file holds, as written (`unknown` if unreadable).
fn pid_in(file: &mut File) -> String {
    let mut text = String::new();
    // A PID is a few bytes; a larger file is not ours to print.
    let _ = file.take(32).read_to_string(&mut text);
    let pid = text.trim();
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        "unknown".into()
    } else {
        pid.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        DataDirLock::check_free(dir.path()).unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let me = std::process::id().to_string();
        // flock locks belong to the open file: a second open in the same
        // process conflicts as another process would.
        match DataDirLock::acquire(dir.path()) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, me),
            other => panic!("{other:?}"),
        }
        let e = DataDirLock::check_free(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("pid {me}")) && e.contains("vane.lock"),
            "{e}"
        );
        drop(first);
        DataDirLock::check_free(dir.path()).unwrap();
        let again = DataDirLock::acquire(dir.path()).unwrap();
        drop(again);
    }
}
