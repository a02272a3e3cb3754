//! The external sinks (InfluxDB, Elasticsearch) as tasks of their own.
//!
//! The run loop hands each tick's exports to every sink through a bounded
//! inbox, numbered; a sink acknowledges a number once everything up to it
//! is delivered (or refused for good, then dead-lettered). A checkpoint is
//! prepared at a number and stored only once every sink has acknowledged
//! it, so the loop never waits on a server. Backpressure: when a sink holds
//! more than its `max_pending_bytes`, or its inbox is full, input waits.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::SinkStats;
use crate::model::DeadLetter;
use crate::pipeline::Exports;
use crate::sinks::elasticsearch::ElasticSink;
use crate::sinks::influx::InfluxSink;

/// Hand-overs an inbox holds before the loop waits.
const INBOX: usize = 32;
/// How often a sink looks at its batches without new input.
const PUMP_EVERY: Duration = Duration::from_millis(100);

/// What the run loop needs of an external sink.
pub trait Sink: Send + 'static {
    /// How `/metrics` and dead letters name it.
    const NAME: &'static str;
    /// Takes what this sink writes from one tick's exports.
    fn take(&mut self, x: &Exports);
    /// Consumer lag of a Kafka source (only InfluxDB keeps it).
    fn take_lag(&mut self, _source: &str, _lag: &BTreeMap<String, i64>) {}
    /// Seals what is due (all with `force`) and sends it; what the server
    /// refused for good comes back as dead letters.
    fn pump(&mut self, now: Instant, force: bool) -> impl Future<Output = Vec<DeadLetter>> + Send;
    /// Everything taken so far is acknowledged.
    fn is_idle(&self) -> bool;
    /// It holds more than it may: input should wait.
    fn is_full(&self) -> bool;
    fn stats(&self) -> SinkStats;
}

impl Sink for InfluxSink {
    const NAME: &'static str = "influxdb";
    fn take(&mut self, x: &Exports) {
        for w in &x.windows {
            self.push_window(w);
        }
        for d in &x.decisions {
            self.push_decision(d);
        }
        for e in &x.alerts {
            self.push_alert(e);
        }
    }
    fn take_lag(&mut self, source: &str, lag: &BTreeMap<String, i64>) {
        self.push_kafka_lag(source, lag);
    }
    async fn pump(&mut self, now: Instant, force: bool) -> Vec<DeadLetter> {
        InfluxSink::pump(self, now, force)
            .await
            .into_iter()
            .map(|r| dead_letter(Self::NAME, "line-protocol", r.reason, r.lines))
            .collect()
    }
    fn is_idle(&self) -> bool {
        InfluxSink::is_idle(self)
    }
    fn is_full(&self) -> bool {
        InfluxSink::is_full(self)
    }
    fn stats(&self) -> SinkStats {
        SinkStats {
            batches: self.batches,
            delivered: self.points_written,
            retries: self.retries,
            rejected: self.rejected_batches,
            pending: !InfluxSink::is_idle(self),
        }
    }
}

impl Sink for ElasticSink {
    const NAME: &'static str = "elasticsearch";
    fn take(&mut self, x: &Exports) {
        for ev in &x.logs {
            self.push_event(ev);
        }
        for d in &x.access {
            self.push_access(d);
        }
    }
    async fn pump(&mut self, now: Instant, force: bool) -> Vec<DeadLetter> {
        ElasticSink::pump(self, now, force)
            .await
            .into_iter()
            .map(|r| {
                let reason = format!("document {}: {}", r.id, r.reason);
                dead_letter(Self::NAME, "ecs", reason, r.source)
            })
            .collect()
    }
    fn is_idle(&self) -> bool {
        ElasticSink::is_idle(self)
    }
    fn is_full(&self) -> bool {
        ElasticSink::is_full(self)
    }
    fn stats(&self) -> SinkStats {
        SinkStats {
            batches: self.batches,
            delivered: self.indexed + self.duplicates,
            retries: self.retries,
            rejected: self.rejected,
            pending: !ElasticSink::is_idle(self),
        }
    }
}

fn dead_letter(sink: &str, format: &str, reason: String, body: String) -> DeadLetter {
    DeadLetter {
        source: sink.to_string(),
        offset: 0,
        format: format.to_string(),
        kind: crate::model::DeadKind::RefusedBySink,
        reason,
        line: body,
    }
}

enum ToSink {
    /// Hand-over number `seq`.
    Exports(u64, Arc<Exports>),
    Lag(String, BTreeMap<String, i64>),
    /// Seal and send everything now (a checkpoint or the end waits for it).
    Flush,
}

/// What a sink task shares with the loop.
#[derive(Default)]
struct Shared {
    /// Every hand-over up to this number is delivered.
    acked: AtomicU64,
    full: AtomicBool,
    stats: Mutex<SinkStats>,
    refused: Mutex<Vec<DeadLetter>>,
}

/// One running sink.
struct SinkTask {
    name: &'static str,
    inbox: mpsc::Sender<ToSink>,
    /// What did not fit in the inbox, sent first on the next tick: the loop
    /// never waits on a sink; input is held back while this is not empty.
    backlog: std::collections::VecDeque<ToSink>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl SinkTask {
    fn spawn<S: Sink>(sink: S) -> Self {
        let (tx, rx) = mpsc::channel(INBOX);
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(deliver(sink, rx, Arc::clone(&shared)));
        SinkTask {
            name: S::NAME,
            inbox: tx,
            backlog: std::collections::VecDeque::new(),
            shared,
            task,
        }
    }

    /// Sends `msg` after the backlog, or keeps it there if the inbox is full.
    fn send(&mut self, msg: ToSink) {
        self.backlog.push_back(msg);
        self.send_backlog();
    }

    fn send_backlog(&mut self) {
        while let Some(msg) = self.backlog.pop_front() {
            match self.inbox.try_send(msg) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(msg)) => {
                    self.backlog.push_front(msg);
                    return;
                }
                // The task is gone: nothing more will be acknowledged.
                Err(mpsc::error::TrySendError::Closed(_)) => self.backlog.clear(),
            }
        }
    }
}

