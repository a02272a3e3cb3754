//! Alert notifiers as tasks of their own. The run loop hands each one the
//! transitions of a tick through a bounded inbox and goes on: a receiver
//! that answers slowly (or not at all) delays its own deliveries, never the
//! input. Only when an inbox is full does the loop wait (backpressure).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::act::alertmanager::AlertmanagerNotifier;
use crate::act::webhook::WebhookNotifier;
use crate::config::NotifierConfig;
use crate::model::AlertEvent;

/// Batches of transitions an inbox holds before the loop waits.
const INBOX: usize = 64;
/// How often a notifier looks at retries and re-sends without new input.
const PUMP_EVERY: Duration = Duration::from_millis(200);

pub enum Notifier {
    Webhook(WebhookNotifier),
    Alertmanager(AlertmanagerNotifier),
}

impl Notifier {
    pub fn from_config(n: &NotifierConfig) -> anyhow::Result<Notifier> {
        let client = crate::tls::http::client(
            n.tls(),
            crate::tls::http::Timeouts::request(crate::act::queue::HttpQueue::TIMEOUT),
        )
        .map_err(|e| anyhow::anyhow!("notifier {}: tls: {e}", n.url()))?;
        Ok(match n {
            NotifierConfig::Webhook {
                url,
                receiver,
                give_up_after,
                ..
            } => {
                let secret = n
                    .secret()
                    .map_err(|e| anyhow::anyhow!("notifier {url}: {e}"))?;
                Notifier::Webhook(
                    WebhookNotifier::new(url, receiver, secret, *give_up_after, client)
                        .map_err(|e| anyhow::anyhow!("notifier {url}: {e}"))?,
                )
            }
            NotifierConfig::Alertmanager {
                url,
                resend_interval,
                give_up_after,
                ..
            } => Notifier::Alertmanager(AlertmanagerNotifier::new(
                url,
                *resend_interval,
                *give_up_after,
                client,
            )),
        })
    }

    fn enqueue(&mut self, events: &[AlertEvent], now: Instant) {
        match self {
            Notifier::Webhook(n) => n.enqueue(events, now),
            Notifier::Alertmanager(n) => n.enqueue(events, now),
        }
    }

    async fn pump(&mut self, now: Instant) {
        match self {
            Notifier::Webhook(n) => n.pump(now).await,
            Notifier::Alertmanager(n) => n.pump(now).await,
        }
    }

    fn queued(&self) -> usize {
        match self {
            Notifier::Webhook(n) => n.queued(),
            Notifier::Alertmanager(n) => n.queued(),
        }
    }
}

/// A running notifier: its inbox, and how much it still has to deliver.
pub struct NotifierTask {
    inbox: mpsc::Sender<Vec<AlertEvent>>,
    /// Batches sent but not yet taken in, plus notifications waiting or retried.
    queued: Arc<Queued>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Queued {
    inbox: AtomicUsize,
    retrying: AtomicUsize,
}

impl NotifierTask {
    pub fn spawn(notifier: Notifier) -> Self {
        let (tx, rx) = mpsc::channel(INBOX);
        let queued = Arc::new(Queued::default());
        let task = tokio::spawn(deliver(notifier, rx, Arc::clone(&queued)));
        NotifierTask {
            inbox: tx,
            queued,
            task,
        }
    }

    /// Hands transitions over; waits only while the inbox is full.
    pub async fn send(&self, events: &[AlertEvent]) {
        if events.is_empty() {
            return;
        }
        self.queued.inbox.fetch_add(1, Ordering::AcqRel);
        if self.inbox.send(events.to_vec()).await.is_err() {
            // The task is gone (it only ends when the inbox closes).
            self.queued.inbox.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Notifications not yet delivered (nor given up).
    pub fn queued(&self) -> usize {
        self.queued.inbox.load(Ordering::Acquire) + self.queued.retrying.load(Ordering::Acquire)
    }

    /// Closes the inbox and waits (at most `limit`) for what is left to go out.
    pub async fn finish(self, limit: Duration) {
        let NotifierTask {
            inbox,
            queued,
            mut task,
        } = self;
        drop(inbox);
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            task.abort();
        }
        let left = queued.inbox.load(Ordering::Acquire) + queued.retrying.load(Ordering::Acquire);
        if left > 0 {
            warn!(
                queued = left,
                "stopping with undelivered alert notifications"
            );
        }
    }
}

async fn deliver(mut n: Notifier, mut rx: mpsc::Receiver<Vec<AlertEvent>>, queued: Arc<Queued>) {
    let mut tick = tokio::time::interval(PUMP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    while open || n.queued() > 0 {
        tokio::select! {
            msg = rx.recv(), if open => match msg {
                Some(events) => {
                    n.enqueue(&events, Instant::now());
                    queued.inbox.fetch_sub(1, Ordering::AcqRel);
                }
                // Closed: deliver what is queued, then stop.
                None => open = false,
            },
            _ = tick.tick() => {}
        }
        queued.retrying.store(n.queued(), Ordering::Release);
        n.pump(Instant::now()).await;
        queued.retrying.store(n.queued(), Ordering::Release);
    }
}
