//! Where results go. The embedded sink writes JSON lines to local files;
//! InfluxDB receives window aggregates and decisions, Elasticsearch app log
//! events, when configured.

pub mod elasticsearch;
pub mod influx;
mod jsonl;

pub use crate::model::DeadLetter;
pub use jsonl::JsonlFile;
