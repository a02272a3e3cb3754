//! Event-time sanity: one record with a skewed clock must not move time.
//!
//! A record's time moves its stream's watermark, and a watermark never goes
//! back: one line a year ahead would close every window up to then, and
//! every later record of the stream would be late. So a record more than
//! `max_future` ahead of the wall clock (live runs) is a dead letter at
//! once, and one that far ahead of its stream's newest time is *held*:
//!
//! - the stream goes on at its old time (a record within reach of the old
//!   newest time arrives): the held ones were skewed — dead letters;
//! - the stream goes on past them (a record further ahead still), or
//!   [`CONFIRM`] records in a row are held, or input ends: time really
//!   jumped (a gap in the traffic, a replay of older data followed by
//!   newer) — they are processed in order, and time moves.
//!
//! Pure: time comes in as numbers; the core does what the verdict says.

use serde::{Deserialize, Serialize};

use crate::time::{NANOS_PER_SEC, Timestamp};

/// Default `window.max_future`: how far ahead of its stream (and of the
/// wall clock, live) a record's time may be without being questioned.
pub const DEFAULT_MAX_FUTURE_NS: i64 = 300 * NANOS_PER_SEC;

/// Held records in a row that confirm a jump in a stream's time.
pub const CONFIRM: usize = 64;

/// A line held back until its stream says whether its time is right.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLine {
    pub source: usize,
    pub stream: String,
    pub offset: u64,
    pub time_ns: i64,
    /// Numbered by record (Kafka), not by byte.
    #[serde(default)]
    pub record_numbered: bool,
    pub line: String,
}

/// What becomes of the lines held on a clock, before the record judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Nothing,
    /// Processed in order: the stream's time really jumped.
    Accept,
    /// Dead letters: the stream went on at its older time.
    Reject,
}

