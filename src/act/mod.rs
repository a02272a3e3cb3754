//! Acting on what Vane decided: notifiers for alerts (and, later, the
//! orchestrator adapters for scaling decisions).

pub mod alertmanager;
pub mod queue;
pub mod webhook;
