//! One shard of the windows: the series of the apps whose records arrive on
//! one event clock (a Kafka partition), or on the clocks that share one
//! (files, scrapes, stdin), with their open windows. Each shard closes its
//! windows by its own watermark, so a partition read behind the others — one
//! taken over after a crash — does not make its records late, and its rows
//! come out when its own clock passes them.

use super::agg::{Agg, AggPool};
use super::key::{Lookup, PairKey, PairLookup, SeriesKey};
use super::{FastMap, Forgotten, Pushed, WindowConfig, WindowCounters};
use crate::model::WindowStats;
use crate::time::{NANOS_PER_SEC, Timestamp};

/// The longest stretch without records that still gets zero rows (for
/// pinned apps) when time jumps.
const MAX_EMPTY_SPAN_NS: i64 = 3_600 * NANOS_PER_SEC;

pub(super) type SeriesId = usize;

#[derive(Debug, Clone)]
pub(super) struct Series {
    pub app: Box<str>,
    /// A readable name for the app where the id is opaque (gorouter: the
    /// route host of the app's first record).
    pub name: Option<Box<str>>,
    pub instance: Option<Box<str>>,
    /// Where the instance runs, as its container metrics last said.
    pub node: Option<Box<str>>,
    /// End of the newest *closed* window in which this series had records.
    /// Rows and expiry depend only on closed windows, so they do not depend on
    /// arrival order within the allowed lateness.
    pub last_data_end: Option<i64>,
    /// Late records not yet reported on an output.
    pub pending_late: u64,
    /// Whether it was pinned (never expires).
    pub pinned: bool,
}

