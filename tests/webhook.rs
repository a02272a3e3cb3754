//! Alert notifications to a generic webhook: the receiver is down for 10 s when
//! the example's alerts fire, then comes up; every notification arrives exactly
//! once, and its HMAC-SHA256 signature verifies.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use common::{vane, write_config};

#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    signature: String,
    body: Vec<u8>,
}

fn receive(listener: TcpListener, got: Arc<Mutex<Vec<Delivery>>>) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let (headers, body) = common::serve_one(&mut conn);
        got.lock().unwrap().push(Delivery {
            id: headers
                .get("x-vane-notification-id")
                .cloned()
                .unwrap_or_default(),
            signature: headers.get("x-vane-signature").cloned().unwrap_or_default(),
            body,
        });
    }
}

#[test]
fn notifications_survive_a_receiver_outage_and_arrive_once() {
    // Reserve a port, then leave it closed: the receiver is "down".
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = write_config(
        dir.path(),
        &format!(
            "rules = [\"{}\"]\n[[sources]]\ntype = \"file\"\npath = \"{}\"\n[[notifiers]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_env = \"VANE_TEST_WEBHOOK_SECRET\"\ngive_up_after = \"2m\"\n[run]\npoll_interval = \"50ms\"\n",
            repo.join("rules").display(),
            repo.join("examples/input/gorouter.log").display()
        ),
    );
    let child = vane()
        .args(["run", "--exit-when-idle", "1s", "--config"])
        .arg(&cfg)
        .env("VANE_TEST_WEBHOOK_SECRET", "s3cret")
        .env("VANE_LOG", "warn")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let got = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let sink = got.clone();
    std::thread::spawn(move || receive(listener, sink));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());

    let alerts = std::fs::read_to_string(dir.path().join("data/alerts.jsonl")).unwrap();
    let notified: Vec<serde_json::Value> = alerts
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["state"] != "pending")
        .collect();
    assert!(
        notified.len() >= 2,
        "the example fires and resolves at least one alert: {alerts}"
    );
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), notified.len(), "each notification exactly once");
    let ids: std::collections::BTreeSet<_> = got.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids.len(), got.len(), "no notification twice");
    for d in &got {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(&d.body);
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(d.signature, format!("sha256={want}"));
        let payload: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(payload["version"], "4");
        assert!(payload["alerts"][0]["labels"]["alertname"].is_string());
    }
    // Firing before resolved, as they happened.
    let first: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(first["status"], "firing");
}

/// A receiver that takes requests and never answers holds up its own
/// notifications only: the input is read as fast as without any notifier,
/// and the windows are the same.
#[test]
fn a_receiver_that_never_answers_holds_up_no_input() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(0usize));
    let seen = requests.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            *seen.lock().unwrap() += 1;
            held.push(conn); // never answered, never closed
        }
    });
    let run = |notifier: &str| {
        common::follow_example_slowly(notifier, &[("VANE_TEST_WEBHOOK_SECRET", "s3cret")])
    };
    let (alone, want, _) = run("");
    let (stalled, got, _) = run(&format!(
        "[[notifiers]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_env = \"VANE_TEST_WEBHOOK_SECRET\"\ngive_up_after = \"3s\"\n"
    ));
    assert!(*requests.lock().unwrap() >= 1, "the alerts were sent");
    if got != want {
        let dir = std::env::temp_dir();
        std::fs::write(dir.join("vane-webhook-want.jsonl"), &want).unwrap();
        std::fs::write(dir.join("vane-webhook-got.jsonl"), &got).unwrap();
        panic!(
            "the windows differ: see vane-webhook-{{want,got}}.jsonl in {}",
            dir.display()
        );
    }
    // Inline, each unanswered attempt stopped the input for the client's
    // 5 s timeout; as a task it stops nothing.
    assert!(
        stalled < alone + 3.0,
        "input took {stalled:.2} s with a silent receiver, {alone:.2} s without"
    );
}
