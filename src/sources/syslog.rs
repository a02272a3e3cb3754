//! A syslog drain receiver (`type = "syslog"`): RFC 5424 messages over TCP,
//! octet-counted (RFC 6587: `LEN SP MSG`) as Cloud Foundry's drains send
//! them, or one per line; optionally over TLS (RFC 5425). Router lines
//! (`[RTR/N]`) go to a gorouter source, the rest to an app-log source
//! keyed by app and instance; a frame that is not a syslog message is a
//! dead letter with the reason, and its connection goes on.
//!
//! Bounded: at most `max_connections` at once (more wait in the kernel's
//! backlog), a frame of at most [`MAX_FRAME`] bytes per connection, bounded
//! channels to the pipeline (a slow pipeline slows the senders through
//! TCP). At most once: a push source has no position to resume from.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::{LineSender, PushedLines};
use crate::decode::syslog::{SyslogLine, parse};

/// The longest frame taken; a longer one is a dead letter (its start) and
/// the rest of it is skipped.
pub const MAX_FRAME: usize = 256 << 10;
/// Digits a frame length may have (MAX_FRAME has 6).
const MAX_LENGTH_DIGITS: usize = 9;
/// A TLS handshake not done in this long ends the connection.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// What the receiver hands the pipeline: router lines, and app lines
/// (which also carry the frames that were no syslog message).
pub struct SyslogSource {
    pub router: PushedLines,
    pub app: PushedLines,
    pub addr: std::net::SocketAddr,
}

#[derive(Clone)]
struct Outlets {
    router: LineSender,
    app: LineSender,
}

impl SyslogSource {
    /// Listens on `listen` (inside the runtime: the accepting task is
    /// spawned on it).
    pub fn bind(
        listen: &str,
        tls: Option<&crate::tls::ServerTls>,
        max_connections: usize,
    ) -> anyhow::Result<SyslogSource> {
        let acceptor = match tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
                t.server_config()?,
            ))),
            None => None,
        };
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let (router, router_lines) = PushedLines::channel("syslog:router");
        let (app, app_lines) = PushedLines::channel("syslog:app");
        let out = Outlets { router, app };
        let permits = Arc::new(Semaphore::new(max_connections.clamp(1, 65_536)));
        tokio::spawn(accept(listener, acceptor, permits, out));
        info!(%addr, tls = tls.is_some(), "syslog receiver listening");
        Ok(SyslogSource {
            router: router_lines,
            app: app_lines,
            addr,
        })
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    permits: Arc<Semaphore>,
    out: Outlets,
) {
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "syslog accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let out = out.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let peer = peer.to_string();
            match acceptor {
                None => serve(tcp, &peer, &out).await,
                Some(a) => match tokio::time::timeout(HANDSHAKE, a.accept(tcp)).await {
                    Ok(Ok(tls)) => serve(tls, &peer, &out).await,
                    Ok(Err(e)) => debug!(%peer, error = %e, "syslog TLS handshake failed"),
                    Err(_) => debug!(%peer, "syslog TLS handshake timed out"),
                },
            }
        });
    }
}

/// Reads frames until the peer closes (or the pipeline is gone).
async fn serve(mut conn: impl AsyncRead + Unpin, peer: &str, out: &Outlets) {
    let mut frames = Frames::default();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match conn.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                debug!(%peer, error = %e, "syslog connection ended");
                return;
            }
        };
        for frame in frames.push(&buf[..n]) {
            if !hand_over(frame, peer, out).await {
                return;
            }
        }
    }
}

/// One frame to where it belongs; `false` once the pipeline is gone.
async fn hand_over(frame: Frame, peer: &str, out: &Outlets) -> bool {
    let (reason, bytes) = match frame {
        Frame::Message(bytes) => match std::str::from_utf8(&bytes) {
            Ok(text) => match parse(text) {
                Ok(line) => return route(line, out).await,
                Err(e) => (format!("syslog: {e}"), bytes),
            },
            Err(e) => (
                format!("syslog: invalid UTF-8 at byte {}", e.valid_up_to()),
                bytes,
            ),
        },
        Frame::Bad(reason, start) => (reason, start),
    };
    debug!(%peer, %reason, "syslog frame rejected");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    out.app
        .reject(format!("{reason} (from {peer})"), text)
        .await
}

async fn route(line: SyslogLine, out: &Outlets) -> bool {
    if line.router {
        return out.router.lines([line.message.as_str()]).await;
    }
    let key = match &line.instance {
        Some(i) => format!("{}/{i}", line.app),
        None => line.app.clone(),
    };
    let time_ns = line.time_ns.unwrap_or_else(now_ns);
    out.app.line_of(key, time_ns, &line.message).await
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A frame cut from a connection's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Message(Vec<u8>),
    /// Not a frame: why, and the bytes it began with.
    Bad(String, Vec<u8>),
}

