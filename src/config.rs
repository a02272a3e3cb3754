//! Pipeline configuration: plain data read from TOML, then a pure `validate`
//! step that `vane run` and `vane replay` share. Errors name the file, the key
//! and what is allowed.

mod errors;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::sources::StartAt;
pub use crate::time::{duration, parse_duration};

use crate::decode::{Format, Mapping};
use crate::time::NANOS_PER_SEC;
use crate::window::WindowConfig;

/// The repository's default configuration, compiled in so that `vane run` works
/// from a fresh clone without arguments.
pub const DEFAULT_CONFIG: &str = include_str!("../vane.toml");
pub const DEFAULT_CONFIG_NAME: &str = "vane.toml";
/// How the compiled-in default names itself in logs and errors.
pub const BUILT_IN_ORIGIN: &str = "(built-in vane.toml)";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The cause is the error's source: printed once, by whoever prints the chain.
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config file {path}: `{key}` {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where outputs, dead letters and the checkpoint go.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub window: WindowSection,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Rule files or folders of them (`*.yaml`); decisions are taken on every
    /// closed window and written to `output.decisions` (dry-run).
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// Labels per app (keyed by app id or readable name), for rule selectors:
    /// `[labels."web.apps.example.com"] team = "shop"`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub output: OutputSection,
    /// Where alert transitions are sent.
    #[serde(default)]
    pub notifiers: Vec<NotifierConfig>,
    /// Where scaling decisions are carried out (dry-run unless configured).
    #[serde(default)]
    pub orchestrator: crate::act::orchestrator::OrchestratorConfig,
    /// Window aggregates and decisions to InfluxDB (v2 write API), when set.
    #[serde(default)]
    pub influxdb: Option<crate::sinks::influx::InfluxConfig>,
    /// App log events to Elasticsearch / OpenSearch (`_bulk`), when set.
    #[serde(default)]
    pub elasticsearch: Option<crate::sinks::elasticsearch::ElasticConfig>,
    /// The HTTP server (`/metrics`, `/healthz`, `/readyz`), when set.
    #[serde(default)]
    pub api: Option<crate::api::ApiConfig>,
    /// Scheduled SQL roll-ups over the records written, when set.
    #[serde(default)]
    pub sql: Option<crate::rollup::SqlConfig>,
    #[serde(default)]
    pub run: RunSection,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSection {
    #[serde(default = "d10s", deserialize_with = "duration")]
    pub length: Duration,
    #[serde(default = "d2s", deserialize_with = "duration")]
    pub allowed_lateness: Duration,
    #[serde(default = "d5m", deserialize_with = "duration")]
    pub idle_expiry: Duration,
    /// How far ahead of its stream (and, live, of the wall clock) a
    /// record's time may be before it is questioned (`core::TimeGuard`).
    #[serde(default = "d5m", deserialize_with = "duration")]
    pub max_future: Duration,
    /// Series (apps and instances) held at most; beyond, new ones are
    /// counted under `__overflow__` (`window::SeriesLimits`).
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    #[serde(default = "default_max_instances_per_app")]
    pub max_instances_per_app: u32,
    /// Apps that always get a window, with zeros when they have no traffic.
    #[serde(default)]
    pub apps: Vec<String>,
}

impl Default for WindowSection {
    fn default() -> Self {
        WindowSection {
            length: d10s(),
            allowed_lateness: d2s(),
            idle_expiry: d5m(),
            max_future: d5m(),
            max_series: default_max_series(),
            max_instances_per_app: default_max_instances_per_app(),
            apps: Vec::new(),
        }
    }
}

impl WindowSection {
    pub fn series_limits(&self) -> crate::window::SeriesLimits {
        crate::window::SeriesLimits {
            max_series: self.max_series,
            max_instances_per_app: self.max_instances_per_app,
        }
    }

    pub fn window_config(&self) -> WindowConfig {
        WindowConfig {
            length_ns: self.length.as_nanos() as i64,
            allowed_lateness_ns: self.allowed_lateness.as_nanos() as i64,
            idle_expiry_ns: self.idle_expiry.as_nanos() as i64,
        }
    }
}

fn default_max_series() -> usize {
    crate::window::SeriesLimits::default().max_series
}
fn default_max_instances_per_app() -> u32 {
    crate::window::SeriesLimits::default().max_instances_per_app
}

fn d10s() -> Duration {
    Duration::from_secs(10)
}
fn d2s() -> Duration {
    Duration::from_secs(2)
}
fn d5m() -> Duration {
    Duration::from_secs(300)
}
fn d250ms() -> Duration {
    Duration::from_millis(250)
}
fn d1s() -> Duration {
    Duration::from_secs(1)
}

/// One input. `type` chooses the variant.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawSource")]
pub enum SourceConfig {
    /// One file, followed like `tail -F` (rotation by rename or truncation).
    File {
        path: PathBuf,
        format: Format,
        start_at: StartAt,
        mapping: Mapping,
        /// A missing file is waited for (a warning every minute) instead
        /// of an error at start.
        wait_for_file: bool,
    },
    /// Every file matching a glob pattern, each followed; new matches are picked up.
    Glob {
        pattern: String,
        format: Format,
        start_at: StartAt,
        mapping: Mapping,
    },
    /// Prometheus endpoints (cAdvisor, kubelet) scraped every `interval`;
    /// their container series join the windows.
    Scrape {
        targets: Vec<String>,
        interval: Duration,
        /// A file holding a bearer token, read again for every scrape
        /// (a kubelet with the pod's rotating service account token).
        token_file: Option<PathBuf>,
        tls: crate::tls::TlsConfig,
    },
    /// The Cloud Foundry RLP gateway's server-sent event stream of envelopes.
    RlpGateway {
        url: String,
        /// Environment variable holding the Authorization header value (`bearer ...`).
        token_env: Option<String>,
        /// The same from a file.
        token_file: Option<PathBuf>,
        tls: crate::tls::TlsConfig,
    },
    /// Standard input, until it closes.
    Stdin { format: Format, mapping: Mapping },
    /// A syslog drain receiver: RFC 5424 over TCP (octet-counted or one
    /// per line), optionally TLS; router lines and app lines.
    Syslog {
        listen: String,
        tls: Option<crate::tls::ServerTls>,
        max_connections: usize,
    },
    /// Kafka topics read by one consumer of a consumer group.
    Kafka {
        brokers: String,
        group: String,
        topics: Vec<String>,
        format: Format,
        mapping: Mapping,
        /// The record is JSON and the line is this string field (else the
        /// record value is the line, or several lines).
        json_field: Option<String>,
        /// Extra librdkafka settings (`session.timeout.ms`, `security.protocol`, …).
        options: std::collections::BTreeMap<String, String>,
        /// Static group membership (`group.instance.id`): a replica that
        /// restarts within the session timeout gets its partitions back
        /// without a rebalance. `${VAR}` reads it from the environment
        /// (`${POD_NAME}` in a StatefulSet).
        instance_id: Option<String>,
        /// TLS and SASL towards the brokers.
        security: Box<crate::sources::kafka::security::KafkaSecurity>,
    },
}

fn auto() -> Format {
    Format::Auto
}

/// How a `[[sources]]` table is read: flat, so that TOML errors point at the
/// offending key (an internally tagged enum loses the position), then checked
/// into [`SourceConfig`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    #[serde(rename = "type")]
    kind: SourceKind,
    path: Option<PathBuf>,
    pattern: Option<String>,
    #[serde(default = "auto")]
    format: Format,
    start_at: Option<StartAt>,
    mapping: Option<Mapping>,
    targets: Option<Vec<String>>,
    interval: Option<String>,
    url: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    tls: Option<RawTls>,
    listen: Option<String>,
    max_connections: Option<usize>,
    security_protocol: Option<crate::sources::kafka::security::Protocol>,
    sasl_mechanism: Option<String>,
    sasl_username: Option<String>,
    sasl_password_env: Option<String>,
    sasl_password_file: Option<PathBuf>,
    brokers: Option<String>,
    group: Option<String>,
    topics: Option<Vec<String>>,
    json_field: Option<String>,
    options: Option<std::collections::BTreeMap<String, String>>,
    instance_id: Option<String>,
    wait_for_file: Option<bool>,
    /// App logs: the app (and instance) of lines that do not name one.
    app: Option<String>,
    instance: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SourceKind {
    File,
    Glob,
    Scrape,
    RlpGateway,
    Stdin,
    Kafka,
    Syslog,
}

impl RawSource {
    /// The kind-dependent keys this table sets.
    fn keys_set(&self) -> Vec<&'static str> {
        let set = [
            ("path", self.path.is_some()),
            ("pattern", self.pattern.is_some()),
            ("start_at", self.start_at.is_some()),
            ("mapping", self.mapping.is_some()),
            ("targets", self.targets.is_some()),
            ("interval", self.interval.is_some()),
            ("url", self.url.is_some()),
            ("token_env", self.token_env.is_some()),
            ("token_file", self.token_file.is_some()),
            ("tls", self.tls.is_some()),
            ("listen", self.listen.is_some()),
            ("max_connections", self.max_connections.is_some()),
            ("security_protocol", self.security_protocol.is_some()),
            ("sasl_mechanism", self.sasl_mechanism.is_some()),
            ("sasl_username", self.sasl_username.is_some()),
            ("sasl_password_env", self.sasl_password_env.is_some()),
            ("sasl_password_file", self.sasl_password_file.is_some()),
            ("brokers", self.brokers.is_some()),
            ("group", self.group.is_some()),
            ("topics", self.topics.is_some()),
            ("json_field", self.json_field.is_some()),
            ("options", self.options.is_some()),
            ("instance_id", self.instance_id.is_some()),
            ("wait_for_file", self.wait_for_file.is_some()),
            ("app", self.app.is_some()),
            ("instance", self.instance.is_some()),
        ];
        set.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect()
    }
}

