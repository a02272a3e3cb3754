//! Tumbling event-time windows per app and per (app, instance).
//!
//! - A window is `[start, start + length)`, `start` a multiple of `length` since
//!   the Unix epoch.
//! - Watermark = highest event time seen − `allowed_lateness`. A window closes when
//!   the watermark reaches its end. A record whose window has closed is *late*: it
//!   is counted (on the series' next window, field `late`), never folded in.
//! - When a window closes, every known series gets an output for it, with zeros
//!   if it had no traffic: a series is known from its first window with traffic
//!   until `idle_expiry` after its last (pinned apps always). Then it is forgotten,
//!   which keeps state bounded when apps and instances come and go. Rows depend
//!   only on closed windows, so any arrival order within the allowed lateness
//!   gives the same output.
//! - Pure: no clock, no I/O. Time arrives in records and in [`WindowAggregator::advance_watermark`].

mod agg;
mod key;
mod snapshot;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::model::{AccessRecord, ContainerMetric, WindowStats};
use crate::time::{NANOS_PER_SEC, Timestamp};
use agg::AggPool;
pub use agg::{Agg, AggSnapshot};
use key::{Lookup, PairKey, PairLookup, SeriesKey};
pub use snapshot::{BucketSnapshot, SeriesSnapshot, WindowSnapshot, WindowSnapshotRef};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Window settings, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    pub length_ns: i64,
    pub allowed_lateness_ns: i64,
    pub idle_expiry_ns: i64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            length_ns: 10 * NANOS_PER_SEC,
            allowed_lateness_ns: 2 * NANOS_PER_SEC,
            idle_expiry_ns: 300 * NANOS_PER_SEC,
        }
    }
}

/// One input's progress in event time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputClock {
    pub max_ns: Option<i64>,
    pub idle: bool,
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Accepted,
    Late,
}

/// Running totals, for the end-of-replay summary and for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCounters {
    pub accepted: u64,
    pub late: u64,
    /// Container metric samples folded in, and those that came too late.
    #[serde(default)]
    pub metrics: u64,
    #[serde(default)]
    pub late_metrics: u64,
    pub windows_closed: u64,
    pub series_expired: u64,
}

/// An app's load in the open window so far ([`WindowAggregator::open_loads`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenLoad {
    pub app: String,
    pub name: Option<String>,
    pub start_ns: i64,
    /// Event time covered so far.
    pub elapsed_ns: i64,
    pub requests: u64,
    pub sum_rt_us: u64,
}

impl OpenLoad {
    /// The partial window as a row the engine can read (rates over the elapsed time).
    pub fn to_row(&self) -> WindowStats {
        let secs = (self.elapsed_ns as f64 / crate::time::NANOS_PER_SEC as f64).max(1e-3);
        let mut w = WindowStats::empty(&self.app);
        w.name = self.name.clone();
        w.requests = self.requests;
        w.rps = self.requests as f64 / secs;
        w.concurrency = self.sum_rt_us as f64 / 1e6 / secs;
        w
    }
}

type SeriesId = usize;

#[derive(Debug, Clone)]
struct Series {
    app: Box<str>,
    /// A readable name for the app where the id is opaque (gorouter: the
    /// route host of the app's first record).
    name: Option<Box<str>>,
    instance: Option<Box<str>>,
    /// Where the instance runs, as its container metrics last said.
    node: Option<Box<str>>,
    /// End of the newest *closed* window in which this series had records.
    /// Rows and expiry depend only on closed windows, so they do not depend on
    /// arrival order within the allowed lateness.
    last_data_end: Option<i64>,
    /// Late records not yet reported on an output.
    pending_late: u64,
    /// Whether [`WindowAggregator::register_app`] pinned it (never expires).
    pinned: bool,
}

#[derive(Debug, Clone)]
struct AppEntry {
    series: SeriesId,
    /// Instance series of the app (in [`WindowAggregator::instances`]).
    instances: u32,
}

/// An instance series and its app's series.
#[derive(Debug, Clone, Copy)]
struct InstanceEntry {
    app: SeriesId,
    instance: SeriesId,
}

struct Bucket {
    start_ns: i64,
    /// Indexed by `SeriesId`; `None` for series without records in this window.
    aggs: Vec<Option<Agg>>,
    /// How many of `aggs` are `Some`.
    live: usize,
}