/// RFC 6587 framing: octet counting (`123 <14>1 …`) or, when a message
/// starts without a length (`<14>1 …`), one message per line. At most
/// [`MAX_FRAME`] bytes are held whatever the peer sends.
#[derive(Default)]
pub struct Frames {
    pending: Vec<u8>,
    /// Bytes of an over-long frame still to drop.
    skip: usize,
}

impl Frames {
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        if self.skip > 0 {
            let n = self.skip.min(bytes.len());
            self.skip -= n;
            bytes = &bytes[n..];
        }
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(cut) = next_frame(&self.pending[start..]) {
            start += cut.used;
            self.skip = cut.skip;
            out.push(cut.frame);
            if self.skip > 0 {
                break; // the rest of an over-long frame comes later
            }
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_FRAME + 16 {
            // No frame boundary in sight: a line past the bound.
            let start: Vec<u8> = self.pending.iter().take(200).copied().collect();
            out.push(Frame::Bad(
                format!("syslog: no frame within {MAX_FRAME} bytes"),
                start,
            ));
            self.pending.clear();
        }
        out
    }
}

/// A frame cut from the front of the pending bytes.
struct Cut {
    frame: Frame,
    /// Bytes of the pending data it used.
    used: usize,
    /// Bytes still to come that belong to it (an over-long frame).
    skip: usize,
}

impl Cut {
    fn whole(frame: Frame, used: usize) -> Option<Cut> {
        Some(Cut {
            frame,
            used,
            skip: 0,
        })
    }
}

/// The next frame of `data`; `None` until one is complete.
fn next_frame(data: &[u8]) -> Option<Cut> {
    // Separators between frames (a sender may end frames with a newline).
    let lead = data
        .iter()
        .take_while(|b| matches!(b, b'\n' | b'\r' | b' '))
        .count();
    let data = &data[lead..];
    let first = *data.first()?;
    if first == b'<' {
        let end = memchr::memchr(b'\n', data)?;
        return Cut::whole(Frame::Message(data[..end].to_vec()), lead + end + 1);
    }
    let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == data.len() && digits <= MAX_LENGTH_DIGITS {
        return None; // the length is still arriving
    }
    let space = digits;
    if space == 0 || space > MAX_LENGTH_DIGITS || data[space] != b' ' {
        // Neither a length nor a message: dropped up to its newline (the
        // only place a stream without lengths can be picked up again).
        let end = memchr::memchr(b'\n', data)? + 1;
        let start = data[..end.min(200)].to_vec();
        let why = "syslog: a frame must start with its length (at most 9 digits) or `<`";
        return Cut::whole(Frame::Bad(why.to_string(), start), lead + end);
    }
    let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
    let body = space + 1;
    if len > MAX_FRAME {
        let have = (data.len() - body).min(len);
        let start = data[body..body + have.min(200)].to_vec();
        let why = format!("syslog: a frame of {len} bytes is over the {MAX_FRAME}-byte bound");
        return Some(Cut {
            frame: Frame::Bad(why, start),
            used: lead + body + have,
            skip: len - have,
        });
    }
    let end = body.checked_add(len)?;
    if data.len() < end {
        return None;
    }
    Cut::whole(Frame::Message(data[body..end].to_vec()), lead + end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(frames: Vec<Frame>) -> Vec<String> {
        frames
            .into_iter()
            .map(|f| match f {
                Frame::Message(m) => String::from_utf8(m).unwrap(),
                Frame::Bad(why, _) => format!("BAD {why}"),
            })
            .collect()
    }

    #[test]
    fn octet_counted_frames_split_anywhere_come_out_whole() {
        let stream = b"11 <14>1 - a b11 <14>1 - c d\n<14>1 - e f\n";
        for cut in 0..stream.len() {
            let mut f = Frames::default();
            let mut got = messages(f.push(&stream[..cut]));
            got.extend(messages(f.push(&stream[cut..])));
            assert_eq!(
                got,
                ["<14>1 - a b", "<14>1 - c d", "<14>1 - e f"],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn bad_frames_are_named_and_the_stream_goes_on() {
        let mut f = Frames::default();
        let got = messages(f.push(b"hello there\n6 <1>1 x"));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with("BAD syslog: a frame must start"),
            "{got:?}"
        );
        assert_eq!(got[1], "<1>1 x");
        let mut f = Frames::default();
        let huge = format!("{} ", MAX_FRAME + 1);
        let mut got = messages(f.push(huge.as_bytes()));
        got.extend(messages(f.push(&vec![b'x'; MAX_FRAME + 1])));
        got.extend(messages(f.push(b"3 abc")));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("over the"), "{got:?}");
        assert_eq!(got[1], "abc");
    }

    #[test]
    fn a_peer_without_frame_boundaries_holds_a_bounded_buffer() {
        let mut f = Frames::default();
        let mut bad = 0;
        for _ in 0..20 {
            bad += f.push(&vec![b'<'; 64 << 10]).len();
            assert!(f.pending.len() <= MAX_FRAME + 16 + (64 << 10));
        }
        assert!(bad >= 1);
    }
}
