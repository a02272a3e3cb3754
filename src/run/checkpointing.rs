//! When `vane run` checkpoints, and what goes into a checkpoint.
//!
//! A checkpoint holds the window state at the source positions it names,
//! and at 100k series the open windows are most of it. They are smallest
//! just after windows close (the next window holds only the allowed
//! lateness' worth of records), so a checkpoint is written then, once per
//! `checkpoint_interval` at most — its cost follows the windows closed, not
//! the seconds passed. While little is open (a quiet or small stream) it is
//! written every interval, and input whose event time stands still still
//! gets one every [`LONGEST_WAIT`] intervals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use tracing::warn;

use super::inputs::{Inputs, Source};
use super::sinks::Sinks;
use crate::pipeline::Pipeline;
use crate::sources::{Checkpoint, CheckpointRef, store_bytes};

/// Open aggregates below which a checkpoint costs little whenever it is written.
const SMALL_OPEN_STATE: usize = 4096;
/// At most this many intervals between checkpoints, whatever is open.
const LONGEST_WAIT: u32 = 60;
/// Checkpoints take at most 1/20 (5 %) of the time: after one that took
/// `t`, the next waits at least `20 t` (and at least the interval).
const COST_SHARE: u32 = 20;

pub struct CheckpointSchedule {
    interval: Duration,
    last: Instant,
    /// Windows closed as of the last checkpoint.
    closed: u64,
    /// What the last one took.
    cost: Duration,
}

impl CheckpointSchedule {
    pub fn new(interval: Duration, now: Instant, windows_closed: u64) -> Self {
        CheckpointSchedule {
            interval,
            last: now,
            closed: windows_closed,
            cost: Duration::ZERO,
        }
    }

    /// Whether a checkpoint is due now, given how many windows have closed
    /// so far and how many aggregates are open.
    pub fn due(&self, now: Instant, windows_closed: u64, open_aggregates: usize) -> bool {
        let since = now.saturating_duration_since(self.last);
        let gap = self.interval.max(self.cost.saturating_mul(COST_SHARE));
        since >= gap
            && (windows_closed != self.closed
                || open_aggregates <= SMALL_OPEN_STATE
                || since >= self.interval.saturating_mul(LONGEST_WAIT))
    }

    /// Storing the last one (later, once the sinks delivered) cost `cost` more.
    pub fn add_cost(&mut self, cost: Duration) {
        self.cost = self.cost.saturating_add(cost);
    }

    /// A checkpoint was taken at `now` and cost `cost`.
    pub fn done(&mut self, now: Instant, windows_closed: u64, cost: Duration) {
        self.last = now;
        self.closed = windows_closed;
        self.cost = cost;
    }
}

/// A checkpoint serialized, waiting until the sinks have delivered every
/// hand-over up to `seq` (what came before it); then it is stored and
/// Kafka commits the marks it was taken at.
pub struct Prepared {
    bytes: Vec<u8>,
    pub seq: u64,
    kafka: Vec<KafkaMarks>,
}

/// What one Kafka source commits after a checkpoint, per partition.
struct KafkaMarks {
    source: usize,
    /// Where the group restarts it: its low-water mark, else the next
    /// offset, as of this checkpoint (the read position moves on while it
    /// waits for the sinks; committing that would skip what it read meanwhile).
    restart: BTreeMap<String, i64>,
    /// The end of its newest emitted window.
    closed: BTreeMap<String, i64>,
    /// Its decision state for the next owner (`run::handover`).
    states: Vec<(String, Vec<u8>)>,
}

/// Syncs the outputs and serializes the state at this point, to be stored
/// once the sinks have delivered hand-over `seq`.
pub fn prepare(
    pipeline: &mut Pipeline,
    sources: &[(usize, Source)],
    seq: u64,
) -> anyhow::Result<Prepared> {
    let lengths = pipeline.sync()?;
    let mut positions = BTreeMap::new();
    let mut kafka_offsets = BTreeMap::new();
    let mut kafka = Vec::new();
    for (idx, s) in sources {
        match s {
            Source::File(t) => {
                if let Some(p) = t.position() {
                    positions.insert(t.name().to_string(), p);
                }
            }
            Source::Glob(g) => positions.extend(g.positions()),
            Source::Kafka(k) => {
                kafka_offsets.extend(k.offsets().iter().map(|(p, o)| (p.clone(), *o)));
                let closed = pipeline.core.closed_by_stream(*idx);
                kafka.push(KafkaMarks {
                    source: *idx,
                    restart: k.restart_offsets(&pipeline.low_water_marks(*idx)),
                    states: super::handover::collect(*idx, &closed, pipeline),
                    closed,
                });
            }
            Source::Stdin(_) | Source::Scrape(_) | Source::Rlp(_) | Source::Pushed(_) => {}
        }
    }
    let (kafka_low_water, kafka_handoffs) = pipeline.kafka_state();
    let stream_clocks = pipeline.stream_clocks();
    let core = &pipeline.core;
    let e = &core.evaluate;
    let cp = CheckpointRef {
        version: Checkpoint::VERSION,
        positions,
        windows: core.windows.snapshot_ref(),
        windows_file_len: lengths.windows,
        dead_letters_file_len: lengths.dead_letters,
        decisions_file_len: lengths.decisions,
        alerts_file_len: lengths.alerts,
        alerter: e.alerter.as_ref(),
        decider: e.decider.as_ref().map(|d| &d.state),
        health: e.health.as_ref(),
        counts: core.counts,
        kafka_offsets,
        stream_clocks,
        logs_file_len: lengths.logs,
        log_assembler: core.assembler.as_ref(),
        kafka_low_water,
        kafka_handoffs,
        time_guard: (core.guard.held_count() > 0).then_some(&core.guard),
    };
    Ok(Prepared {
        bytes: cp.to_bytes()?,
        seq,
        kafka,
    })
}