pub struct WindowAggregator {
    cfg: WindowConfig,
    apps: FastMap<SeriesKey, AppEntry>,
    /// Instance series by (app, instance): a record's two series in one probe.
    instances: FastMap<PairKey, InstanceEntry>,
    /// Slots indexed by `SeriesId`; `None` once expired (the slot is reused).
    series: Vec<Option<Series>>,
    /// The input (event clock) whose records last went into each series:
    /// which state a revoked Kafka partition takes with it. Apart from
    /// `series` to keep the per-record write on a small, hot array.
    series_input: Vec<u32>,
    free_slots: Vec<SeriesId>,
    /// Live series in output order (by app, the app row before its
    /// instances): rows come out sorted without sorting them each window.
    order: Vec<SeriesId>,
    /// A series was added or removed since `order` was built.
    order_stale: bool,
    /// Open windows, oldest first. Usually one or two.
    open: Vec<Bucket>,
    /// The aggregate slots of a closed window, emptied, for the next one to
    /// open with (a window's slots grow to the number of series: at 100k
    /// series, tens of megabytes a window otherwise allocated and grown anew).
    spare_aggs: Vec<Option<Agg>>,
    max_event_ns: Option<i64>,
    /// Event clocks per input (source); see [`WindowAggregator::event_watermark`].
    inputs: Vec<InputClock>,
    current_input: usize,
    /// Externally advanced watermark (processing-time heartbeat in live mode).
    external_watermark: Option<i64>,
    /// End of the newest closed window: a record before it is late.
    closed_through: Option<i64>,
    /// Parts of closed aggregates, for new ones.
    pool: AggPool,
    counters: WindowCounters,
    /// Series forgotten (expired or dropped) since [`WindowAggregator::take_forgotten`]:
    /// what is kept about them elsewhere (decider, health, API view) goes too.
    forgotten: Vec<Forgotten>,
}

/// A series the windows no longer hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgotten {
    pub app: Box<str>,
    /// `None`: the app itself (after all its instances).
    pub instance: Option<Box<str>>,
}

impl WindowAggregator {
    pub fn new(cfg: WindowConfig) -> Self {
        WindowAggregator {
            cfg,
            apps: FastMap::default(),
            instances: FastMap::default(),
            series: Vec::new(),
            series_input: Vec::new(),
            free_slots: Vec::new(),
            order: Vec::new(),
            order_stale: false,
            open: Vec::new(),
            spare_aggs: Vec::new(),
            max_event_ns: None,
            inputs: vec![InputClock::default()],
            current_input: 0,
            external_watermark: None,
            closed_through: None,
            pool: AggPool::default(),
            counters: WindowCounters::default(),
            forgotten: Vec::new(),
        }
    }

    /// Series forgotten since the last call. Whoever drives the windows
    /// takes these after each call that closes windows (they pile up otherwise).
    pub fn take_forgotten(&mut self) -> Vec<Forgotten> {
        std::mem::take(&mut self.forgotten)
    }

    pub fn config(&self) -> WindowConfig {
        self.cfg
    }

    pub fn counters(&self) -> WindowCounters {
        self.counters
    }

