//! The window state as plain data, saved in checkpoints so a restart continues
//! with the same open windows instead of losing or re-counting their records.
//!
//! Series and open windows of every shard are listed in one table each,
//! tagged with their shard (absent: shard 0, as checkpoints before shards
//! were written); each shard's clocks and closed end are in `shards`.

use serde::{Deserialize, Serialize};

use super::shard::{AppEntry, Bucket, InstanceEntry, Series, Shard};
use super::{AggSnapshot, InputClock, WindowAggregator, WindowCounters};
use crate::window::agg::Agg;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct WindowSnapshot {
    pub series: Vec<SeriesSnapshot>,
    pub open: Vec<BucketSnapshot>,
    pub max_event_ns: Option<i64>,
    #[serde(default)]
    pub inputs: Vec<InputClock>,
    /// Shard 0's (the only one before shards).
    pub external_watermark: Option<i64>,
    pub closed_through: Option<i64>,
    pub counters: WindowCounters,
    #[serde(default)]
    pub shards: Vec<ShardSnapshot>,
}

/// A shard's clocks and where it has closed windows to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardSnapshot {
    pub id: u32,
    pub feeders: Vec<u32>,
    pub closed_through: Option<i64>,
    pub external_watermark: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSnapshot {
    pub app: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub last_data_end: Option<i64>,
    /// Zero and `false` are left out: at 100k series the checkpoint is
    /// mostly this table.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending_late: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub shard: u32,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketSnapshot {
    pub start_ns: i64,
    /// (index into `series`, aggregate)
    pub aggs: Vec<(usize, AggSnapshot)>,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub shard: u32,
}

impl WindowSnapshot {
    /// Forgets every time after `limit_ns` (a live run's wall clock plus
    /// `max_future`): what a skewed record checkpointed before the time
    /// guard existed — a clock a year ahead, windows closed up to then —
    /// would otherwise make every later record late, for good. Windows the
    /// skewed clock closed early may be written again, with what arrives
    /// for them now. Returns whether anything was that far ahead.
    pub fn forget_future(&mut self, limit_ns: i64) -> bool {
        let mut changed = false;
        let mut cap = |t: &mut Option<i64>| {
            if t.is_some_and(|t| t > limit_ns) {
                *t = None;
                changed = true;
            }
        };
        for c in &mut self.inputs {
            cap(&mut c.max_ns);
        }
        cap(&mut self.max_event_ns);
        cap(&mut self.external_watermark);
        cap(&mut self.closed_through);
        for s in &mut self.shards {
            cap(&mut s.closed_through);
            cap(&mut s.external_watermark);
        }
        for s in &mut self.series {
            cap(&mut s.last_data_end);
        }
        let open = self.open.len();
        self.open.retain(|b| b.start_ns <= limit_ns);
        changed |= self.open.len() != open;
        if self.max_event_ns.is_none() {
            self.max_event_ns = self.inputs.iter().filter_map(|c| c.max_ns).max();
        }
        changed
    }
}

impl WindowAggregator {
    /// The state as plain data (the checkpoint serializes
    /// [`WindowAggregator::snapshot_ref`] instead, without the copy).
    pub fn snapshot(&self) -> WindowSnapshot {
        serde_json::to_value(self.snapshot_ref())
            .and_then(serde_json::from_value)
            .unwrap_or_default()
    }

