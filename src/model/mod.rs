//! The canonical records every decoder produces and every later stage consumes.

mod access;
mod alert;
mod dead_letter;
mod decision;
mod metric;
pub mod metrics;
mod window;
mod window_json;

pub use access::AccessRecord;
pub use alert::{AlertEvent, AlertState};
pub use dead_letter::{DeadKind, DeadKindCounts, DeadLetter};
pub use decision::{
    Constraint, Decision, DecisionSource, Direction, ForecastUse, PAUSED, Recommendation,
};
pub use metric::ContainerMetric;
pub use window::{LatencyMs, StatusCounts, WindowStats};