    /// Current watermark, or `None` before the first record.
    pub fn watermark(&self) -> Option<i64> {
        let from_events = self.event_watermark();
        match (from_events, self.external_watermark) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The watermark from event times alone (ignoring heartbeats). With one
    /// input: its highest event time − allowed lateness. With several: the
    /// slowest active input's, so a fast input cannot close windows a slower
    /// one is still filling; idle inputs do not hold it back.
    pub fn event_watermark(&self) -> Option<i64> {
        let newest = if self.inputs.len() <= 1 {
            self.max_event_ns
        } else {
            let mut active = self.inputs.iter().filter(|i| !i.idle).peekable();
            if active.peek().is_none() {
                self.max_event_ns
            } else {
                active
                    .map(|i| i.max_ns)
                    .try_fold(i64::MAX, |acc, m| m.map(|m| acc.min(m)))
            }
        };
        newest.map(|m| m - self.cfg.allowed_lateness_ns)
    }

    /// Records from now on come from input `idx` (one per source).
    pub fn set_input(&mut self, idx: usize) {
        if self.inputs.len() <= idx {
            self.inputs.resize(idx + 1, InputClock::default());
        }
        self.current_input = idx;
    }

    /// Marks input `idx` idle (it stops holding the watermark back) or active again.
    pub fn set_input_idle(&mut self, idx: usize, idle: bool, out: &mut Vec<WindowStats>) {
        if self.inputs.len() <= idx {
            self.inputs.resize(idx + 1, InputClock::default());
        }
        if self.inputs[idx].idle != idle {
            self.inputs[idx].idle = idle;
            self.close_until_watermark(out);
        }
    }

    /// Forgets every series whose records last came from input `idx`, with
    /// their open aggregates, and resets that input's clock (idle): a Kafka
    /// partition revoked from this consumer, whose apps another consumer now
    /// counts. Nothing of them is emitted (the new owner emits them whole).
    pub fn drop_input(&mut self, idx: usize, out: &mut Vec<WindowStats>) -> usize {
        let mut dropped = 0;
        for id in 0..self.series.len() {
            if self.series_input.get(id).copied() != Some(idx as u32) {
                continue;
            }
            let Some(s) = self.series[id].take() else {
                continue;
            };
            self.order_stale = true;
            for b in &mut self.open {
                if let Some(a) = b.aggs.get_mut(id).and_then(Option::take) {
                    b.live -= 1;
                    self.pool.recycle(a);
                }
            }
            match &s.instance {
                Some(inst) => self.unindex_instance(&s.app, inst),
                None => {
                    self.apps.remove(&*s.app);
                }
            }
            self.forgotten.push(Forgotten {
                app: s.app,
                instance: s.instance,
            });
            self.free_slots.push(id);
            dropped += 1;
        }
        // Instances of a dropped app (an app series fed by this input while an
        // instance series was last fed by another cannot happen with records
        // keyed by app; drop them too rather than leave orphans).
        for id in 0..self.series.len() {
            let orphan = self.series[id]
                .as_ref()
                .is_some_and(|s| s.instance.is_some() && !self.apps.contains_key(&*s.app));
            if orphan && let Some(s) = self.series[id].take() {
                self.order_stale = true;
                if let Some(inst) = &s.instance {
                    self.unindex_instance(&s.app, inst);
                }
                self.forgotten.push(Forgotten {
                    app: s.app,
                    instance: s.instance,
                });
                for b in &mut self.open {
                    if let Some(a) = b.aggs.get_mut(id).and_then(Option::take) {
                        b.live -= 1;
                        self.pool.recycle(a);
                    }
                }
                self.free_slots.push(id);
                dropped += 1;
            }
        }
        if let Some(i) = self.inputs.get_mut(idx) {
            *i = InputClock {
                idle: true,
                ..InputClock::default()
            };
        }
        self.close_until_watermark(out);
        dropped
    }

    /// End of the newest closed window (a record before it is late).
    pub fn closed_through(&self) -> Option<i64> {
        self.closed_through
    }

    /// Aggregates held in open windows (one per series with records in a
    /// window): the part of the state that grows with traffic.
    pub fn open_aggregates(&self) -> usize {
        self.open.iter().map(|b| b.live).sum()
    }

    /// Number of series (apps and instances) held.
    pub fn series_count(&self) -> usize {
        self.series.len() - self.free_slots.len()
    }

    /// Declares an app that must get windows even before (or without) traffic.
    /// Pinned apps never expire.
    pub fn register_app(&mut self, app: &str) {
        let id = self.app_series(app, None);
        if let Some(s) = self.series[id].as_mut() {
            s.pinned = true;
        }
    }

    #[inline]
    fn window_start(&self, t: i64) -> i64 {
        t.div_euclid(self.cfg.length_ns) * self.cfg.length_ns
    }

    fn alloc_series(&mut self, s: Series) -> SeriesId {
        let id = self.alloc_slot(s);
        if self.series_input.len() <= id {
            self.series_input.resize(id + 1, u32::MAX);
        }
        // No input yet (a pinned app fed by none is never dropped).
        self.series_input[id] = u32::MAX;
        id
    }

    fn alloc_slot(&mut self, s: Series) -> SeriesId {
        self.order_stale = true;
        match self.free_slots.pop() {
            Some(id) => {
                self.series[id] = Some(s);
                id
            }
            None => {
                self.series.push(Some(s));
                self.series.len() - 1
            }
        }
    }

    fn app_series(&mut self, app: &str, name: Option<&str>) -> SeriesId {
        if let Some(e) = self.apps.get(app) {
            return e.series;
        }
        let id = self.alloc_series(Series {
            app: app.into(),
            name: name.map(Into::into),
            instance: None,
            node: None,
            last_data_end: None,
            pending_late: 0,
            pinned: false,
        });
        self.apps.insert(
            app.into(),
            AppEntry {
                series: id,
                instances: 0,
            },
        );
        id
    }

    /// Makes an instance series findable by its app and name.
    fn index_instance(&mut self, app: &str, instance: &str, app_id: SeriesId, id: SeriesId) {
        let key = PairKey {
            app: app.into(),
            instance: instance.into(),
        };
        let entry = InstanceEntry {
            app: app_id,
            instance: id,
        };
        if self.instances.insert(key, entry).is_none()
            && let Some(e) = self.apps.get_mut(app)
        {
            e.instances += 1;
        }
    }

    /// The reverse of [`WindowAggregator::index_instance`].
    fn unindex_instance(&mut self, app: &str, instance: &str) {
        if self.instances.remove(&PairLookup(app, instance)).is_some()
            && let Some(e) = self.apps.get_mut(app)
        {
            e.instances = e.instances.saturating_sub(1);
        }
    }

    #[inline]
    fn series_ids(
        &mut self,
        app: &str,
        name: Option<&str>,
        instance: Option<&str>,
    ) -> (SeriesId, Option<SeriesId>) {
        // Fast path: known, one lookup.
        match instance {
            Some(i) => {
                if let Some(e) = self.instances.get(&PairLookup(app, i)) {
                    return (e.app, Some(e.instance));
                }
            }
            None => {
                if let Some(e) = self.apps.get(&Lookup(app)) {
                    return (e.series, None);
                }
            }
        }
        let app_id = self.app_series(app, name);
        let Some(inst) = instance else {
            return (app_id, None);
        };
        let id = self.alloc_series(Series {
            app: app.into(),
            name: name.map(Into::into),
            instance: Some(inst.into()),
            node: None,
            last_data_end: None,
            pending_late: 0,
            pinned: false,
        });
        self.index_instance(app, inst, app_id, id);
        (app_id, Some(id))
    }

    /// The load of each app so far in the newest open window, as of the
    /// newest event time: for burst probes, which look before the window
    /// closes. Only apps with requests in that window.
    pub fn open_loads(&self) -> Vec<OpenLoad> {
        let (Some(bucket), Some(now)) = (self.open.last(), self.max_event_ns) else {
            return Vec::new();
        };
        let elapsed_ns = (now - bucket.start_ns).clamp(0, self.cfg.length_ns);
        let mut out = Vec::new();
        for entry in self.apps.values() {
            let Some(Some(agg)) = bucket.aggs.get(entry.series) else {
                continue;
            };
            let Some(series) = self.series[entry.series].as_ref() else {
                continue;
            };
            if agg.requests == 0 {
                continue;
            }
            out.push(OpenLoad {
                app: String::from(&*series.app),
                name: series.name.as_deref().map(str::to_string),
                start_ns: bucket.start_ns,
                elapsed_ns,
                requests: agg.requests,
                sum_rt_us: agg.sum_rt_us,
            });
        }
        out.sort_by(|a, b| a.app.cmp(&b.app));
        out
    }

    /// Newest event time seen.
    pub fn max_event_ns(&self) -> Option<i64> {
        self.max_event_ns
    }

    /// Folds one record into its window, or counts it late; closes every window
    /// the advanced watermark passes, appending their outputs to `out`.
    pub fn push(&mut self, rec: &AccessRecord<'_>, out: &mut Vec<WindowStats>) -> Pushed {
        let (status, bytes_in, bytes_out, rt) = (
            rec.status,
            rec.bytes_received,
            rec.bytes_sent,
            rec.response_time_us,
        );
        let pushed = self.fold(
            &rec.app,
            name_of(rec),
            rec.instance.as_deref(),
            rec.time_ns,
            true,
            out,
            |a| a.record(status, bytes_in, bytes_out, rt),
        );
        match pushed {
            Pushed::Accepted => self.counters.accepted += 1,
            Pushed::Late => self.counters.late += 1,
        }
        pushed
    }

    /// Folds a container metric sample into its window (CPU and memory join
    /// the request metrics of the same app and instance).
    pub fn push_metric(&mut self, m: &ContainerMetric, out: &mut Vec<WindowStats>) -> Pushed {
        let pushed = self.fold(
            &m.app,
            None,
            m.instance.as_deref(),
            m.time_ns,
            false,
            out,
            |a| a.record_metric(m),
        );
        if let (Some(node), Some(instance)) = (&m.node, &m.instance)
            && let Some(e) = self.instances.get(&PairLookup(&m.app, instance))
            && let Some(s) = self.series[e.instance].as_mut()
            && s.node.as_deref() != Some(node.as_str())
        {
            s.node = Some(node.as_str().into());
        }
        match pushed {
            Pushed::Accepted => self.counters.metrics += 1,
            Pushed::Late => self.counters.late_metrics += 1,
        }
        pushed
    }

    /// The shared path of every record: find its series and window, count it
    /// late or apply `record` to the app's and the instance's aggregate, then
    /// close what the watermark passed. `counts_late`: report lateness in the
    /// rows' `late` field (requests only).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn fold(
        &mut self,
        app: &str,
        name: Option<&str>,
        instance: Option<&str>,
        t: i64,
        counts_late: bool,
        out: &mut Vec<WindowStats>,
        mut record: impl FnMut(&mut Agg),
    ) -> Pushed {
        let (app_id, inst_id) = self.series_ids(app, name, instance);
        let start = self.window_start(t);
        let late = self
            .closed_through
            .is_some_and(|c| start + self.cfg.length_ns <= c);
        if late {
            if counts_late {
                for id in [Some(app_id), inst_id].into_iter().flatten() {
                    if let Some(s) = self.series[id].as_mut() {
                        s.pending_late += 1;
                    }
                }
            }
            return Pushed::Late;
        }
        let bucket = self.bucket_index(start);
        let input = self.current_input as u32;
        for id in [Some(app_id), inst_id].into_iter().flatten() {
            if self.series_input.len() <= id {
                self.series_input.resize(id + 1, 0);
            }
            self.series_input[id] = input;
            if self.open[bucket].aggs.len() <= id {
                self.open[bucket].aggs.resize_with(id + 1, || None);
            }
            let b = &mut self.open[bucket];
            let a = match &mut b.aggs[id] {
                Some(a) => a,
                empty => {
                    b.live += 1;
                    empty.insert(self.pool.fresh())
                }
            };
            if a.wants_histogram() {
                a.attach(self.pool.histogram());
            }
            record(a);
        }
        let input = &mut self.inputs[self.current_input];
        if input.max_ns.is_none_or(|m| t > m) {
            input.max_ns = Some(t);
            self.max_event_ns = Some(self.max_event_ns.map_or(t, |m| m.max(t)));
            self.close_until_watermark(out);
        }
        Pushed::Accepted
    }

