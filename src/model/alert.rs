//! An alert transition as data: written to `alerts.jsonl`, sent to
//! notifiers and sinks, shown by the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Pending,
    Firing,
    Resolved,
}

/// One alert transition, as written to `alerts.jsonl` and sent to notifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub time: Timestamp,
    pub alertname: String,
    pub app: String,
    pub state: AlertState,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub value: Option<f64>,
    /// When the condition started holding (RFC 3339 when written).
    pub active_at: Timestamp,
}
