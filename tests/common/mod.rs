//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use vane::model::WindowStats;

/// A file of the public test corpus beside the repository (`../shared/data`).
pub fn shared_data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel)
}

pub fn vane() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vane"))
}

pub fn read_windows(path: &Path) -> Vec<WindowStats> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
