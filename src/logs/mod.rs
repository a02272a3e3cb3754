//! App logs: lines joined into events (a head line and its stack trace),
//! their level, time, logger and identity, and their shape as Elastic Common
//! Schema documents for Elasticsearch (and for `logs.jsonl` in embedded mode).

pub mod ecs;
mod head;
mod multiline;

pub use head::{Head, Level, exception_type, is_continuation, parse_head};
pub use multiline::{Assembler, LineMeta, LogEvent, MAX_EVENT_BYTES, MAX_EVENT_LINES};
