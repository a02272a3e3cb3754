//! The window state as plain data, saved in checkpoints so a restart continues
//! with the same open windows instead of losing or re-counting their records.

use serde::{Deserialize, Serialize};

use super::{AggSnapshot, AppEntry, Bucket, FastMap, Series, WindowAggregator, WindowCounters};
use crate::window::agg::Agg;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct WindowSnapshot {
    pub series: Vec<SeriesSnapshot>,
    pub open: Vec<BucketSnapshot>,
    pub max_event_ns: Option<i64>,
    #[serde(default)]
    pub inputs: Vec<super::InputClock>,
    pub external_watermark: Option<i64>,
    pub closed_through: Option<i64>,
    pub counters: WindowCounters,
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
    /// The input whose records last went into it.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub input: u32,
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
}

impl WindowAggregator {
    pub fn snapshot(&self) -> WindowSnapshot {
        // Compact ids: position among live series.
        let mut remap = vec![usize::MAX; self.series.len()];
        let mut series = Vec::new();
        for (id, s) in self.series.iter().enumerate() {
            if let Some(s) = s {
                remap[id] = series.len();
                series.push(SeriesSnapshot {
                    app: String::from(&*s.app),
                    name: s.name.as_ref().map(|n| String::from(&**n)),
                    instance: s.instance.as_ref().map(|i| String::from(&**i)),
                    node: s.node.as_ref().map(|n| String::from(&**n)),
                    last_data_end: s.last_data_end,
                    pending_late: s.pending_late,
                    pinned: s.pinned,
                    input: self.series_input.get(id).copied().unwrap_or(0),
                });
            }
        }
        let open = self
            .open
            .iter()
            .map(|b| BucketSnapshot {
                start_ns: b.start_ns,
                aggs: b
                    .aggs
                    .iter()
                    .enumerate()
                    .filter_map(|(id, a)| a.as_ref().map(|a| (remap[id], a.to_snapshot())))
                    .collect(),
            })
            .collect();
        WindowSnapshot {
            series,
            open,
            max_event_ns: self.max_event_ns,
            inputs: self.inputs.clone(),
            external_watermark: self.external_watermark,
            closed_through: self.closed_through,
            counters: self.counters,
        }
    }

    /// Replaces the state with a snapshot (configuration stays as constructed).
    pub fn restore(&mut self, snap: &WindowSnapshot) {
        self.apps = FastMap::default();
        self.instances = FastMap::default();
        self.series = Vec::with_capacity(snap.series.len());
        self.series_input = snap.series.iter().map(|s| s.input).collect();
        self.free_slots.clear();
        self.order_stale = true;
        for s in &snap.series {
            let id = self.series.len();
            self.series.push(Some(Series {
                app: s.app.as_str().into(),
                name: s.name.as_deref().map(Into::into),
                instance: s.instance.as_deref().map(Into::into),
                node: s.node.as_deref().map(Into::into),
                last_data_end: s.last_data_end,
                pending_late: s.pending_late,
                pinned: s.pinned,
            }));
            if s.instance.is_none() {
                self.apps.insert(
                    s.app.as_str().into(),
                    AppEntry {
                        series: id,
                        instances: 0,
                    },
                );
            }
        }
        // Instances once every app has its id (a snapshot lists series in
        // slot order, an instance's slot may come before its app's). One
        // without its app (a damaged snapshot) is left to expire: its next
        // record makes both anew.
        for (id, s) in snap.series.iter().enumerate() {
            if let Some(inst) = &s.instance
                && let Some(app_id) = self.apps.get(s.app.as_str()).map(|e| e.series)
            {
                self.index_instance(&s.app, inst, app_id, id);
            }
        }
        self.open = snap
            .open
            .iter()
            .map(|b| {
                let mut aggs: Vec<Option<Agg>> = Vec::new();
                aggs.resize_with(self.series.len(), || None);
                let mut live = 0;
                for (id, a) in &b.aggs {
                    if let Some(slot) = aggs.get_mut(*id) {
                        live += usize::from(slot.is_none());
                        *slot = Some(Agg::from_snapshot(a));
                    }
                }
                Bucket {
                    start_ns: b.start_ns,
                    aggs,
                    live,
                }
            })
            .collect();
        self.max_event_ns = snap.max_event_ns;
        self.inputs = if snap.inputs.is_empty() {
            vec![super::InputClock::default()]
        } else {
            snap.inputs.clone()
        };
        self.current_input = 0;
        self.external_watermark = snap.external_watermark;
        self.closed_through = snap.closed_through;
        self.counters = snap.counters;
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
    inputs: &'a [super::InputClock],
    external_watermark: Option<i64>,
    closed_through: Option<i64>,
    counters: WindowCounters,
}

struct SeriesSeq<'a>(&'a WindowAggregator);

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
    input: u32,
}

impl Serialize for SeriesSeq<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let w = self.0;
        s.collect_seq(w.series.iter().enumerate().filter_map(|(id, s)| {
            s.as_ref().map(|s| SeriesRef {
                app: &s.app,
                name: s.name.as_deref(),
                instance: s.instance.as_deref(),
                node: s.node.as_deref(),
                last_data_end: s.last_data_end,
                pending_late: s.pending_late,
                pinned: s.pinned,
                input: w.series_input.get(id).copied().unwrap_or(0),
            })
        }))
    }
}

/// Open buckets, their aggregates keyed by position among live series.
struct OpenSeq<'a> {
    w: &'a WindowAggregator,
    remap: Vec<usize>,
}

#[derive(Serialize)]
struct BucketRef<'a> {
    start_ns: i64,
    aggs: AggSeq<'a>,
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
        s.collect_seq(self.w.open.iter().map(|b| BucketRef {
            start_ns: b.start_ns,
            aggs: AggSeq {
                bucket: b,
                remap: &self.remap,
            },
        }))
    }
}

impl WindowAggregator {
    /// The state for a checkpoint, serialized from here without a copy.
    pub fn snapshot_ref(&self) -> WindowSnapshotRef<'_> {
        let mut remap = vec![usize::MAX; self.series.len()];
        let mut live = 0;
        for (id, s) in self.series.iter().enumerate() {
            if s.is_some() {
                remap[id] = live;
                live += 1;
            }
        }
        WindowSnapshotRef {
            series: SeriesSeq(self),
            open: OpenSeq { w: self, remap },
            max_event_ns: self.max_event_ns,
            inputs: &self.inputs,
            external_watermark: self.external_watermark,
            closed_through: self.closed_through,
            counters: self.counters,
        }
    }
}
