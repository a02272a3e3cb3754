//! Kafka topics through one consumer of a consumer group (rdkafka, with its
//! bundled librdkafka 2.12: Debian's 2.0 cannot talk to every broker).
//!
//! Exactly-once windows over at-least-once delivery, as for files: the
//! checkpoint holds, with the window state, the next offset of every
//! partition; offsets are committed to the group right after the checkpoint
//! is written (so only once every sink has acknowledged what came before them,
//! see `vane run`), and records below the checkpointed offset are skipped on
//! restart (the group may resume from an older commit after a crash between
//! the two writes).
//!
//! Under backpressure the assigned partitions are paused (the consumer keeps
//! polling, so it stays in the group) and resumed when the sinks catch up.
//! Consumer lag per partition = the high watermark librdkafka fetched
//! (statistics `hi_offset`) − the next offset to read.
//!
//! Producers should key records by app id, so that an app's records stay in
//! order in one partition.
//!
//! Sources of one-line records take them from librdkafka in batches
//! ([`batch`]); app logs and JSON-wrapped records one poll at a time.

mod batch;
pub mod security;
mod state_log;

pub use state_log::StateLog;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tracing::{info, warn};

use self::batch::{Queue, RawMessage};
use super::Chunk;

/// Per `topic/partition`, from librdkafka's statistics: the high watermark,
/// the fetch position and how many records wait in the local queue.
type Watermarks = Arc<Mutex<HashMap<String, PartitionStats>>>;

#[derive(Debug, Clone, Copy)]
struct PartitionStats {
    hi: i64,
    fetch_next: i64,
    queued: i64,
    /// The fetcher runs for it (not still looking up its start offset).
    fetching: bool,
}

struct Context {
    watermarks: Watermarks,
    /// The group is steady (not joining or rebalancing) as of the last
    /// statistics: while it rebalances, fetching is paused and the high
    /// watermarks are stale, so no partition may look caught up.
    settled: Arc<AtomicBool>,
    rebalances: Arc<Mutex<Vec<Rebalanced>>>,
    /// Set while `rebalances` holds something: checked before every record,
    /// cheaper than the lock.
    rebalance_waiting: Arc<AtomicBool>,
    /// The shadow group `{group}.vane-closed`, whose committed "offset" per
    /// partition is the end of the newest window the owner emitted and had
    /// acknowledged (commit metadata would do, but not every broker keeps it).
    closed_group: Arc<BaseConsumer>,
}

/// Where a partition stood when this consumer was given it: the group's
/// committed offset (its previous owner's low-water mark) and the end of
/// the newest window that owner emitted (records of windows ending by then
/// are counted there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handoff {
    pub committed: Option<i64>,
    pub closed_ns: Option<i64>,
}

/// A change of assignment, for the run loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalanced {
    /// The whole new assignment (`topic/partition`, and where its previous
    /// owner, or this consumer earlier, left it): eager rebalancing, which
    /// revoked everything first.
    Assigned(Vec<(String, Option<Handoff>)>),
    /// Partitions added to those kept (cooperative rebalancing: the others
    /// went on fetching throughout).
    Added(Vec<(String, Option<Handoff>)>),
    /// Partitions taken away, the others kept (cooperative rebalancing).
    Revoked(Vec<String>),
}

