//! Periodic scrape of Prometheus endpoints (cAdvisor, a kubelet's
//! `/metrics/cadvisor` or `/metrics/resource`): every `interval`, each target
//! is fetched and its container series become container metrics. A target
//! that cannot be reached gives no samples (its apps' data is then missing,
//! which never scales them down) and a logged, counted failure.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::warn;

use crate::decode::prometheus::{ContainerScrapes, parse};
use crate::model::ContainerMetric;

pub struct ScrapeSource {
    targets: Vec<Target>,
    interval: Duration,
    last: Option<Instant>,
    client: reqwest::Client,
    pub failures: u64,
}

struct Target {
    url: String,
    scrapes: ContainerScrapes,
}

impl ScrapeSource {
    pub fn new(targets: &[String], interval: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(interval.max(Duration::from_millis(200)))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        ScrapeSource {
            targets: targets
                .iter()
                .map(|u| Target {
                    url: u.clone(),
                    scrapes: ContainerScrapes::default(),
                })
                .collect(),
            interval,
            last: None,
            client,
            failures: 0,
        }
    }

    /// Scrapes every target if the interval has passed; `None` when not due.
    pub async fn poll(&mut self, now: Instant) -> Option<Vec<ContainerMetric>> {
        if self.last.is_some_and(|l| now - l < self.interval) {
            return None;
        }
        self.last = Some(now);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut out = Vec::new();
        for t in &mut self.targets {
            let body = match self.client.get(&t.url).send().await {
                Ok(resp) if resp.status().is_success() => resp.text().await,
                Ok(resp) => {
                    self.failures += 1;
                    warn!(target = %t.url, status = %resp.status(), "scrape failed");
                    continue;
                }
                Err(e) => Err(e),
            };
            match body {
                Ok(text) => match parse(&text) {
                    Ok(samples) => {
                        // The scraped kubelet is the node its containers run on.
                        let node = reqwest::Url::parse(&t.url)
                            .ok()
                            .and_then(|u| u.host_str().map(str::to_string));
                        out.extend(t.scrapes.scrape(&samples, now_ms).into_iter().map(|mut m| {
                            m.node = m.node.or_else(|| node.clone());
                            m
                        }));
                    }
                    Err((line, e)) => {
                        self.failures += 1;
                        warn!(target = %t.url, line, error = %e, "scrape returned malformed exposition");
                    }
                },
                Err(e) => {
                    self.failures += 1;
                    warn!(target = %t.url, error = %e, "scrape failed");
                }
            }
        }
        Some(out)
    }
}
