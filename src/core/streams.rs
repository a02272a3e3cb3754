//! Which event clock each stream of a source has, and, for Kafka
//! partitions, what a restart or a new owner needs: per open window the
//! offset of its first record (the low-water mark the group may restart
//! from), and the handoff of partitions taken over from another consumer.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Where a Kafka partition's previous owner left it: every window ending
/// by `closed_ns` was emitted there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub closed_ns: i64,
}

/// Per Kafka partition clock: (clock, window start, first offset) of open
/// windows, and (clock, handoff) of partitions taken over.
pub type KafkaState = (Vec<(usize, i64, u64)>, Vec<(usize, Handoff)>);

#[derive(Debug, Default)]
pub struct Streams {
    /// Extra event clocks of sources with several streams, by (source, stream).
    clocks: HashMap<(usize, String), usize>,
    /// Per clock: (window start, offset of its first record) of open windows.
    low_water: Vec<Vec<(i64, u64)>>,
    /// Partitions taken over from another owner, by clock.
    handoffs: HashMap<usize, Handoff>,
}

impl Streams {
    /// The event clock of one stream of a source (a Kafka partition): the
    /// first stream uses the source's own clock, later ones get their own
    /// (dense after the `sources` own clocks: an unused clock would hold the
    /// watermark back), so a partition read behind the others holds the
    /// watermark back instead of having its records counted late.
    pub fn clock_for(&mut self, source: usize, stream: &str, sources: usize) -> usize {
        if let Some(c) = self.clocks.get(&(source, stream.to_string())) {
            return *c;
        }
        let taken = self.clocks.keys().any(|(s, _)| *s == source);
        let clock = if taken {
            let extra = self.clocks.values().filter(|c| **c >= sources).count();
            sources + extra
        } else {
            source
        };
        self.clocks.insert((source, stream.to_string()), clock);
        clock
    }

    pub fn clock_of(&self, source: usize, stream: &str) -> Option<usize> {
        self.clocks.get(&(source, stream.to_string())).copied()
    }

    /// Which stream has which clock, sorted, for the checkpoint.
    pub fn stream_clocks(&self) -> Vec<(usize, String, usize)> {
        let mut v: Vec<_> = self
            .clocks
            .iter()
            .map(|((s, k), c)| (*s, k.clone(), *c))
            .collect();
        v.sort();
        v
    }

    pub fn restore_stream_clocks(&mut self, saved: &[(usize, String, usize)]) {
        self.clocks = saved
            .iter()
            .map(|(s, k, c)| ((*s, k.clone()), *c))
            .collect();
    }

    /// The clocks of `source`'s streams, sorted.
    pub fn clocks_of(&self, source: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .clocks
            .iter()
            .filter(|((s, _), _)| *s == source)
            .map(|(_, c)| *c)
            .collect();
        v.sort_unstable();
        v
    }

    /// The streams of `source` with their clocks.
    pub fn streams_of(&self, source: usize) -> impl Iterator<Item = (&str, usize)> {
        self.clocks
            .iter()
            .filter(move |((s, _), _)| *s == source)
            .map(|((_, stream), c)| (stream.as_str(), *c))
    }

    pub fn handoff(&self, clock: usize) -> Option<Handoff> {
        self.handoffs.get(&clock).copied()
    }

    pub fn set_handoff(&mut self, clock: usize, h: Handoff) {
        self.handoffs.insert(clock, h);
    }

    /// Notes that a record at `offset` fell into the window starting at
    /// `start` on `clock` (only its first record counts).
    #[inline]
    pub fn saw(&mut self, clock: usize, start: i64, offset: u64) {
        if self.low_water.len() <= clock {
            self.low_water.resize(clock + 1, Vec::new());
        }
        let lw = &mut self.low_water[clock];
        if !lw.iter().any(|(s, _)| *s == start) {
            lw.push((start, offset));
        }
    }

    /// The first offset of the open windows of `clock` (windows ending by
    /// `closed` are forgotten first).
    pub fn low_water(&mut self, clock: usize, closed: Option<i64>, len: i64) -> Option<u64> {
        let lw = self.low_water.get_mut(clock)?;
        lw.retain(|(start, _)| closed.is_none_or(|c| start + len > c));
        lw.iter().map(|(_, o)| *o).min()
    }

    /// Forgets a stream's marks and handoff (a revoked partition).
    pub fn forget_clock(&mut self, clock: usize) {
        if let Some(lw) = self.low_water.get_mut(clock) {
            lw.clear();
        }
        self.handoffs.remove(&clock);
    }

    /// Low-water marks and handoffs, for the checkpoint.
    pub fn kafka_state(&self) -> KafkaState {
        let lw = self
            .low_water
            .iter()
            .enumerate()
            .flat_map(|(c, v)| v.iter().map(move |(s, o)| (c, *s, *o)))
            .collect();
        let mut h: Vec<_> = self.handoffs.iter().map(|(c, h)| (*c, *h)).collect();
        h.sort_by_key(|(c, _)| *c);
        (lw, h)
    }

    pub fn restore_kafka_state(&mut self, lw: &[(usize, i64, u64)], handoffs: &[(usize, Handoff)]) {
        for (c, start, off) in lw {
            if self.low_water.len() <= *c {
                self.low_water.resize(*c + 1, Vec::new());
            }
            self.low_water[*c].push((*start, *off));
        }
        self.handoffs = handoffs.iter().copied().collect();
    }

    /// Per stream of `source` (`closed`: where its clock's windows are
    /// closed to), with `extra` (the first open app log line by
    /// stream) folded in: the smallest offset still needed.
    pub fn low_water_marks(
        &mut self,
        source: usize,
        closed: impl Fn(usize) -> Option<i64>,
        len: i64,
        extra: impl Fn(&str) -> Option<u64>,
    ) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        let streams: Vec<(String, usize)> = self
            .streams_of(source)
            .map(|(s, c)| (s.to_string(), c))
            .collect();
        for (stream, clock) in streams {
            let min = self.low_water(clock, closed(clock), len);
            if let Some(m) = min.into_iter().chain(extra(&stream)).min() {
                out.insert(stream, i64::try_from(m).unwrap_or(i64::MAX));
            }
        }
        out
    }
}
