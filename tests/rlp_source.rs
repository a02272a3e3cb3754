//! `vane run` reading an RLP-gateway-style server-sent event stream on
//! loopback: the app container metrics in it land in the windows; the
//! platform envelopes of the real sample around them are skipped.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{read_windows, shared_data, vane, write_config};

fn gateway() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let platform = std::fs::read_to_string(shared_data(
        "container-metrics/loggregator_rlp_gateway_sse_sample.txt",
    ))
    .unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut req = [0u8; 4096];
            let _ = conn.read(&mut req);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n");
            let _ = conn.write_all(platform.as_bytes());
            // One event that is not UTF-8, one that is no envelope batch.
            let _ = conn.write_all(b"data: \xff\xfe{}\n\ndata: not json\n\n");
            for i in 0..60u32 {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                let event = format!(
                    "data: {{\"batch\":[{{\"timestamp\":\"{now}\",\"source_id\":\"4a5c2f0e-app\",\"instance_id\":\"{}\",\"gauge\":{{\"metrics\":{{\"cpu\":{{\"unit\":\"percentage\",\"value\":{}}},\"memory\":{{\"unit\":\"bytes\",\"value\":\"104857600\"}},\"memory_quota\":{{\"unit\":\"bytes\",\"value\":\"268435456\"}}}}}}}}]}}\n\n",
                    i % 2,
                    20 + i % 2 * 20
                );
                if conn.write_all(event.as_bytes()).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    format!("http://{addr}/v2/read?gauge")
}

#[test]
fn stream_metrics_land_in_windows() {
    let url = gateway();
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n[window]\nlength = \"1s\"\nallowed_lateness = \"0s\"\nidle_expiry = \"1m\"\n[[sources]]\ntype = \"rlp-gateway\"\nurl = \"{url}\"\n[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1h\"\n"
        ),
    );
    let mut child = vane()
        .args(["run", "--config"])
        .arg(&cfg)
        .env("VANE_LOG", "warn")
        .spawn()
        .unwrap();
    let file = dir.path().join("data/windows.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let rows = read_windows(&file);
        if rows
            .iter()
            .any(|r| r.instance.is_none() && r.cpu_pct.is_some())
        {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "no windows with CPU from the stream"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // What the stream carried and could not be read is counted by reason.
    let metrics = common::store::get(&format!("http://127.0.0.1:{port}/metrics"));
    let lost = |reason: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("vane_lost_total{{reason=\"{reason}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(lost("rlp_not_utf8"), Some(1), "{metrics}");
    assert!(lost("rlp_undecodable").is_some_and(|n| n >= 1), "{metrics}");
    let app = rows
        .iter()
        .find(|r| r.instance.is_none() && r.cpu_pct.is_some())
        .unwrap();
    assert_eq!(app.app, "4a5c2f0e-app");
    // Instance 0 at 20 %, instance 1 at 40 %: the app's mean lies between.
    let cpu = app.cpu_pct.unwrap();
    assert!((20.0..=40.0).contains(&cpu), "{cpu}");
    assert!(
        rows.iter()
            .filter(|r| r.instance.is_some())
            .all(|r| r.memory_pct.is_none_or(|m| (m - 39.0625).abs() < 1e-9))
    );
    assert!(
        rows.iter().all(|r| r.app == "4a5c2f0e-app"),
        "platform envelopes (doppler) are not apps"
    );
}
