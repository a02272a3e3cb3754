//! The Elasticsearch (and OpenSearch) sink: app log events as ECS documents
//! through `_bulk`, into daily indices `{prefix}-yyyy.mm.dd` that join the
//! alias `{prefix}` through an index template installed before the first
//! document is sent.
//!
//! Exactly once on top of at-least-once delivery: every document has a
//! deterministic `_id` (stream and position of its first line) and is sent
//! with `create`, so a document sent again after a crash or a retry answers
//! 409, which counts as indexed. Per item:
//! - 2xx and 409: done;
//! - 429 and 5xx: sent again (only those items) after a backoff;
//! - any other status (400 mapping errors): the document goes to the dead
//!   letters with the server's error type and reason.
//!
//! Per request: 413 splits the batch in two (a single document that is too
//! large is dead-lettered); 429, 5xx and connection errors retry the batch
//! with backoff (0.5 s doubling to 30 s, or `Retry-After`), forever — the run
//! loop stops reading input while too much is pending and checkpoints only
//! what was acknowledged.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{info, warn};

use crate::logs::LogEvent;
use crate::logs::ecs::{doc_id, index_name, index_template, to_ecs};

/// The most of a bulk answer read (about 200 bytes per item: a batch
/// answering with more is split).
const MAX_BULK_RESPONSE: usize = 64 << 20;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticConfig {
    /// Base URL, like `http://127.0.0.1:9200`.
    pub url: String,
    /// Daily indices are `{index_prefix}-yyyy.mm.dd`, all behind the alias `{index_prefix}`.
    #[serde(default = "index_prefix")]
    pub index_prefix: String,
    /// Environment variable holding an API key (`Authorization: ApiKey …`).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The same from a file (a mounted secret).
    #[serde(default)]
    pub api_key_file: Option<std::path::PathBuf>,
    /// Documents per `_bulk` request.
    #[serde(default = "batch_docs")]
    pub batch_docs: usize,
    /// Bytes per `_bulk` request (a request is sealed once it reaches this).
    #[serde(default = "batch_bytes")]
    pub batch_bytes: usize,
    /// Send what is buffered at least this often.
    #[serde(default = "flush_interval", deserialize_with = "crate::time::duration")]
    pub flush_interval: Duration,
    /// Above this many buffered bytes the pipeline stops reading input.
    #[serde(default = "max_pending_bytes")]
    pub max_pending_bytes: usize,
    /// Index the access log records too (one document per request,
    /// `event.dataset` `vane.access`, in the same indices as the app logs).
    #[serde(default)]
    pub access_logs: bool,
    /// TLS for an https `url` (system roots unless told otherwise).
    #[serde(default)]
    pub tls: crate::tls::TlsConfig,
}

fn index_prefix() -> String {
    "vane-logs".into()
}
fn batch_docs() -> usize {
    1_000
}
fn batch_bytes() -> usize {
    5 << 20
}
fn flush_interval() -> Duration {
    Duration::from_secs(1)
}
fn max_pending_bytes() -> usize {
    64 << 20
}

/// One document, ready for a bulk body.
#[derive(Debug, Clone)]
struct Doc {
    id: String,
    index: String,
    source: String,
}

impl Doc {
    fn bytes(&self) -> usize {
        self.id.len() + self.index.len() + self.source.len() + 48
    }
}

/// A document the server refused for good, for the dead letters.
#[derive(Debug, Clone)]
pub struct RejectedDoc {
    pub id: String,
    pub reason: String,
    pub source: String,
}

pub struct ElasticSink {
    base: String,
    auth: Option<String>,
    client: reqwest::Client,
    cfg: ElasticConfig,
    open: Vec<Doc>,
    open_bytes: usize,
    /// Sealed batches, oldest first; the front one is being delivered.
    queue: VecDeque<Vec<Doc>>,
    pending_bytes: usize,
    template_installed: bool,
    last_flush: Instant,
    next_try: Option<Instant>,
    attempts: u32,
    /// Documents the server acknowledged as new (2xx).
    pub indexed: u64,
    /// Documents it already had (409 on `create`: sent before a crash or retry).
    pub duplicates: u64,
    pub retries: u64,
    pub rejected: u64,
    /// `_bulk` requests the server answered with 2xx.
    pub batches: u64,
}

enum Sent {
    /// Every item settled; refused ones listed.
    Done(Vec<RejectedDoc>),
    /// Some items must be sent again (429/5xx), the rest settled.
    Partly(Vec<Doc>, Vec<RejectedDoc>),
    /// 413: the batch is too large.
    TooLarge,
    Retry(String, Option<Duration>),
    /// The whole request was refused for good.
    Refused(String),
}

