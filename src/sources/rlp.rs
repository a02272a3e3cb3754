//! The Cloud Foundry RLP gateway stream (`GET /v2/read?...`, server-sent
//! events of Loggregator v2 envelope batches): read on its own task,
//! reconnecting with backoff, and handed over as container metrics through a
//! bounded channel (a slow pipeline slows the reader; nothing is buffered
//! without limit).

use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::decode::decode_loggregator;
use crate::model::ContainerMetric;

pub struct RlpSource {
    rx: mpsc::Receiver<Vec<ContainerMetric>>,
}

impl RlpSource {
    /// Starts reading `url` (with `token` as the Authorization header value).
    pub fn spawn(url: String, token: Option<String>) -> Self {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(read_stream(url, token, tx));
        RlpSource { rx }
    }

    /// Metrics received since the last call.
    pub fn poll(&mut self) -> Vec<ContainerMetric> {
        super::take_batches(&mut self.rx)
    }
}

async fn read_stream(url: String, token: Option<String>, tx: mpsc::Sender<Vec<ContainerMetric>>) {
    let client = reqwest::Client::new();
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut req = client.get(&url).header("Accept", "text/event-stream");
        if let Some(t) = &token {
            req = req.header("Authorization", t);
        }
        match req.send().await {
            Ok(mut resp) if resp.status().is_success() => {
                info!(url = %url, "RLP gateway stream connected");
                backoff = Duration::from_millis(200);
                let mut pending = Vec::new();
                loop {
                    match resp.chunk().await {
                        Ok(Some(bytes)) => {
                            pending.extend_from_slice(&bytes);
                            while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                                let line: Vec<u8> = pending.drain(..=nl).collect();
                                let Ok(text) = std::str::from_utf8(&line) else {
                                    continue;
                                };
                                match decode_loggregator(text) {
                                    Ok(m) if !m.is_empty() => {
                                        if tx.send(m).await.is_err() {
                                            return; // the pipeline is gone
                                        }
                                    }
                                    Ok(_) => {}
                                    Err(e) => {
                                        warn!(url = %url, error = %e, "undecodable RLP gateway event")
                                    }
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            warn!(url = %url, error = %e, "RLP gateway stream broke");
                            break;
                        }
                    }
                }
            }
            Ok(resp) => {
                warn!(url = %url, status = %resp.status(), "RLP gateway refused the stream")
            }
            Err(e) => warn!(url = %url, error = %e, "RLP gateway unreachable"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
