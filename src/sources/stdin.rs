use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use super::{Chunk, MAX_CHUNK};

/// Standard input, read on its own thread (reads block) and handed over in
/// chunks of whole lines through a bounded channel, so a slow pipeline slows
/// the reader instead of buffering without limit.
pub struct StdinSource {
    rx: Receiver<Chunk>,
    closed: bool,
}

impl StdinSource {
    pub fn spawn() -> Self {
        Self::spawn_reader(std::io::stdin())
    }

    pub fn spawn_reader(input: impl Read + Send + 'static) -> Self {
        let (tx, rx) = sync_channel(4);
        std::thread::spawn(move || read_lines(BufReader::with_capacity(MAX_CHUNK, input), tx));
        StdinSource { rx, closed: false }
    }

    /// `Ok(None)`: nothing new right now; check [`StdinSource::is_closed`].
    pub fn poll(&mut self) -> Option<Chunk> {
        match self.rx.try_recv() {
            Ok(c) => Some(c),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.closed = true;
                None
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

/// Appends up to and including the next `\n`, but at most `max` bytes: a
/// longer line is handed over in parts, which fail to decode loudly (the
/// file source's rule), instead of held whole however long it grows.
fn read_line_bounded(
    input: &mut impl BufRead,
    data: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
    let mut read = 0;
    while read < max {
        let available = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        let room = &available[..available.len().min(max - read)];
        let (n, line_ends) = match memchr::memchr(b'\n', room) {
            Some(i) => (i + 1, true),
            None => (room.len(), false),
        };
        data.extend_from_slice(&room[..n]);
        input.consume(n);
        read += n;
        if line_ends {
            break;
        }
    }
    Ok(read)
}

fn read_lines<R: Read>(mut input: BufReader<R>, tx: SyncSender<Chunk>) {
    let mut offset = 0u64;
    let mut data = Vec::with_capacity(MAX_CHUNK);
    loop {
        match read_line_bounded(&mut input, &mut data, MAX_CHUNK) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot read standard input; taking it as closed");
                break;
            }
        }
        if data.len() >= MAX_CHUNK / 2 || input.buffer().is_empty() {
            let chunk = Chunk {
                source: "stdin".into(),
                file: None,
                offset,
                data: std::mem::take(&mut data),
                key: None,
                time_ns: None,
            };
            offset = chunk.end_offset();
            if tx.send(chunk).is_err() {
                return;
            }
        }
    }
    if !data.is_empty() {
        let _ = tx.send(Chunk {
            source: "stdin".into(),
            file: None,
            offset,
            data,
            key: None,
            time_ns: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line without end is handed over in parts of at most `max` bytes;
    /// what follows it is read as before.
    #[test]
    fn a_line_longer_than_the_bound_comes_in_parts() {
        let text = format!("{}\nnext\n", "x".repeat(25));
        let mut input = BufReader::with_capacity(4, text.as_bytes());
        let mut parts = Vec::new();
        loop {
            let mut data = Vec::new();
            if read_line_bounded(&mut input, &mut data, 10).unwrap() == 0 {
                break;
            }
            assert!(data.len() <= 10);
            parts.push(String::from_utf8(data).unwrap());
        }
        assert_eq!(
            parts,
            [
                "x".repeat(10),
                "x".repeat(10),
                "xxxxx\n".into(),
                "next\n".into()
            ]
        );
    }
}
