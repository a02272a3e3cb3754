//! The Cloud Foundry RLP gateway stream (`GET /v2/read?log&gauge`,
//! server-sent events of Loggregator v2 envelope batches): read on its own
//! task, reconnecting with backoff. Gauges are handed over as container
//! metrics; `log` envelopes as lines — the router's (`RTR`) to a gorouter
//! source, the apps' own to an app-log source keyed by app and instance.
//! Every channel is bounded: a slow pipeline slows the reader.

use crate::losses::{self, Loss};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{LineSender, PushedLines};
use crate::decode::{StreamEvent, decode_stream_event};
use crate::model::ContainerMetric;
use crate::tls::http::{self, Timeouts};
use crate::tls::{TlsConfig, TlsError};

pub struct RlpSource {
    rx: mpsc::Receiver<Vec<ContainerMetric>>,
}

/// The log lines of the stream, as two sources of their own.
pub struct RlpLines {
    /// Gorouter access log lines (`RTR`).
    pub router: PushedLines,
    /// App output, keyed `app/instance`, timed by the envelope.
    pub app: PushedLines,
}

/// Where the reader hands over what it decoded.
struct Outlets {
    metrics: mpsc::Sender<Vec<ContainerMetric>>,
    router: LineSender,
    app: LineSender,
}

impl RlpSource {
    /// Starts reading `url` (with `token` as the Authorization header value).
    pub fn spawn(
        url: String,
        token: Option<String>,
        tls: &TlsConfig,
    ) -> Result<(Self, RlpLines), TlsError> {
        // Connecting is bounded; a stream silent for two minutes is taken for
        // broken and opened again (a half-open connection never ends itself).
        let client = http::client(
            tls,
            Timeouts::stream(Duration::from_secs(10), Duration::from_secs(120)),
        )?;
        let (metrics, rx) = mpsc::channel(64);
        let (router, router_lines) = PushedLines::channel("rlp:router");
        let (app, app_lines) = PushedLines::channel("rlp:app");
        let out = Outlets {
            metrics,
            router,
            app,
        };
        tokio::spawn(read_stream(client, url, token, out));
        Ok((
            RlpSource { rx },
            RlpLines {
                router: router_lines,
                app: app_lines,
            },
        ))
    }

    /// Metrics received since the last call.
    pub fn poll(&mut self) -> Vec<ContainerMetric> {
        super::take_batches(&mut self.rx)
    }
}

impl Outlets {
    /// Hands over one event's contents; `false` once the pipeline is gone.
    async fn hand_over(&self, event: StreamEvent) -> bool {
        if !event.metrics.is_empty() && self.metrics.send(event.metrics).await.is_err() {
            return false;
        }
        let (router, app): (Vec<_>, Vec<_>) = event.logs.into_iter().partition(|l| l.router);
        if !self
            .router
            .lines(router.iter().map(|l| l.text.as_str()))
            .await
        {
            return false;
        }
        for line in app {
            let key = match &line.instance {
                Some(i) => format!("{}/{i}", line.app),
                None => line.app.clone(),
            };
            if !self.app.line_of(key, line.time_ns, &line.text).await {
                return false;
            }
        }
        true
    }

    fn is_closed(&self) -> bool {
        self.metrics.is_closed()
    }
}

async fn read_stream(client: reqwest::Client, url: String, token: Option<String>, out: Outlets) {
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
                let mut lines = Lines::default();
                loop {
                    match resp.chunk().await {
                        Ok(Some(bytes)) => {
                            for line in lines.push(&bytes) {
                                let Ok(text) = std::str::from_utf8(&line) else {
                                    losses::count(Loss::RlpNotUtf8, 1);
                                    continue;
                                };
                                match decode_stream_event(text) {
                                    Ok(event) => {
                                        for e in &event.errors {
                                            losses::count(Loss::RlpUndecodable, 1);
                                            warn!(url = %url, error = %e, "undecodable RLP gateway envelope");
                                        }
                                        if !out.hand_over(event).await {
                                            return; // the pipeline is gone
                                        }
                                    }
                                    Err(e) => {
                                        losses::count(Loss::RlpUndecodable, 1);
                                        warn!(url = %url, error = %e, "undecodable RLP gateway event")
                                    }
                                }
                            }
                            if lines.skipped > 0 {
                                losses::count(Loss::RlpOversize, lines.skipped);
                                warn!(url = %url, events = lines.skipped, max_bytes = MAX_EVENT, "RLP gateway events over the size limit skipped");
                                lines.skipped = 0;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            warn!(url = %url, error = %http::describe(&e), "RLP gateway stream broke");
                            break;
                        }
                    }
                }
            }
            Ok(resp) => {
                warn!(url = %url, status = %resp.status(), "RLP gateway refused the stream")
            }
            Err(e) => warn!(url = %url, error = %http::describe(&e), "RLP gateway unreachable"),
        }
        if out.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// The longest server-sent event line kept; a longer one is skipped whole
/// (an envelope batch is kilobytes; a stream without newlines must not
/// grow without bound).
const MAX_EVENT: usize = 4 << 20;

/// Splits a byte stream into lines, each byte looked at once, holding at
/// most [`MAX_EVENT`] bytes of an unfinished line.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
    /// Inside a line over the limit: dropped up to its newline.
    skipping: bool,
    /// Lines skipped for their size since the count was last reset.
    skipped: u64,
}

impl Lines {
    /// The lines `bytes` completes (without their newlines).
    fn push(&mut self, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(nl) = memchr::memchr(b'\n', bytes) {
            let (head, rest) = (&bytes[..nl], &bytes[nl + 1..]);
            bytes = rest;
            if self.skipping || self.pending.len() + head.len() > MAX_EVENT {
                self.pending.clear();
                self.skipping = false;
                self.skipped += 1;
                continue;
            }
            self.pending.extend_from_slice(head);
            out.push(std::mem::take(&mut self.pending));
        }
        if self.skipping || self.pending.len() + bytes.len() > MAX_EVENT {
            self.pending.clear();
            self.skipping = true;
        } else {
            self.pending.extend_from_slice(bytes);
        }
        out
    }
}

/// The lines a stream arriving in `parts` holds, and how many were over
/// the size limit (for fuzzing: the cut must not matter).
pub(crate) fn split_lines(parts: &[&[u8]]) -> (Vec<Vec<u8>>, u64) {
    let mut lines = Lines::default();
    let mut out = Vec::new();
    for part in parts {
        out.extend(lines.push(part));
    }
    (out, lines.skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        let mut l = Lines::default();
        assert!(l.push(b"data: {\"a\"").is_empty());
        assert_eq!(
            l.push(b":1}\n\ndata: x\nda"),
            vec![b"data: {\"a\":1}".to_vec(), vec![], b"data: x".to_vec()]
        );
        assert_eq!(l.push(b"ta: y\n"), vec![b"data: y".to_vec()]);
    }

    #[test]
    fn a_stream_without_newlines_holds_at_most_the_limit() {
        let mut l = Lines::default();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..64 {
            assert!(l.push(&chunk).is_empty());
            assert!(l.pending.len() <= MAX_EVENT);
        }
        // The long line is skipped whole; the next one comes through.
        assert_eq!(l.push(b"tail\ndata: ok\n"), vec![b"data: ok".to_vec()]);
        assert_eq!(l.skipped, 1);
    }
}