impl ClientContext for Context {
    fn stats(&self, stats: Statistics) {
        let steady = stats.cgrp.as_ref().is_none_or(|g| g.join_state == "steady");
        self.settled.store(steady, Ordering::Release);
        if let Ok(mut w) = self.watermarks.lock() {
            for (topic, t) in stats.topics {
                for (p, part) in t.partitions {
                    if p >= 0 && part.hi_offset >= 0 {
                        w.insert(
                            format!("{topic}/{p}"),
                            PartitionStats {
                                hi: part.hi_offset,
                                fetch_next: part.next_offset,
                                queued: part.fetchq_cnt,
                                fetching: part.fetch_state == "active",
                            },
                        );
                    }
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // What the statistics said before is stale until they come again.
        self.settled.store(false, Ordering::Release);
        if let Ok(mut w) = self.watermarks.lock() {
            w.clear();
        }
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let event = match rebalance {
            Rebalance::Assign(tpl) => {
                info!(partitions = tpl.count(), "kafka: partitions assigned");
                // Where the previous owner left each partition: read before
                // any record of it is handed over.
                let committed = consumer
                    .committed_offsets((*tpl).clone(), Duration::from_secs(10))
                    .map_err(|e| warn!(error = %e, "kafka: cannot read committed offsets"))
                    .ok();
                let closed = self
                    .closed_group
                    .committed_offsets((*tpl).clone(), Duration::from_secs(10))
                    .map_err(|e| warn!(error = %e, "kafka: cannot read the emitted windows' ends"))
                    .ok();
                let offset_in = |list: &Option<TopicPartitionList>, topic: &str, p: i32| {
                    list.as_ref()
                        .and_then(|l| l.find_partition(topic, p))
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        })
                };
                let parts = tpl
                    .elements()
                    .iter()
                    .map(|e| {
                        let handoff = Handoff {
                            committed: offset_in(&committed, e.topic(), e.partition()),
                            closed_ns: offset_in(&closed, e.topic(), e.partition()),
                        };
                        (format!("{}/{}", e.topic(), e.partition()), Some(handoff))
                    })
                    .collect();
                if cooperative {
                    Rebalanced::Added(parts)
                } else {
                    Rebalanced::Assigned(parts)
                }
            }
            Rebalance::Revoke(tpl) => {
                info!(partitions = tpl.count(), "kafka: partitions revoked");
                if !cooperative {
                    // Eager: everything goes, and the assignment that
                    // follows says what comes back.
                    return;
                }
                Rebalanced::Revoked(
                    tpl.elements()
                        .iter()
                        .map(|e| format!("{}/{}", e.topic(), e.partition()))
                        .collect(),
                )
            }
            Rebalance::Error(e) => {
                warn!(error = %e, "kafka: rebalance failed");
                return;
            }
        };
        if let Ok(mut r) = self.rebalances.lock() {
            r.push(event);
            self.rebalance_waiting.store(true, Ordering::Release);
        }
    }
}

pub struct KafkaSource {
    /// Records taken from `batches` in one pull, not looked at yet (in
    /// order). Declared before the consumer: freed before it.
    pulled: VecDeque<RawMessage>,
    /// Where the assigned partitions' records are forwarded when they are
    /// taken in batches (`None`: one poll each). Before the consumer too.
    batches: Option<Batches>,
    consumer: BaseConsumer<Context>,
    name: String,
    json_field: Option<String>,
    /// Next offset to read, by `topic/partition` (what the checkpoint keeps).
    next: BTreeMap<String, i64>,
    /// From the checkpoint: records below these offsets are already counted.
    resume_from: BTreeMap<String, i64>,
    /// Records fetched but not handed over yet (while paused, or the one
    /// that ended a batch), handed over first.
    held: VecDeque<Record>,
    /// Batch consecutive one-line records (not for app logs, whose records
    /// each carry their own key and time).
    batch: bool,
    /// The last record's partition (saves a format and a lookup per record).
    last_stream: Option<LastStream>,
    paused: bool,
    /// A handed-back chunk buffer, reused for the next batch: a fresh one
    /// each time costs page faults when the allocator maps it anew.
    spare: Option<Vec<u8>>,
    watermarks: Watermarks,
    settled: Arc<AtomicBool>,
    rebalances: Arc<Mutex<Vec<Rebalanced>>>,
    rebalance_waiting: Arc<AtomicBool>,
    closed_group: Arc<BaseConsumer>,
    /// The partitions' evaluator state for their next owners.
    state_log: StateLog,
    /// What this consumer last committed per partition (its low-water mark):
    /// a committed offset found different on assignment means another
    /// consumer moved the partition on, and this state is stale.
    last_committed: BTreeMap<String, i64>,
    pub skipped: u64,
}

impl KafkaSource {
    pub fn new(
        brokers: &str,
        group: &str,
        topics: &[String],
        json_field: Option<String>,
        options: &BTreeMap<String, String>,
        batch: bool,
    ) -> Result<Self, String> {
        let watermarks: Watermarks = Arc::default();
        let settled: Arc<AtomicBool> = Arc::default();
        let rebalances: Arc<Mutex<Vec<Rebalanced>>> = Arc::default();
        let rebalance_waiting: Arc<AtomicBool> = Arc::default();
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // librdkafka's own prefetch bound (64 MB) stays: a smaller one
            // starves the fetcher (measured: 16 MB → 40× slower with tansu).
            .set("statistics.interval.ms", "1000")
            // After the local queue was full, fetch again soon (the default
            // waits a second: measured 2.7× slower on one core).
            .set("fetch.queue.backoff.ms", "10")
            // Incremental rebalancing: a member joining or leaving moves
            // only the partitions that change owner; the rest keep flowing.
            .set("partition.assignment.strategy", "cooperative-sticky");
        for (k, v) in options {
            cfg.set(k, v);
        }
        // The state topic's clients: the brokers and how to reach them,
        // none of the consumer's settings.
        let mut state_client = ClientConfig::new();
        state_client.set("bootstrap.servers", brokers);
        for (k, v) in options {
            if ["security.", "sasl.", "ssl.", "client."]
                .iter()
                .any(|p| k.starts_with(p))
            {
                state_client.set(k, v);
            }
        }
        let state_log = StateLog::new(state_client, group);
        let mut shadow = cfg.clone();
        shadow
            .set("group.id", format!("{group}.vane-closed"))
            // Never polled: nothing may queue up in it.
            .set("statistics.interval.ms", "0");
        let closed_group: Arc<BaseConsumer> = Arc::new(
            shadow
                .create()
                .map_err(|e| format!("kafka client for {brokers}: {e}"))?,
        );
        let consumer: BaseConsumer<Context> = cfg
            .create_with_context(Context {
                watermarks: Arc::clone(&watermarks),
                settled: Arc::clone(&settled),
                rebalances: Arc::clone(&rebalances),
                rebalance_waiting: Arc::clone(&rebalance_waiting),
                closed_group: Arc::clone(&closed_group),
            })
            .map_err(|e| format!("kafka consumer for {brokers}: {e}"))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| format!("kafka subscribe to {names:?}: {e}"))?;
        let batches = (batch && json_field.is_none())
            .then(|| {
                Some(Batches {
                    records: Queue::new(&consumer)?,
                    consumer_queue: Queue::of_consumer(&consumer)?,
                })
            })
            .flatten();
        Ok(KafkaSource {
            pulled: VecDeque::new(),
            batches,
            consumer,
            name: format!("kafka:{}", topics.join(",")),
            json_field,
            next: BTreeMap::new(),
            resume_from: BTreeMap::new(),
            held: VecDeque::new(),
            batch,
            last_stream: None,
            paused: false,
            spare: None,
            watermarks,
            settled,
            rebalances,
            rebalance_waiting,
            closed_group,
            state_log,
            last_committed: BTreeMap::new(),
            skipped: 0,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Offsets from a checkpoint (`topic/partition` → next offset).
    pub fn resume(&mut self, offsets: &BTreeMap<String, i64>) {
        self.resume_from = offsets.clone();
        self.last_stream = None;
        self.next
            .extend(offsets.iter().map(|(k, v)| (k.clone(), *v)));
    }

    /// The next offsets to read, for the checkpoint.
    pub fn offsets(&self) -> &BTreeMap<String, i64> {
        &self.next
    }

    /// Changes of assignment since the last call.
    /// A change of assignment waits to be applied (`take_rebalances`):
    /// nothing more is read until it is, so that no record of a partition
    /// is processed before its takeover is set up.
    fn rebalance_pending(&self) -> bool {
        self.rebalance_waiting.load(Ordering::Acquire)
    }

    pub fn take_rebalances(&mut self) -> Vec<Rebalanced> {
        let events = self
            .rebalances
            .lock()
            .map(|mut r| {
                self.rebalance_waiting.store(false, Ordering::Release);
                std::mem::take(&mut *r)
            })
            .unwrap_or_default();
        if let Some(b) = &self.batches {
            // Every assignment: librdkafka drops a partition's forwarding
            // when it is revoked.
            for event in &events {
                let (Rebalanced::Assigned(parts) | Rebalanced::Added(parts)) = event else {
                    continue;
                };
                let mut routed = 0;
                for (stream, _) in parts {
                    if let Some((topic, p)) = stream.rsplit_once('/')
                        && let Ok(p) = p.parse::<i32>()
                    {
                        if b.records.route_partition(&self.consumer, topic, p) {
                            routed += 1;
                        } else {
                            warn!(partition = %stream, "kafka: partition unknown to librdkafka, its records are polled one by one");
                        }
                    }
                }
                info!(partitions = routed, "kafka: records taken in batches");
            }
        }
        events
    }

    /// Forgets a partition this consumer no longer owns (or whose state here
    /// is stale): its offsets, and records fetched but not handed over.
    pub fn forget(&mut self, stream: &str) {
        self.next.remove(stream);
        self.resume_from.remove(stream);
        self.last_stream = None;
        self.last_committed.remove(stream);
        self.drop_fetched(stream);
    }

    /// Drops the records of `stream` fetched but not handed over.
    fn drop_fetched(&mut self, stream: &str) {
        self.held.retain(|r| &*r.stream != stream);
        self.pulled
            .retain(|m| format!("{}/{}", m.topic(), m.partition()) != stream);
    }

    /// Keeps this consumer's state of a partition it owns again: records
    /// before `next` are already counted here (the group restarts from the
    /// committed low-water mark, before it). Records fetched before the
    /// change and not handed over yet are dropped: the group fetches them
    /// again (from that older commit), and they would count twice.
    pub fn keep_from(&mut self, stream: &str, next: i64) {
        self.drop_fetched(stream);
        self.resume_from.insert(stream.to_string(), next);
        self.last_stream = None;
        self.next.insert(stream.to_string(), next);
    }

    /// The offset each partition would be committed at: its low-water mark,
    /// the first record of a window still open (`low_water`), else the next
    /// offset.
    pub fn restart_offsets(&self, low_water: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
        self.next
            .iter()
            .map(|(k, next)| {
                (
                    k.clone(),
                    low_water.get(k).copied().unwrap_or(*next).min(*next),
                )
            })
            .collect()
    }

    /// What the group holds for this consumer's partitions after a restart
    /// from a checkpoint (so that an unchanged commit is recognised).
    pub fn set_last_committed(&mut self, offsets: BTreeMap<String, i64>) {
        self.last_committed = offsets;
    }

    pub fn last_committed(&self, stream: &str) -> Option<i64> {
        self.last_committed.get(stream).copied()
    }

    /// Commits, per partition, the offset to restart from (`restart`, its
    /// low-water mark as of the checkpoint just stored — never the read
    /// position now, which is past what that checkpoint counted), after
    /// first committing to the shadow group the end of the newest window
    /// its clock emitted (after the checkpoint, so only what the sinks
    /// acknowledged counts as done). In that order, a new owner never finds
    /// a low-water mark newer than the windows it says were emitted.
    ///
    /// Only partitions assigned now: a commit for others (restored from a
    /// checkpoint while the group is still joining) is refused as from an
    /// unknown member, and librdkafka answers that by rejoining — a restart
    /// that commits while it joins never gets its partitions.
    pub fn commit(&mut self, restart: &BTreeMap<String, i64>, closed: &BTreeMap<String, i64>) {
        let assigned: std::collections::BTreeSet<String> = self.assigned().into_iter().collect();
        if assigned.is_empty() {
            return;
        }
        // Every time: a partition taken over carries its previous owner's
        // value until this consumer writes its own.
        let mut tpl = TopicPartitionList::new();
        for key in restart.keys().filter(|k| assigned.contains(*k)) {
            if let Some((topic, p)) = key.rsplit_once('/')
                && let Ok(p) = p.parse::<i32>()
                && let Some(closed) = closed.get(key)
            {
                let _ = tpl.add_partition_offset(topic, p, Offset::Offset(*closed));
            }
        }
        if tpl.count() > 0
            && let Err(e) = self.closed_group.commit(&tpl, CommitMode::Sync)
        {
            warn!(error = %e, "kafka: cannot record the emitted windows' end; offsets not committed this time");
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (key, from) in restart.iter().filter(|(k, _)| assigned.contains(*k)) {
            if let Some((topic, p)) = key.rsplit_once('/')
                && let Ok(p) = p.parse::<i32>()
                && tpl
                    .add_partition_offset(topic, p, Offset::Offset(*from))
                    .is_err()
            {
                warn!(partition = %key, "kafka: cannot commit this offset");
            }
        }
        for (key, from) in restart {
            if assigned.contains(key) {
                self.last_committed.insert(key.clone(), *from);
            }
        }
        if tpl.count() > 0
            && let Err(e) = self.consumer.commit(&tpl, CommitMode::Async)
        {
            warn!(error = %e, "kafka: offset commit failed (the next one catches up)");
        }
    }

    /// Appends each partition's evaluator state (`topic/partition`, bytes)
    /// to the group's state topic, waiting for the broker.
    pub fn publish_states(&mut self, states: &[(String, Vec<u8>)]) -> Result<(), String> {
        self.state_log.publish(states)
    }

    /// The state the previous owner of `stream` published as of the windows
    /// ending by `closed_ns` (see [`StateLog::latest`]).
    pub fn handed_over_state(
        &self,
        stream: &str,
        closed_ns: i64,
        closed_of: impl Fn(&[u8]) -> Option<i64>,
    ) -> Result<Option<Vec<u8>>, String> {
        self.state_log.latest(stream, closed_ns, closed_of)
    }

    /// Lag per partition: fetched high watermark − next offset to read.
    pub fn lag(&self) -> BTreeMap<String, i64> {
        let Ok(w) = self.watermarks.lock() else {
            return BTreeMap::new();
        };
        w.iter()
            .map(|(k, s)| {
                let next = self.next.get(k).copied().unwrap_or(s.fetch_next.max(0));
                (k.clone(), (s.hi - next).max(0))
            })
            .collect()
    }

    /// Whether `stream` (`topic/partition`) has been read to the high
    /// watermark librdkafka last reported for it.
    pub fn caught_up(&self, stream: &str) -> bool {
        if !self.settled.load(Ordering::Acquire) {
            return false;
        }
        let Ok(w) = self.watermarks.lock() else {
            return false;
        };
        // Only from a fetcher that is running: before the first fetch the
        // statistics hold placeholders.
        match (w.get(stream).filter(|s| s.fetching), self.next.get(stream)) {
            (Some(s), Some(next)) => *next >= s.hi,
            // Nothing read from it yet: caught up if nothing is there to read.
            (Some(s), None) => s.fetch_next >= 0 && s.fetch_next >= s.hi && s.queued == 0,
            _ => false,
        }
    }

    /// Whether partitions are assigned and every one is read to its end.
    pub fn caught_up_all(&self) -> bool {
        let assigned = self.assigned();
        !assigned.is_empty() && assigned.iter().all(|s| self.caught_up(s))
    }

    /// The partitions assigned to this consumer now, as `topic/partition`.
    pub fn assigned(&self) -> Vec<String> {
        self.consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| format!("{}/{}", e.topic(), e.partition()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops (or restarts) fetching while the sinks are behind.
    pub fn set_paused(&mut self, paused: bool) {
        if paused == self.paused {
            return;
        }
        match self.consumer.assignment() {
            Ok(tpl) => {
                let r = if paused {
                    self.consumer.pause(&tpl)
                } else {
                    self.consumer.resume(&tpl)
                };
                match r {
                    Ok(()) => {
                        self.paused = paused;
                        info!(paused, partitions = tpl.count(), "kafka: backpressure");
                    }
                    Err(e) => warn!(error = %e, "kafka: pause/resume failed"),
                }
            }
            Err(e) => warn!(error = %e, "kafka: no assignment to pause"),
        }
    }

    /// Records as a chunk of lines (`None`: nothing ready): one record, or
    /// with batching a run of consecutive one-line records of one partition
    /// (so that line `i` of the chunk is record `offset + i`). While paused,
    /// records still arriving are held back for later.
    pub fn poll(&mut self) -> Result<Option<Chunk>, String> {
        self.poll_timeout(Duration::ZERO)
    }

    /// Gives a processed chunk's buffer back for the next batch.
    pub fn recycle(&mut self, chunk: Chunk) {
        if chunk.data.capacity() >= CHUNK_BYTES {
            self.spare = Some(chunk.data);
        }
    }

    /// Like [`KafkaSource::poll`], waiting up to `timeout` for a record (the
    /// wait yields the CPU to librdkafka's fetcher threads). With batches the
    /// wait lasts until a whole pull's worth arrived or `timeout` passed, and
    /// the group's events wait meanwhile: `vane run` never waits here.
    pub fn poll_timeout(&mut self, timeout: Duration) -> Result<Option<Chunk>, String> {
        if self.rebalance_pending() {
            return Ok(None);
        }
        if self.paused {
            // Keep serving the consumer (it stays in its group); what was
            // already fetched waits.
            // (Not those forwarded for batches: they wait in librdkafka,
            // within its bounds.)
            while let Some(r) = self.fetch(Duration::ZERO, false)? {
                self.held.push_back(r);
            }
            return Ok(None);
        }
        let first = match self.held.pop_front() {
            Some(r) => r,
            None => match self.fetch(timeout, true)? {
                Some(r) => r,
                None => return Ok(None),
            },
        };
        let mut last = first.offset;
        let batching = self.batch && first.is_one_line();
        let mut chunk = if batching {
            let mut data = self.spare.take().unwrap_or_default();
            data.clear();
            data.reserve(CHUNK_BYTES + 4096);
            first.into_chunk_in(data)
        } else {
            first.into_chunk_in(Vec::new())
        };
        if batching {
            let mut records = 1;
            while records < MAX_BATCH_RECORDS && chunk.data.len() < CHUNK_BYTES {
                let next = match self.held.pop_front() {
                    Some(r) => Next::Record(r),
                    None => self.append_next(&mut chunk.data, &chunk.source, last)?,
                };
                match next {
                    Next::Appended(offset) => last = offset,
                    Next::Record(r)
                        if *r.stream == *chunk.source
                            && r.offset == last + 1
                            && r.is_one_line() =>
                    {
                        chunk.data.extend_from_slice(&r.data);
                        last = r.offset;
                    }
                    Next::Record(r) => {
                        self.held.push_front(r);
                        break;
                    }
                    Next::Empty => break,
                }
                records += 1;
            }
        }
        // Only what is handed over counts as read (for the checkpoint).
        self.next.insert(chunk.source.clone(), last + 1);
        Ok(Some(chunk))
    }

    /// The next record from the consumer, skipping those the checkpoint
    /// already covers (`batched`: also from the batches' queue).
    fn fetch(&mut self, timeout: Duration, batched: bool) -> Result<Option<Record>, String> {
        loop {
            let batches = self.batches.as_ref().filter(|_| batched);
            let Some(result) = next_message(
                &self.consumer,
                batches,
                &mut self.pulled,
                &self.rebalance_waiting,
                timeout,
            ) else {
                return Ok(None);
            };
            let msg = result?;
            let stream = stream_of(&mut self.last_stream, &self.resume_from, &msg);
            if stream.covers(msg.offset()) {
                self.skipped += 1;
                continue;
            }
            let name = Arc::clone(&stream.name);
            match record_of(&msg, name, self.json_field.as_deref(), self.batch) {
                Some(r) => return Ok(Some(r)),
                // Nothing to read, but read: it moves the partition on.
                None => {
                    self.next.insert(stream.name.to_string(), msg.offset() + 1);
                }
            }
        }
    }

    /// The next record, copied straight to the end of `data` when it is the
    /// one-line record right after `last` in partition `stream` (the common
    /// case: one copy, no allocation), else returned whole.
    fn append_next(&mut self, data: &mut Vec<u8>, stream: &str, last: i64) -> Result<Next, String> {
        loop {
            let Some(result) = next_message(
                &self.consumer,
                self.batches.as_ref(),
                &mut self.pulled,
                &self.rebalance_waiting,
                Duration::ZERO,
            ) else {
                return Ok(Next::Empty);
            };
            let msg = result?;
            let offset = msg.offset();
            let known = stream_of(&mut self.last_stream, &self.resume_from, &msg);
            if known.covers(offset) {
                self.skipped += 1;
                continue;
            }
            if self.json_field.is_none()
                && offset == last + 1
                && *known.name == *stream
                && let Some(payload) = msg.payload().filter(|p| is_one_line(p))
            {
                data.extend_from_slice(payload);
                if payload.last() != Some(&b'\n') {
                    data.push(b'\n');
                }
                return Ok(Next::Appended(offset));
            }
            let name = Arc::clone(&known.name);
            match record_of(&msg, name, self.json_field.as_deref(), self.batch) {
                Some(r) => return Ok(Next::Record(r)),
                None => {
                    self.next.insert(known.name.to_string(), offset + 1);
                }
            }
        }
    }
}

/// What [`KafkaSource::append_next`] found.
enum Next {
    /// The record at this offset was appended to the chunk.
    Appended(i64),
    /// A record that may not belong to the chunk.
    Record(Record),
    /// Nothing more queued.
    Empty,
}

/// The partition of the last record seen.
struct LastStream {
    topic: String,
    partition: i32,
    /// `topic/partition`, shared by the records of a chunk.
    name: Arc<str>,
    /// From the checkpoint: records below it are already counted.
    resume_from: Option<i64>,
}

impl LastStream {
    fn covers(&self, offset: i64) -> bool {
        self.resume_from.is_some_and(|from| offset < from)
    }
}

/// The message's partition, from the cache when it is the last one's.
fn stream_of<'s>(
    last: &'s mut Option<LastStream>,
    resume_from: &BTreeMap<String, i64>,
    msg: &Fetched<'_>,
) -> &'s LastStream {
    let partition = msg.partition();
    let topic = msg.topic();
    if !matches!(last, Some(l) if l.partition == partition && l.topic == topic) {
        *last = None;
    }
    last.get_or_insert_with(|| {
        let name: Arc<str> = format!("{topic}/{partition}").into();
        LastStream {
            topic: topic.to_string(),
            partition,
            resume_from: resume_from.get(&*name).copied(),
            name,
        }
    })
}

/// The queues of a source whose records are taken in batches.
struct Batches {
    /// Where the assigned partitions' records are forwarded.
    records: Queue,
    /// The consumer's queue (events, and records of partitions not
    /// forwarded yet): drained first, to keep each partition in order.
    consumer_queue: Queue,
}

/// A fetched record: polled from the consumer's queue, or taken in a batch.
enum Fetched<'c> {
    Polled(BorrowedMessage<'c>),
    Batched(RawMessage),
}

impl Fetched<'_> {
    fn topic(&self) -> &str {
        match self {
            Fetched::Polled(m) => m.topic(),
            Fetched::Batched(m) => m.topic(),
        }
    }

    fn partition(&self) -> i32 {
        match self {
            Fetched::Polled(m) => m.partition(),
            Fetched::Batched(m) => m.partition(),
        }
    }

    fn offset(&self) -> i64 {
        match self {
            Fetched::Polled(m) => m.offset(),
            Fetched::Batched(m) => m.offset(),
        }
    }

    fn payload(&self) -> Option<&[u8]> {
        match self {
            Fetched::Polled(m) => m.payload(),
            Fetched::Batched(m) => m.payload(),
        }
    }

    fn key(&self) -> Option<&[u8]> {
        match self {
            Fetched::Polled(m) => m.key(),
            Fetched::Batched(m) => m.key(),
        }
    }

    fn timestamp_ms(&self) -> Option<i64> {
        match self {
            Fetched::Polled(m) => m.timestamp().to_millis(),
            Fetched::Batched(m) => m.timestamp_ms(),
        }
    }
}

/// The next record, if one is queued (waiting up to `timeout`): one pulled
/// earlier, else from the consumer's queue, else (with `batches`, and only
/// once the consumer's queue is empty) a new pull.
fn next_message<'c>(
    consumer: &'c BaseConsumer<Context>,
    batches: Option<&Batches>,
    pulled: &mut VecDeque<RawMessage>,
    rebalance_waiting: &AtomicBool,
    timeout: Duration,
) -> Option<Result<Fetched<'c>, String>> {
    let polled = |timeout| {
        poll_message(consumer, rebalance_waiting, timeout)
            .map(|r| r.map(Fetched::Polled).map_err(|e| format!("kafka: {e}")))
    };
    let Some(b) = batches else {
        return polled(timeout);
    };
    if pulled.is_empty() {
        if !b.consumer_queue.is_empty() {
            if let Some(m) = polled(Duration::ZERO) {
                return Some(m);
            }
            if !b.consumer_queue.is_empty() {
                return None;
            }
        }
        if rebalance_waiting.load(Ordering::Acquire) {
            return None;
        }
        b.records.pull(timeout, pulled);
    }
    let m = pulled.pop_front()?;
    if let Some(next) = pulled.front() {
        next.prefetch();
    }
    Some(match m.error() {
        Some(e) => Err(format!("kafka: {e}")),
        None => Ok(Fetched::Batched(m)),
    })
}

/// One message from the consumer, if one is queued (up to `timeout`).
///
/// `poll` answers None both when nothing is queued and when it served one
/// event that is not a message (statistics, a log line, a commit): look
/// again a while before calling the queue empty, or a steady stream of such
/// events (librdkafka's debug logs, a starved process catching up on
/// statistics) keeps the messages behind them from ever being read. A
/// change of assignment stops the search at once.
fn poll_message<'c>(
    consumer: &'c BaseConsumer<Context>,
    rebalance_waiting: &AtomicBool,
    timeout: Duration,
) -> Option<KafkaResult<BorrowedMessage<'c>>> {
    let mut polled = consumer.poll(timeout);
    let mut tries = 0;
    while polled.is_none()
        && tries < MAX_EVENTS_PER_POLL
        && !rebalance_waiting.load(Ordering::Acquire)
    {
        polled = consumer.poll(Duration::ZERO);
        tries += 1;
    }
    polled
}

