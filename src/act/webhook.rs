//! Alert notifications to a generic webhook, in the Alertmanager webhook
//! (version 4) payload, signed with HMAC-SHA256 over the body
//! (`X-Vane-Signature: sha256=<hex>`). Each notification has an id
//! (`X-Vane-Notification-Id`) so receivers can drop a repeat; failed deliveries
//! are retried with backoff until `give_up_after`, so a receiver outage shorter
//! than that loses nothing. Each attempt also carries the Standard Webhooks
//! headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`), which
//! let a receiver refuse a replayed delivery ([`super::signature`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::queue::HttpQueue;
use super::signature::StandardSigner;

use crate::model::{AlertEvent, AlertState};

/// The Alertmanager v4 webhook payload for one alert transition.
pub fn payload(e: &AlertEvent, receiver: &str) -> Value {
    let status = if e.state == AlertState::Resolved {
        "resolved"
    } else {
        "firing"
    };
    let ends_at = if e.state == AlertState::Resolved {
        e.time.to_string()
    } else {
        "0001-01-01T00:00:00Z".to_string()
    };
    let group_labels: BTreeMap<&str, &str> =
        [("alertname", e.alertname.as_str()), ("app", e.app.as_str())]
            .into_iter()
            .collect();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname={:?}, app={:?}}}", e.alertname, e.app),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": e.labels,
        "commonAnnotations": e.annotations,
        "externalURL": "",
        "alerts": [{
            "status": status,
            "labels": e.labels,
            "annotations": e.annotations,
            "startsAt": e.active_at,
            "endsAt": ends_at,
            "generatorURL": "",
            "fingerprint": fingerprint(e),
        }],
    })
}

/// A stable id of the alert (its rule and app), as Alertmanager's fingerprint.
pub fn fingerprint(e: &AlertEvent) -> String {
    format!("{:016x}", hash64(&format!("{}\u{0}{}", e.alertname, e.app)))
}

fn hash64(s: &str) -> u64 {
    // FNV-1a: stable across runs and versions, which std's hasher is not.
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(64 + 7);
    hex.push_str("sha256=");
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Delivers firing and resolved transitions to one webhook, in order.
pub struct WebhookNotifier {
    url: String,
    receiver: String,
    secret: Vec<u8>,
    queue: HttpQueue,
}

impl WebhookNotifier {
    /// `secret` signs both ways: `X-Vane-Signature` over the body with the
    /// secret's bytes, and the Standard Webhooks headers (a `whsec_`
    /// secret is base64 there, as its libraries read it).
    pub fn new(
        url: &str,
        receiver: &str,
        secret: Vec<u8>,
        give_up_after: Duration,
        client: reqwest::Client,
    ) -> Result<Self, String> {
        let mut queue = HttpQueue::new(give_up_after, client);
        queue.sign_attempts(StandardSigner::from_secret(&secret)?);
        Ok(WebhookNotifier {
            url: url.to_string(),
            receiver: receiver.to_string(),
            secret,
            queue,
        })
    }

    /// Queues firing and resolved transitions (pending ones are not notified,
    /// as in Alertmanager).
    pub fn enqueue(&mut self, events: &[AlertEvent], now: Instant) {
        for e in events.iter().filter(|e| e.state != AlertState::Pending) {
            let body = serde_json::to_vec(&payload(e, &self.receiver)).unwrap_or_default();
            let id = format!(
                "{}-{}-{:?}-{}",
                fingerprint(e),
                e.active_at,
                e.state,
                e.time
            )
            .to_lowercase();
            let headers = vec![
                ("X-Vane-Signature".to_string(), sign(&self.secret, &body)),
                ("X-Vane-Notification-Id".to_string(), id.clone()),
            ];
            self.queue.push(&self.url, &id, body, headers, now);
        }
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub async fn pump(&mut self, now: Instant) {
        self.queue.pump(now).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn event(state: AlertState) -> AlertEvent {
        AlertEvent {
            time: ts("2025-12-01T00:06:30Z"),
            alertname: "HighErrorRatio".into(),
            app: "checkout".into(),
            state,
            labels: [
                ("alertname".to_string(), "HighErrorRatio".to_string()),
                ("severity".to_string(), "page".to_string()),
            ]
            .into(),
            annotations: [("summary".to_string(), "checkout fails".to_string())].into(),
            value: Some(0.3),
            active_at: ts("2025-12-01T00:06:10Z"),
        }
    }

    #[test]
    fn payload_has_the_alertmanager_v4_shape() {
        let p = payload(&event(AlertState::Firing), "vane");
        assert_eq!(p["version"], "4");
        assert_eq!(p["status"], "firing");
        assert_eq!(p["alerts"][0]["labels"]["severity"], "page");
        assert_eq!(p["alerts"][0]["startsAt"], "2025-12-01T00:06:10Z");
        assert_eq!(p["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        let r = payload(&event(AlertState::Resolved), "vane");
        assert_eq!(
            (r["status"].as_str(), r["alerts"][0]["endsAt"].as_str()),
            (Some("resolved"), Some("2025-12-01T00:06:30Z"))
        );
        // The same keys as a real Alertmanager payload (../shared/data/alerting/alertmanager-webhook).
        let real: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/data/alerting/alertmanager-webhook/msteams_prom_post_request.json"
            ))
            .unwrap(),
        )
        .unwrap();
        for k in real.as_object().unwrap().keys() {
            assert!(p.get(k).is_some(), "missing top-level key {k}");
        }
        for k in real["alerts"][0].as_object().unwrap().keys() {
            assert!(p["alerts"][0].get(k).is_some(), "missing alert key {k}");
        }
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let s = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
