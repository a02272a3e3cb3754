//! Vane: telemetry and autoscaling stream processor for container PaaS platforms.
//!
//! The pure core (`decode`, `window`) is synchronous and deterministic; the shell
//! (`sources`, `sinks`, `pipeline`) does the I/O. See `../shared/ARCHITECTURE.md`.

pub mod decode;
pub mod model;
pub mod time;
pub mod window;
