//! Decoders: one pure function per input format, from a line to an
//! [`AccessRecord`] or a [`DecodeError`] that says which field failed, where and why.

mod combined;
mod gorouter;
mod loggregator;
mod loggregator_log;
mod mapping;
mod nginx_json;
pub mod prometheus;
mod scan;
mod structure;
pub mod syslog;
pub mod text;

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::AccessRecord;

pub use combined::{decode_combined, decode_ingress_nginx};
pub use gorouter::decode_gorouter;
pub use loggregator::{LogLine, StreamEvent, decode_loggregator, decode_stream_event};
pub use mapping::Mapping;
pub use nginx_json::decode_nginx_json;

/// Why a line did not decode: the field, the byte column (0-based) where the
/// decoder stopped, and what it expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason} (column {column})")]
pub struct DecodeError {
    pub field: &'static str,
    pub column: usize,
    pub reason: Cow<'static, str>,
}

impl DecodeError {
    pub fn new(field: &'static str, column: usize, reason: impl Into<Cow<'static, str>>) -> Self {
        DecodeError {
            field,
            column,
            reason: reason.into(),
        }
    }
}

/// The access-log formats Vane reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Decide from the first line that decodes, then keep that format for the source.
    Auto,
    /// Cloud Foundry gorouter (RTR) access log, every generation since 2016.
    Gorouter,
    /// nginx `log_format ... escape=json` as shipped in `deploy/nginx/vane-json.conf`.
    NginxJson,
    /// NCSA combined (Apache and nginx default), optionally followed by the request time in seconds.
    Combined,
    /// Kubernetes ingress-nginx `upstreaminfo`.
    IngressNginx,
    /// Cloud Foundry Loggregator v2 envelopes in JSON (RLP gateway SSE or one per line):
    /// app container metrics (CPU, memory, disk).
    Loggregator,
    /// Application logs (log4j/logback-style, JSON lines, plain): joined into
    /// events with their stack traces, indexed rather than windowed.
    AppLog,
}

impl Format {
    pub const CONCRETE: [Format; 4] = [
        Format::Gorouter,
        Format::NginxJson,
        Format::IngressNginx,
        Format::Combined,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Gorouter => "gorouter",
            Format::NginxJson => "nginx-json",
            Format::Combined => "combined",
            Format::IngressNginx => "ingress-nginx",
            Format::Loggregator => "loggregator",
            Format::AppLog => "app-log",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Format::Auto, Format::Loggregator, Format::AppLog].into_iter().chain(Format::CONCRETE).find(|f| f.name() == s).ok_or_else(|| {
            format!("unknown format `{s}`: one of auto, gorouter, nginx-json, combined, ingress-nginx, loggregator, app-log")
        })
    }
}

/// Guesses the format of one line from its shape. Cheap: looks at a few bytes
/// and markers, never decodes.
pub fn detect(line: &str) -> Option<Format> {
    let trimmed = line.trim_start();
    if trimmed.starts_with("data:")
        || (trimmed.starts_with('{')
            && (trimmed.contains("\"gauge\"")
                || trimmed.contains("\"batch\"")
                || trimmed.contains("\"source_id\"")
                || trimmed.contains("\"sourceId\"")))
    {
        return Some(Format::Loggregator);
    }
    if trimmed.starts_with('{') {
        return Some(Format::NginxJson);
    }
    if !trimmed.contains(" [") {
        return None;
    }
    if [
        " vcap_request_id:",
        " x_forwarded_for:",
        " app_id:",
        " response_time:",
    ]
    .iter()
    .any(|m| trimmed.contains(m))
    {
        return Some(Format::Gorouter);
    }
    // ingress-nginx appends `request_length request_time [upstream_name]` after the user agent.
    let after_request = trimmed.split_once("] \"")?.1;
    let tail = after_request.rsplit_once('"').map_or("", |(_, t)| t);
    if tail.contains(" [") {
        return Some(Format::IngressNginx);
    }
    Some(Format::Combined)
}