/// The message as a record of its own (`None` when it is empty).
fn record_of(
    msg: &Fetched<'_>,
    stream: Arc<str>,
    json_field: Option<&str>,
    batch: bool,
) -> Option<Record> {
    let payload = msg.payload().unwrap_or_default();
    let mut data = match json_field {
        Some(field) => serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| {
                v.get(field)
                    .and_then(|s| s.as_str())
                    .map(|s| s.as_bytes().to_vec())
            })
            // Not the expected wrapper: the record as it is, to be dead-lettered.
            .unwrap_or_else(|| payload.to_vec()),
        None => payload.to_vec(),
    };
    if data.is_empty() {
        return None;
    }
    if data.last() != Some(&b'\n') {
        data.push(b'\n');
    }
    Some(Record {
        stream,
        offset: msg.offset(),
        data,
        // Only app logs read the key (whose lines say who wrote them).
        key: if batch {
            None
        } else {
            msg.key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .filter(|k| !k.is_empty())
                .map(str::to_string)
        },
        time_ns: msg.timestamp_ms().and_then(|ms| ms.checked_mul(1_000_000)),
    })
}

/// No line break before the last byte.
fn is_one_line(data: &[u8]) -> bool {
    !data.is_empty() && memchr::memchr(b'\n', &data[..data.len() - 1]).is_none()
}

