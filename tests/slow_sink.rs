//! An InfluxDB endpoint that holds every write for seconds: the input is
//! read as fast as without it (the sink is a task of its own), and every
//! window row still arrives, once.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Answers every write 204 after `hold`, keeping each body's lines.
fn slow_influx(hold: Duration) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let lines = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let lines = lines.clone();
            std::thread::spawn(move || {
                let (headers, body) = common::read_request(&mut conn);
                let mut text = String::new();
                if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
                    let _ = flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text);
                } else {
                    text = String::from_utf8_lossy(&body).into_owned();
                }
                std::thread::sleep(hold);
                let _ = conn.write_all(
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                lines
                    .lock()
                    .unwrap()
                    .extend(text.lines().map(str::to_string));
            });
        }
    });
    (port, got)
}

#[test]
fn a_stalling_influxdb_holds_up_no_input_and_loses_nothing() {
    let (port, got) = slow_influx(Duration::from_secs(4));
    let (alone, want, _) = common::follow_example_slowly("", &[]);
    let (stalled, rows, _) = common::follow_example_slowly(
        &format!(
            "[influxdb]\nurl = \"http://127.0.0.1:{port}\"\nbucket = \"vane\"\napi = \"v1\"\nflush_interval = \"200ms\"\n"
        ),
        &[],
    );
    assert_eq!(rows, want, "the same windows");
    // Inline, the loop waited 4 s on each write; as a task it waits on none.
    assert!(
        stalled < alone + 3.0,
        "input took {stalled:.2} s with a stalling InfluxDB, {alone:.2} s without"
    );
    // Every row with traffic arrived (a point per row; a rewrite is the same point).
    let points: BTreeSet<String> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|l| {
            l.starts_with("vane_window,")
                && !l.contains(" requests=0i,")
                && !l.contains(",requests=0i")
        })
        .cloned()
        .collect();
    assert_eq!(
        points.len(),
        want.lines().count(),
        "one point per window row"
    );
}
