//! The canonical records every decoder produces and every later stage consumes.

mod access;
mod window;

pub use access::AccessRecord;
pub use window::{LatencyMs, StatusCounts, WindowStats};