impl SourceKind {
    fn name(self) -> &'static str {
        match self {
            SourceKind::File => "file",
            SourceKind::Glob => "glob",
            SourceKind::Scrape => "scrape",
            SourceKind::RlpGateway => "rlp-gateway",
            SourceKind::Stdin => "stdin",
            SourceKind::Kafka => "kafka",
            SourceKind::Syslog => "syslog",
        }
    }

    /// The kind-dependent keys a source of this kind reads (`type` and
    /// `format` are read by all).
    fn keys(self) -> &'static [&'static str] {
        const LINES: [&str; 3] = ["mapping", "app", "instance"];
        match self {
            SourceKind::File => &[
                "path",
                "start_at",
                "wait_for_file",
                LINES[0],
                LINES[1],
                LINES[2],
            ],
            SourceKind::Glob => &["pattern", "start_at", LINES[0], LINES[1], LINES[2]],
            SourceKind::Scrape => &["targets", "interval", "token_file", "tls"],
            SourceKind::RlpGateway => &["url", "token_env", "token_file", "tls"],
            SourceKind::Stdin => &LINES,
            SourceKind::Syslog => &["listen", "tls", "max_connections"],
            SourceKind::Kafka => &[
                "brokers",
                "group",
                "topics",
                "json_field",
                "options",
                "instance_id",
                "security_protocol",
                "sasl_mechanism",
                "sasl_username",
                "sasl_password_env",
                "sasl_password_file",
                "tls",
                LINES[0],
                LINES[1],
                LINES[2],
            ],
        }
    }

    /// A key set on a source of this kind that it does not read, as an
    /// error naming the kinds that do: a misplaced key would be ignored.
    fn check_keys(self, set: &[&str]) -> Result<(), String> {
        const ALL: [SourceKind; 7] = [
            SourceKind::File,
            SourceKind::Glob,
            SourceKind::Scrape,
            SourceKind::RlpGateway,
            SourceKind::Stdin,
            SourceKind::Kafka,
            SourceKind::Syslog,
        ];
        let Some(stray) = set.iter().find(|k| !self.keys().contains(k)) else {
            return Ok(());
        };
        let owners: Vec<String> = ALL
            .iter()
            .filter(|kind| kind.keys().contains(stray))
            .map(|kind| format!("`{}`", kind.name()))
            .collect();
        Err(format!(
            "a `{}` source does not take `{stray}` (a key of {} sources); it reads {}",
            self.name(),
            owners.join(", "),
            self.keys()
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

impl TryFrom<RawSource> for SourceConfig {
    type Error = String;
    fn try_from(r: RawSource) -> Result<Self, String> {
        r.kind.check_keys(&r.keys_set())?;
        let mut mapping = r.mapping.unwrap_or_default();
        if let Some(app) = r.app {
            mapping.default_app = app;
        }
        if r.instance.is_some() {
            mapping.default_instance = r.instance;
        }
        let start_at = r.start_at.unwrap_or_default();
        match r.kind {
            SourceKind::File => {
                let path = r.path.ok_or("a `file` source needs `path`")?;
                Ok(SourceConfig::File {
                    path,
                    format: r.format,
                    start_at,
                    mapping,
                    wait_for_file: r.wait_for_file.unwrap_or(false),
                })
            }
            SourceKind::Glob => {
                let pattern = r.pattern.ok_or("a `glob` source needs `pattern`")?;
                Ok(SourceConfig::Glob {
                    pattern,
                    format: r.format,
                    start_at,
                    mapping,
                })
            }
            SourceKind::Scrape => {
                let targets = r.targets.filter(|t| !t.is_empty()).ok_or(
                    "a `scrape` source needs `targets`, a list of http:// or https:// URLs",
                )?;
                if let Some(bad) = targets.iter().find(|t| !is_http_url(t)) {
                    return Err(format!(
                        "scrape target `{bad}` must be an http:// or https:// URL"
                    ));
                }
                let interval = parse_duration(r.interval.as_deref().unwrap_or("10s"))?;
                if interval < Duration::from_millis(100) {
                    return Err("scrape `interval` must be at least 100ms".into());
                }
                Ok(SourceConfig::Scrape {
                    targets,
                    interval,
                    token_file: r.token_file,
                    tls: r.tls.map(RawTls::client).transpose()?.unwrap_or_default(),
                })
            }
            SourceKind::RlpGateway => {
                let url = r
                    .url
                    .ok_or("an `rlp-gateway` source needs `url`, like https://log-stream.example.com/v2/read?gauge")?;
                if !is_http_url(&url) {
                    return Err(format!(
                        "rlp-gateway url `{url}` must be an http:// or https:// URL"
                    ));
                }
                Ok(SourceConfig::RlpGateway {
                    url,
                    token_env: r.token_env,
                    token_file: r.token_file,
                    tls: r.tls.map(RawTls::client).transpose()?.unwrap_or_default(),
                })
            }
            SourceKind::Kafka => {
                let brokers = r
                    .brokers
                    .ok_or("a `kafka` source needs `brokers`, like \"127.0.0.1:9092\"")?;
                let topics = r
                    .topics
                    .filter(|t| !t.is_empty())
                    .ok_or("a `kafka` source needs `topics`, a list of topic names")?;
                Ok(SourceConfig::Kafka {
                    brokers,
                    group: r.group.unwrap_or_else(|| "vane".into()),
                    topics,
                    format: r.format,
                    mapping,
                    json_field: r.json_field,
                    options: r.options.unwrap_or_default(),
                    instance_id: r.instance_id,
                    security: Box::new(kafka_security(
                        r.security_protocol,
                        r.tls,
                        [r.sasl_mechanism, r.sasl_username, r.sasl_password_env],
                        r.sasl_password_file,
                    )?),
                })
            }
            SourceKind::Syslog => Ok(SourceConfig::Syslog {
                listen: r
                    .listen
                    .ok_or("a `syslog` source needs `listen`, like \"0.0.0.0:6514\"")?,
                tls: r.tls.map(RawTls::server).transpose()?,
                max_connections: r.max_connections.unwrap_or(256),
            }),
            SourceKind::Stdin => Ok(SourceConfig::Stdin {
                format: r.format,
                mapping,
            }),
        }
    }
}

/// The security keys of a `kafka` source, gathered.
fn kafka_security(
    protocol: Option<crate::sources::kafka::security::Protocol>,
    tls: Option<RawTls>,
    [mechanism, username, password_env]: [Option<String>; 3],
    password_file: Option<PathBuf>,
) -> Result<crate::sources::kafka::security::KafkaSecurity, String> {
    use crate::sources::kafka::security::{KafkaSecurity, Sasl};
    let any_sasl = mechanism.is_some()
        || username.is_some()
        || password_env.is_some()
        || password_file.is_some();
    Ok(KafkaSecurity {
        protocol: protocol.unwrap_or_default(),
        sasl: any_sasl.then(|| Sasl {
            mechanism: mechanism.unwrap_or_default(),
            username: username.unwrap_or_default(),
            password_env,
            password_file,
        }),
        tls: tls.map(RawTls::client).transpose()?,
    })
}

/// A source's `tls` table as written: a client's keys (`scrape`,
/// `rlp-gateway`) or a listener's (`syslog`), checked by kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    server_name: Option<String>,
    insecure_skip_verify: Option<bool>,
    client_ca_file: Option<PathBuf>,
}

impl RawTls {
    fn client(self) -> Result<crate::tls::TlsConfig, String> {
        if self.client_ca_file.is_some() {
            return Err("`tls.client_ca_file` is a listener's key (a `syslog` source); a client trusts a server with `ca_file`".into());
        }
        Ok(crate::tls::TlsConfig {
            ca_file: self.ca_file,
            cert_file: self.cert_file,
            key_file: self.key_file,
            server_name: self.server_name,
            insecure_skip_verify: self.insecure_skip_verify.unwrap_or(false),
        })
    }

    fn server(self) -> Result<crate::tls::ServerTls, String> {
        if self.ca_file.is_some()
            || self.server_name.is_some()
            || self.insecure_skip_verify.is_some()
        {
            return Err("a `syslog` source's `tls` takes `cert_file`, `key_file` and `client_ca_file` (to ask senders for a certificate)".into());
        }
        match (self.cert_file, self.key_file) {
            (Some(cert_file), Some(key_file)) => Ok(crate::tls::ServerTls {
                cert_file,
                key_file,
                client_ca_file: self.client_ca_file,
            }),
            _ => Err("a `syslog` source's `tls` needs `cert_file` and `key_file`".into()),
        }
    }
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

impl SourceConfig {
    /// The source's TLS table, for the kinds that connect over HTTP.
    pub fn tls(&self) -> Option<&crate::tls::TlsConfig> {
        match self {
            SourceConfig::Scrape { tls, .. } | SourceConfig::RlpGateway { tls, .. } => Some(tls),
            _ => None,
        }
    }

    /// The formats of the pipeline sources this table opens: an RLP
    /// stream carries gauges, router access logs and app logs.
    pub fn formats(&self) -> Vec<Format> {
        match self {
            SourceConfig::RlpGateway { .. } => {
                vec![Format::Gorouter, Format::AppLog, Format::Loggregator]
            }
            SourceConfig::Syslog { .. } => vec![Format::Gorouter, Format::AppLog],
            _ => vec![self.format()],
        }
    }

    pub fn format(&self) -> Format {
        match self {
            SourceConfig::File { format, .. }
            | SourceConfig::Glob { format, .. }
            | SourceConfig::Stdin { format, .. }
            | SourceConfig::Kafka { format, .. } => *format,
            SourceConfig::Scrape { .. } | SourceConfig::RlpGateway { .. } => Format::Loggregator,
            // Its router lines; its app lines go to a second source (`formats`).
            SourceConfig::Syslog { .. } => Format::Gorouter,
        }
    }

    pub fn mapping(&self) -> Mapping {
        match self {
            SourceConfig::File { mapping, .. }
            | SourceConfig::Glob { mapping, .. }
            | SourceConfig::Stdin { mapping, .. }
            | SourceConfig::Kafka { mapping, .. } => mapping.clone(),
            SourceConfig::Scrape { .. }
            | SourceConfig::RlpGateway { .. }
            | SourceConfig::Syslog { .. } => Mapping::new(),
        }
    }
}

/// An alert notifier. `type` chooses it.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum NotifierConfig {
    /// POSTs the Alertmanager webhook payload, signed with HMAC-SHA256.
    Webhook {
        url: String,
        #[serde(default = "receiver_name")]
        receiver: String,
        /// Environment variable holding the signing secret.
        #[serde(default)]
        secret_env: Option<String>,
        /// File holding the signing secret (trailing newline ignored).
        #[serde(default)]
        secret_file: Option<PathBuf>,
        /// Keep retrying a notification this long before giving it up.
        #[serde(default = "d5m", deserialize_with = "duration")]
        give_up_after: Duration,
        #[serde(default)]
        tls: crate::tls::TlsConfig,
    },
    /// Pushes alerts to Alertmanager's API (`POST /api/v2/alerts`).
    Alertmanager {
        /// Base URL, like `http://127.0.0.1:9093`.
        url: String,
        /// How often firing alerts are sent again (Alertmanager forgets them otherwise).
        #[serde(default = "d60s", deserialize_with = "duration")]
        resend_interval: Duration,
        #[serde(default = "d5m", deserialize_with = "duration")]
        give_up_after: Duration,
        #[serde(default)]
        tls: crate::tls::TlsConfig,
    },
}

fn d60s() -> Duration {
    Duration::from_secs(60)
}

fn receiver_name() -> String {
    "vane".into()
}

impl NotifierConfig {
    pub fn url(&self) -> &str {
        match self {
            NotifierConfig::Webhook { url, .. } | NotifierConfig::Alertmanager { url, .. } => url,
        }
    }

    pub fn tls(&self) -> &crate::tls::TlsConfig {
        match self {
            NotifierConfig::Webhook { tls, .. } | NotifierConfig::Alertmanager { tls, .. } => tls,
        }
    }

    /// The signing secret, read from the environment or a file.
    pub fn secret(&self) -> Result<Vec<u8>, String> {
        let NotifierConfig::Webhook {
            secret_env,
            secret_file,
            ..
        } = self
        else {
            return Ok(Vec::new());
        };
        crate::secret::read(secret_env.as_deref(), secret_file.as_deref(), "secret")?
            .map(String::into_bytes)
            .ok_or_else(|| {
                "a webhook notifier needs `secret_env` or `secret_file` (the HMAC-SHA256 signing secret)"
                    .into()
            })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Window aggregates, JSON lines (relative to `data_dir`).
    #[serde(default = "windows_file")]
    pub windows: PathBuf,
    #[serde(default = "dead_letters_file")]
    pub dead_letters: PathBuf,
    #[serde(default = "checkpoint_file")]
    pub checkpoint: PathBuf,
    #[serde(default = "decisions_file")]
    pub decisions: PathBuf,
    #[serde(default = "alerts_file")]
    pub alerts: PathBuf,
    /// App log events as ECS documents, JSON lines (with an `app-log` source).
    #[serde(default = "logs_file")]
    pub logs: PathBuf,
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            windows: windows_file(),
            dead_letters: dead_letters_file(),
            checkpoint: checkpoint_file(),
            decisions: decisions_file(),
            alerts: alerts_file(),
            logs: logs_file(),
        }
    }
}

fn logs_file() -> PathBuf {
    PathBuf::from("logs.jsonl")
}

fn windows_file() -> PathBuf {
    PathBuf::from("windows.jsonl")
}
fn dead_letters_file() -> PathBuf {
    PathBuf::from("dead-letters.jsonl")
}
fn alerts_file() -> PathBuf {
    PathBuf::from("alerts.jsonl")
}
fn decisions_file() -> PathBuf {
    PathBuf::from("decisions.jsonl")
}
fn checkpoint_file() -> PathBuf {
    PathBuf::from("checkpoint.json")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// How often followed files are polled for new lines.
    #[serde(default = "d250ms", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// How often the checkpoint is written (after the sinks are flushed).
    #[serde(default = "d1s", deserialize_with = "duration")]
    pub checkpoint_interval: Duration,
    /// How often counts are logged.
    #[serde(default = "d10s", deserialize_with = "duration")]
    pub stats_interval: Duration,
    /// After this long without input, the watermark advances with processing
    /// time so that quiet windows close (and show zero traffic).
    #[serde(default = "d2s", deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// An app log event is complete once its stream has had no new line for
    /// this long (its stack trace has arrived).
    #[serde(default = "d2s", deserialize_with = "duration")]
    pub multiline_timeout: Duration,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            poll_interval: d250ms(),
            checkpoint_interval: d1s(),
            stats_interval: d10s(),
            idle_timeout: d2s(),
            multiline_timeout: d2s(),
        }
    }
}

