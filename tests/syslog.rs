//! A syslog drain receiver, as Cloud Foundry's drains use it: octet-counted
//! RFC 5424 messages over TCP and over TLS. The router's lines give the
//! same windows as the same lines read from a file, the app's lines their
//! events (a stack trace joined), and a frame that is no syslog message is
//! a dead letter with the reason while its connection goes on.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::read_windows;
use common::tls::Pki;

fn frame(msg: &str) -> Vec<u8> {
    format!("{} {msg}", msg.len()).into_bytes()
}

fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("syslog receiver on {port}: {e}"),
        }
    }
}

#[test]
fn router_and_app_lines_over_tcp_and_tls_are_exact() {
    let base = common::SampleBaseline::from_file();
    let pki = Pki::new();
    let (plain, secure) = (common::free_port(), common::free_port());
    let dir = tempfile::tempdir().unwrap();
    let child = common::spawn_to_idle(
        dir.path(),
        &format!(
            "[[sources]]\ntype = \"syslog\"\nlisten = \"127.0.0.1:{plain}\"\n[[sources]]\ntype = \"syslog\"\nlisten = \"127.0.0.1:{secure}\"\ntls = {{ cert_file = \"{}\", key_file = \"{}\" }}\n",
            pki.server_cert.display(),
            pki.server_key.display()
        ),
    );
    // The router's lines, plain, the way a drain sends them.
    let mut tcp = connect(plain);
    for (i, l) in base.lines.iter().enumerate() {
        let msg = format!(
            "<14>1 2026-12-07T10:00:00.{i:06}Z org.space.router router-guid [RTR/1] - [tags@47450 source_type=\"RTR\"] {l}"
        );
        tcp.write_all(&frame(&msg)).unwrap();
    }
    tcp.flush().unwrap();
    // The app's lines over TLS, with a frame that is no syslog message
    // between them.
    let config = vane::tls::TlsConfig {
        ca_file: Some(pki.ca.clone()),
        ..Default::default()
    }
    .client_config()
    .unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, connect(secure));
    let app = |msg: &str| {
        format!("<14>1 2026-12-07T10:00:01Z org.space.shop shop-guid [APP/PROC/WEB/2] - - {msg}")
    };
    for msg in [
        app("2026-11-27 08:00:01,000 ERROR [main] Shop - checkout failed"),
        "this is not syslog".to_string(),
        app("java.lang.IllegalStateException: empty cart"),
        app("\tat shop.Cart.checkout(Cart.java:42)"),
        app("2026-11-27 08:00:02,000 INFO  [main] Shop - retrying"),
    ] {
        tls.write_all(&frame(&msg)).unwrap();
    }
    tls.flush().unwrap();
    let out = child.wait_with_output().unwrap();
    drop((tcp, tls));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let from_syslog = base.until_last(read_windows(&dir.path().join("data/windows.jsonl")));
    assert!(
        from_syslog == base.windows,
        "the router lines give the same windows either way"
    );
    let events: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("data/logs.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[0]["message"].as_str().unwrap_or_default().contains(
            "checkout failed\njava.lang.IllegalStateException: empty cart\n\tat shop.Cart.checkout"
        ),
        "{events:?}"
    );
    assert_eq!(events[0]["service"]["name"], "shop-guid");
    assert_eq!(events[0]["service"]["node"]["name"], "2");
    let (router_dead, dead): (Vec<_>, Vec<_>) = common::dead_letters(&dir.path().join("data"))
        .into_iter()
        .partition(|d| d["source"] == "syslog:router");
    let what = |d: &serde_json::Value| (d["kind"].clone(), d["line"].clone());
    assert_eq!(
        router_dead.iter().map(what).collect::<Vec<_>>(),
        base.dead.iter().map(what).collect::<Vec<_>>(),
        "the router lines the file run refused, refused alike"
    );
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["line"], "this is not syslog");
    assert_eq!(dead[0]["kind"], "malformed");
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("syslog: pri"),
        "{dead:?}"
    );
}
