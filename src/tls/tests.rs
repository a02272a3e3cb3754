use super::*;

#[test]
fn a_client_needs_both_halves_of_its_identity() {
    let half = TlsConfig {
        cert_file: Some("client.pem".into()),
        ..TlsConfig::default()
    };
    assert_eq!(
        half.problem().as_deref(),
        Some("`cert_file` and `key_file` go together: mutual TLS needs both")
    );
    assert!(matches!(half.client_config(), Err(TlsError::HalfIdentity)));
}

#[test]
fn a_server_name_must_be_a_name() {
    let bad = TlsConfig {
        server_name: Some("not a name!".into()),
        ..TlsConfig::default()
    };
    assert!(bad.problem().unwrap().contains("neither a DNS name"));
    let good = TlsConfig {
        server_name: Some("es.internal".into()),
        ..TlsConfig::default()
    };
    assert_eq!(good.problem(), None);
    assert!(good.client_config().is_ok());
}

#[test]
fn an_unreadable_or_empty_ca_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = TlsConfig {
        ca_file: Some(dir.path().join("nope.pem")),
        ..TlsConfig::default()
    };
    let e = missing.client_config().unwrap_err().to_string();
    assert!(
        e.starts_with("cannot read ca_file ") && e.contains("nope.pem"),
        "{e}"
    );
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let e = TlsConfig {
        ca_file: Some(empty),
        ..TlsConfig::default()
    }
    .client_config()
    .unwrap_err()
    .to_string();
    assert!(e.contains("holds no PEM certificate"), "{e}");
}

#[test]
fn the_default_table_builds_a_client() {
    assert!(
        http::client(
            &TlsConfig::default(),
            http::Timeouts::request(Duration::from_secs(1))
        )
        .is_ok()
    );
}

use std::time::Duration;
