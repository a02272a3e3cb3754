//! How a Kafka client reaches a secured cluster, as first-class keys of a
//! `kafka` source (`security_protocol`, `sasl_*`, `tls`) rather than raw
//! librdkafka settings: the password comes from a variable or a file, never
//! from the TOML, and settings that would carry a secret are refused in
//! `options`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::tls::TlsConfig;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Plaintext => "plaintext",
            Protocol::Ssl => "ssl",
            Protocol::SaslPlaintext => "sasl_plaintext",
            Protocol::SaslSsl => "sasl_ssl",
        }
    }

    fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// SASL PLAIN or SCRAM (librdkafka has both built in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub username: String,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaSecurity {
    pub protocol: Protocol,
    pub sasl: Option<Sasl>,
    pub tls: Option<TlsConfig>,
}

const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// librdkafka settings that hold a secret: refused in `options`.
const SECRET_SETTINGS: [&str; 5] = [
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.key.pem",
    "sasl.oauthbearer.client.secret",
];

impl KafkaSecurity {
    /// What is wrong with the keys as written (no file or variable read).
    pub fn problem(&self) -> Option<String> {
        let p = self.protocol;
        if self.tls.is_some() && !p.tls() {
            return Some(format!(
                "`tls` needs `security_protocol = \"ssl\"` or `\"sasl_ssl\"` (it is `{}`)",
                p.name()
            ));
        }
        match (&self.sasl, p.sasl()) {
            (Some(_), false) => {
                return Some(format!(
                    "`sasl_*` keys need `security_protocol = \"sasl_ssl\"` or `\"sasl_plaintext\"` (it is `{}`)",
                    p.name()
                ));
            }
            (None, true) => {
                return Some("`sasl_mechanism`, `sasl_username` and `sasl_password_env` (or `_file`) are needed with a sasl_ protocol".into());
            }
            (Some(s), true) if !MECHANISMS.contains(&s.mechanism.as_str()) => {
                return Some(format!(
                    "`sasl_mechanism` `{}` is not one of {}",
                    s.mechanism,
                    MECHANISMS.join(", ")
                ));
            }
            (Some(s), true) if s.password_env.is_none() && s.password_file.is_none() => {
                return Some("`sasl_password_env` or `sasl_password_file` is needed (never the password itself)".into());
            }
            _ => {}
        }
        let tls = self.tls.as_ref()?;
        if tls.server_name.is_some() {
            return Some("`tls.server_name` is not supported for Kafka: the broker's advertised name is verified".into());
        }
        tls.problem()
    }

    /// The librdkafka settings, the password read now.
    pub fn settings(&self) -> Result<Vec<(&'static str, String)>, String> {
        if let Some(problem) = self.problem() {
            return Err(problem);
        }
        let mut out = vec![("security.protocol", self.protocol.name().to_string())];
        if self.protocol.tls() {
            let tls = self.tls.clone().unwrap_or_default();
            // Without a CA file, the system's store where OpenSSL finds it.
            let ca = tls
                .ca_file
                .map_or_else(|| "probe".to_string(), |p| p.display().to_string());
            out.push(("ssl.ca.location", ca));
            if let (Some(cert), Some(key)) = (tls.cert_file, tls.key_file) {
                out.push(("ssl.certificate.location", cert.display().to_string()));
                out.push(("ssl.key.location", key.display().to_string()));
            }
            if tls.insecure_skip_verify {
                tracing::warn!(
                    "kafka tls.insecure_skip_verify is on: the brokers' certificates are not checked"
                );
                out.push(("enable.ssl.certificate.verification", "false".into()));
                out.push(("ssl.endpoint.identification.algorithm", "none".into()));
            }
        }
        if let Some(s) = &self.sasl {
            let password = crate::secret::read(
                s.password_env.as_deref(),
                s.password_file.as_deref(),
                "sasl_password",
            )?
            .unwrap_or_default();
            out.push(("sasl.mechanism", s.mechanism.clone()));
            out.push(("sasl.username", s.username.clone()));
            out.push(("sasl.password", password));
        }
        Ok(out)
    }
}

/// A setting in `options` that would put a secret in the TOML.
pub fn secret_in_options<'a>(options: impl IntoIterator<Item = &'a String>) -> Option<&'a str> {
    options
        .into_iter()
        .map(String::as_str)
        .find(|k| SECRET_SETTINGS.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl_ssl() -> KafkaSecurity {
        KafkaSecurity {
            protocol: Protocol::SaslSsl,
            sasl: Some(Sasl {
                mechanism: "SCRAM-SHA-512".into(),
                username: "vane".into(),
                password_env: Some("VANE_TEST_KAFKA_PASSWORD".into()),
                password_file: None,
            }),
            tls: Some(TlsConfig {
                ca_file: Some("/etc/vane/kafka-ca.pem".into()),
                ..TlsConfig::default()
            }),
        }
    }

    #[test]
    fn sasl_over_tls_maps_to_librdkafka_settings_with_the_password_from_the_environment() {
        // SAFETY: a variable only this test reads.
        unsafe { std::env::set_var("VANE_TEST_KAFKA_PASSWORD", "s3cret") };
        let settings = sasl_ssl().settings().unwrap();
        let get = |k: &str| {
            settings
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(get("ssl.ca.location"), Some("/etc/vane/kafka-ca.pem"));
        assert_eq!(get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(get("sasl.username"), Some("vane"));
        assert_eq!(get("sasl.password"), Some("s3cret"));
        let plain_tls = KafkaSecurity {
            protocol: Protocol::Ssl,
            ..KafkaSecurity::default()
        };
        let settings = plain_tls.settings().unwrap();
        assert!(settings.contains(&("ssl.ca.location", "probe".into())));
    }

    #[test]
    fn mismatched_keys_are_named() {
        let no_tls_protocol = KafkaSecurity {
            tls: Some(TlsConfig::default()),
            ..KafkaSecurity::default()
        };
        assert!(
            no_tls_protocol
                .problem()
                .unwrap()
                .contains("security_protocol")
        );
        let mut bad = sasl_ssl();
        bad.sasl.as_mut().unwrap().mechanism = "GSSAPI".into();
        assert!(bad.problem().unwrap().contains("is not one of PLAIN"));
        let mut no_password = sasl_ssl();
        no_password.sasl.as_mut().unwrap().password_env = None;
        assert!(no_password.problem().unwrap().contains("sasl_password_env"));
        let missing = KafkaSecurity {
            protocol: Protocol::SaslPlaintext,
            ..KafkaSecurity::default()
        };
        assert!(missing.problem().is_some());
        let options = [
            "sasl.password".to_string(),
            "session.timeout.ms".to_string(),
        ];
        assert_eq!(secret_in_options(&options), Some("sasl.password"));
    }
}
