//! The canonical records every decoder produces and every later stage consumes.

mod access;
mod metric;
mod window;

pub use access::AccessRecord;
pub use metric::ContainerMetric;
pub use window::{LatencyMs, StatusCounts, WindowStats};