/// Decodes one line in a known format.
pub fn decode<'a>(
    format: Format,
    line: &'a str,
    mapping: &'a Mapping,
) -> Result<AccessRecord<'a>, DecodeError> {
    match format {
        Format::Gorouter => decode_gorouter(line, mapping),
        Format::NginxJson => decode_nginx_json(line, mapping),
        Format::Combined => decode_combined(line, mapping),
        Format::IngressNginx => decode_ingress_nginx(line, mapping),
        Format::Loggregator => Err(DecodeError::new(
            "line",
            0,
            "Loggregator envelopes carry container metrics, not requests",
        )),
        Format::AppLog => Err(DecodeError::new(
            "line",
            0,
            "app log lines are events, not requests",
        )),
        Format::Auto => match detect(line) {
            Some(f) => decode(f, line, mapping),
            None => Err(DecodeError::new(
                "line",
                0,
                "matches no known access-log format",
            )),
        },
    }
}

/// A per-source decoder: an explicit format always wins; `auto` settles on the
/// format of the first line that decodes and keeps it, so one odd line cannot
/// switch a source's format.
#[derive(Debug, Clone)]
pub struct SourceDecoder {
    configured: Format,
    settled: Cell<Option<Format>>,
    mapping: Mapping,
}

impl SourceDecoder {
    pub fn new(format: Format, mapping: Mapping) -> Self {
        let settled = Cell::new((format != Format::Auto).then_some(format));
        SourceDecoder {
            configured: format,
            settled,
            mapping,
        }
    }

    pub fn format(&self) -> Format {
        self.settled.get().unwrap_or(self.configured)
    }

    /// Whether this source carries app logs (configured so: never guessed).
    pub fn is_app_log(&self) -> bool {
        self.configured == Format::AppLog
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Whether this source carries container metrics rather than requests
    /// (settling `auto` on the first line that shows which).
    pub fn is_metrics(&self, line: &str) -> bool {
        match self.settled.get() {
            Some(f) => f == Format::Loggregator,
            None if detect(line) == Some(Format::Loggregator) => {
                self.settled.set(Some(Format::Loggregator));
                true
            }
            None => false,
        }
    }

    pub fn decode<'a>(&'a self, line: &'a str) -> Result<AccessRecord<'a>, DecodeError> {
        if let Some(f) = self.settled.get() {
            return decode(f, line, &self.mapping);
        }
        let guess = detect(line)
            .ok_or_else(|| DecodeError::new("line", 0, "matches no known access-log format"))?;
        let rec = decode(guess, line, &self.mapping)?;
        self.settled.set(Some(guess));
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format() {
        let gr = r#"h - [2017-03-16T13:28:25.166+0000] "GET / HTTP/1.1" 200 0 1 "-" "-" "1:1" "2:2" x_forwarded_for:"-" vcap_request_id:"x" response_time:0.1 app_id:"a" app_index:"1""#;
        assert_eq!(detect(gr), Some(Format::Gorouter));
        assert_eq!(detect(r#"{"msec":"1.0"}"#), Some(Format::NginxJson));
        let comb = r#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "curl""#;
        assert_eq!(detect(comb), Some(Format::Combined));
        let ing = r#"1.2.3.4 - - [07/Feb/2020:11:48:51 +0000] "POST /p HTTP/1.1" 200 59 "-" "curl/7.54.0" 89 0.001 [default-web-8080] [] 172.17.0.5:8080 59 0.000 200 529a"#;
        assert_eq!(detect(ing), Some(Format::IngressNginx));
        assert_eq!(detect("hello world"), None);
        assert_eq!(detect(r#"data: {"batch":[]}"#), Some(Format::Loggregator));
        assert_eq!(
            detect(r#"{"source_id":"a","gauge":{}}"#),
            Some(Format::Loggregator)
        );
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::CONCRETE {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
        }
        assert!("apache".parse::<Format>().unwrap_err().contains("one of"));
    }
}
