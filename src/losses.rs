//! What was read or meant to be sent and is gone, counted by reason.
//!
//! Lines that fail to decode become dead letters (kept, with their reason,
//! in `dead-letters.jsonl`); late records are counted on their series'
//! next row. What is *gone* — never in any output — is counted here, in
//! process-wide counters that the tasks which lose it (the RLP stream, the
//! scrapes, the notifiers) bump as it happens: `/metrics` exports each as
//! `vane_lost_total{reason="…"}` (zeros included, so an alert can watch
//! them) and `vane run` prints the non-zero ones when it stops.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why something was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// An RLP gateway event that is not UTF-8.
    RlpNotUtf8,
    /// An RLP gateway event that is not a Loggregator envelope batch.
    RlpUndecodable,
    /// An RLP gateway event over the size bound.
    RlpOversize,
    /// A scrape that failed (unreachable, refused, too large, not UTF-8).
    ScrapeFailed,
    /// A scraped page that is not the exposition format.
    ScrapeMalformed,
    /// An alert notification given up after retrying for `give_up_after`.
    NotificationGivenUp,
    /// An alert notification pushed out of a full queue (the oldest goes).
    NotificationQueueFull,
    /// A multi-line app log event cut at its line or byte bound: the lines
    /// after it start a new event (kept, not joined).
    LogEventSplit,
}

impl Loss {
    pub const ALL: [Loss; 8] = [
        Loss::RlpNotUtf8,
        Loss::RlpUndecodable,
        Loss::RlpOversize,
        Loss::ScrapeFailed,
        Loss::ScrapeMalformed,
        Loss::NotificationGivenUp,
        Loss::NotificationQueueFull,
        Loss::LogEventSplit,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Loss::RlpNotUtf8 => "rlp_not_utf8",
            Loss::RlpUndecodable => "rlp_undecodable",
            Loss::RlpOversize => "rlp_oversize",
            Loss::ScrapeFailed => "scrape_failed",
            Loss::ScrapeMalformed => "scrape_malformed",
            Loss::NotificationGivenUp => "notification_given_up",
            Loss::NotificationQueueFull => "notification_queue_full",
            Loss::LogEventSplit => "log_event_split",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

static COUNTS: [AtomicU64; Loss::ALL.len()] = [const { AtomicU64::new(0) }; Loss::ALL.len()];

/// Counts `n` losses of `why`.
pub fn count(why: Loss, n: u64) {
    COUNTS[why.index()].fetch_add(n, Ordering::Relaxed);
}

/// Every reason with its count so far.
pub fn all() -> Vec<(Loss, u64)> {
    Loss::ALL
        .iter()
        .map(|l| (*l, COUNTS[l.index()].load(Ordering::Relaxed)))
        .collect()
}

/// One line for people: the non-zero reasons (`None` when nothing was lost).
pub fn summary() -> Option<String> {
    let lost: Vec<String> = all()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(l, n)| format!("{} {n}", l.label()))
        .collect();
    (!lost.is_empty()).then(|| format!("lost {}", lost.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter_and_label() {
        let labels: std::collections::BTreeSet<&str> =
            Loss::ALL.iter().map(|l| l.label()).collect();
        assert_eq!(labels.len(), Loss::ALL.len());
        for (i, l) in Loss::ALL.iter().enumerate() {
            assert_eq!(l.index(), i, "{l:?}");
        }
        let before = all();
        count(Loss::RlpOversize, 3);
        let after = all();
        let of =
            |v: &[(Loss, u64)], l: Loss| v.iter().find(|(x, _)| *x == l).map_or(0, |(_, n)| *n);
        assert!(of(&after, Loss::RlpOversize) >= of(&before, Loss::RlpOversize) + 3);
        assert!(summary().is_some_and(|s| s.contains("rlp_oversize")));
    }
}