/// Takes one message in; `true` when it asks for a flush.
fn take<S: Sink>(sink: &mut S, msg: ToSink, received: &mut u64) -> bool {
    match msg {
        ToSink::Exports(seq, x) => {
            sink.take(&x);
            *received = seq;
            false
        }
        ToSink::Lag(source, lag) => {
            sink.take_lag(&source, &lag);
            false
        }
        ToSink::Flush => true,
    }
}

async fn deliver<S: Sink>(mut sink: S, mut rx: mpsc::Receiver<ToSink>, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(PUMP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut received = 0;
    loop {
        let mut flush = false;
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => flush |= take(&mut sink, msg, &mut received),
                None => return,
            },
            _ = tick.tick() => {}
        }
        // What waits in the inbox is taken first: one request for all of it.
        while let Ok(msg) = rx.try_recv() {
            flush |= take(&mut sink, msg, &mut received);
        }
        // A flush is done before anything new is taken in, so that the
        // hand-overs before it are acknowledged even while more keep coming
        // (the inbox fills meanwhile: backpressure).
        loop {
            let refused = sink.pump(Instant::now(), flush).await;
            if !refused.is_empty()
                && let Ok(mut r) = shared.refused.lock()
            {
                r.extend(refused);
            }
            let idle = sink.is_idle();
            if idle {
                shared.acked.store(received, Ordering::Release);
            }
            shared.full.store(sink.is_full(), Ordering::Release);
            if let Ok(mut s) = shared.stats.lock() {
                *s = sink.stats();
            }
            if !flush || idle {
                break;
            }
            tokio::time::sleep(PUMP_EVERY).await;
        }
    }
}

/// The configured external sinks.
#[derive(Default)]
pub struct Sinks {
    tasks: Vec<SinkTask>,
    /// The number of the last hand-over.
    handed: u64,
    /// The hand-over the last flush followed.
    flushed: u64,
}

impl Sinks {
    pub fn add<S: Sink>(&mut self, sink: S) {
        self.tasks.push(SinkTask::spawn(sink));
    }

    pub fn any(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// Hands one tick's exports to every sink (never waits).
    pub fn hand(&mut self, x: Exports) {
        if self.tasks.is_empty() || x.is_empty() {
            return;
        }
        self.handed += 1;
        let x = Arc::new(x);
        for t in &mut self.tasks {
            t.send(ToSink::Exports(self.handed, Arc::clone(&x)));
        }
    }

    /// Consumer lag of a Kafka source, for the sinks that keep it.
    pub fn hand_lag(&mut self, source: &str, lag: &BTreeMap<String, i64>) {
        for t in &mut self.tasks {
            t.send(ToSink::Lag(source.to_string(), lag.clone()));
        }
    }

    /// Asks every sink to send all it holds now.
    pub fn flush(&mut self) {
        self.flushed = self.handed;
        for t in &mut self.tasks {
            t.send(ToSink::Flush);
        }
    }

    /// Like [`Sinks::flush`], unless nothing was handed over since the last one.
    pub fn flush_once(&mut self) {
        if self.flushed != self.handed {
            self.flush();
        }
    }

    /// Sends what waited for room in an inbox.
    pub fn send_backlog(&mut self) {
        for t in &mut self.tasks {
            t.send_backlog();
        }
    }

    /// The number of the last hand-over: a checkpoint prepared now may be
    /// stored once [`Sinks::delivered`] reaches it.
    pub fn handed(&self) -> u64 {
        self.handed
    }

    /// Every sink has delivered everything up to hand-over `seq`.
    pub fn delivered(&self, seq: u64) -> bool {
        self.tasks
            .iter()
            .all(|t| t.shared.acked.load(Ordering::Acquire) >= seq)
    }

    /// Everything handed so far is delivered.
    pub fn is_idle(&self) -> bool {
        self.delivered(self.handed)
    }

    /// One of them holds too much, or its inbox is full: input should wait.
    pub fn is_full(&self) -> bool {
        self.tasks
            .iter()
            .any(|t| !t.backlog.is_empty() || t.shared.full.load(Ordering::Acquire))
    }

    /// What the servers refused for good since the last call.
    pub fn take_refused(&self) -> Vec<DeadLetter> {
        let mut out = Vec::new();
        for t in &self.tasks {
            if let Ok(mut r) = t.shared.refused.lock() {
                out.append(&mut r);
            }
        }
        out
    }

    pub fn stats(&self) -> Vec<(&'static str, SinkStats)> {
        self.tasks
            .iter()
            .map(|t| {
                let s = t.shared.stats.lock().map(|s| s.clone()).unwrap_or_default();
                (t.name, s)
            })
            .collect()
    }

    /// Stops the tasks (what they still hold was not acknowledged, so the
    /// checkpoint does not cover it and a restart sends it again).
    pub fn stop(self) {
        for t in self.tasks {
            t.task.abort();
        }
    }
}