    fn bucket_index(&mut self, start: i64) -> usize {
        // Newest first: in-order input hits the last bucket.
        if let Some(i) = self.open.iter().rposition(|b| b.start_ns <= start) {
            if self.open[i].start_ns == start {
                return i;
            }
            let bucket = self.new_bucket(start);
            self.open.insert(i + 1, bucket);
            return i + 1;
        }
        let bucket = self.new_bucket(start);
        self.open.insert(0, bucket);
        0
    }

    fn new_bucket(&mut self, start_ns: i64) -> Bucket {
        Bucket {
            start_ns,
            aggs: std::mem::take(&mut self.spare_aggs),
            live: 0,
        }
    }

    /// Moves the watermark forward without a record (a processing-time heartbeat
    /// while a live source is idle). Never moves it back.
    pub fn advance_watermark(&mut self, watermark_ns: i64, out: &mut Vec<WindowStats>) {
        if self.external_watermark.is_none_or(|w| watermark_ns > w) {
            self.external_watermark = Some(watermark_ns);
            self.close_until_watermark(out);
        }
    }

    /// End of input: closes every open window, so nothing read is left unreported.
    pub fn flush(&mut self, out: &mut Vec<WindowStats>) {
        if let Some(last) = self.open.last() {
            let end = last.start_ns + self.cfg.length_ns;
            self.close_through(end, out);
        }
        // Late records that arrived after the last close are reported on one more
        // (empty) window rather than lost from the counts.
        if self.series.iter().flatten().any(|s| s.pending_late > 0)
            && let Some(c) = self.closed_through
        {
            self.close_through(c + self.cfg.length_ns, out);
        }
    }