impl Config {
    /// Parses and validates; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = errors::all_parse_errors(text, |t| {
            toml::from_str(t).map_err(|e: toml::de::Error| (e.to_string(), e.span()))
        })
        .map_err(|found| ConfigError::Parse {
            path: origin.to_string(),
            message: found.join("\n"),
        })?;
        // Every problem at once, each where its key is set (when it is).
        let at = |key: &str| match errors::locate(text, key) {
            Some((line, column)) => format!("{origin}:{line}:{column}"),
            None => origin.to_string(),
        };
        let mut problems = cfg.problems().into_iter();
        if let Some((key, message)) = problems.next() {
            let more: Vec<String> = problems
                .map(|(k, m)| format!("{}: `{k}` {m}", at(&k)))
                .collect();
            let message = if more.is_empty() {
                message
            } else {
                format!("{message}\n{}", more.join("\n"))
            };
            return Err(ConfigError::Invalid {
                path: at(&key),
                key,
                message,
            });
        }
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, &path.display().to_string())
    }

    /// `--config FILE`, else `./vane.toml`, else the compiled-in default.
    pub fn load_or_default(path: Option<&Path>) -> Result<(Config, String), ConfigError> {
        match path {
            Some(p) => Ok((Config::load(p)?, p.display().to_string())),
            None if Path::new(DEFAULT_CONFIG_NAME).exists() => Ok((
                Config::load(Path::new(DEFAULT_CONFIG_NAME))?,
                DEFAULT_CONFIG_NAME.to_string(),
            )),
            None => Ok((
                Config::from_toml(DEFAULT_CONFIG, BUILT_IN_ORIGIN)?,
                BUILT_IN_ORIGIN.into(),
            )),
        }
    }

    /// Followed files that do not exist and are not waited for
    /// (`wait_for_file`): a typo in a path would otherwise run forever
    /// reading nothing.
    pub fn missing_files(&self) -> Vec<&Path> {
        self.sources
            .iter()
            .filter_map(|s| match s {
                SourceConfig::File {
                    path,
                    wait_for_file: false,
                    ..
                } if !path.exists() => Some(path.as_path()),
                _ => None,
            })
            .collect()
    }

    /// Rule paths and followed files that do not exist (relative paths
    /// resolve against the working directory): the built-in default reads
    /// the repository's `rules/` and `examples/`, so outside it they are
    /// missing, and saying so beats a bare "cannot read".
    pub fn missing_paths(&self) -> Vec<&Path> {
        let files = self.sources.iter().filter_map(|s| match s {
            SourceConfig::File { path, .. } => Some(path.as_path()),
            _ => None,
        });
        self.rules
            .iter()
            .map(PathBuf::as_path)
            .chain(files)
            .filter(|p| !p.exists())
            .collect()
    }

    /// The checks serde cannot express, stopping at the first problem.
    /// Pure: no filesystem access.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some((key, message)) => Err(ConfigError::Invalid {
                path: origin.to_string(),
                key,
                message,
            }),
            None => Ok(()),
        }
    }

    /// Every check serde cannot express that fails, as (key, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems: Vec<(String, String)> = Vec::new();
        let mut invalid = |key: &str, message: &str| {
            problems.push((key.to_string(), message.to_string()));
        };
        let w = &self.window;
        if w.length.as_nanos() == 0 || !w.length.as_nanos().is_multiple_of(1_000_000) {
            invalid(
                "window.length",
                "must be a positive whole number of milliseconds, like `10s`",
            );
        }
        if w.length.as_nanos() > 86_400 * NANOS_PER_SEC as u128 {
            invalid("window.length", "must be at most one day");
        }
        // A day: enough to replay an unsorted day of logs; every window
        // stays open this long, so state grows with it.
        if w.allowed_lateness > Duration::from_secs(86_400) {
            invalid(
                "window.allowed_lateness",
                "must be at most 1d (windows stay open this long: state grows with it)",
            );
        }
        if w.idle_expiry > Duration::from_secs(30 * 86_400) {
            invalid("window.idle_expiry", "must be at most 30d");
        }
        if w.max_future < Duration::from_secs(1) || w.max_future > Duration::from_secs(365 * 86_400)
        {
            invalid(
                "window.max_future",
                "must be between 1s and 365d (how far ahead of its stream a record's time may be)",
            );
        }
        if w.max_series == 0 {
            invalid("window.max_series", "must be at least 1");
        }
        if w.max_instances_per_app == 0 {
            invalid("window.max_instances_per_app", "must be at least 1");
        }
        if w.idle_expiry < w.length {
            invalid("window.idle_expiry", "must be at least one window length");
        }
        for (i, s) in self.sources.iter().enumerate() {
            match s {
                SourceConfig::File { path, .. } if path.as_os_str().is_empty() => {
                    invalid(&format!("sources[{i}].path"), "must not be empty");
                }
                SourceConfig::Kafka {
                    security, options, ..
                } => {
                    if let Some(problem) = security.problem() {
                        invalid(&format!("sources[{i}]"), &problem);
                    }
                    if let Some(key) =
                        crate::sources::kafka::security::secret_in_options(options.keys())
                    {
                        invalid(
                            &format!("sources[{i}].options"),
                            &format!(
                                "must not hold `{key}`: a secret comes from `sasl_password_env` or `sasl_password_file`, never from the TOML"
                            ),
                        );
                    }
                }
                SourceConfig::Scrape { tls, .. } | SourceConfig::RlpGateway { tls, .. } => {
                    if let Some(problem) = tls.problem() {
                        invalid(&format!("sources[{i}].tls"), &problem);
                    }
                }
                SourceConfig::Glob { pattern, .. } => {
                    if let Err(e) = glob::Pattern::new(pattern) {
                        invalid(
                            &format!("sources[{i}].pattern"),
                            &format!("is not a valid glob: {e}"),
                        );
                    }
                }
                _ => {}
            }
        }
        if self
            .sources
            .iter()
            .filter(|s| matches!(s, SourceConfig::Stdin { .. }))
            .count()
            > 1
        {
            invalid("sources", "may name `stdin` only once");
        }
        let day = Duration::from_secs(86_400);
        if [
            self.run.poll_interval,
            self.run.checkpoint_interval,
            self.run.stats_interval,
            self.run.idle_timeout,
        ]
        .iter()
        .any(|d| *d > day)
        {
            invalid("run", "intervals and timeouts must be at most 1d");
        }
        for (i, n) in self.notifiers.iter().enumerate() {
            let (url, needs_secret) = match n {
                NotifierConfig::Webhook {
                    url,
                    secret_env,
                    secret_file,
                    ..
                } => (url, secret_env.is_none() && secret_file.is_none()),
                NotifierConfig::Alertmanager { url, .. } => (url, false),
            };
            if !is_http_url(url) {
                invalid(
                    &format!("notifiers[{i}].url"),
                    "must be an http:// or https:// URL",
                );
            }
            if let Some(problem) = n.tls().problem() {
                invalid(&format!("notifiers[{i}].tls"), &problem);
            }
            if needs_secret {
                invalid(
                    &format!("notifiers[{i}]"),
                    "needs `secret_env` or `secret_file` (the HMAC-SHA256 signing secret)",
                );
            }
        }
        if self.run.poll_interval.is_zero() {
            invalid("run.poll_interval", "must be more than 0");
        }
        let sink_tls = [
            ("influxdb.tls", self.influxdb.as_ref().map(|c| &c.tls)),
            (
                "elasticsearch.tls",
                self.elasticsearch.as_ref().map(|c| &c.tls),
            ),
        ];
        for (key, tls) in sink_tls {
            if let Some(problem) = tls.and_then(crate::tls::TlsConfig::problem) {
                invalid(key, &problem);
            }
        }
        if let Err((key, message)) = self.orchestrator.validate() {
            invalid(&key, &message);
        }
        if let Some(sql) = &self.sql
            && let Err(message) = sql.validate()
        {
            invalid("sql.schedule", &message);
        }
        problems
    }

    pub fn windows_path(&self) -> PathBuf {
        self.data_dir.join(&self.output.windows)
    }
    pub fn dead_letters_path(&self) -> PathBuf {
        self.data_dir.join(&self.output.dead_letters)
    }
    pub fn alerts_path(&self) -> PathBuf {
        self.data_dir.join(&self.output.alerts)
    }
    pub fn decisions_path(&self) -> PathBuf {
        self.data_dir.join(&self.output.decisions)
    }
    pub fn logs_path(&self) -> PathBuf {
        self.data_dir.join(&self.output.logs)
    }
    pub fn checkpoint_path(&self) -> PathBuf {
        self.data_dir.join(&self.output.checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        let cfg = Config::from_toml(DEFAULT_CONFIG, "vane.toml").unwrap();
        assert!(!cfg.sources.is_empty());
        assert_eq!(cfg.window.length, Duration::from_secs(10));
    }

    #[test]
    fn every_invalid_value_is_named_at_once_with_its_line() {
        let e = Config::from_toml(
            "[window]\nlength = \"0s\"\nmax_series = 0\n[run]\npoll_interval = \"0s\"\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(lines[0].contains("x.toml:2:1: `window.length`"), "{e}");
        assert!(
            lines[1].starts_with("x.toml:3:1: `window.max_series` must be at least 1"),
            "{e}"
        );
        assert!(
            lines[2].starts_with("x.toml:5:1: `run.poll_interval`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_names_file_key_and_choices() {
        let e = Config::from_toml("[window]\nlenght = \"10s\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml"), "{e}");
        assert!(e.contains("lenght"), "{e}");
        assert!(e.contains("length"), "{e}");
    }

    #[test]
    fn orchestrator_keys_are_checked_for_the_chosen_kind() {
        let e = Config::from_toml("[orchestrator]\nkind = \"local\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("orchestrator.apps") && e.contains("command"),
            "{e}"
        );
        let e = Config::from_toml(
            "[orchestrator]\nkind = \"cloudfoundry\"\napi = \"https://api.example.com\"\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("orchestrator.uaa"), "{e}");
        let e = Config::from_toml(
            "[orchestrator]\nkind = \"kubernetes\"\n[orchestrator.apps.web]\nworkload = \"Job\"\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("orchestrator.apps.web.workload"), "{e}");
        let e = Config::from_toml("[orchestrator]\nkind = \"nomad\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dry-run") && e.contains("kubernetes"),
            "lists the kinds: {e}"
        );
        let ok = Config::from_toml(
            "[orchestrator]\nkind = \"local\"\n[orchestrator.apps.web]\ncommand = [\"sleep\", \"60\"]\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(ok.orchestrator.kind().name(), "local");
    }

    #[test]
    fn a_key_of_another_orchestrator_is_named_with_its_place() {
        let e = Config::from_toml(
            "[orchestrator]\nkind = \"cloudfoundry\"\napi = \"https://api\"\nuaa = \"https://uaa\"\nclient_id = \"v\"\nclient_secret_env = \"S\"\nnamespace = \"shop\"\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("orchestrator.namespace is a kubernetes key")
                && e.contains("this orchestrator is cloudfoundry"),
            "{e}"
        );
        assert!(e.contains("line 1"), "where: {e}");
        let k8s = Config::from_toml(
            "[orchestrator]\nkind = \"kubernetes\"\nnamespace = \"shop\"\n",
            "x.toml",
        )
        .unwrap();
        match &k8s.orchestrator.platform {
            crate::act::orchestrator::Platform::Kubernetes(k) => {
                assert_eq!(k.namespace.as_deref(), Some("shop"));
                assert_eq!(k.label, "app.kubernetes.io/name");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_key_of_another_source_kind_is_named_with_its_owners() {
        let e = Config::from_toml(
            "[[sources]]\ntype = \"file\"\npath = \"a.log\"\ntargets = [\"http://x\"]\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("a `file` source does not take `targets`")
                && e.contains("`scrape`")
                && e.contains("`path`"),
            "{e}"
        );
        assert!(e.contains("x.toml") && e.contains("line 1"), "where: {e}");
        let e = Config::from_toml(
            "[[sources]]\ntype = \"stdin\"\nstart_at = \"beginning\"\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`stdin` source does not take `start_at`") && e.contains("`glob`"),
            "{e}"
        );
        let ok = Config::from_toml(
            "[[sources]]\ntype = \"kafka\"\nbrokers = \"b:9092\"\ntopics = [\"t\"]\napp = \"shop\"\njson_field = \"line\"\n",
            "x.toml",
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn bad_values_are_explained() {
        let e = Config::from_toml("[window]\nlength = \"10 parsecs\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duration unit"), "{e}");
        let e = Config::from_toml(
            "[[sources]]\ntype = \"file\"\npath = \"a\"\nformat = \"apache\"\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gorouter"), "lists the allowed formats: {e}");
        let e = Config::from_toml("[[sources]]\ntype = \"mqtt\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("file") && e.contains("glob") && e.contains("stdin"),
            "{e}"
        );
        let e = Config::from_toml("[window]\nlength = true\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("expected a duration like") && e.contains("line 2"),
            "the type, what is expected and where: {e}"
        );
        let e = Config::from_toml("[window]\nlength = \"0s\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("window.length"), "{e}");
    }
}
