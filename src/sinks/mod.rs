//! Where results go. The embedded sink writes JSON lines to local files.

mod jsonl;

pub use jsonl::{DeadLetter, JsonlFile};