    fn close_until_watermark(&mut self, out: &mut Vec<WindowStats>) {
        if let Some(wm) = self.watermark() {
            self.close_through(wm, out);
        }
    }

    /// Closes every window whose end is ≤ `limit`, in order, including empty
    /// periods between windows (zero-filled for known series).
    fn close_through(&mut self, limit: i64, out: &mut Vec<WindowStats>) {
        let len = self.cfg.length_ns;
        loop {
            let next_start = match (self.closed_through, self.open.first()) {
                (Some(c), Some(b)) => c.min(b.start_ns),
                (Some(c), None) => c,
                (None, Some(b)) => b.start_ns,
                (None, None) => return,
            };
            if next_start + len > limit {
                return;
            }
            // No bucket and no series with a row to give: jump over the
            // empty stretch (a record years ahead costs nothing per window).
            if self.open.first().is_none_or(|b| b.start_ns > next_start)
                && self.silent_from(next_start + len)
            {
                let last_closable = self.window_start(limit);
                let target = self
                    .open
                    .first()
                    .map_or(last_closable, |b| b.start_ns.min(last_closable));
                let target = target.max(next_start + len);
                self.closed_through = Some(target);
                self.expire(target);
                continue;
            }
            let bucket = match self.open.first() {
                Some(b) if b.start_ns == next_start => Some(self.open.remove(0)),
                _ => None,
            };
            self.emit(next_start, bucket, out);
            self.closed_through = Some(next_start + len);
            self.counters.windows_closed += 1;
        }
    }

