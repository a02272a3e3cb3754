//! A partition's decision state handed to its next owner: the instance
//! counts, cooldowns and stabilization windows of the apps whose windows
//! it closes, as of its newest emitted window. Published with every
//! checkpoint to the group's state topic (`sources::kafka::StateLog`);
//! a replica that takes the partition over reads it back, so that across a
//! handover an app's decisions go on from where they were — no scale-up
//! repeated because the cooldown was forgotten, no count started afresh.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::pipeline::Pipeline;
use crate::rules::decider::DeciderState;
use crate::sources::KafkaSource;

#[derive(Debug, Serialize, Deserialize)]
pub struct PartitionState {
    /// Every window ending by then was emitted, and decided, with this state.
    pub closed_ns: i64,
    pub decider: DeciderState,
}

/// Per partition of source `idx` with windows emitted (`closed`: their
/// ends): its state record, for the checkpoint to publish.
pub fn collect(
    idx: usize,
    closed: &BTreeMap<String, i64>,
    pipeline: &Pipeline,
) -> Vec<(String, Vec<u8>)> {
    let Some(decider) = pipeline.core.evaluate.decider.as_ref() else {
        return Vec::new();
    };
    closed
        .iter()
        .filter_map(|(stream, &closed_ns)| {
            let apps = pipeline.core.apps_of_stream(idx, stream);
            let state = PartitionState {
                closed_ns,
                decider: decider.export(&apps),
            };
            serde_json::to_vec(&state).ok().map(|b| (stream.clone(), b))
        })
        .collect()
}

/// The window end a state record is as of.
fn closed_of(bytes: &[u8]) -> Option<i64> {
    #[derive(Deserialize)]
    struct Head {
        closed_ns: i64,
    }
    serde_json::from_slice::<Head>(bytes)
        .ok()
        .map(|h| h.closed_ns)
}

/// Takes the state the previous owner of `stream` published as of the
/// windows ending by `closed_ns` into the decider.
pub fn adopt(stream: &str, closed_ns: i64, k: &KafkaSource, pipeline: &mut Pipeline) {
    let Some(decider) = pipeline.core.evaluate.decider.as_mut() else {
        return;
    };
    match k.handed_over_state(stream, closed_ns, closed_of) {
        Ok(Some(bytes)) => match serde_json::from_slice::<PartitionState>(&bytes) {
            Ok(s) => {
                let apps = s.decider.len();
                decider.adopt(s.decider);
                info!(partition = %stream, apps, as_of = s.closed_ns, "kafka: decision state taken over");
            }
            Err(e) => {
                warn!(partition = %stream, error = %e, "kafka: handed-over decision state unreadable; its apps start afresh")
            }
        },
        Ok(None) => {
            info!(partition = %stream, "kafka: no decision state handed over; its apps start afresh")
        }
        Err(e) => {
            warn!(partition = %stream, error = %e, "kafka: cannot read the handed-over decision state; its apps start afresh")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record names the window end it is as of, read without the rest.
    #[test]
    fn a_state_record_says_what_it_is_as_of() {
        let state = PartitionState {
            closed_ns: 1_764_547_220_000_000_000,
            decider: DeciderState::default(),
        };
        let bytes = serde_json::to_vec(&state).unwrap_or_default();
        assert_eq!(closed_of(&bytes), Some(state.closed_ns));
        assert_eq!(closed_of(b"not json"), None);
        let back: Option<PartitionState> = serde_json::from_slice(&bytes).ok();
        assert!(back.is_some_and(|b| b.decider.is_empty()));
    }
}
