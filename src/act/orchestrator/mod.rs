//! Orchestrator adapters: where scaling and restart decisions land. Each one
//! answers three questions the same way — how many instances does this app
//! have, scale it *to* N (idempotent), restart one instance — so the actuator
//! above them does not care which platform it talks to.

pub mod cloudfoundry;
pub mod config;
pub mod dry_run;
pub mod kubernetes;
pub mod local;

use std::time::Duration;

pub use config::{
    AppTarget, CloudFoundryConfig, KubernetesConfig, OrchestratorConfig, OrchestratorKind, Platform,
};

/// The app an action is for: its id in the windows and its readable name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub app: String,
    pub name: Option<String>,
}

impl Target {
    pub fn new(app: &str, name: Option<&str>) -> Self {
        Target {
            app: app.to_string(),
            name: name.map(str::to_string),
        }
    }

    /// How people call it: the readable name when there is one.
    pub fn display(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.app)
    }

    /// The configured mapping of this app (keyed by id, else by name).
    pub fn lookup<'a, T>(&self, map: &'a std::collections::BTreeMap<String, T>) -> Option<&'a T> {
        map.get(&self.app)
            .or_else(|| self.name.as_ref().and_then(|n| map.get(n)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActError {
    /// Worth retrying: 5xx, 429, timeouts, refused connections.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help: 4xx, missing mapping, bad configuration.
    #[error("{0}")]
    Permanent(String),
}

impl ActError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ActError::Transient(_))
    }

    /// Classifies an HTTP status of a failed call.
    pub fn from_status(status: u16, what: &str, body: &str) -> Self {
        let body: String = body.chars().take(300).collect();
        let msg = format!("{what}: HTTP {status} {body}");
        if status >= 500 || status == 429 || status == 408 {
            ActError::Transient(msg)
        } else {
            ActError::Permanent(msg)
        }
    }
}

pub enum Orchestrator {
    DryRun(dry_run::DryRun),
    Local(local::LocalSupervisor),
    Kubernetes(kubernetes::Kubernetes),
    CloudFoundry(cloudfoundry::CloudFoundry),
}

impl Orchestrator {
    /// Builds the configured adapter. `data_dir` holds the local supervisor's
    /// instance logs.
    pub async fn from_config(
        cfg: &OrchestratorConfig,
        data_dir: &std::path::Path,
    ) -> Result<Self, ActError> {
        Ok(match &cfg.platform {
            Platform::DryRun => Orchestrator::DryRun(dry_run::DryRun::default()),
            Platform::Local => Orchestrator::Local(local::LocalSupervisor::start(
                &cfg.apps,
                &data_dir.join("local"),
            )?),
            Platform::Kubernetes(k) => {
                Orchestrator::Kubernetes(kubernetes::Kubernetes::from_config(k, &cfg.apps).await?)
            }
            Platform::CloudFoundry(c) => {
                Orchestrator::CloudFoundry(cloudfoundry::CloudFoundry::from_config(c, &cfg.apps)?)
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Orchestrator::DryRun(_) => "dry-run",
            Orchestrator::Local(_) => "local",
            Orchestrator::Kubernetes(_) => "kubernetes",
            Orchestrator::CloudFoundry(_) => "cloudfoundry",
        }
    }

    /// Whether this adapter only pretends (the engine then assumes every
    /// decision was applied).
    pub fn is_dry_run(&self) -> bool {
        matches!(self, Orchestrator::DryRun(_))
    }

    /// The app's instance count as the platform holds it (desired, not ready).
    /// `None`: the adapter does not know the app (dry-run before any action).
    pub async fn instances(&self, t: &Target) -> Result<Option<u32>, ActError> {
        match self {
            Orchestrator::DryRun(o) => Ok(o.instances(t)),
            Orchestrator::Local(o) => o.instances(t).await.map(Some),
            Orchestrator::Kubernetes(o) => o.instances(t).await.map(Some),
            Orchestrator::CloudFoundry(o) => o.instances(t).await.map(Some),
        }
    }

    /// Scales the app to `n` instances (a no-op when it has `n`).
    pub async fn scale(&self, t: &Target, n: u32) -> Result<(), ActError> {
        match self {
            Orchestrator::DryRun(o) => {
                o.scale(t, n);
                Ok(())
            }
            Orchestrator::Local(o) => o.scale(t, n).await,
            Orchestrator::Kubernetes(o) => o.scale(t, n).await,
            Orchestrator::CloudFoundry(o) => o.scale(t, n).await,
        }
    }

    /// Restarts one instance (index, or pod name on Kubernetes).
    pub async fn restart(&self, t: &Target, instance: &str) -> Result<(), ActError> {
        match self {
            Orchestrator::DryRun(o) => {
                o.restart(t, instance);
                Ok(())
            }
            Orchestrator::Local(o) => o.restart(t, instance).await,
            Orchestrator::Kubernetes(o) => o.restart(t, instance).await,
            Orchestrator::CloudFoundry(o) => o.restart(t, instance).await,
        }
    }
}

/// Retries of one action: transient failures are retried with a doubling
/// delay, permanent ones end it at once.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Duration,
}

impl RetryPolicy {
    pub fn from_config(cfg: &OrchestratorConfig) -> Self {
        RetryPolicy {
            max_attempts: cfg.max_attempts,
            backoff: cfg.retry_backoff,
        }
    }

    /// Runs `op` until it succeeds, fails permanently or runs out of attempts;
    /// returns the result and the number of attempts made.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> (Result<T, ActError>, u32)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ActError>>,
    {
        let mut delay = self.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op().await {
                Err(e) if e.is_transient() && attempt < self.max_attempts => {
                    tracing::info!(attempt, error = %e, "orchestrator call will be retried");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(8));
                }
                result => return (result, attempt),
            }
        }
    }
}

/// Maps a reqwest error (no response) to a transient failure.
pub(crate) fn transport_error(what: &str, e: &reqwest::Error) -> ActError {
    ActError::Transient(format!("{what}: {}", crate::tls::http::describe(e)))
}
