//! `[orchestrator]` in the configuration: which platform scaling decisions go
//! to, and how each app maps onto it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::time::duration;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrchestratorKind {
    /// Records what it would do and acts on nothing (the default).
    #[default]
    DryRun,
    /// An embedded supervisor running N copies of a command per app.
    Local,
    /// Deployments and StatefulSets through the `scale` subresource.
    Kubernetes,
    /// The Cloud Foundry v3 API (processes).
    Cloudfoundry,
}

impl OrchestratorKind {
    pub fn name(self) -> &'static str {
        match self {
            OrchestratorKind::DryRun => "dry-run",
            OrchestratorKind::Local => "local",
            OrchestratorKind::Kubernetes => "kubernetes",
            OrchestratorKind::Cloudfoundry => "cloudfoundry",
        }
    }
}

/// `[orchestrator]`: the keys every kind takes, and the platform with its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawOrchestrator")]
pub struct OrchestratorConfig {
    /// Attempts per action (the first included) on 5xx, 429 and timeouts.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to 8 s.
    pub retry_backoff: Duration,
    /// How often the real instance counts are read back.
    pub refresh_interval: Duration,
    /// Per app (keyed by app id or readable name): where it runs.
    pub apps: BTreeMap<String, AppTarget>,
    pub platform: Platform,
}

/// Which platform decisions go to, with the keys only it takes.
#[derive(Debug, Clone, Default)]
pub enum Platform {
    #[default]
    DryRun,
    Local,
    Kubernetes(KubernetesConfig),
    CloudFoundry(CloudFoundryConfig),
}

#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// Namespace of apps without one of their own.
    pub namespace: Option<String>,
    /// Apps without a mapping are found by this label on Deployments and
    /// StatefulSets (value = app name).
    pub label: String,
    /// A kubeconfig file; otherwise the in-cluster service account, then
    /// `$KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            namespace: None,
            label: app_label(),
            kubeconfig: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CloudFoundryConfig {
    /// The Cloud Controller, like `https://api.sys.example.com`.
    pub api: String,
    /// UAA, like `https://uaa.sys.example.com` (token endpoint `/oauth/token`).
    pub uaa: String,
    pub client_id: String,
    /// Environment variable holding the UAA client secret.
    pub client_secret_env: Option<String>,
    /// The same from a file (a mounted secret).
    pub client_secret_file: Option<PathBuf>,
    /// Space of apps looked up by name.
    pub space_guid: Option<String>,
    /// TLS towards both the Cloud Controller and UAA.
    pub tls: crate::tls::TlsConfig,
}

impl Platform {
    pub fn kind(&self) -> OrchestratorKind {
        match self {
            Platform::DryRun => OrchestratorKind::DryRun,
            Platform::Local => OrchestratorKind::Local,
            Platform::Kubernetes(_) => OrchestratorKind::Kubernetes,
            Platform::CloudFoundry(_) => OrchestratorKind::Cloudfoundry,
        }
    }
}

/// `[orchestrator]` as written: one table whose keys depend on `kind`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrchestrator {
    #[serde(default)]
    kind: OrchestratorKind,
    #[serde(default = "four")]
    max_attempts: u32,
    #[serde(default = "half_second", deserialize_with = "duration")]
    retry_backoff: Duration,
    #[serde(default = "ten_seconds", deserialize_with = "duration")]
    refresh_interval: Duration,
    #[serde(default)]
    apps: BTreeMap<String, AppTarget>,
    // kubernetes
    namespace: Option<String>,
    label: Option<String>,
    kubeconfig: Option<PathBuf>,
    // cloudfoundry
    api: Option<String>,
    uaa: Option<String>,
    client_id: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    space_guid: Option<String>,
    tls: Option<crate::tls::TlsConfig>,
}

impl TryFrom<RawOrchestrator> for OrchestratorConfig {
    type Error = String;