    /// Replaces the state with a snapshot (configuration stays as constructed).
    pub fn restore(&mut self, snap: &WindowSnapshot) {
        let (cfg, limits) = (self.sh.cfg, self.sh.limits);
        *self = WindowAggregator::new(cfg);
        self.sh.limits = limits;
        self.inputs = if snap.inputs.is_empty() {
            vec![InputClock::default()]
        } else {
            snap.inputs.clone()
        };
        // A shard id beyond one per clock is damage: its series go to shard 0.
        let max_shard = self.inputs.len() + snap.shards.len();
        let shard_of = |id: u32| if id as usize > max_shard { 0 } else { id };
        let mut shards: Vec<Shard> = vec![Shard::new(0)];
        let ensure = |shards: &mut Vec<Shard>, id: u32| {
            while shards.len() <= id as usize {
                let mut s = Shard::new(shards.len() as u32);
                s.in_use = false;
                shards.push(s);
            }
            shards[id as usize].in_use = true;
        };
        for c in &mut self.inputs {
            c.shard = shard_of(c.shard);
            ensure(&mut shards, c.shard);
        }
        // Series, at positions (shard, slot) in snapshot order.
        let mut at = Vec::with_capacity(snap.series.len());
        for s in &snap.series {
            let shard = shard_of(s.shard);
            ensure(&mut shards, shard);
            let id = shards[shard as usize].push_restored(Series {
                app: s.app.as_str().into(),
                name: s.name.as_deref().map(Into::into),
                instance: s.instance.as_deref().map(Into::into),
                node: s.node.as_deref().map(Into::into),
                last_data_end: s.last_data_end,
                pending_late: s.pending_late,
                pinned: s.pinned,
            });
            at.push((shard, id));
            if s.instance.is_none() {
                let entry = AppEntry {
                    shard,
                    series: id,
                    instances: 0,
                };
                self.sh.index.apps.insert(s.app.as_str().into(), entry);
            }
        }
        // Instances once every app has its id (a snapshot lists series in
        // slot order, an instance's slot may come before its app's). One
        // without its app in its shard (a damaged snapshot) is left to
        // expire: its next record makes both anew.
        for (s, &(shard, id)) in snap.series.iter().zip(&at) {
            if let Some(inst) = &s.instance
                && let Some(app) = self.sh.index.apps.get(s.app.as_str())
                && app.shard == shard
            {
                let entry = InstanceEntry {
                    shard,
                    app: app.series,
                    instance: id,
                };
                self.sh.index.index_instance(&s.app, inst, entry);
            }
        }
        for b in &snap.open {
            let shard = shard_of(b.shard);
            ensure(&mut shards, shard);
            let target = &mut shards[shard as usize];
            let mut aggs: Vec<Option<Agg>> = Vec::new();
            aggs.resize_with(target.series.len(), || None);
            let mut live = 0;
            for (pos, a) in &b.aggs {
                if let Some(&(s, id)) = at.get(*pos)
                    && s == shard
                    && let Some(slot) = aggs.get_mut(id)
                {
                    live += usize::from(slot.is_none());
                    *slot = Some(Agg::from_snapshot(a));
                }
            }
            target.open.push(Bucket {
                start_ns: b.start_ns,
                aggs,
                live,
            });
        }
        for s in &mut shards {
            s.open.sort_by_key(|b| b.start_ns);
        }
        shards[0].closed_through = snap.closed_through;
        shards[0].external_watermark = snap.external_watermark;
        if snap.shards.is_empty() {
            // Before shards: every clock fed the one there was.
            shards[0].feeders = (0..self.inputs.len() as u32).collect();
        }
        for s in &snap.shards {
            let id = shard_of(s.id);
            ensure(&mut shards, id);
            let target = &mut shards[id as usize];
            target.closed_through = s.closed_through;
            target.external_watermark = s.external_watermark;
            target.feeders = s
                .feeders
                .iter()
                .copied()
                .filter(|c| (*c as usize) < self.inputs.len())
                .collect();
        }
        self.feeds = vec![Vec::new(); self.inputs.len()];
        for (c, clock) in self.inputs.iter().enumerate() {
            self.feeds[c].push(clock.shard);
        }
        for s in shards.iter().filter(|s| s.in_use) {
            for &c in &s.feeders {
                if let Some(f) = self.feeds.get_mut(c as usize)
                    && !f.contains(&s.id)
                {
                    f.push(s.id);
                }
            }
        }
        self.shards = shards;
        self.max_event_ns = snap.max_event_ns;
        self.current_input = 0;
        self.sh.counters = snap.counters;
    }
}

