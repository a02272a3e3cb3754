//! TLS for every connection Vane opens or accepts, built one way from a
//! `tls` table: rustls with the `ring` provider (the one kube already
//! uses, so the binary carries one crypto stack), the system's roots by
//! default, an extra CA, a client certificate for mutual TLS, a name to
//! verify against, and — loudly — no verification at all.

pub mod http;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;

/// The `tls` table of an endpoint (`[elasticsearch] tls = { ca_file = … }`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of CA certificates trusted besides the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the server (mutual TLS), with
    /// `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, when it is not the
    /// URL's host (an endpoint reached by IP address, say).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any certificate. For a lab only: a warning at start and a
    /// gauge on `/metrics` say it is on.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {message}")]
    Read {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{what} {path} holds no PEM certificate")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("`cert_file` and `key_file` go together: mutual TLS needs both")]
    HalfIdentity,
    #[error("`server_name` `{0}` is neither a DNS name nor an IP address")]
    BadServerName(String),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("{0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

impl TlsConfig {
    /// What is wrong with the table itself, without reading any file.
    pub fn problem(&self) -> Option<String> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Some(TlsError::HalfIdentity.to_string());
        }
        let name = self.server_name.as_deref()?;
        ServerName::try_from(name)
            .err()
            .map(|_| TlsError::BadServerName(name.to_string()).to_string())
    }

    /// The rustls client configuration this table describes.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = provider();
        if self.insecure_skip_verify {
            INSECURE_CLIENTS.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "tls.insecure_skip_verify is on: an endpoint's certificate is not checked, anyone on the path can read and change what is sent"
            );
        }
        let verifier = verify::server_verifier(self, roots(self.ca_file.as_deref())?, &provider)?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        Ok(match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(certificates("cert_file", cert)?, private_key(key)?)?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsError::HalfIdentity),
        })
    }
}

/// A listener's TLS (`[api] tls`, a syslog receiver): its certificate and
/// key, and, for mutual TLS, the CA its clients' certificates chain to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Clients must present a certificate issued by this CA.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

impl ServerTls {
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca_file {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates("client_ca_file", ca)? {
                    roots.add(cert)?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        Ok(builder.with_single_cert(
            certificates("cert_file", &self.cert_file)?,
            private_key(&self.key_file)?,
        )?)
    }
}

/// Clients built without certificate checks (`insecure_skip_verify`), for
/// `/metrics`: an operator sees it without reading the config.
static INSECURE_CLIENTS: AtomicUsize = AtomicUsize::new(0);

pub fn insecure_clients() -> usize {
    INSECURE_CLIENTS.load(Ordering::Relaxed)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's roots (read once: a few hundred files on Debian), plus
/// the endpoint's own CA.
fn roots(ca_file: Option<&Path>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    // A system root that does not parse is skipped, as every TLS client does.
    store.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = ca_file {
        for cert in certificates("ca_file", path)? {
            store.add(cert)?;
        }
    }
    Ok(Arc::new(store))
}

/// The certificates of the system's trust store (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` are honoured); none is a warning, not an error: an
/// endpoint with its own `ca_file` still works.
pub fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            tracing::warn!(
                errors = ?found.errors,
                "no system CA certificates found: https endpoints need a `tls.ca_file`"
            );
        }
        found.certs
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Read {
            what,
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Read {
        what: "key_file",
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
