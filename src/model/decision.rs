//! A scaling decision as data: what was observed, what each metric recommended,
//! every constraint that changed the number, and one sentence for people.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
    None,
}

/// What one metric (or step rule) asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub metric: String,
    pub value: Option<f64>,
    /// Target value (target tracking) or threshold (step rule).
    pub target: f64,
    pub desired: u32,
    pub note: String,
}

/// One constraint that changed the desired count, in the order applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    /// `tolerance`, `burst`, `stabilization`, `rate_limit`, `cooldown`, `bounds`,
    /// `schedule` or `missing_data`.
    pub name: String,
    pub from: u32,
    pub to: u32,
    pub note: String,
}

/// Who took a decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionSource {
    /// A scaling policy, on a closed window.
    #[default]
    Policy,
    /// The actuator, reporting an action that failed.
    Actuator,
    /// An operator, through the API.
    Manual,
    /// A health rule.
    Health,
}

impl DecisionSource {
    fn is_policy(&self) -> bool {
        *self == DecisionSource::Policy
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// When the decision was taken: the end of the window it used
    /// (RFC 3339 when written).
    pub time: Timestamp,
    pub app: String,
    /// The app's readable name where `app` is an opaque id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub policy: String,
    pub algorithm: String,
    pub current: u32,
    /// What the metrics asked for before any constraint.
    pub recommended: u32,
    pub desired: u32,
    pub direction: Direction,
    /// Metric values observed in the window (absent when the window was missing).
    pub observed: Vec<(String, f64)>,
    pub recommendations: Vec<Recommendation>,
    pub constraints: Vec<Constraint>,
    pub reason: String,
    /// Absent for policy decisions.
    #[serde(default, skip_serializing_if = "DecisionSource::is_policy")]
    pub source: DecisionSource,
    /// Why the action failed (actuator records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Health records: `restart` or `migrate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Health records: the instance acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Policies with `spec.predictive`: the forecast beside the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastUse>,
}

/// What a policy's forecast said at a decision, and whether it acted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastUse {
    /// `forecast-only` or `enabled`.
    pub mode: String,
    /// How far ahead the forecast was read, seconds.
    pub lead_s: i64,
    /// The forecast request rate at the lead time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rps: Option<f64>,
    /// The instances that rate needs at the target (the floor it asks for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// The forecast's wMAPE at the lead time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<f64>,
    /// Whether the forecast raised the count.
    pub applied: bool,
    pub note: String,
}

/// The name of the constraint a paused app's decisions carry.
pub const PAUSED: &str = "paused";

impl Decision {
    /// Recorded while its app was paused: nothing is carried out.
    pub fn is_paused(&self) -> bool {
        self.constraints.iter().any(|c| c.name == PAUSED)
    }
}
