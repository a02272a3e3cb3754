//! A certificate authority made by the test, and a TLS terminator built on
//! it: real TLS (rustls, through Vane's own `ServerTls`) in front of a
//! real service that speaks plain HTTP on loopback, as nginx or an ingress
//! would be in front of it in production.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tempfile::TempDir;
use vane::tls::ServerTls;

/// PEM files of a fresh CA, a server certificate it issued for
/// `localhost` and `127.0.0.1`, and a client certificate it issued.
pub struct Pki {
    _dir: TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        Pki::for_names(&["localhost", "127.0.0.1"])
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn for_names(names: &[&str]) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Vane test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let leaf = |names: Vec<String>, cn: &str| {
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) =
            leaf(names.iter().map(|n| n.to_string()).collect(), names[0]);
        let (client_cert, client_key) = leaf(vec!["vane-client".into()], "vane-client");
        Pki {
            ca: write("ca.pem", ca_cert.pem()),
            server_cert: write("server.pem", server_cert),
            server_key: write("server.key", server_key),
            client_cert: write("client.pem", client_cert),
            client_key: write("client.key", client_key),
            _dir: dir,
        }
    }

    /// `tls = { … }` for a Vane config that trusts this CA, optionally
    /// presenting the client certificate.
    pub fn client_table(&self, mutual: bool) -> String {
        let mut table = format!("ca_file = \"{}\"", self.ca.display());
        if mutual {
            table.push_str(&format!(
                ", cert_file = \"{}\", key_file = \"{}\"",
                self.client_cert.display(),
                self.client_key.display()
            ));
        }
        format!("{{ {table} }}")
    }

    fn server_tls(&self, mutual: bool) -> ServerTls {
        ServerTls {
            cert_file: self.server_cert.clone(),
            key_file: self.server_key.clone(),
            client_ca_file: mutual.then(|| self.ca.clone()),
        }
    }
}

/// Accepts TLS on a loopback port and forwards each connection's plain
/// bytes to `upstream`. With `mutual`, clients must present a certificate
/// of the test CA. Runs until the test process ends.
pub fn terminator(pki: &Pki, upstream: SocketAddr, mutual: bool) -> SocketAddr {
    let config = pki.server_tls(mutual).server_config().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A failed handshake (the client distrusts us, or has
                    // no certificate) just ends the connection.
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
    });
    addr
}