    fn try_from(r: RawOrchestrator) -> Result<Self, String> {
        let kind = r.kind.name();
        let not_here = |given: bool, key: &str, owner: &str| {
            if given && owner != kind {
                Err(format!(
                    "orchestrator.{key} is a {owner} key; this orchestrator is {kind} (remove it, or set kind = \"{owner}\")"
                ))
            } else {
                Ok(())
            }
        };
        not_here(r.namespace.is_some(), "namespace", "kubernetes")?;
        not_here(r.label.is_some(), "label", "kubernetes")?;
        not_here(r.kubeconfig.is_some(), "kubeconfig", "kubernetes")?;
        not_here(r.api.is_some(), "api", "cloudfoundry")?;
        not_here(r.uaa.is_some(), "uaa", "cloudfoundry")?;
        not_here(r.client_id.is_some(), "client_id", "cloudfoundry")?;
        not_here(
            r.client_secret_env.is_some(),
            "client_secret_env",
            "cloudfoundry",
        )?;
        not_here(
            r.client_secret_file.is_some(),
            "client_secret_file",
            "cloudfoundry",
        )?;
        not_here(r.space_guid.is_some(), "space_guid", "cloudfoundry")?;
        not_here(r.tls.is_some(), "tls", "cloudfoundry")?;

        let need = |v: Option<String>, key: &str| {
            v.ok_or_else(|| {
                format!("orchestrator.{key} is needed by the cloudfoundry orchestrator")
            })
        };
        let platform = match r.kind {
            OrchestratorKind::DryRun => Platform::DryRun,
            OrchestratorKind::Local => Platform::Local,
            OrchestratorKind::Kubernetes => Platform::Kubernetes(KubernetesConfig {
                namespace: r.namespace,
                label: r.label.unwrap_or_else(app_label),
                kubeconfig: r.kubeconfig,
            }),
            OrchestratorKind::Cloudfoundry => Platform::CloudFoundry(CloudFoundryConfig {
                api: need(r.api, "api")?,
                uaa: need(r.uaa, "uaa")?,
                client_id: need(r.client_id, "client_id")?,
                client_secret_env: match (r.client_secret_env, &r.client_secret_file) {
                    (None, None) => return Err(
                        "orchestrator.client_secret_env or client_secret_file is needed by the cloudfoundry orchestrator (the UAA client secret)"
                            .into(),
                    ),
                    (env, _) => env,
                },
                client_secret_file: r.client_secret_file,
                space_guid: r.space_guid,
                tls: r.tls.unwrap_or_default(),
            }),
        };
        Ok(OrchestratorConfig {
            max_attempts: r.max_attempts,
            retry_backoff: r.retry_backoff,
            refresh_interval: r.refresh_interval,
            apps: r.apps,
            platform,
        })
    }
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            max_attempts: four(),
            retry_backoff: half_second(),
            refresh_interval: ten_seconds(),
            apps: BTreeMap::new(),
            platform: Platform::DryRun,
        }
    }
}

/// Where one app runs. Which keys apply depends on the orchestrator kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppTarget {
    // local
    /// Program and arguments; each copy gets `PORT`, `INSTANCE_INDEX` and `VANE_APP`.
    #[serde(default)]
    pub command: Vec<String>,
    /// `PORT` of instance 0; instance i gets `base_port + i`.
    #[serde(default)]
    pub base_port: Option<u16>,
    /// Copies started with Vane.
    #[serde(default)]
    pub initial: Option<u32>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub workdir: Option<PathBuf>,

    // kubernetes
    /// `Deployment` (default) or `StatefulSet`.
    #[serde(default)]
    pub workload: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,

    // cloudfoundry
    /// The app's GUID (otherwise looked up by name).
    #[serde(default)]
    pub guid: Option<String>,
}

fn four() -> u32 {
    4
}
fn half_second() -> Duration {
    Duration::from_millis(500)
}
fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}
fn app_label() -> String {
    "app.kubernetes.io/name".into()
}

impl OrchestratorConfig {
    pub fn kind(&self) -> OrchestratorKind {
        self.platform.kind()
    }

    /// Checks that the keys the chosen kind needs are there; `Err((key, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((format!("orchestrator.{k}"), m.to_string()));
        if self.max_attempts == 0 || self.max_attempts > 20 {
            return bad("max_attempts", "must be between 1 and 20");
        }
        if self.refresh_interval < Duration::from_millis(100) {
            return bad("refresh_interval", "must be at least 100ms");
        }
        match &self.platform {
            Platform::DryRun => {}
            Platform::CloudFoundry(cf) => {
                if let Some(problem) = cf.tls.problem() {
                    return bad("tls", &problem);
                }
            }
            Platform::Local => {
                if self.apps.is_empty() {
                    return bad(
                        "apps",
                        "the local orchestrator needs at least one app: [orchestrator.apps.NAME] command = [\"program\", \"arg\"]",
                    );
                }
                for (app, t) in &self.apps {
                    if t.command.is_empty() {
                        return bad(
                            &format!("apps.{app}.command"),
                            "must name the program to run, like [\"python3\", \"-m\", \"http.server\"]",
                        );
                    }
                }
            }
            Platform::Kubernetes(_) => {
                for (app, t) in &self.apps {
                    if let Some(w) = &t.workload
                        && w != "Deployment"
                        && w != "StatefulSet"
                    {
                        return bad(
                            &format!("apps.{app}.workload"),
                            "must be `Deployment` or `StatefulSet`",
                        );
                    }
                }
            }
        }
        Ok(())
    }
}
