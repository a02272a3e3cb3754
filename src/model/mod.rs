//! The canonical records every decoder produces and every later stage consumes.

mod access;
mod dead_letter;
mod metric;
mod window;

pub use access::AccessRecord;
pub use dead_letter::DeadLetter;
pub use metric::ContainerMetric;
pub use window::{LatencyMs, StatusCounts, WindowStats};