    /// Whether no series has a row for an empty window ending at `end` or
    /// later: none pinned, none with late records to report, every one
    /// quiet for longer than `idle_expiry` by then (or never in a closed
    /// window). Checked only at windows without a bucket.
    fn silent_from(&self, end: i64) -> bool {
        let idle = self.cfg.idle_expiry_ns;
        self.series.iter().flatten().all(|s| {
            !s.pinned && s.pending_late == 0 && s.last_data_end.is_none_or(|ld| end - ld > idle)
        })
    }

    fn emit(&mut self, start: i64, bucket: Option<Bucket>, out: &mut Vec<WindowStats>) {
        let len = self.cfg.length_ns;
        let end = start + len;
        let secs = len as f64 / NANOS_PER_SEC as f64;
        let (start_t, end_t) = (Timestamp::from_nanos(start), Timestamp::from_nanos(end));
        let mut aggs = bucket.map(|b| b.aggs).unwrap_or_default();
        let first_out = out.len();
        let idle = self.cfg.idle_expiry_ns;
        if self.order_stale {
            self.rebuild_order();
        }
        for &id in &self.order {
            let mut agg = aggs.get_mut(id).and_then(Option::take);
            let Some(s) = self.series[id].as_mut() else {
                continue;
            };
            // A row when the series had records here; zeros while it is known
            // (pinned, or had records no longer than `idle_expiry` ago); and a
            // zero row to carry late counts, which must not go unreported.
            let known = s.pinned || s.last_data_end.is_some_and(|ld| end - ld <= idle);
            let stats = match &mut agg {
                Some(a) => {
                    s.last_data_end = Some(end);
                    stats_from(s, a, secs)
                }
                None if known || s.pending_late > 0 => zero_stats(s),
                None => continue,
            };
            out.push(WindowStats {
                start: start_t,
                end: end_t,
                late: s.pending_late,
                ..stats
            });
            s.pending_late = 0;
            if let Some(a) = agg {
                self.pool.recycle(a);
            }
        }
        aggs.clear();
        if aggs.capacity() > self.spare_aggs.capacity() {
            self.spare_aggs = aggs;
        }
        debug_assert!(
            out[first_out..].is_sorted_by(|a, b| (&a.app, &a.instance) < (&b.app, &b.instance))
        );
        // An app's memory is the sum over its instances (each row holds a mean).
        let mut i = first_out;
        while i < out.len() {
            let n = out[i + 1..]
                .iter()
                .take_while(|r| r.app == out[i].app && r.instance.is_some())
                .count();
            if out[i].instance.is_none() && n > 0 {
                let total: Option<f64> = out[i + 1..=i + n]
                    .iter()
                    .filter_map(|r| r.memory_bytes)
                    .fold(None, |acc, m| Some(acc.unwrap_or(0.0) + m));
                if total.is_some() {
                    out[i].memory_bytes = total;
                }
            }
            i += 1 + n;
        }
        self.expire(end);
    }

