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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrchestratorConfig {
    #[serde(default)]
    pub kind: OrchestratorKind,
    /// Attempts per action (the first included) on 5xx, 429 and timeouts.
    #[serde(default = "four")]
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to 8 s.
    #[serde(default = "half_second", deserialize_with = "duration")]
    pub retry_backoff: Duration,
    /// How often the real instance counts are read back.
    #[serde(default = "ten_seconds", deserialize_with = "duration")]
    pub refresh_interval: Duration,
    /// Per app (keyed by app id or readable name): where it runs.
    #[serde(default)]
    pub apps: BTreeMap<String, AppTarget>,

    // Kubernetes
    /// Namespace of apps without one of their own.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Apps without a mapping are found by this label on Deployments and
    /// StatefulSets (value = app name).
    #[serde(default = "app_label")]
    pub label: String,
    /// A kubeconfig file; otherwise the in-cluster service account, then
    /// `$KUBECONFIG` / `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,

    // Cloud Foundry
    /// The Cloud Controller, like `https://api.sys.example.com`.
    #[serde(default)]
    pub api: Option<String>,
    /// UAA, like `https://uaa.sys.example.com` (token endpoint `/oauth/token`).
    #[serde(default)]
    pub uaa: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    /// Environment variable holding the UAA client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Space of apps looked up by name.
    #[serde(default)]
    pub space_guid: Option<String>,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            kind: OrchestratorKind::DryRun,
            max_attempts: four(),
            retry_backoff: half_second(),
            refresh_interval: ten_seconds(),
            apps: BTreeMap::new(),
            namespace: None,
            label: app_label(),
            kubeconfig: None,
            api: None,
            uaa: None,
            client_id: None,
            client_secret_env: None,
            space_guid: None,
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
    /// Checks that the keys the chosen kind needs are there; `Err((key, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((format!("orchestrator.{k}"), m.to_string()));
        if self.max_attempts == 0 || self.max_attempts > 20 {
            return bad("max_attempts", "must be between 1 and 20");
        }
        if self.refresh_interval < Duration::from_millis(100) {
            return bad("refresh_interval", "must be at least 100ms");
        }
        match self.kind {
            OrchestratorKind::DryRun => {}
            OrchestratorKind::Local => {
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
            OrchestratorKind::Kubernetes => {
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
            OrchestratorKind::Cloudfoundry => {
                for (key, value) in [
                    ("api", &self.api),
                    ("uaa", &self.uaa),
                    ("client_id", &self.client_id),
                    ("client_secret_env", &self.client_secret_env),
                ] {
                    if value.is_none() {
                        return bad(key, "is needed by the cloudfoundry orchestrator");
                    }
                }
            }
        }
        Ok(())
    }
}
