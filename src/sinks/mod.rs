//! Where results go. The embedded sink writes JSON lines to local files;
//! InfluxDB receives window aggregates and decisions, Elasticsearch app log
//! events, when configured.

pub mod elasticsearch;
pub mod influx;
mod jsonl;

pub use crate::model::DeadLetter;
pub use jsonl::JsonlFile;

use std::time::{Duration, Instant};

/// The longest wait a server's `Retry-After` gets (the longest backoff): it
/// is the server's number, and a wait holds the sink (and, once its queue
/// is full, the input) back. Longer asks are retried after this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// `Retry-After` in seconds, at most [`MAX_RETRY_AFTER`]; `None` when absent
/// or not a number of seconds.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// When to try again after the `attempts`-th failure in a row: the
/// server's wait when it named one, else 0.5 s doubling to 30 s.
pub fn next_try(attempts: u32, after: Option<Duration>) -> (Duration, Instant) {
    let backoff = Duration::from_millis(500u64.saturating_mul(2u64.pow(attempts.min(6))))
        .min(Duration::from_secs(30));
    let wait = after.unwrap_or(backoff).min(MAX_RETRY_AFTER);
    let now = Instant::now();
    (wait, now.checked_add(wait).unwrap_or(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_wait_is_bounded() {
        let mut h = reqwest::header::HeaderMap::new();
        for (text, want) in [
            ("18446744073709551615", Some(MAX_RETRY_AFTER)),
            ("3", Some(Duration::from_secs(3))),
            ("-1", None),
            ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ] {
            h.insert(reqwest::header::RETRY_AFTER, text.parse().unwrap());
            assert_eq!(retry_after(&h), want, "{text}");
        }
        let (wait, at) = next_try(u32::MAX, Some(Duration::MAX));
        assert_eq!(wait, MAX_RETRY_AFTER);
        assert!(at > Instant::now());
        assert_eq!(next_try(1, None).0, Duration::from_secs(1));
        assert_eq!(next_try(40, None).0, Duration::from_secs(30));
    }
}
