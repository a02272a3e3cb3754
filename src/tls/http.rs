//! The one way an outbound HTTP client is built (sinks, notifiers, the
//! orchestrators, scrapes, the RLP gateway, `vane top`): reqwest over the
//! endpoint's rustls configuration, with bounded waits.

use std::error::Error as _;
use std::time::Duration;

use super::{TlsConfig, TlsError};

/// How long a client waits. Every client bounds connecting; a request
/// bound covers the whole exchange, a read bound the silence between two
/// reads of a stream that never ends (server-sent events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Option<Duration>,
    pub read: Option<Duration>,
}

/// Connecting takes at most this long unless a shorter request bound says so.
const CONNECT: Duration = Duration::from_secs(10);

impl Timeouts {
    /// One request and its answer within `total`.
    pub fn request(total: Duration) -> Self {
        Timeouts {
            connect: total.min(CONNECT),
            request: Some(total),
            read: None,
        }
    }

    /// A stream read for as long as it keeps talking.
    pub fn stream(connect: Duration, silence: Duration) -> Self {
        Timeouts {
            connect,
            request: None,
            read: Some(silence),
        }
    }
}

/// An HTTP client speaking TLS as `tls` says (system roots when the table
/// is empty); plain http:// URLs work with it too.
pub fn client(tls: &TlsConfig, timeouts: Timeouts) -> Result<reqwest::Client, TlsError> {
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls.client_config()?)
        .connect_timeout(timeouts.connect);
    if let Some(total) = timeouts.request {
        builder = builder.timeout(total);
    }
    if let Some(silence) = timeouts.read {
        builder = builder.read_timeout(silence);
    }
    builder.build().map_err(|e| TlsError::Http(describe(&e)))
}

/// A transport error with its causes: reqwest's own message is only
/// "error sending request for url (…)", the reason (a refused connection,
/// `invalid peer certificate: UnknownIssuer`) is in its sources.
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let part = c.to_string();
        // hyper repeats its inner error in its own message at times.
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}
