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
mod shard;
mod snapshot;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::model::{AccessRecord, ContainerMetric, WindowStats};
use crate::time::NANOS_PER_SEC;
pub use agg::{Agg, AggSnapshot};
use key::{Lookup, PairLookup};
pub use shard::ClosedGroup;
use shard::{AppEntry, InstanceEntry, Series, SeriesId, Shard, Shared};
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

/// How many series the windows hold at most: beyond, a new app's records
/// go to the app [`OVERFLOW`], a new instance's to its app's instance
/// [`OVERFLOW`] — counted, never dropped — so spoofed hosts or a runaway
/// id cannot grow the state (and every map that follows it) without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Apps and instances together.
    pub max_series: usize,
    pub max_instances_per_app: u32,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits {
            max_series: 500_000,
            max_instances_per_app: 2_000,
        }
    }
}

/// The app (and instance) name records beyond [`SeriesLimits`] are counted under.
pub const OVERFLOW: &str = "__overflow__";

/// One input's progress in event time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputClock {
    pub max_ns: Option<i64>,
    pub idle: bool,
    /// Its home shard: where apps first seen on it live.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub shard: u32,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// One shard's state, for the API and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStatus {
    pub series: usize,
    pub open_aggregates: usize,
    pub watermark_ns: Option<i64>,
    pub closed_through_ns: Option<i64>,
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
    /// Records of an app whose windows a different Kafka partition's clock
    /// closes: the topic is not keyed by app (or topics read together are
    /// not co-partitioned), and a takeover is not exact for such apps.
    #[serde(default)]
    pub cross_partition: u64,
    /// Records counted under [`OVERFLOW`]: their app or instance would have
    /// been a series beyond [`SeriesLimits`].
    #[serde(default)]
    pub overflow: u64,
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

