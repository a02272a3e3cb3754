//! Rule files and the decision engine.
//!
//! - [`model`]: the YAML format as plain data; [`policy`]: its validated form.
//! - [`load`]: reading files into policies, with every error located.
//! - [`engine`]: the pure decision function; [`decision`]: its output record.

pub mod alert;
pub mod cf;
pub mod decider;
pub mod engine;
pub mod error;
pub mod health;
pub mod hpa;
pub mod kpa;
pub mod load;
pub mod model;
pub mod policy;
pub mod schedule;
pub mod selector;
pub mod unittest;

pub use crate::model::{Constraint, Decision, DecisionSource, Direction};
pub use engine::{AppState, Observation, decide, probe};
pub use error::RuleError;
pub use load::{RuleSet, load_paths, load_str};
pub use policy::Policy;

#[cfg(test)]
mod tests;
