//! Bodies of HTTP answers, read up to a bound: the server decides how much
//! it sends, and `text()` would hold all of it however large.

/// The most a scrape target's exposition may hold (a kubelet's cAdvisor
/// page for a full node is a few MiB).
pub const MAX_SCRAPE_BODY: usize = 64 << 20;

/// The most of an answer kept when only its text for a message or a small
/// JSON document (a token, one process) is wanted.
pub const MAX_SMALL_BODY: usize = 1 << 20;

/// A body read up to a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capped {
    pub body: Vec<u8>,
    /// Whether the whole body fit.
    pub complete: bool,
}

impl Capped {
    /// The body as text, invalid UTF-8 replaced (for messages).
    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads at most `max` bytes of the body; stops reading (and drops the
/// connection with the response) once more arrives.
pub async fn up_to(mut resp: reqwest::Response, max: usize) -> Result<Capped, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = max.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok(Capped {
                body,
                complete: false,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Capped {
        body,
        complete: true,
    })
}

/// The body's text for a message, at most [`MAX_SMALL_BODY`] of it; empty
/// when it cannot be read.
pub async fn message(resp: reqwest::Response) -> String {
    up_to(resp, MAX_SMALL_BODY)
        .await
        .map(|c| c.text_lossy())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Serves one answer of `len` bytes on a loopback port.
    fn serve(len: usize) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
            let _ = conn.write_all(head.as_bytes());
            let block = vec![b'x'; 64 << 10];
            let mut sent = 0;
            while sent < len {
                let n = block.len().min(len - sent);
                if conn.write_all(&block[..n]).is_err() {
                    return; // the reader stopped: as it should past the bound
                }
                sent += n;
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn a_body_past_the_bound_is_cut_and_said_so() {
        let client = crate::tls::http::client(
            &crate::tls::TlsConfig::default(),
            crate::tls::http::Timeouts::request(std::time::Duration::from_secs(10)),
        )
        .unwrap();
        let big = client.get(serve(3 << 20)).send().await.unwrap();
        let capped = up_to(big, 1 << 20).await.unwrap();
        assert_eq!((capped.body.len(), capped.complete), (1 << 20, false));
        let small = client.get(serve(1000)).send().await.unwrap();
        let whole = up_to(small, 1 << 20).await.unwrap();
        assert_eq!((whole.body.len(), whole.complete), (1000, true));
    }
}
