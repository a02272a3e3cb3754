//! In-order HTTP deliveries with retries: the head of the queue is retried with
//! backoff (0.4 s doubling to 10 s) until it is delivered or `give_up_after`
//! has passed, so a receiver outage shorter than that loses nothing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tracing::{info, warn};

struct Delivery {
    url: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    first_try: Instant,
    next_try: Instant,
    attempts: u32,
}

pub struct HttpQueue {
    give_up_after: Duration,
    client: reqwest::Client,
    queue: VecDeque<Delivery>,
    pub delivered: u64,
    pub given_up: u64,
}

impl HttpQueue {
    pub fn new(give_up_after: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        HttpQueue {
            give_up_after,
            client,
            queue: VecDeque::new(),
            delivered: 0,
            given_up: 0,
        }
    }

    /// Queues a JSON POST.
    pub fn push(&mut self, url: &str, body: Vec<u8>, headers: Vec<(String, String)>, now: Instant) {
        self.queue.push_back(Delivery {
            url: url.to_string(),
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
            match req.send().await {
                Ok(r) if r.status().is_success() => {
                    self.delivered += 1;
                    self.queue.pop_front();
                }
                outcome => {
                    d.attempts += 1;
                    let why = match outcome {
                        Ok(r) => format!("HTTP {}", r.status()),
                        Err(e) => e.to_string(),
                    };
                    if now - d.first_try >= self.give_up_after {
                        warn!(url = %d.url, error = %why, "notification given up");
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
