//! Vane: telemetry and autoscaling stream processor for container PaaS platforms.
//!
//! The pure core (`decode`, `window`) is synchronous and deterministic; the shell
//! (`sources`, `sinks`, `pipeline`) does the I/O. See `../shared/ARCHITECTURE.md`.

pub mod act;
pub mod api;
pub mod backtest;
pub mod config;
pub mod core;
pub mod decode;
pub mod forecast;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod http_body;
pub mod lockfile;
pub mod logs;
pub mod losses;
pub mod model;
pub mod pipeline;
pub mod rollup;
pub mod rules;
pub mod run;
pub mod secret;
pub mod sinks;
pub mod sources;
pub mod time;
pub mod tls;
pub mod top;
pub mod window;
