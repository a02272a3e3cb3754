//! A listener that holds at most a fixed number of connections at once:
//! axum's server has no bound of its own, and every open connection (a
//! `vane logs --follow`, a scraper, a client that never finishes its
//! request) costs a task and its buffers. Past the bound, new connections
//! wait in the kernel's backlog until one closes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections the API holds at once.
pub const MAX_CONNECTIONS: usize = 512;

pub struct CappedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

impl CappedListener {
    pub fn new(inner: TcpListener, max: usize) -> Self {
        CappedListener {
            inner,
            permits: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))),
        }
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = Counted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so a permit always comes.
        let permit = match Arc::clone(&self.permits).acquire_owned().await {
            Ok(p) => p,
            Err(_) => std::future::pending().await,
        };
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (
            Counted {
                stream,
                _permit: permit,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection holding its place until it is dropped.
pub struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A TLS handshake not done in this long ends the connection.
const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// [`CappedListener`] with TLS. Handshakes run on tasks of their own, so
/// one slow client never holds up the others; a connection keeps its place
/// under the bound from accept to close, handshake included.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<Counted>, SocketAddr)>,
    addr: io::Result<SocketAddr>,
}

impl TlsListener {
    pub fn new(mut plain: CappedListener, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        let addr = plain.inner.local_addr();
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            use axum::serve::Listener as _;
            loop {
                let (conn, peer) = plain.accept().await;
                if tx.is_closed() {
                    return; // the server is gone
                }
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(conn)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { ready, addr }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<Counted>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match &self.addr {
            Ok(a) => Ok(*a),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use tokio::io::AsyncWriteExt;

    /// With the bound reached, the next connection is accepted only once
    /// one of the held ones closes.
    #[tokio::test]
    async fn a_connection_past_the_bound_waits_for_one_to_close() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut listener = CappedListener::new(tcp, 2);
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        let (first, _) = listener.accept().await;
        let (_second, _) = listener.accept().await;
        let third = tokio::time::timeout(std::time::Duration::from_millis(200), listener.accept());
        assert!(third.await.is_err(), "a third connection over a bound of 2");
        drop(first);
        let third = tokio::time::timeout(std::time::Duration::from_secs(5), listener.accept());
        let (mut third, _) = third.await.expect("accepted once one closed");
        third.shutdown().await.unwrap();
    }
}