impl ElasticSink {
    pub fn new(cfg: &ElasticConfig) -> Result<Self, String> {
        let auth = crate::secret::read(
            cfg.api_key_env.as_deref(),
            cfg.api_key_file.as_deref(),
            "elasticsearch.api_key",
        )?
        .map(|key| format!("ApiKey {}", key.trim()));
        reqwest::Url::parse(&cfg.url).map_err(|e| format!("elasticsearch.url: {e}"))?;
        if cfg.index_prefix.is_empty()
            || cfg.index_prefix != cfg.index_prefix.to_ascii_lowercase()
            || cfg
                .index_prefix
                .contains(['*', ',', ' ', '/', '\\', '"', '?', '#'])
        {
            return Err(format!(
                "elasticsearch.index_prefix `{}` must be a lowercase index name",
                cfg.index_prefix
            ));
        }
        let client = crate::tls::http::client(
            &cfg.tls,
            crate::tls::http::Timeouts::request(Duration::from_secs(60)),
        )
        .map_err(|e| format!("elasticsearch.tls: {e}"))?;
        Ok(ElasticSink {
            base: cfg.url.trim_end_matches('/').to_string(),
            auth,
            client,
            cfg: cfg.clone(),
            open: Vec::new(),
            open_bytes: 0,
            queue: VecDeque::new(),
            pending_bytes: 0,
            template_installed: false,
            last_flush: Instant::now(),
            next_try: None,
            attempts: 0,
            indexed: 0,
            duplicates: 0,
            retries: 0,
            rejected: 0,
            batches: 0,
        })
    }

