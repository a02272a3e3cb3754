//! `vane run` scraping a Prometheus endpoint (a stand-in kubelet on loopback,
//! serving the real kubelet sample with a growing CPU counter): container
//! CPU and memory land in the windows.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{read_windows, shared_data, vane};

/// Serves the sample; each request adds 0.05 core-seconds to the CPU counter.
fn kubelet(stop: Arc<AtomicBool>, served: Arc<AtomicU32>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let sample = std::fs::read_to_string(shared_data(
        "container-metrics/kubelet_metrics_resource_sample.prom",
    ))
    .unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            conn.set_nonblocking(false).unwrap();
            let mut req = [0u8; 4096];
            let _ = conn.read(&mut req);
            let k = served.fetch_add(1, Ordering::Relaxed);
            // Without sample timestamps the scrape time is the event time.
            let body: String = sample
                .lines()
                .map(|l| {
                    if l.starts_with('#') {
                        return format!("{l}\n");
                    }
                    let mut parts: Vec<&str> = l.rsplitn(3, ' ').collect();
                    parts.reverse();
                    let (series, value) = (parts[0], parts[1]);
                    let value = if series.starts_with("container_cpu_usage_seconds_total") {
                        format!("{}", value.parse::<f64>().unwrap() + 0.05 * f64::from(k))
                    } else {
                        value.to_string()
                    };
                    format!("{series} {value}\n")
                })
                .collect();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/metrics/resource")
}

#[test]
fn scraped_container_metrics_land_in_windows() {
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU32::new(0));
    let url = kubelet(stop.clone(), served.clone());
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(
        dir.path(),
        &format!(
            "[window]\nlength = \"1s\"\nallowed_lateness = \"0s\"\nidle_expiry = \"1m\"\n[[sources]]\ntype = \"scrape\"\ntargets = [\"{url}\"]\ninterval = \"200ms\"\n[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1h\"\n"
        ),
    );
    let mut child = vane()
        .args(["run", "--config"])
        .arg(&cfg)
        .env("VANE_LOG", "warn")
        .spawn()
        .unwrap();
    let windows_file = dir.path().join("data/windows.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let rows = read_windows(&windows_file);
        if rows
            .iter()
            .filter(|r| r.cpu_pct.is_some() && r.instance.is_some())
            .count()
            >= 2
        {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "no CPU windows; {} scrapes served",
            served.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let r = rows
        .iter()
        .find(|r| r.cpu_pct.is_some() && r.instance.is_some())
        .unwrap();
    assert_eq!(r.app, "kube-system/coredns");
    assert_eq!(r.instance.as_deref(), Some("coredns-558bd4d5db-4dpjz"));
    assert_eq!(r.memory_bytes, Some(12_533_760.0));
    // 0.05 core-seconds every ~200 ms is about a quarter of a core.
    let cpu = r.cpu_pct.unwrap();
    assert!((5.0..=80.0).contains(&cpu), "cpu {cpu}");
}

/// A kubelet that takes the connection and never answers: the scrape waits
/// for its timeout on its own task, the file input goes on meanwhile.
#[test]
fn a_target_that_never_answers_holds_up_no_input() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let seen = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            seen.fetch_add(1, Ordering::Relaxed);
            held.push(conn); // never answered, never closed
        }
    });
    let (alone, want, _) = common::follow_example_slowly("", &[]);
    let (stalled, got, _) = common::follow_example_slowly(
        &format!(
            "[[sources]]\ntype = \"scrape\"\ntargets = [\"http://{addr}/metrics/resource\"]\ninterval = \"5s\"\n"
        ),
        &[],
    );
    assert!(
        accepted.load(Ordering::Relaxed) >= 1,
        "the target was scraped"
    );
    assert_eq!(got, want, "the same windows with a silent scrape target");
    // Awaited inline, the first scrape alone stopped the input for the
    // client's 5 s timeout.
    assert!(
        stalled < alone + 3.0,
        "input took {stalled:.2} s with a silent target, {alone:.2} s without"
    );
}