/// The window state serialized straight from the aggregator, in the shape
/// of [`WindowSnapshot`] (a checkpoint reads it back as one): at 100k series
/// a snapshot copied first doubled what a checkpoint holds in memory.
#[derive(Serialize)]
pub struct WindowSnapshotRef<'a> {
    series: SeriesSeq<'a>,
    open: OpenSeq<'a>,
    max_event_ns: Option<i64>,
    inputs: &'a [InputClock],
    external_watermark: Option<i64>,
    closed_through: Option<i64>,
    counters: WindowCounters,
    shards: Vec<ShardSnapshot>,
}

struct SeriesSeq<'a>(&'a [Shard]);

/// A [`SeriesSnapshot`] borrowing its strings.
#[derive(Serialize)]
struct SeriesRef<'a> {
    app: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    last_data_end: Option<i64>,
    #[serde(skip_serializing_if = "is_zero")]
    pending_late: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pinned: bool,
    #[serde(skip_serializing_if = "is_zero_u32")]
    shard: u32,
}

impl Serialize for SeriesSeq<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(used(self.0).flat_map(|shard| {
            shard.series.iter().flatten().map(|s| SeriesRef {
                app: &s.app,
                name: s.name.as_deref(),
                instance: s.instance.as_deref(),
                node: s.node.as_deref(),
                last_data_end: s.last_data_end,
                pending_late: s.pending_late,
                pinned: s.pinned,
                shard: shard.id,
            })
        }))
    }
}

fn used(shards: &[Shard]) -> impl Iterator<Item = &Shard> {
    shards.iter().filter(|s| s.in_use)
}

/// Open buckets, their aggregates keyed by position among live series.
struct OpenSeq<'a> {
    shards: &'a [Shard],
    /// Per shard, per slot: the position in the series table.
    remap: Vec<Vec<usize>>,
}

#[derive(Serialize)]
struct BucketRef<'a> {
    start_ns: i64,
    aggs: AggSeq<'a>,
    #[serde(skip_serializing_if = "is_zero_u32")]
    shard: u32,
}

struct AggSeq<'a> {
    bucket: &'a Bucket,
    remap: &'a [usize],
}

impl Serialize for AggSeq<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.bucket
                .aggs
                .iter()
                .enumerate()
                .filter_map(|(id, a)| a.as_ref().map(|a| (self.remap[id], a.to_snapshot()))),
        )
    }
}

impl Serialize for OpenSeq<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(used(self.shards).flat_map(|shard| {
            let remap = &self.remap[shard.id as usize];
            shard.open.iter().map(move |b| BucketRef {
                start_ns: b.start_ns,
                aggs: AggSeq { bucket: b, remap },
                shard: shard.id,
            })
        }))
    }
}

impl WindowAggregator {
    /// The state for a checkpoint, serialized from here without a copy.
    pub fn snapshot_ref(&self) -> WindowSnapshotRef<'_> {
        let mut remap = vec![Vec::new(); self.shards.len()];
        let mut live = 0;
        for shard in used(&self.shards) {
            let r = &mut remap[shard.id as usize];
            r.resize(shard.series.len(), usize::MAX);
            for (id, s) in shard.series.iter().enumerate() {
                if s.is_some() {
                    r[id] = live;
                    live += 1;
                }
            }
        }
        let shards = used(&self.shards)
            .map(|s| ShardSnapshot {
                id: s.id,
                feeders: s.feeders.clone(),
                closed_through: s.closed_through,
                external_watermark: s.external_watermark,
            })
            .collect();
        WindowSnapshotRef {
            series: SeriesSeq(&self.shards),
            open: OpenSeq {
                shards: &self.shards,
                remap,
            },
            max_event_ns: self.max_event_ns,
            inputs: &self.inputs,
            external_watermark: self.shards[0].external_watermark,
            closed_through: self.shards[0].closed_through,
            counters: self.sh.counters,
            shards,
        }
    }
}