/// What to do with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept(Release),
    Hold(Release),
    Reject(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimeGuard {
    max_future_ns: i64,
    /// Now, for a live run (none when replaying recorded input).
    #[serde(skip)]
    wall_ns: Option<i64>,
    /// Per clock, the lines held in arrival order.
    held: Vec<Vec<HeldLine>>,
}

impl TimeGuard {
    pub fn new(max_future_ns: i64) -> Self {
        TimeGuard {
            max_future_ns,
            ..TimeGuard::default()
        }
    }

    pub fn max_future_ns(&self) -> i64 {
        self.max_future_ns
    }

    /// Takes the lines a checkpoint held (its own bound stays).
    pub fn restore_held(&mut self, saved: &TimeGuard) {
        self.held.clone_from(&saved.held);
    }

    pub fn set_wall_clock(&mut self, now_ns: Option<i64>) {
        self.wall_ns = now_ns;
    }

    /// The verdict on a record at `t` on `clock`, whose newest accepted
    /// time is `newest`.
    pub fn judge(&self, clock: usize, t: i64, newest: Option<i64>) -> Verdict {
        let reach = self.max_future_ns;
        if let Some(wall) = self.wall_ns
            && t > wall.saturating_add(reach)
        {
            return Verdict::Reject(format!(
                "event time {} is {} ahead of the wall clock (window.max_future = {}): a skewed clock",
                Timestamp::from_nanos(t),
                span(t.saturating_sub(wall)),
                span(reach)
            ));
        }
        let held = self.held(clock);
        let Some(newest) = newest else {
            return Verdict::Accept(Release::Nothing);
        };
        if t <= newest.saturating_add(reach) {
            let release = if held.is_empty() {
                Release::Nothing
            } else {
                Release::Reject
            };
            return Verdict::Accept(release);
        }
        match held.last() {
            Some(last) if t > last.time_ns.saturating_add(reach) => Verdict::Hold(Release::Accept),
            _ => Verdict::Hold(Release::Nothing),
        }
    }

    /// Holds `line` on `clock`; true when enough are held to confirm the jump.
    pub fn hold(&mut self, clock: usize, line: HeldLine) -> bool {
        if self.held.len() <= clock {
            self.held.resize_with(clock + 1, Vec::new);
        }
        self.held[clock].push(line);
        self.held[clock].len() >= CONFIRM
    }

    pub fn held(&self, clock: usize) -> &[HeldLine] {
        self.held.get(clock).map_or(&[], Vec::as_slice)
    }

    pub fn take(&mut self, clock: usize) -> Vec<HeldLine> {
        self.held
            .get_mut(clock)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Clocks with lines held.
    pub fn clocks_holding(&self) -> Vec<usize> {
        (0..self.held.len())
            .filter(|c| !self.held[*c].is_empty())
            .collect()
    }

    /// Lines held on every clock.
    pub fn held_count(&self) -> usize {
        self.held.iter().map(Vec::len).sum()
    }

    /// Why a held line was rejected: its stream went on at the older time.
    pub fn rejected_reason(&self, line: &HeldLine, newest: Option<i64>) -> String {
        let ahead = newest.map_or(String::from("far"), |n| {
            span(line.time_ns.saturating_sub(n))
        });
        format!(
            "event time {} is {ahead} ahead of its stream, and the stream went on at its older time (window.max_future = {}): a skewed clock",
            Timestamp::from_nanos(line.time_ns),
            span(self.max_future_ns)
        )
    }
}

/// A span of nanoseconds as a person reads it: `42s`, `3h`, `400d`.
fn span(ns: i64) -> String {
    let s = ns / NANOS_PER_SEC;
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * NANOS_PER_SEC;

    fn line(t: i64) -> HeldLine {
        HeldLine {
            source: 0,
            stream: "s".into(),
            offset: 0,
            time_ns: t,
            record_numbered: false,
            line: String::new(),
        }
    }

    #[test]
    fn a_record_within_reach_is_accepted() {
        let g = TimeGuard::new(5 * MIN);
        assert_eq!(g.judge(0, 0, None), Verdict::Accept(Release::Nothing));
        assert_eq!(
            g.judge(0, 4 * MIN, Some(0)),
            Verdict::Accept(Release::Nothing)
        );
        assert_eq!(
            g.judge(0, 6 * MIN, Some(0)),
            Verdict::Hold(Release::Nothing)
        );
    }

    #[test]
    fn the_wall_clock_bounds_a_live_run() {
        let mut g = TimeGuard::new(5 * MIN);
        g.set_wall_clock(Some(100 * MIN));
        assert!(
            matches!(g.judge(0, 106 * MIN, None), Verdict::Reject(r) if r.contains("wall clock"))
        );
        assert_eq!(
            g.judge(0, 104 * MIN, None),
            Verdict::Accept(Release::Nothing)
        );
    }

    #[test]
    fn held_lines_are_rejected_when_the_stream_goes_on_at_its_time() {
        let mut g = TimeGuard::new(5 * MIN);
        assert!(!g.hold(0, line(500 * MIN)));
        assert_eq!(g.judge(0, MIN, Some(0)), Verdict::Accept(Release::Reject));
        // Another clock is not concerned.
        assert_eq!(g.judge(1, MIN, Some(0)), Verdict::Accept(Release::Nothing));
    }

    #[test]
    fn held_lines_are_accepted_when_the_stream_moves_past_them() {
        let mut g = TimeGuard::new(5 * MIN);
        g.hold(0, line(500 * MIN));
        assert_eq!(
            g.judge(0, 501 * MIN, Some(0)),
            Verdict::Hold(Release::Nothing)
        );
        assert_eq!(
            g.judge(0, 900 * MIN, Some(0)),
            Verdict::Hold(Release::Accept)
        );
    }

    #[test]
    fn enough_in_a_row_confirm_a_jump() {
        let mut g = TimeGuard::new(5 * MIN);
        let confirmed: Vec<bool> = (0..CONFIRM)
            .map(|i| g.hold(0, line(500 * MIN + i as i64)))
            .collect();
        assert_eq!(confirmed.iter().filter(|c| **c).count(), 1);
        assert_eq!(confirmed.last(), Some(&true));
        assert_eq!(g.take(0).len(), CONFIRM);
        assert!(g.held(0).is_empty());
    }

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(42 * NANOS_PER_SEC), "42s");
        assert_eq!(span(5 * MIN), "5m");
        assert_eq!(span(400 * 86_400 * NANOS_PER_SEC), "400d");
    }
}
