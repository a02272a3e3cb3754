//! Acting on what Vane decided: notifiers for alerts, and the orchestrator
//! adapters (behind the actuator) for scaling and restarts.

pub mod actuator;
pub mod alertmanager;
pub mod orchestrator;
pub mod queue;
pub mod signature;
pub mod webhook;
