//! Vane's alerts through a real Alertmanager (started by scripts/services.sh on
//! 127.0.0.1:9093, routing to a webhook receiver this test runs on
//! 127.0.0.1:19095): the firing and then the resolved notification arrive with
//! Vane's labels.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{vane, write_config};

fn receiver(got: Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:19095")
        .expect("port 19095 is the receiver scripts/services.sh configures");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (_, body) = common::serve_one(&mut conn);
            if let Ok(v) = serde_json::from_slice(&body) {
                got.lock().unwrap().push(v);
            }
        }
    });
}

/// Gorouter lines for `checkout`, 10 a second from `from_s` to `to_s` (Unix
/// seconds), a fraction `errors` of them 503.
fn traffic(from_s: u64, to_s: u64, errors: f64) -> String {
    let mut out = String::new();
    for (i, ms) in (from_s * 1000..to_s * 1000).step_by(100).enumerate() {
        let status = if (i % 100) as f64 / 100.0 < errors {
            503
        } else {
            200
        };
        let t = chrono::DateTime::from_timestamp_millis(ms as i64)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ");
        out.push_str(&format!(
            "checkout.apps.example.com - [{t}] \"GET /cart HTTP/1.1\" {status} 0 120 \"-\" \"curl\" \"10.0.0.1:5000\" \"10.0.1.1:61000\" vcap_request_id:\"r{i}\" response_time:0.020 app_id:\"checkout-guid\" app_index:\"0\"\n"
        ));
    }
    out
}

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn firing_and_resolved_reach_a_receiver_through_alertmanager() {
    let got = Arc::new(Mutex::new(Vec::new()));
    receiver(got.clone());
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/alerts.yaml"),
        rules.join("alerts.yaml"),
    )
    .unwrap();
    let log = dir.path().join("router.log");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // 60 s of a 30 % 5xx burst: fires (it must hold 20 s).
    std::fs::write(&log, traffic(now - 120, now - 60, 0.3)).unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "rules = [\"{}\"]\n[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"gorouter\"\n[[notifiers]]\ntype = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\n[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1h\"\n",
            rules.display(),
            log.display()
        ),
    );
    let mut child = vane()
        .args(["run", "--exit-when-idle", "20s", "--config"])
        .arg(&cfg)
        .env("VANE_LOG", "warn")
        .spawn()
        .unwrap();
    let wait = |status: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = got.lock().unwrap().iter().any(|p| {
                p["status"] == status
                    && p["alerts"].as_array().is_some_and(|a| {
                        a.iter().any(|a| {
                            a["labels"]["alertname"] == "HighErrorRatio"
                                && a["labels"]["app_name"] == "checkout.apps.example.com"
                                && a["status"] == status
                        })
                    })
            });
            if seen {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {status} notification; received: {:?}",
                got.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("firing");
    // Then 50 s without errors: it resolves (10 s keepFiringFor).
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(traffic(now - 60, now - 10, 0.0).as_bytes())
        .unwrap();
    drop(f);
    wait("resolved");
    let firing = got
        .lock()
        .unwrap()
        .iter()
        .find(|p| p["status"] == "firing")
        .cloned()
        .unwrap();
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["alerts"][0]["labels"]["severity"], "page");
    assert_eq!(firing["alerts"][0]["labels"]["app"], "checkout-guid");
    let _ = child.kill();
    let _ = child.wait();
}