impl Prepared {
    /// Stores it, then lets Kafka commit: only now may the group move on,
    /// each partition from the first record of a window still open.
    pub fn store(self, path: &Path, sources: &mut [(usize, Source)]) -> anyhow::Result<()> {
        store_bytes(&self.bytes, path)
            .with_context(|| format!("cannot write checkpoint {}", path.display()))?;
        for m in &self.kafka {
            if let Some((_, Source::Kafka(k))) = sources.iter_mut().find(|(i, _)| *i == m.source) {
                // The state first: a commit says the next owner may start
                // from here, and it needs the state of here.
                if let Err(e) = k.publish_states(&m.states) {
                    warn!(error = %e, "kafka: decision state not published; offsets not committed this time");
                    continue;
                }
                k.commit(&m.restart, &m.closed);
            }
        }
        Ok(())
    }
}

/// The checkpoints of a live run: when the next is due, the one waiting
/// for the sinks, and what they cost.
pub struct Checkpoints {
    path: PathBuf,
    schedule: CheckpointSchedule,
    /// A checkpoint waiting for the sinks to deliver what came before it.
    pending: Option<Prepared>,
    pub cost: CheckpointCost,
}

/// What checkpointing took, for the run's report.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckpointCost {
    pub stored: u64,
    /// Outputs fsynced, state serialized and stored.
    pub seconds: f64,
    /// Of that, CPU time (the rest is waiting for the disk).
    pub cpu_seconds: f64,
}

impl CheckpointCost {
    /// Runs `f`, adding its wall and CPU time.
    fn measure<T>(&mut self, f: impl FnOnce() -> T) -> (T, Duration) {
        let t = Instant::now();
        let cpu = thread_cpu_seconds();
        let out = f();
        let took = t.elapsed();
        self.seconds += took.as_secs_f64();
        if let (Some(a), Some(b)) = (cpu, thread_cpu_seconds()) {
            self.cpu_seconds += b - a;
        }
        (out, took)
    }
}

impl Checkpoints {
    pub fn new(path: PathBuf, interval: Duration, pipeline: &Pipeline) -> Self {
        Checkpoints {
            path,
            schedule: CheckpointSchedule::new(
                interval,
                Instant::now(),
                pipeline.core.windows.counters().windows_closed,
            ),
            pending: None,
            cost: CheckpointCost::default(),
        }
    }

    /// Its Kafka marks are of partitions that may be another's now.
    pub fn drop_pending(&mut self) {
        self.pending = None;
    }

    /// A checkpoint promises that everything before it was delivered: it
    /// is prepared when due and stored once the sinks acknowledged every
    /// hand-over up to it (at once without sinks).
    pub fn step(
        &mut self,
        now: Instant,
        pipeline: &mut Pipeline,
        inputs: &mut Inputs,
        sinks: &mut Sinks,
    ) -> anyhow::Result<()> {
        let windows_closed = pipeline.core.windows.counters().windows_closed;
        let open = pipeline.core.windows.open_aggregates();
        if self.pending.is_none() && self.schedule.due(now, windows_closed, open) {
            let (prepared, took) = self
                .cost
                .measure(|| prepare(pipeline, &inputs.sources, sinks.handed()));
            self.pending = Some(prepared?);
            sinks.flush();
            self.schedule.done(now, windows_closed, took);
        }
        if let Some(p) = self.pending.take_if(|p| sinks.delivered(p.seq)) {
            let path = &self.path;
            let (stored, took) = self.cost.measure(|| p.store(path, &mut inputs.sources));
            stored?;
            self.schedule.add_cost(took);
            self.cost.stored += 1;
        }
        Ok(())
    }

    /// Prepares and stores one at once (when nothing is left to deliver).
    pub fn write_now(
        &mut self,
        pipeline: &mut Pipeline,
        inputs: &mut Inputs,
    ) -> anyhow::Result<()> {
        prepare(pipeline, &inputs.sources, 0)?.store(&self.path, &mut inputs.sources)?;
        self.cost.stored += 1;
        Ok(())
    }
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (in
/// nanoseconds): what a checkpoint costs in CPU, apart from the time its
/// fsyncs wait on the disk. `None` where the kernel does not say.
pub fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_open_state_waits_for_windows_to_close() {
        let t0 = Instant::now();
        let s = CheckpointSchedule::new(Duration::from_secs(1), t0, 5);
        let later = t0 + Duration::from_secs(2);
        assert!(!s.due(t0, 6, 0), "not before the interval");
        assert!(s.due(later, 5, 100), "little open: every interval");
        assert!(!s.due(later, 5, 100_000), "much open, nothing closed");
        assert!(s.due(later, 6, 100_000), "a window closed");
        assert!(
            s.due(t0 + Duration::from_secs(60), 5, 100_000),
            "waited long enough"
        );
    }

    #[test]
    fn checkpoints_take_at_most_a_twentieth_of_the_time() {
        let t0 = Instant::now();
        let mut s = CheckpointSchedule::new(Duration::from_secs(1), t0, 0);
        s.done(t0, 1, Duration::from_millis(150));
        s.add_cost(Duration::from_millis(50));
        assert!(
            !s.due(t0 + Duration::from_secs(3), 2, 100),
            "3 s after a 200 ms one"
        );
        assert!(s.due(t0 + Duration::from_secs(4), 2, 100));
    }

    #[test]
    fn thread_cpu_time_grows_with_work() {
        let Some(before) = thread_cpu_seconds() else {
            return; // not Linux
        };
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        let after = thread_cpu_seconds().unwrap_or(before);
        assert!(after > before, "{before} -> {after}");
    }
}
