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

/// One RLP event (`data: {"batch": [...]}`) of envelopes.
fn batch(envelopes: &[serde_json::Value]) -> String {
    format!("data: {}\n\n", serde_json::json!({ "batch": envelopes }))
}

fn log_envelope(
    source_id: &str,
    instance: &str,
    source_type: &str,
    ns: i64,
    line: &str,
) -> serde_json::Value {
    use base64::Engine as _;
    serde_json::json!({
        "timestamp": ns.to_string(),
        "source_id": source_id,
        "instance_id": instance,
        "tags": {"source_type": source_type},
        "log": {"payload": base64::engine::general_purpose::STANDARD.encode(line), "type": "OUT"}
    })
}

/// Serves `body` once as an event stream and keeps the connection open
/// (a reconnect would send it again).
fn serve_stream(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Some(Ok(mut conn)) = listener.incoming().next() {
            let mut req = [0u8; 4096];
            let _ = conn.read(&mut req);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
            let _ = conn.write_all(body.as_bytes());
            std::thread::sleep(Duration::from_secs(120));
        }
    });
    format!("http://{addr}/v2/read?log&gauge")
}

/// The router's access log lines, the apps' output and the gauges on one
/// stream: the router lines give the same windows as the same lines read
/// from a file, the gauges their container metrics, the app lines their
/// events with the stack trace joined.
#[test]
fn router_and_app_logs_and_gauges_arrive_on_one_stream() {
    let base = common::SampleBaseline::from_file();
    // From the stream: the same lines as RTR envelopes, the app's output
    // and a gauge, which come with the last router line as on a live stream.
    let last_ns = base.last_start + 1_000_000;
    let rtr: Vec<_> = base
        .lines
        .iter()
        .map(|l| log_envelope("router-guid", "0", "RTR/0", last_ns, &format!("{l}\n")))
        .collect();
    let app =
        |i: i64, line: &str| log_envelope("shop-guid", "2", "APP/PROC/WEB/2", last_ns + i, line);
    let events = [
        batch(&rtr),
        batch(&[
            app(
                1,
                "2026-11-27 08:00:01,000 ERROR [main] Shop - checkout failed\n",
            ),
            app(2, "java.lang.IllegalStateException: empty cart\n"),
            app(3, "\tat shop.Cart.checkout(Cart.java:42)\n"),
            app(4, "2026-11-27 08:00:02,000 INFO  [main] Shop - retrying\n"),
            serde_json::json!({
                "timestamp": last_ns.to_string(), "source_id": "shop-guid", "instance_id": "2",
                "gauge": {"metrics": {"cpu": {"unit": "percentage", "value": 37.5},
                    "memory": {"unit": "bytes", "value": "104857600"},
                    "memory_quota": {"unit": "bytes", "value": "268435456"}}}
            }),
        ]),
    ]
    .concat();
    let stream_dir = tempfile::tempdir().unwrap();
    let url = serve_stream(events);
    common::finished_ok(common::spawn_to_idle(
        stream_dir.path(),
        &format!("[[sources]]\ntype = \"rlp-gateway\"\nurl = \"{url}\"\n"),
    ));
    let from_stream = read_windows(&stream_dir.path().join("data/windows.jsonl"));
    let (shop, router): (Vec<_>, Vec<_>) =
        from_stream.into_iter().partition(|r| r.app == "shop-guid");
    assert!(
        base.until_last(router) == base.windows,
        "the router lines give the same windows either way"
    );
    let shop_instance = shop
        .iter()
        .find(|r| r.instance.as_deref() == Some("2"))
        .expect("the gauge's instance row");
    assert_eq!(shop_instance.cpu_pct, Some(37.5));
    let events = std::fs::read_to_string(stream_dir.path().join("data/logs.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let failed = events[0]["message"].as_str().unwrap_or_default();
    assert!(
        failed.contains(
            "checkout failed\njava.lang.IllegalStateException: empty cart\n\tat shop.Cart.checkout"
        ),
        "{events:?}"
    );
    assert_eq!(events[1]["log"]["level"], "info", "{events:?}");
    assert_eq!(
        events[0]["service"]["node"]["name"], "2",
        "the envelope's instance"
    );
    assert_ne!(
        events[0]["event"]["id"], events[1]["event"]["id"],
        "each event its own id"
    );
}
