//! Alerts pushed to Alertmanager (`POST /api/v2/alerts`): firing alerts are
//! sent at once and again every `resend_interval` while they fire (Alertmanager
//! forgets an alert not re-sent within its resolve timeout); a resolved alert
//! is sent once more with `endsAt`, which resolves it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::queue::HttpQueue;
use super::webhook::fingerprint;
use crate::model::{AlertEvent, AlertState};

pub struct AlertmanagerNotifier {
    url: String,
    resend_interval: Duration,
    queue: HttpQueue,
    /// Firing alerts by fingerprint, with when they were last sent.
    firing: BTreeMap<String, (AlertEvent, Instant)>,
}

fn alert(e: &AlertEvent) -> Value {
    let mut a = json!({"labels": e.labels, "annotations": e.annotations, "startsAt": e.active_at, "generatorURL": ""});
    if e.state == AlertState::Resolved {
        a["endsAt"] = Value::String(e.time.to_string());
    }
    a
}

impl AlertmanagerNotifier {
    /// `url`: Alertmanager's base URL, like `http://127.0.0.1:9093`.
    pub fn new(
        url: &str,
        resend_interval: Duration,
        give_up_after: Duration,
        client: reqwest::Client,
    ) -> Self {
        AlertmanagerNotifier {
            url: format!("{}/api/v2/alerts", url.trim_end_matches('/')),
            resend_interval,
            queue: HttpQueue::new(give_up_after, client),
            firing: BTreeMap::new(),
        }
    }

    pub fn enqueue(&mut self, events: &[AlertEvent], now: Instant) {
        for e in events.iter().filter(|e| e.state != AlertState::Pending) {
            let body = serde_json::to_vec(&json!([alert(e)])).unwrap_or_default();
            self.queue.push(&self.url, "", body, Vec::new(), now);
            if e.state == AlertState::Firing {
                self.firing.insert(fingerprint(e), (e.clone(), now));
            } else {
                self.firing.remove(&fingerprint(e));
            }
        }
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Re-sends firing alerts that are due, then delivers what is queued.
    pub async fn pump(&mut self, now: Instant) {
        let due: Vec<Value> = self
            .firing
            .values_mut()
            .filter(|(_, sent)| now - *sent >= self.resend_interval)
            .map(|(e, sent)| {
                *sent = now;
                alert(e)
            })
            .collect();
        if !due.is_empty() {
            let body = serde_json::to_vec(&Value::Array(due)).unwrap_or_default();
            self.queue.push(&self.url, "", body, Vec::new(), now);
        }
        self.queue.pump(now).await;
    }
}
