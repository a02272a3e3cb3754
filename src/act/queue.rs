//! In-order HTTP deliveries with retries: the head of the queue is retried with
//! backoff (0.4 s doubling to 10 s) until it is delivered or `give_up_after`
//! has passed, so a receiver outage shorter than that loses nothing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::signature::StandardSigner;

/// The wall clock in Unix seconds, as signed timestamps carry it.
fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

struct Delivery {
    url: String,
    /// The notification's id, signed into each attempt with the body.
    id: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    first_try: Instant,
    next_try: Instant,
    attempts: u32,
}

/// Deliveries queued at most per receiver.
pub const MAX_QUEUED: usize = 10_000;

pub struct HttpQueue {
    give_up_after: Duration,
    client: reqwest::Client,
    queue: VecDeque<Delivery>,
    /// Signs each attempt (Standard Webhooks) when set.
    signer: Option<StandardSigner>,
    pub delivered: u64,
    pub given_up: u64,
}

impl HttpQueue {
    /// A request waits this long for its answer.
    pub const TIMEOUT: Duration = Duration::from_secs(5);

    /// `client`: built with the receiver's TLS ([`crate::tls::http::client`]).
    pub fn new(give_up_after: Duration, client: reqwest::Client) -> Self {
        HttpQueue {
            give_up_after,
            client,
            queue: VecDeque::new(),
            signer: None,
            delivered: 0,
            given_up: 0,
        }
    }

    /// Every attempt carries the Standard Webhooks headers, signed at the
    /// time of the attempt.
    pub fn sign_attempts(&mut self, signer: StandardSigner) {
        self.signer = Some(signer);
    }

    /// Queues a JSON POST. A full queue (a receiver down for long, with
    /// alerts changing all the while) lets its oldest delivery go.
    pub fn push(
        &mut self,
        url: &str,
        id: &str,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
        now: Instant,
    ) {
        if self.queue.len() >= MAX_QUEUED
            && let Some(old) = self.queue.pop_front()
        {
            warn!(url = %old.url, queued = MAX_QUEUED, "notification queue full: the oldest is dropped");
            crate::losses::count(crate::losses::Loss::NotificationQueueFull, 1);
            self.given_up += 1;
        }
        self.queue.push_back(Delivery {
            url: url.to_string(),
            id: id.to_string(),
            body,
            headers,
            first_try: now,
            next_try: now,
            attempts: 0,
        });
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Sends what is due, in order; stops at the first failure.
    pub async fn pump(&mut self, now: Instant) {
        while let Some(d) = self.queue.front_mut() {
            if d.next_try > now {
                return;
            }
            let mut req = self
                .client
                .post(&d.url)
                .header("Content-Type", "application/json")
                .body(d.body.clone());
            for (k, v) in &d.headers {
                req = req.header(k, v);
            }
            if let Some(signer) = &self.signer {
                for (k, v) in signer.headers(&d.id, unix_seconds(), &d.body) {
                    req = req.header(k, v);
                }
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => {
                    self.delivered += 1;
                    self.queue.pop_front();
                }
                outcome => {
                    d.attempts += 1;
                    let why = match outcome {
                        Ok(r) => format!("HTTP {}", r.status()),
                        Err(e) => crate::tls::http::describe(&e),
                    };
                    if now - d.first_try >= self.give_up_after {
                        warn!(url = %d.url, error = %why, "notification given up");
                        crate::losses::count(crate::losses::Loss::NotificationGivenUp, 1);
                        self.given_up += 1;
                        self.queue.pop_front();
                        continue;
                    }
                    let backoff =
                        Duration::from_millis(200 * 2u64.saturating_pow(d.attempts.min(6)));
                    d.next_try = now + backoff.min(Duration::from_secs(10));
                    info!(url = %d.url, attempt = d.attempts, error = %why, "notification will be retried");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    /// A receiver down for long while alerts keep changing: the queue
    /// keeps the newest `MAX_QUEUED` and counts what it let go.
    #[test]
    fn a_full_queue_lets_the_oldest_go_and_counts_it() {
        let client = crate::tls::http::client(
            &crate::tls::TlsConfig::default(),
            crate::tls::http::Timeouts::request(HttpQueue::TIMEOUT),
        )
        .unwrap();
        let mut q = HttpQueue::new(Duration::from_secs(3600), client);
        let now = Instant::now();
        let lost = || {
            crate::losses::all()
                .into_iter()
                .find(|(l, _)| *l == crate::losses::Loss::NotificationQueueFull)
                .map_or(0, |(_, n)| n)
        };
        let before = lost();
        for i in 0..MAX_QUEUED + 5 {
            q.push(
                "http://127.0.0.1:9/",
                "",
                i.to_string().into_bytes(),
                Vec::new(),
                now,
            );
        }
        assert_eq!(q.len(), MAX_QUEUED);
        assert_eq!(q.given_up, 5);
        assert!(lost() >= before + 5);
        assert_eq!(
            q.queue.front().map(|d| d.body.clone()),
            Some(b"5".to_vec()),
            "the oldest went"
        );
    }
}