    /// Whether everything handed in so far has been acknowledged.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.open.is_empty()
    }

    /// Too much is buffered: the pipeline should stop reading input.
    pub fn is_full(&self) -> bool {
        self.pending_bytes >= self.cfg.max_pending_bytes
    }

    pub fn push_event(&mut self, ev: &LogEvent) {
        let source = to_ecs(ev).to_string();
        self.push(Doc {
            id: doc_id(ev),
            index: index_name(&self.cfg.index_prefix, ev.time_ns),
            source,
        });
    }

    /// An access log record (see [`crate::logs::ecs::access_doc`]).
    pub fn push_access(&mut self, d: &crate::logs::ecs::AccessDoc) {
        self.push(Doc {
            id: d.id.clone(),
            index: index_name(&self.cfg.index_prefix, d.time_ns),
            source: d.source.clone(),
        });
    }

    fn push(&mut self, doc: Doc) {
        let n = doc.bytes();
        self.pending_bytes += n;
        self.open_bytes += n;
        self.open.push(doc);
        if self.open.len() >= self.cfg.batch_docs || self.open_bytes >= self.cfg.batch_bytes {
            self.seal();
        }
    }

    fn seal(&mut self) {
        if !self.open.is_empty() {
            self.queue.push_back(std::mem::take(&mut self.open));
            self.open_bytes = 0;
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        req
    }

    /// Installs the index template (once; retried while the server is down).
    async fn install_template(&mut self) -> Result<(), (String, Option<Duration>)> {
        let name = &self.cfg.index_prefix;
        let resp = self
            .request(reqwest::Method::PUT, &format!("/_index_template/{name}"))
            .header("Content-Type", "application/json")
            .body(index_template(name).to_string())
            .send()
            .await
            .map_err(|e| (crate::tls::http::describe(&e), None))?;
        let status = resp.status();
        if status.is_success() {
            info!(template = %name, "elasticsearch: index template installed");
            self.template_installed = true;
            return Ok(());
        }
        let text = crate::http_body::message(resp).await;
        Err((
            format!("index template: HTTP {status}: {}", clip(&text)),
            None,
        ))
    }

    /// Seals the open batch (at the flush interval, or when `force`) and sends
    /// what is due, in order, until a failure. Returns refused documents.
    pub async fn pump(&mut self, now: Instant, force: bool) -> Vec<RejectedDoc> {
        if force || now - self.last_flush >= self.cfg.flush_interval {
            self.seal();
            self.last_flush = now;
        }
        let mut rejected = Vec::new();
        while !self.queue.is_empty() {
            if self.next_try.is_some_and(|t| Instant::now() < t) {
                break;
            }
            if !self.template_installed
                && let Err((reason, after)) = self.install_template().await
            {
                self.back_off(&reason, after);
                break;
            }
            let Some(batch) = self.queue.pop_front() else {
                break;
            };
            let bytes: usize = batch.iter().map(Doc::bytes).sum();
            match self.send(&batch).await {
                Sent::Done(refused) => {
                    self.pending_bytes -= bytes;
                    self.settled(refused, &mut rejected);
                }
                Sent::Partly(again, refused) => {
                    let again_bytes: usize = again.iter().map(Doc::bytes).sum();
                    self.pending_bytes -= bytes - again_bytes;
                    self.settled(refused, &mut rejected);
                    let n = again.len();
                    self.queue.push_front(again);
                    self.back_off(&format!("{n} items answered 429/5xx"), None);
                    break;
                }
                Sent::TooLarge if batch.len() > 1 => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    info!(
                        docs = first.len() + second.len(),
                        "elasticsearch: 413, splitting the batch"
                    );
                    self.queue.push_front(second);
                    self.queue.push_front(first);
                }
                Sent::TooLarge => {
                    self.pending_bytes -= bytes;
                    let refused = batch
                        .into_iter()
                        .map(|d| RejectedDoc {
                            id: d.id,
                            reason:
                                "HTTP 413: the document alone is larger than the server accepts"
                                    .into(),
                            source: d.source,
                        })
                        .collect();
                    self.settled(refused, &mut rejected);
                }
                Sent::Retry(reason, after) => {
                    self.queue.push_front(batch);
                    self.back_off(&reason, after);
                    break;
                }
                Sent::Refused(reason) => {
                    self.pending_bytes -= bytes;
                    warn!(%reason, docs = batch.len(), "elasticsearch refused a bulk request: dead-lettered");
                    let refused = batch
                        .into_iter()
                        .map(|d| RejectedDoc {
                            id: d.id,
                            reason: reason.clone(),
                            source: d.source,
                        })
                        .collect();
                    self.settled(refused, &mut rejected);
                }
            }
        }
        rejected
    }

    fn settled(&mut self, refused: Vec<RejectedDoc>, out: &mut Vec<RejectedDoc>) {
        if self.attempts > 0 {
            info!(
                attempts = self.attempts,
                "elasticsearch: delivered after retries"
            );
        }
        self.attempts = 0;
        self.next_try = None;
        self.rejected += refused.len() as u64;
        out.extend(refused);
    }

    fn back_off(&mut self, reason: &str, after: Option<Duration>) {
        self.attempts += 1;
        self.retries += 1;
        let (wait, at) = super::next_try(self.attempts, after);
        if self.attempts == 1 || self.attempts.is_power_of_two() {
            warn!(%reason, attempt = self.attempts, wait_ms = wait.as_millis() as u64, queued = self.queue.len(), "elasticsearch write failed; will retry");
        }
        self.next_try = Some(at);
    }

    async fn send(&mut self, batch: &[Doc]) -> Sent {
        let mut body = String::with_capacity(batch.iter().map(Doc::bytes).sum());
        for d in batch {
            let action = serde_json::json!({ "create": { "_index": d.index, "_id": d.id } });
            body.push_str(&action.to_string());
            body.push('\n');
            body.push_str(&d.source);
            body.push('\n');
        }
        let resp = match self
            .request(reqwest::Method::POST, "/_bulk")
            .header("Content-Type", "application/x-ndjson")
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Sent::Retry(crate::tls::http::describe(&e), None),
        };
        let status = resp.status();
        let after = super::retry_after(resp.headers());
        let text = match crate::http_body::up_to(resp, MAX_BULK_RESPONSE).await {
            Ok(c) if c.complete => c.text_lossy(),
            // Past the bound, a smaller batch answers with less.
            Ok(_) => return Sent::TooLarge,
            Err(e) => return Sent::Retry(format!("reading the bulk response: {e}"), None),
        };
        if status.as_u16() == 413 {
            return Sent::TooLarge;
        }
        if status.as_u16() == 429 || status.is_server_error() {
            return Sent::Retry(format!("HTTP {status}: {}", clip(&text)), after);
        }
        if !status.is_success() {
            return Sent::Refused(format!("HTTP {status}: {}", clip(&text)));
        }
        self.batches += 1;
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            return Sent::Retry(format!("bulk response is not JSON: {}", clip(&text)), None);
        };
        let Some(items) = v.get("items").and_then(Value::as_array) else {
            return Sent::Retry(
                format!("bulk response without items: {}", clip(&text)),
                None,
            );
        };
        if items.len() != batch.len() {
            return Sent::Retry(
                format!(
                    "bulk response has {} items for {} documents",
                    items.len(),
                    batch.len()
                ),
                None,
            );
        }
        let mut again = Vec::new();
        let mut refused = Vec::new();
        for (item, doc) in items.iter().zip(batch) {
            let result = item
                .get("create")
                .or_else(|| item.as_object().and_then(|o| o.values().next()));
            let code = result
                .and_then(|r| r.get("status"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            match code {
                200..=299 => self.indexed += 1,
                409 => self.duplicates += 1,
                429 | 500..=599 => again.push(doc.clone()),
                _ => {
                    let err = result.and_then(|r| r.get("error"));
                    let kind = err
                        .and_then(|e| e.get("type"))
                        .and_then(Value::as_str)
                        .unwrap_or("error");
                    let reason = err
                        .and_then(|e| e.get("reason"))
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given");
                    refused.push(RejectedDoc {
                        id: doc.id.clone(),
                        reason: format!("HTTP {code} {kind}: {reason}"),
                        source: doc.source.clone(),
                    });
                }
            }
        }
        if again.is_empty() {
            Sent::Done(refused)
        } else {
            Sent::Partly(again, refused)
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(500).collect()
}