    /// Sorts the live series by app, the app row before its instances.
    fn rebuild_order(&mut self) {
        let series = &self.series;
        self.order.clear();
        self.order
            .extend((0..series.len()).filter(|&id| series[id].is_some()));
        let key = |id: &SeriesId| {
            series[*id]
                .as_ref()
                .map(|s| (&*s.app, s.instance.as_deref()))
        };
        self.order.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
        self.order_stale = false;
    }

    /// Forgets series idle for longer than `idle_expiry` at `now` (event time):
    /// instances first, then apps left without instances.
    fn expire(&mut self, now: i64) {
        let idle = self.cfg.idle_expiry_ns;
        for apps_pass in [false, true] {
            for id in 0..self.series.len() {
                let Some(s) = &self.series[id] else { continue };
                let recent = s.last_data_end.is_some_and(|ld| now - ld <= idle);
                if s.instance.is_none() != apps_pass || s.pinned || recent || s.pending_late > 0 {
                    continue;
                }
                if self
                    .open
                    .iter()
                    .any(|b| b.aggs.get(id).is_some_and(Option::is_some))
                {
                    continue;
                }
                match &s.instance {
                    Some(inst) => {
                        let (app, inst) = (s.app.clone(), inst.clone());
                        self.unindex_instance(&app, &inst);
                    }
                    None => {
                        if self.apps.get(&*s.app).is_some_and(|e| e.instances > 0) {
                            continue; // an app outlives its instances
                        }
                        self.apps.remove(&*s.app);
                    }
                }
                if let Some(s) = self.series[id].take() {
                    self.order_stale = true;
                    self.forgotten.push(Forgotten {
                        app: s.app,
                        instance: s.instance,
                    });
                }
                self.free_slots.push(id);
                self.counters.series_expired += 1;
            }
        }
    }
}

/// The host, when it names the app better than its id does.
fn name_of<'a>(rec: &'a AccessRecord<'_>) -> Option<&'a str> {
    Some(rec.host).filter(|h| !h.is_empty() && *h != rec.app)
}

fn stats_from(s: &Series, a: &mut Agg, secs: f64) -> WindowStats {
    WindowStats {
        app: String::from(&*s.app),
        name: s.name.as_ref().map(|n| String::from(&**n)),
        instance: s.instance.as_ref().map(|i| String::from(&**i)),
        node: s.node.as_ref().map(|n| String::from(&**n)),
        start: Timestamp::default(),
        end: Timestamp::default(),
        requests: a.requests,
        rps: a.requests as f64 / secs,
        concurrency: a.sum_rt_us as f64 / 1e6 / secs,
        latency_ms: a.latency_ms(),
        status: a.status,
        error_ratio: if a.requests == 0 {
            0.0
        } else {
            a.status.c5xx as f64 / a.requests as f64
        },
        bytes_in: a.bytes_in,
        bytes_out: a.bytes_out,
        cpu_pct: a.cpu_pct.get(),
        memory_bytes: a.memory_bytes.get(),
        memory_pct: a.memory_pct.get(),
        late: 0,
    }
}

fn zero_stats(s: &Series) -> WindowStats {
    WindowStats {
        name: s.name.as_ref().map(|n| String::from(&**n)),
        instance: s.instance.as_ref().map(|i| String::from(&**i)),
        node: s.node.as_ref().map(|n| String::from(&**n)),
        ..WindowStats::empty(&s.app)
    }
}

#[cfg(test)]
mod tests;
