//! A small client of the API, for the CLI (`vane logs`, `vane top`).

use serde::de::DeserializeOwned;

use super::AppView;
use crate::model::Decision;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(
        "{url}: no answer (is `vane run` running with an [api] section listening there? --api or VANE_API sets the address)"
    )]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: unexpected answer: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Talks to one `vane run`'s API at `base` (`http://127.0.0.1:9464`).
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// Where a `vane run` API is and how to reach it.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// `http://127.0.0.1:9464`, or https with `api.tls`.
    pub base: String,
    /// The CA of an https API whose certificate the system does not trust.
    pub ca_file: Option<std::path::PathBuf>,
    /// The bearer token (`api.read_token_env` or the write token).
    pub token: Option<String>,
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

impl Client {
    pub fn new(to: &Endpoint) -> Result<Self, ClientError> {
        let timeouts = crate::tls::http::Timeouts {
            connect: std::time::Duration::from_secs(5),
            request: None,
            read: None,
        };
        let tls = crate::tls::TlsConfig {
            ca_file: to.ca_file.clone(),
            ..crate::tls::TlsConfig::default()
        };
        Ok(Client {
            base: to.base.trim_end_matches('/').to_string(),
            http: crate::tls::http::client(&tls, timeouts)?,
            token: to.token.clone(),
        })
    }

    /// A client of a plain-http API without a token.
    pub fn plain(base: &str) -> Result<Self, ClientError> {
        Client::new(&Endpoint {
            base: base.to_string(),
            ..Endpoint::default()
        })
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.get(&url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|source| ClientError::Http {
            url: url.clone(),
            source,
        })?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = crate::http_body::message(resp).await;
            return Err(ClientError::Status { url, status, body });
        }
        Ok(resp)
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let resp = self.get(path).await?;
        let bytes = resp.bytes().await.map_err(|source| ClientError::Http {
            url: url.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode { url, source })
    }

    pub async fn apps(&self) -> Result<Vec<AppView>, ClientError> {
        self.get_json("/api/v1/apps").await
    }

    pub async fn decisions(&self, limit: usize) -> Result<Vec<Decision>, ClientError> {
        self.get_json(&format!("/api/v1/decisions?limit={limit}"))
            .await
    }

    /// Follows an app's log events; `on_event` gets each ECS document until
    /// it returns false or the server closes the stream.
    pub async fn follow_logs(
        &self,
        app: &str,
        mut on_event: impl FnMut(serde_json::Value) -> bool,
    ) -> Result<(), ClientError> {
        let path = format!("/api/v1/apps/{}/logs?follow=true", encode_segment(app));
        let url = format!("{}{path}", self.base);
        let mut resp = self.get(&path).await?;
        let mut parser = SseParser::default();
        loop {
            let chunk = resp.chunk().await.map_err(|source| ClientError::Http {
                url: url.clone(),
                source,
            })?;
            let Some(chunk) = chunk else {
                return Ok(());
            };
            for ev in parser.push(&chunk) {
                if ev.event != "log" {
                    continue;
                }
                let doc = serde_json::from_str(&ev.data).map_err(|source| ClientError::Decode {
                    url: url.clone(),
                    source,
                })?;
                if !on_event(doc) {
                    return Ok(());
                }
            }
        }
    }

    /// The newest kept log events of an app, without following.
    pub async fn recent_logs(&self, app: &str) -> Result<Vec<serde_json::Value>, ClientError> {
        self.get_json(&format!("/api/v1/apps/{}/logs", encode_segment(app)))
            .await
    }
}

/// Percent-encodes what a path segment cannot hold as is.
fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Splits a `text/event-stream` body, arriving in arbitrary chunks, into events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    let event = if self.event.is_empty() {
                        "message".to_string()
                    } else {
                        std::mem::take(&mut self.event)
                    };
                    out.push(SseEvent {
                        event,
                        data: self.data.join("\n"),
                    });
                }
                self.data.clear();
                self.event.clear();
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment (keep-alive)
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = value.to_string(),
                "data" => self.data.push(value.to_string()),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: log\ndata: {\"a\"").is_empty());
        let evs = p.push(b":1}\n\n: keep-alive\n\nevent: lagged\ndata: 3 skipped\n\n");
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    event: "log".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: "lagged".into(),
                    data: "3 skipped".into()
                }
            ]
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_segment("my app/1"), "my%20app%2F1");
    }
}