impl Series {
    pub fn new(app: &str, name: Option<&str>, instance: Option<&str>) -> Series {
        Series {
            app: app.into(),
            name: name.map(Into::into),
            instance: instance.map(Into::into),
            node: None,
            last_data_end: None,
            pending_late: 0,
            pinned: false,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct AppEntry {
    pub shard: u32,
    pub series: SeriesId,
    /// Instance series of the app (in [`Index::instances`]).
    pub instances: u32,
}

/// An instance series and its app's series (always in the app's shard).
#[derive(Debug, Clone, Copy)]
pub(super) struct InstanceEntry {
    pub shard: u32,
    pub app: SeriesId,
    pub instance: SeriesId,
}

/// Where every series lives: one table for all shards, so a record finds
/// its shard and both its series in one probe.
#[derive(Default)]
pub(super) struct Index {
    pub apps: FastMap<SeriesKey, AppEntry>,
    /// Instance series by (app, instance).
    pub instances: FastMap<PairKey, InstanceEntry>,
}

impl Index {
    /// Makes an instance series findable by its app and name.
    pub fn index_instance(&mut self, app: &str, instance: &str, entry: InstanceEntry) {
        let key = PairKey {
            app: app.into(),
            instance: instance.into(),
        };
        if self.instances.insert(key, entry).is_none()
            && let Some(e) = self.apps.get_mut(&Lookup(app))
        {
            e.instances += 1;
        }
    }

    /// The reverse of [`Index::index_instance`].
    pub fn unindex_instance(&mut self, app: &str, instance: &str) {
        if self.instances.remove(&PairLookup(app, instance)).is_some()
            && let Some(e) = self.apps.get_mut(&Lookup(app))
        {
            e.instances = e.instances.saturating_sub(1);
        }
    }

    /// Forgets a series' entry (an instance, or an app without instances).
    fn unindex(&mut self, s: &Series) {
        match &s.instance {
            Some(inst) => self.unindex_instance(&s.app, inst),
            None => {
                self.apps.remove(&Lookup(&s.app));
            }
        }
    }
}

/// What every shard shares: settings, the series index, spare aggregates,
/// counters, and what closing windows leaves for the caller.
#[derive(Default)]
pub(super) struct Shared {
    pub cfg: WindowConfig,
    pub limits: super::SeriesLimits,
    pub index: Index,
    /// Parts of closed aggregates, for new ones.
    pub pool: AggPool,
    pub counters: WindowCounters,
    /// Series forgotten (expired or dropped) since they were last taken.
    pub forgotten: Vec<Forgotten>,
    /// Windows closed since they were last taken: which shard, how many rows.
    pub groups: Vec<ClosedGroup>,
}

/// One window of one shard as it came out: `rows` rows of the output, in
/// order after the previous group's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedGroup {
    pub shard: u32,
    pub rows: usize,
}

pub(super) struct Bucket {
    pub start_ns: i64,
    /// Indexed by `SeriesId`; `None` for series without records in this window.
    pub aggs: Vec<Option<Agg>>,
    /// How many of `aggs` are `Some`.
    pub live: usize,
}

#[derive(Default)]
pub(super) struct Shard {
    pub id: u32,
    /// Slots indexed by `SeriesId`; `None` once expired (the slot is reused).
    pub series: Vec<Option<Series>>,
    free_slots: Vec<SeriesId>,
    /// Live series in output order (by app, the app row before its
    /// instances): rows come out sorted without sorting them each window.
    order: Vec<SeriesId>,
    /// A series was added or removed since `order` was built.
    order_stale: bool,
    /// Open windows, oldest first. Usually one or two.
    pub open: Vec<Bucket>,
    /// The aggregate slots of a closed window, emptied, for the next one to
    /// open with (a window's slots grow to the number of series: at 100k
    /// series, tens of megabytes a window otherwise allocated and grown anew).
    spare_aggs: Vec<Option<Agg>>,
    /// The event clocks whose records went into it: its watermark follows
    /// the slowest active one.
    pub feeders: Vec<u32>,
    /// Externally advanced watermark (processing-time heartbeat in live mode).
    pub external_watermark: Option<i64>,
    /// End of the newest closed window: a record before it is late.
    pub closed_through: Option<i64>,
    /// Held by a clock (shard 0 always is); a free one is reused.
    pub in_use: bool,
}

impl Shard {
    pub fn new(id: u32) -> Shard {
        Shard {
            id,
            in_use: true,
            ..Shard::default()
        }
    }

    /// Number of live series.
    pub fn series_count(&self) -> usize {
        self.series.len() - self.free_slots.len()
    }

    pub fn alloc(&mut self, s: Series) -> SeriesId {
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

    /// Restores a series at the next slot (a snapshot lists them densely).
    pub fn push_restored(&mut self, s: Series) -> SeriesId {
        self.order_stale = true;
        self.series.push(Some(s));
        self.series.len() - 1
    }

    /// Counts a record late, or applies `record` to the series' aggregates
    /// of the window starting at `start`. Late: its window ends at or before
    /// what is closed, or (nothing closed yet) before `floor`.
    #[inline]
    pub fn fold(
        &mut self,
        sh: &mut Shared,
        ids: [Option<SeriesId>; 2],
        (start, floor): (i64, Option<i64>),
        counts_late: bool,
        mut record: impl FnMut(&mut Agg),
    ) -> Pushed {
        let late = self
            .closed_through
            .or(floor)
            .is_some_and(|c| start + sh.cfg.length_ns <= c);
        if late {
            if counts_late {
                for id in ids.into_iter().flatten() {
                    if let Some(s) = self.series[id].as_mut() {
                        s.pending_late += 1;
                    }
                }
            }
            return Pushed::Late;
        }
        let bucket = self.bucket_index(start);
        for id in ids.into_iter().flatten() {
            if self.open[bucket].aggs.len() <= id {
                self.open[bucket].aggs.resize_with(id + 1, || None);
            }
            let b = &mut self.open[bucket];
            let a = match &mut b.aggs[id] {
                Some(a) => a,
                empty => {
                    b.live += 1;
                    empty.insert(sh.pool.fresh())
                }
            };
            if a.wants_histogram() {
                a.attach(sh.pool.histogram());
            }
            record(a);
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

    /// Forgets every series and open window (the clock that fed it moved to
    /// another consumer). Returns the series dropped.
    pub fn clear(&mut self, sh: &mut Shared) -> usize {
        let mut dropped = 0;
        for s in self.series.drain(..).flatten() {
            sh.index.unindex(&s);
            sh.forgotten.push(Forgotten {
                app: s.app,
                instance: s.instance,
            });
            dropped += 1;
        }
        for mut b in self.open.drain(..) {
            for a in b.aggs.drain(..).flatten() {
                sh.pool.recycle(a);
            }
        }
        self.free_slots.clear();
        self.order.clear();
        self.order_stale = false;
        self.external_watermark = None;
        self.closed_through = None;
        dropped
    }

    /// End of input: closes every open window, so nothing read is left unreported.
    pub fn flush(&mut self, sh: &mut Shared, out: &mut Vec<WindowStats>) {
        if let Some(last) = self.open.last() {
            let end = last.start_ns + sh.cfg.length_ns;
            self.close_through(end, sh, out);
        }
        // Late records that arrived after the last close are reported on one more
        // (empty) window rather than lost from the counts.
        if self.series.iter().flatten().any(|s| s.pending_late > 0)
            && let Some(c) = self.closed_through
        {
            self.close_through(c + sh.cfg.length_ns, sh, out);
        }
    }

    /// Closes every window whose end is ≤ `limit`, in order, including empty
    /// periods between windows (zero-filled for known series).
    pub fn close_through(&mut self, limit: i64, sh: &mut Shared, out: &mut Vec<WindowStats>) {
        let len = sh.cfg.length_ns;
        // Windows in a row without a record: after an hour of them (or
        // `idle_expiry`, if longer) the rest of the stretch is jumped over
        // even with pinned apps, so that a real jump in time (a replay of
        // last year and this year) costs rows in proportion to the data,
        // not to the time between.
        let max_empty_run = MAX_EMPTY_SPAN_NS.max(sh.cfg.idle_expiry_ns) / len.max(1) + 1;
        let mut empty_run = 0i64;
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
            let no_bucket = self.open.first().is_none_or(|b| b.start_ns > next_start);
            if no_bucket
                && (empty_run >= max_empty_run
                    || self.silent_from(next_start + len, sh.cfg.idle_expiry_ns))
            {
                let last_closable = limit.div_euclid(len) * len;
                let target = self
                    .open
                    .first()
                    .map_or(last_closable, |b| b.start_ns.min(last_closable));
                let target = target.max(next_start + len);
                self.closed_through = Some(target);
                self.expire(target, sh);
                continue;
            }
            let bucket = match self.open.first() {
                Some(b) if b.start_ns == next_start => Some(self.open.remove(0)),
                _ => None,
            };
            empty_run = if bucket.is_some() {
                0
            } else {
                empty_run.saturating_add(1)
            };
            self.emit(next_start, bucket, sh, out);
            self.closed_through = Some(next_start + len);
            sh.counters.windows_closed += 1;
        }
    }

    /// Whether no series has a row for an empty window ending at `end` or
    /// later: none pinned, none with late records to report, every one
    /// quiet for longer than `idle_expiry` by then (or never in a closed
    /// window). Checked only at windows without a bucket.
    fn silent_from(&self, end: i64, idle: i64) -> bool {
        self.series.iter().flatten().all(|s| {
            !s.pinned && s.pending_late == 0 && s.last_data_end.is_none_or(|ld| end - ld > idle)
        })
    }

    fn emit(
        &mut self,
        start: i64,
        bucket: Option<Bucket>,
        sh: &mut Shared,
        out: &mut Vec<WindowStats>,
    ) {
        let len = sh.cfg.length_ns;
        let end = start + len;
        let secs = len as f64 / NANOS_PER_SEC as f64;
        let (start_t, end_t) = (Timestamp::from_nanos(start), Timestamp::from_nanos(end));
        let mut aggs = bucket.map(|b| b.aggs).unwrap_or_default();
        let first_out = out.len();
        let idle = sh.cfg.idle_expiry_ns;
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
                sh.pool.recycle(a);
            }
        }
        aggs.clear();
        if aggs.capacity() > self.spare_aggs.capacity() {
            self.spare_aggs = aggs;
        }
        debug_assert!(
            out[first_out..].is_sorted_by(|a, b| (&a.app, &a.instance) < (&b.app, &b.instance))
        );
        sum_instance_memory(&mut out[first_out..]);
        if out.len() > first_out {
            sh.groups.push(ClosedGroup {
                shard: self.id,
                rows: out.len() - first_out,
            });
        }
        self.expire(end, sh);
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
    fn expire(&mut self, now: i64, sh: &mut Shared) {
        let idle = sh.cfg.idle_expiry_ns;
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
                if s.instance.is_none()
                    && sh
                        .index
                        .apps
                        .get(&Lookup(&s.app))
                        .is_some_and(|e| e.instances > 0)
                {
                    continue; // an app outlives its instances
                }
                if let Some(s) = self.series[id].take() {
                    sh.index.unindex(&s);
                    self.order_stale = true;
                    sh.forgotten.push(Forgotten {
                        app: s.app,
                        instance: s.instance,
                    });
                }
                self.free_slots.push(id);
                sh.counters.series_expired += 1;
            }
        }
    }
}

/// An app's memory is the sum over its instances (each row holds a mean).
/// `rows` are one window's, sorted by app with the app row first.
fn sum_instance_memory(rows: &mut [WindowStats]) {
    let mut i = 0;
    while i < rows.len() {
        let n = rows[i + 1..]
            .iter()
            .take_while(|r| r.app == rows[i].app && r.instance.is_some())
            .count();
        if rows[i].instance.is_none() && n > 0 {
            let total: Option<f64> = rows[i + 1..=i + n]
                .iter()
                .filter_map(|r| r.memory_bytes)
                .fold(None, |acc, m| Some(acc.unwrap_or(0.0) + m));
            if total.is_some() {
                rows[i].memory_bytes = total;
            }
        }
        i += 1 + n;
    }
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
