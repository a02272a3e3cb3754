//! Kafka partition bookkeeping of a live run: what happens to a
//! partition's state when the consumer group moves it.

use tracing::info;

use std::collections::BTreeSet;

use crate::pipeline::Pipeline;
use crate::sources::KafkaSource;
use crate::sources::kafka::{Handoff, Rebalanced};

/// Applies the consumer group's changes of assignment: a partition this
/// consumer lost takes its apps' state with it (the new owner rebuilds their
/// open windows from the committed low-water mark); a partition taken over
/// skips what its previous owner already emitted; a partition kept keeps its
/// state when nobody else moved it on meanwhile.
/// Returns whether the assignment changed.
pub fn rebalance(idx: usize, k: &mut KafkaSource, pipeline: &mut Pipeline) -> anyhow::Result<bool> {
    let events = k.take_rebalances();
    let changed = !events.is_empty();
    for event in events {
        match event {
            Rebalanced::Assigned(parts) => {
                let assigned: BTreeSet<&str> = parts.iter().map(|(s, _)| s.as_str()).collect();
                let held = held_streams(idx, k, pipeline);
                for stream in held.iter().filter(|s| !assigned.contains(s.as_str())) {
                    drop_partition(idx, stream, k, pipeline)?;
                }
                for (stream, handoff) in &parts {
                    assign(idx, stream, *handoff, k, pipeline)?;
                }
            }
            Rebalanced::Added(parts) => {
                for (stream, handoff) in &parts {
                    assign(idx, stream, *handoff, k, pipeline)?;
                }
            }
            Rebalanced::Revoked(streams) => {
                for stream in &streams {
                    drop_partition(idx, stream, k, pipeline)?;
                }
            }
        }
    }
    if changed {
        // State of partitions this consumer does not own now — restored
        // from a checkpoint of when it did, and never assigned since
        // (cooperative assignments name only what they add) — goes too:
        // a heartbeat would otherwise close their open windows here, half
        // counted, while their owner counts them whole.
        let assigned: BTreeSet<String> = k.assigned().into_iter().collect();
        for stream in held_streams(idx, k, pipeline) {
            if !assigned.contains(&stream) {
                drop_partition(idx, &stream, k, pipeline)?;
            }
        }
    }
    Ok(changed)
}

/// The partitions of source `idx` this consumer holds state or offsets of.
fn held_streams(idx: usize, k: &KafkaSource, pipeline: &Pipeline) -> Vec<String> {
    let mut streams: Vec<String> = pipeline
        .stream_clocks()
        .into_iter()
        .filter(|(s, _, _)| *s == idx)
        .map(|(_, stream, _)| stream)
        .collect();
    streams.extend(k.offsets().keys().cloned());
    streams.sort();
    streams.dedup();
    streams
}

/// A partition this consumer no longer owns: its apps' state goes.
fn drop_partition(
    idx: usize,
    stream: &str,
    k: &mut KafkaSource,
    pipeline: &mut Pipeline,
) -> anyhow::Result<()> {
    let n = pipeline.drop_stream(idx, stream)?;
    k.forget(stream);
    info!(partition = %stream, series = n, "kafka: partition moved to another consumer, its apps' state dropped");
    Ok(())
}

/// A partition (newly) assigned: kept as it is when nobody moved it on
/// since this consumer's state of it, else taken over.
fn assign(
    idx: usize,
    stream: &str,
    handoff: Option<Handoff>,
    k: &mut KafkaSource,
    pipeline: &mut Pipeline,
) -> anyhow::Result<()> {
    let ours = k.offsets().get(stream).copied();
    let committed = handoff.and_then(|h| h.committed);
    match ours {
        // Unchanged since this consumer committed it (or never committed).
        Some(next) if committed.is_none() || committed == k.last_committed(stream) => {
            k.keep_from(stream, next)
        }
        Some(_) => {
            // Someone else moved it on since this state was saved.
            pipeline.drop_stream(idx, stream)?;
            k.forget(stream);
            take_over(idx, stream, handoff, k, pipeline);
        }
        None => take_over(idx, stream, handoff, k, pipeline),
    }
    Ok(())
}

fn take_over(
    idx: usize,
    stream: &str,
    h: Option<Handoff>,
    k: &KafkaSource,
    pipeline: &mut Pipeline,
) {
    let Some(closed_ns) = h.and_then(|h| h.closed_ns) else {
        return;
    };
    let clock = pipeline.clock_for(idx, stream);
    info!(partition = %stream, from = ?h.and_then(|h| h.committed), closed_ns, "kafka: partition taken over; windows its previous owner emitted are skipped");
    pipeline.set_handoff(clock, crate::pipeline::Handoff { closed_ns });
    super::handover::adopt(stream, closed_ns, k, pipeline);
}