/// A chunk of batched records ends past this many bytes: small enough to
/// stay in the CPU's cache between the copy and the decoding, and to be
/// reused by the allocator rather than mapped fresh each time.
const CHUNK_BYTES: usize = 64 * 1024;

/// Non-message events served in a row before the queue counts as empty.
const MAX_EVENTS_PER_POLL: usize = 64;

/// Consecutive records handed over in one chunk, at most.
const MAX_BATCH_RECORDS: usize = 4_096;

/// One record as fetched, before it is handed over.
struct Record {
    stream: Arc<str>,
    offset: i64,
    data: Vec<u8>,
    key: Option<String>,
    time_ns: Option<i64>,
}

impl Record {
    fn is_one_line(&self) -> bool {
        is_one_line(&self.data)
    }

    /// A chunk starting with this record, in `buffer` when it has room
    /// (else in the record's own).
    fn into_chunk_in(self, mut buffer: Vec<u8>) -> Chunk {
        let data = if buffer.capacity() > self.data.len() {
            buffer.clear();
            buffer.extend_from_slice(&self.data);
            buffer
        } else {
            self.data
        };
        Chunk {
            source: self.stream.to_string(),
            file: None,
            offset: u64::try_from(self.offset).unwrap_or(0),
            data,
            key: self.key,
            time_ns: self.time_ns,
        }
    }
}
