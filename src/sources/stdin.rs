use std::io::{BufRead, BufReader, Read};
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

fn read_lines<R: Read>(mut input: BufReader<R>, tx: SyncSender<Chunk>) {
    let mut offset = 0u64;
    let mut data = Vec::with_capacity(MAX_CHUNK);
    loop {
        match input.read_until(b'\n', &mut data) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
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
