//! Periodic scrape of Prometheus endpoints (cAdvisor, a kubelet's
//! `/metrics/cadvisor` or `/metrics/resource`): every `interval`, each target
//! is fetched and its container series become container metrics. A target
//! that cannot be reached gives no samples (its apps' data is then missing,
//! which never scales them down) and a logged failure. Scrapes run on their
//! own task and hand over through a bounded channel.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tracing::warn;

use std::path::PathBuf;

use crate::decode::prometheus::{ContainerScrapes, parse};
use crate::http_body::{self, MAX_SCRAPE_BODY};
use crate::model::ContainerMetric;
use crate::tls::http::{self, Timeouts};
use crate::tls::{TlsConfig, TlsError};

/// The scrapes, running on their own task: the live loop takes what they
/// gathered without waiting for a slow target.
pub struct ScrapeSource {
    rx: mpsc::Receiver<Vec<ContainerMetric>>,
}

impl ScrapeSource {
    /// Starts scraping `targets` every `interval`, the first time at once.
    pub fn spawn(
        targets: &[String],
        interval: Duration,
        auth: ScrapeAuth,
    ) -> Result<Self, TlsError> {
        // A few rounds: when the pipeline does not take them, the task waits
        // (and skips the rounds it missed) instead of piling samples up.
        let (tx, rx) = mpsc::channel(4);
        let scraper = Scraper::new(targets, interval, auth)?;
        tokio::spawn(scraper.run(interval, tx));
        Ok(ScrapeSource { rx })
    }

    /// What the rounds finished since the last call gathered.
    pub fn poll(&mut self) -> Vec<ContainerMetric> {
        super::take_batches(&mut self.rx)
    }
}

/// How a scrape connects: TLS, and a bearer token read from a file for
/// every scrape (it rotates: a projected service account token).
#[derive(Debug, Clone, Default)]
pub struct ScrapeAuth {
    pub tls: TlsConfig,
    pub token_file: Option<PathBuf>,
}

struct Scraper {
    targets: Vec<Target>,
    client: reqwest::Client,
    token_file: Option<PathBuf>,
}

struct Target {
    url: String,
    /// The scraped kubelet is the node its containers run on.
    node: Option<String>,
    scrapes: ContainerScrapes,
}

impl Scraper {
    fn new(targets: &[String], interval: Duration, auth: ScrapeAuth) -> Result<Self, TlsError> {
        let client = http::client(
            &auth.tls,
            Timeouts::request(interval.max(Duration::from_millis(200))),
        )?;
        Ok(Scraper {
            targets: targets
                .iter()
                .map(|u| Target {
                    url: u.clone(),
                    node: reqwest::Url::parse(u)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_string)),
                    scrapes: ContainerScrapes::default(),
                })
                .collect(),
            client,
            token_file: auth.token_file,
        })
    }

    async fn run(mut self, interval: Duration, tx: mpsc::Sender<Vec<ContainerMetric>>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let round = self.round().await;
            if round.is_empty() {
                if tx.is_closed() {
                    return;
                }
            } else if tx.send(round).await.is_err() {
                return; // the pipeline is gone
            }
        }
    }

    /// Scrapes every target once.
    async fn round(&mut self) -> Vec<ContainerMetric> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut out = Vec::new();
        for t in &mut self.targets {
            let Some(req) = request(&self.client, self.token_file.as_deref(), &t.url) else {
                crate::losses::count(crate::losses::Loss::ScrapeFailed, 1);
                continue;
            };
            let Some(text) = fetch(req, &t.url).await else {
                crate::losses::count(crate::losses::Loss::ScrapeFailed, 1);
                continue;
            };
            match parse(&text) {
                Ok(samples) => {
                    out.extend(t.scrapes.scrape(&samples, now_ms).into_iter().map(|mut m| {
                        m.node = m.node.or_else(|| t.node.clone());
                        m
                    }));
                }
                Err((line, e)) => {
                    crate::losses::count(crate::losses::Loss::ScrapeMalformed, 1);
                    warn!(target = %t.url, line, error = %e, "scrape returned malformed exposition");
                }
            }
        }
        out
    }
}

/// The request for one scrape, with the token as the file holds it now.
fn request(
    client: &reqwest::Client,
    token_file: Option<&std::path::Path>,
    url: &str,
) -> Option<reqwest::RequestBuilder> {
    let req = client.get(url);
    let Some(path) = token_file else {
        return Some(req);
    };
    match crate::secret::from_file(path, "token") {
        Ok(token) => Some(req.bearer_auth(token.trim())),
        Err(e) => {
            warn!(target = %url, error = %e, "scrape skipped: no token");
            None
        }
    }
}

/// The body of one scrape; a failure is logged and gives nothing (its apps'
/// data is then missing, which never scales them down). A body past
/// [`MAX_SCRAPE_BODY`] is not read on, nor parsed.
async fn fetch(req: reqwest::RequestBuilder, url: &str) -> Option<String> {
    match req.send().await {
        Ok(resp) if resp.status().is_success() => {
            match http_body::up_to(resp, MAX_SCRAPE_BODY).await {
                Ok(c) if !c.complete => {
                    warn!(target = %url, max_bytes = MAX_SCRAPE_BODY, "scrape answer too large; skipped");
                    None
                }
                Ok(c) => match String::from_utf8(c.body) {
                    Ok(text) => Some(text),
                    Err(_) => {
                        warn!(target = %url, "scrape answer is not UTF-8; skipped");
                        None
                    }
                },
                Err(e) => {
                    warn!(target = %url, error = %e, "scrape failed");
                    None
                }
            }
        }
        Ok(resp) => {
            warn!(target = %url, status = %resp.status(), "scrape failed");
            None
        }
        Err(e) => {
            warn!(target = %url, error = %http::describe(&e), "scrape failed");
            None
        }
    }
}