pub struct WindowAggregator {
    sh: Shared,
    /// Shard 0 holds the series of every clock without one of its own.
    shards: Vec<Shard>,
    /// Event clocks (one per source, one per Kafka partition).
    inputs: Vec<InputClock>,
    /// Per clock: the shards its records went into (its home first).
    feeds: Vec<Vec<u32>>,
    current_input: usize,
    max_event_ns: Option<i64>,
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
        let mut shard0 = Shard::new(0);
        shard0.feeders.push(0);
        WindowAggregator {
            sh: Shared {
                cfg,
                ..Shared::default()
            },
            shards: vec![shard0],
            inputs: vec![InputClock::default()],
            feeds: vec![vec![0]],
            current_input: 0,
            max_event_ns: None,
        }
    }

    /// Series forgotten since the last call. Whoever drives the windows
    /// takes these after each call that closes windows (they pile up otherwise).
    pub fn take_forgotten(&mut self) -> Vec<Forgotten> {
        std::mem::take(&mut self.sh.forgotten)
    }

    /// Which shard each window closed since the last call came from, in
    /// the order of their rows.
    pub fn take_closed_groups(&mut self) -> Vec<ClosedGroup> {
        std::mem::take(&mut self.sh.groups)
    }

    pub fn config(&self) -> WindowConfig {
        self.sh.cfg
    }

    pub fn counters(&self) -> WindowCounters {
        self.sh.counters
    }

    /// Whether more than one shard closes windows on its own clock (Kafka
    /// partitions): a window's rows then speak for one shard's apps only.
    pub fn is_sharded(&self) -> bool {
        self.shards.iter().filter(|s| s.in_use).count() > 1
    }

    /// The shard an app's series live in.
    pub fn shard_of(&self, app: &str) -> Option<u32> {
        self.sh.index.apps.get(&Lookup(app)).map(|e| e.shard)
    }

    /// The process-wide watermark: the slowest shard's that has an active
    /// clock (the fastest's when all are idle), or `None` before the first record.
    pub fn watermark(&self) -> Option<i64> {
        let of = |s: &Shard| {
            let e = self.shard_event_watermark(s);
            match (e.map(|(w, _)| w), s.external_watermark) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }
        };
        self.across_shards(of)
    }

    /// The watermark from event times alone (ignoring heartbeats), across
    /// shards as [`WindowAggregator::watermark`] is. Within a shard: with one
    /// clock, its highest event time − allowed lateness; with several, the
    /// slowest active one's, so a fast clock cannot close windows a slower
    /// one is still filling; idle clocks do not hold it back.
    pub fn event_watermark(&self) -> Option<i64> {
        self.across_shards(|s| self.shard_event_watermark(s).map(|(w, _)| w))
    }

    /// The slowest of the shards with an active clock, else the fastest.
    fn across_shards(&self, of: impl Fn(&Shard) -> Option<i64>) -> Option<i64> {
        let used = || self.shards.iter().filter(|s| s.in_use);
        let active = used()
            .filter(|s| self.has_active_feeder(s))
            .filter_map(&of)
            .min();
        active.or_else(|| used().filter_map(&of).max())
    }

    fn has_active_feeder(&self, s: &Shard) -> bool {
        s.feeders
            .iter()
            .any(|&c| self.inputs.get(c as usize).is_some_and(|i| !i.idle))
    }

    /// A shard's watermark from its clocks' event times, and whether one of
    /// them is active. With one clock: its newest − lateness; with several,
    /// the slowest active one's; all idle: the newest.
    fn shard_event_watermark(&self, s: &Shard) -> Option<(i64, bool)> {
        let lateness = self.sh.cfg.allowed_lateness_ns;
        let mut clocks = s
            .feeders
            .iter()
            .filter_map(|&c| self.inputs.get(c as usize));
        if let [only] = s.feeders[..] {
            let clock = self.inputs.get(only as usize)?;
            return clock.max_ns.map(|m| (m - lateness, !clock.idle));
        }
        let mut active = false;
        let mut slowest = Some(i64::MAX);
        let mut newest: Option<i64> = None;
        for clock in clocks.by_ref() {
            newest = newest.max(clock.max_ns);
            if !clock.idle {
                active = true;
                slowest = slowest.zip(clock.max_ns).map(|(a, b)| a.min(b));
            }
        }
        let from = if active { slowest } else { newest };
        from.map(|m| (m - lateness, active))
    }

    /// Where a shard's windows may be closed: its own clocks' watermark, its
    /// heartbeat's, and, when none of its clocks is active (a quiet, caught-up
    /// partition), as far as the active shards have got: its next record
    /// will be newer than theirs.
    fn shard_limit(&self, s: &Shard) -> Option<i64> {
        let own = self.shard_event_watermark(s);
        let mut limit = own.map(|(w, _)| w);
        if own.is_none_or(|(_, active)| !active) {
            let fleet = self
                .shards
                .iter()
                .filter(|o| o.in_use && o.id != s.id && self.has_active_feeder(o))
                .filter_map(|o| self.shard_event_watermark(o).map(|(w, _)| w))
                .min();
            limit = limit.max(fleet);
        }
        limit.max(s.external_watermark)
    }

    /// Closes what the watermark of shard `id` passed.
    fn close_shard(&mut self, id: usize, out: &mut Vec<WindowStats>) {
        let Some(s) = self.shards.get(id) else {
            return;
        };
        if let Some(limit) = self.shard_limit(s) {
            self.shards[id].close_through(limit, &mut self.sh, out);
        }
    }

    /// Closes what the watermarks of the shards clock `idx` feeds passed.
    fn close_fed_by(&mut self, idx: usize, out: &mut Vec<WindowStats>) {
        let shards = self.feeds.get(idx).cloned().unwrap_or_default();
        for s in shards {
            self.close_shard(s as usize, out);
        }
    }

    fn close_all(&mut self, out: &mut Vec<WindowStats>) {
        for id in 0..self.shards.len() {
            if self.shards[id].in_use {
                self.close_shard(id, out);
            }
        }
    }

    fn ensure_input(&mut self, idx: usize) {
        while self.inputs.len() <= idx {
            let c = self.inputs.len();
            self.inputs.push(InputClock::default());
            self.feeds.push(vec![0]);
            self.shards[0].feeders.push(c as u32);
        }
    }

    /// Records from now on come from input `idx` (one per source).
    pub fn set_input(&mut self, idx: usize) {
        self.ensure_input(idx);
        self.current_input = idx;
    }

    /// Gives clock `idx` a shard of its own (a Kafka partition: apps are
    /// keyed to partitions, so each is a stream of its own whose windows
    /// close by its own clock). Apps first seen on it live there.
    pub fn own_shard(&mut self, idx: usize) {
        self.ensure_input(idx);
        if self.inputs[idx].shard != 0 {
            return;
        }
        let clock = idx as u32;
        self.shards[0].feeders.retain(|c| *c != clock);
        self.feeds[idx].retain(|s| *s != 0);
        let id = match self.shards.iter().position(|s| !s.in_use) {
            Some(id) => id,
            None => {
                self.shards.push(Shard::default());
                self.shards.len() - 1
            }
        };
        let mut shard = Shard::new(id as u32);
        shard.feeders.push(clock);
        self.shards[id] = shard;
        self.feeds[idx].insert(0, id as u32);
        self.inputs[idx].shard = id as u32;
    }

    /// Marks input `idx` idle (it stops holding the watermark back) or active
    /// again; an idle one's shards follow the active ones.
    pub fn set_input_idle(&mut self, idx: usize, idle: bool, out: &mut Vec<WindowStats>) {
        self.ensure_input(idx);
        let changed = self.inputs[idx].idle != idle;
        self.inputs[idx].idle = idle;
        if changed || idle {
            self.close_fed_by(idx, out);
        }
        if changed && idle {
            // Shards it held back, and shards following the active ones.
            self.close_all(out);
        }
    }

    /// Forgets the shard of input `idx` — its apps' series and open windows —
    /// and resets its clock (idle): a Kafka partition revoked from this
    /// consumer, whose apps another consumer now counts. Nothing of them is
    /// emitted (the new owner emits them whole). Returns the series dropped.
    pub fn drop_input(&mut self, idx: usize, out: &mut Vec<WindowStats>) -> usize {
        self.ensure_input(idx);
        let home = self.inputs[idx].shard;
        let dropped = if home == 0 {
            0
        } else {
            self.shards[home as usize].clear(&mut self.sh)
        };
        let clock = idx as u32;
        for &s in &self.feeds[idx] {
            if s != home {
                self.shards[s as usize].feeders.retain(|c| *c != clock);
            }
        }
        self.feeds[idx] = vec![home];
        self.inputs[idx] = InputClock {
            idle: true,
            shard: home,
            ..InputClock::default()
        };
        self.close_all(out);
        dropped
    }

    /// End of the newest closed window across the shards holding series:
    /// the slowest one's (a record of it before then may be late).
    pub fn closed_through(&self) -> Option<i64> {
        let used = || self.shards.iter().filter(|s| s.in_use);
        used()
            .filter(|s| s.series_count() > 0)
            .filter_map(|s| s.closed_through)
            .min()
            .or_else(|| used().filter_map(|s| s.closed_through).max())
    }

    /// End of the newest closed window of the shard clock `idx` feeds first.
    pub fn closed_through_of(&self, idx: usize) -> Option<i64> {
        let home = self.inputs.get(idx).map_or(0, |i| i.shard);
        self.shards.get(home as usize)?.closed_through
    }

    /// The apps whose series live in the shard of clock `idx` (a Kafka
    /// partition's apps).
    pub fn apps_of_clock(&self, idx: usize) -> Vec<String> {
        let home = self.inputs.get(idx).map_or(0, |i| i.shard);
        let Some(s) = self.shards.get(home as usize) else {
            return Vec::new();
        };
        s.series
            .iter()
            .flatten()
            .filter(|s| s.instance.is_none())
            .map(|s| String::from(&*s.app))
            .collect()
    }

    /// Where the shard clock `idx` feeds first stands.
    pub fn shard_status(&self, idx: usize) -> ShardStatus {
        let home = self.inputs.get(idx).map_or(0, |i| i.shard);
        let Some(s) = self.shards.get(home as usize) else {
            return ShardStatus::default();
        };
        ShardStatus {
            series: s.series_count(),
            open_aggregates: s.open.iter().map(|b| b.live).sum(),
            watermark_ns: self.shard_limit(s),
            closed_through_ns: s.closed_through,
        }
    }

    /// Aggregates held in open windows (one per series with records in a
    /// window): the part of the state that grows with traffic.
    pub fn open_aggregates(&self) -> usize {
        self.shards
            .iter()
            .flat_map(|s| &s.open)
            .map(|b| b.live)
            .sum()
    }

    /// Number of series (apps and instances) held.
    pub fn series_count(&self) -> usize {
        self.shards.iter().map(Shard::series_count).sum()
    }

    /// Declares an app that must get windows even before (or without) traffic.
    /// Pinned apps never expire.
    pub fn register_app(&mut self, app: &str) {
        let (shard, id) = self.app_series(app, None);
        if let Some(s) = self.shards[shard].series[id].as_mut() {
            s.pinned = true;
        }
    }

    #[inline]
    fn window_start(&self, t: i64) -> i64 {
        t.div_euclid(self.sh.cfg.length_ns) * self.sh.cfg.length_ns
    }

    /// An app's series: found, or new in the shard of the current clock.
    fn app_series(&mut self, app: &str, name: Option<&str>) -> (usize, SeriesId) {
        if let Some(e) = self.sh.index.apps.get(&Lookup(app)) {
            return (e.shard as usize, e.series);
        }
        let shard = self.inputs[self.current_input].shard;
        let id = self.shards[shard as usize].alloc(Series::new(app, name, None));
        self.sh.index.apps.insert(
            app.into(),
            AppEntry {
                shard,
                series: id,
                instances: 0,
            },
        );
        (shard as usize, id)
    }

    /// The shard and series of a record: its app's, and its instance's.
    #[inline]
    fn series_ids(
        &mut self,
        app: &str,
        name: Option<&str>,
        instance: Option<&str>,
    ) -> (usize, SeriesId, Option<SeriesId>) {
        // Fast path: known, one lookup.
        match instance {
            Some(i) => {
                if let Some(e) = self.sh.index.instances.get(&PairLookup(app, i)) {
                    return (e.shard as usize, e.app, Some(e.instance));
                }
            }
            None => {
                if let Some(e) = self.sh.index.apps.get(&Lookup(app)) {
                    return (e.shard as usize, e.series, None);
                }
            }
        }
        let (app, name, instance) = self.within_limits(app, name, instance);
        let (shard, app_id) = self.app_series(app, name);
        let Some(inst) = instance else {
            return (shard, app_id, None);
        };
        if let Some(e) = self.sh.index.instances.get(&PairLookup(app, inst)) {
            return (e.shard as usize, e.app, Some(e.instance));
        }
        let id = self.shards[shard].alloc(Series::new(app, name, Some(inst)));
        let entry = InstanceEntry {
            shard: shard as u32,
            app: app_id,
            instance: id,
        };
        self.sh.index.index_instance(app, inst, entry);
        (shard, app_id, Some(id))
    }

    /// A record whose app or instance is not a series yet: itself, or
    /// where it is counted when a new series would pass the limits.
    #[cold]
    fn within_limits<'a>(
        &mut self,
        app: &'a str,
        name: Option<&'a str>,
        instance: Option<&'a str>,
    ) -> (&'a str, Option<&'a str>, Option<&'a str>) {
        let limits = self.sh.limits;
        let index = &self.sh.index;
        let held = index.apps.len() + index.instances.len();
        let known = index.apps.get(&Lookup(app));
        let new_series = usize::from(known.is_none()) + usize::from(instance.is_some());
        if held.saturating_add(new_series) <= limits.max_series
            && known
                .is_none_or(|e| instance.is_none() || e.instances < limits.max_instances_per_app)
        {
            return (app, name, instance);
        }
        self.sh.counters.overflow += 1;
        match known {
            // A known app keeps its own row; the instance is the one that overflows.
            Some(_) => (app, name, Some(OVERFLOW)),
            None => (OVERFLOW, None, None),
        }
    }

    /// Sets the limits on series (the state kept as it is when lowered).
    pub fn set_limits(&mut self, limits: SeriesLimits) {
        self.sh.limits = limits;
    }

    /// The load of each app so far in its shard's newest open window, as of
    /// the newest event time: for burst probes, which look before the window
    /// closes. Only apps with requests in that window.
    pub fn open_loads(&self) -> Vec<OpenLoad> {
        let Some(now) = self.max_event_ns else {
            return Vec::new();
        };
        let len = self.sh.cfg.length_ns;
        let mut out = Vec::new();
        for entry in self.sh.index.apps.values() {
            let Some(shard) = self.shards.get(entry.shard as usize) else {
                continue;
            };
            let Some(bucket) = shard.open.last() else {
                continue;
            };
            let Some(Some(agg)) = bucket.aggs.get(entry.series) else {
                continue;
            };
            let Some(series) = shard.series[entry.series].as_ref() else {
                continue;
            };
            if agg.requests == 0 {
                continue;
            }
            out.push(OpenLoad {
                app: String::from(&*series.app),
                name: series.name.as_deref().map(str::to_string),
                start_ns: bucket.start_ns,
                elapsed_ns: (now - bucket.start_ns).clamp(0, len),
                requests: agg.requests,
                sum_rt_us: agg.sum_rt_us,
            });
        }
        out.sort_by(|a, b| a.app.cmp(&b.app));
        out
    }

    /// Newest event time clock `idx` brought.
    pub fn clock_max(&self, idx: usize) -> Option<i64> {
        self.inputs.get(idx).and_then(|c| c.max_ns)
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
            Pushed::Accepted => self.sh.counters.accepted += 1,
            Pushed::Late => self.sh.counters.late += 1,
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
            && let Some(e) = self.sh.index.instances.get(&PairLookup(&m.app, instance))
            && let Some(s) = self
                .shards
                .get_mut(e.shard as usize)
                .and_then(|sh| sh.series[e.instance].as_mut())
            && s.node.as_deref() != Some(node.as_str())
        {
            s.node = Some(node.as_str().into());
        }
        match pushed {
            Pushed::Accepted => self.sh.counters.metrics += 1,
            Pushed::Late => self.sh.counters.late_metrics += 1,
        }
        pushed
    }

    /// The shared path of every record: find its shard, series and window,
    /// count it late or apply `record` to the app's and the instance's
    /// aggregate, then close what the watermark passed. `counts_late`:
    /// report lateness in the rows' `late` field (requests only).
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
        record: impl FnMut(&mut Agg),
    ) -> Pushed {
        let (shard, app_id, inst_id) = self.series_ids(app, name, instance);
        let start = self.window_start(t);
        let clock = self.current_input as u32;
        let home = self.inputs[self.current_input].shard;
        if home != 0 && home as usize != shard {
            self.sh.counters.cross_partition += 1;
        }
        if !self.shards[shard].feeders.contains(&clock) {
            // An app of another clock's shard (a topic not keyed by app, or
            // a scrape of the apps a partition carries): that shard now
            // waits for this clock too.
            self.shards[shard].feeders.push(clock);
            self.feeds[clock as usize].push(shard as u32);
        }
        // Before a shard's first close, its own clocks' watermark still says
        // what is late: a record a year behind the first records must not
        // open a window there (it would be reported as if on time). Only
        // its own: a partition just taken over is not late by the others.
        let floor = match self.shards[shard].closed_through {
            None => self
                .shard_event_watermark(&self.shards[shard])
                .map(|(w, _)| w),
            Some(_) => None,
        };
        let pushed = self.shards[shard].fold(
            &mut self.sh,
            [Some(app_id), inst_id],
            (start, floor),
            counts_late,
            record,
        );
        if pushed == Pushed::Late {
            return pushed;
        }
        let input = &mut self.inputs[self.current_input];
        if input.max_ns.is_none_or(|m| t > m) {
            input.max_ns = Some(t);
            self.max_event_ns = Some(self.max_event_ns.map_or(t, |m| m.max(t)));
            self.close_fed_by(self.current_input, out);
        }
        Pushed::Accepted
    }

    /// Moves every shard's watermark forward without a record (a
    /// processing-time heartbeat while the sources are idle): to where its
    /// clocks got plus `idle_ns`. Never moves one back.
    pub fn heartbeat(&mut self, idle_ns: i64, out: &mut Vec<WindowStats>) {
        for id in 0..self.shards.len() {
            let s = &self.shards[id];
            if !s.in_use {
                continue;
            }
            let Some(limit) = self.shard_limit(s) else {
                continue;
            };
            let wm = limit.saturating_add(idle_ns);
            let s = &mut self.shards[id];
            if s.external_watermark.is_none_or(|w| wm > w) {
                s.external_watermark = Some(wm);
                s.close_through(wm, &mut self.sh, out);
            }
        }
    }

    /// Moves the watermark of every shard forward to `watermark_ns` without
    /// a record. Never moves it back.
    pub fn advance_watermark(&mut self, watermark_ns: i64, out: &mut Vec<WindowStats>) {
        for s in self.shards.iter_mut().filter(|s| s.in_use) {
            if s.external_watermark.is_none_or(|w| watermark_ns > w) {
                s.external_watermark = Some(watermark_ns);
            }
        }
        self.close_all(out);
    }

    /// End of input: closes every open window, so nothing read is left unreported.
    pub fn flush(&mut self, out: &mut Vec<WindowStats>) {
        for s in self.shards.iter_mut().filter(|s| s.in_use) {
            s.flush(&mut self.sh, out);
        }
    }
}

/// The host, when it names the app better than its id does.
fn name_of<'a>(rec: &'a AccessRecord<'_>) -> Option<&'a str> {
    Some(rec.host).filter(|h| !h.is_empty() && *h != rec.app)
}

#[cfg(test)]
mod tests;
