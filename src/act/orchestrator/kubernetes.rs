//! Kubernetes through the `kube` client: an app is a Deployment or a
//! StatefulSet, scaled through its `scale` subresource (`GET` and merge-`PATCH`
//! of `.../deployments/NAME/scale`, the same call `kubectl scale` and the HPA
//! make); one instance is restarted by deleting its pod, which the workload's
//! controller replaces.
//!
//! Which workload an app is: `[orchestrator.apps.APP] workload/name/namespace`,
//! otherwise the one Deployment (then StatefulSet) labelled
//! `orchestrator.label = APP` in the namespace. Credentials: `kubeconfig` when
//! set, otherwise in-cluster service account, then `$KUBECONFIG` or
//! `~/.kube/config`. The RBAC the adapter needs: get/patch on
//! `deployments/scale` and `statefulsets/scale`, list on deployments and
//! statefulsets (label lookup only), delete on pods.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Config};
use tokio::sync::Mutex;

use super::{ActError, AppTarget, KubernetesConfig, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Deployment,
    StatefulSet,
}

#[derive(Debug, Clone)]
struct Resolved {
    workload: Workload,
    name: String,
    namespace: String,
}

pub struct Kubernetes {
    client: Client,
    default_namespace: String,
    label: String,
    apps: BTreeMap<String, AppTarget>,
    resolved: Mutex<HashMap<String, Resolved>>,
}

impl Kubernetes {
    pub async fn from_config(
        cfg: &KubernetesConfig,
        apps: &BTreeMap<String, AppTarget>,
    ) -> Result<Self, ActError> {
        let config = match &cfg.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    ActError::Permanent(format!("kubeconfig {}: {e}", path.display()))
                })?;
                Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                    .await
                    .map_err(|e| {
                        ActError::Permanent(format!("kubeconfig {}: {e}", path.display()))
                    })?
            }
            None => Config::infer().await.map_err(|e| {
                ActError::Permanent(format!(
                    "no Kubernetes credentials (in-cluster or kubeconfig): {e}"
                ))
            })?,
        };
        Self::with_config(config, cfg, apps)
    }

    /// An adapter for the API server at `url` without credentials (tests).
    /// Async because the client must be built inside the runtime.
    pub async fn for_url(
        url: &str,
        cfg: &KubernetesConfig,
        apps: &BTreeMap<String, AppTarget>,
    ) -> Result<Self, ActError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| ActError::Permanent(format!("bad API server URL {url}: {e}")))?;
        Self::with_config(Config::new(uri), cfg, apps)
    }

    fn with_config(
        mut config: Config,
        cfg: &KubernetesConfig,
        apps: &BTreeMap<String, AppTarget>,
    ) -> Result<Self, ActError> {
        // Retries are the actuator's (bounded, logged, one action per app);
        // the client's own would hide them and multiply the wait.
        config.default_retry = false;
        let default_namespace = cfg
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config)
            .map_err(|e| ActError::Permanent(format!("cannot build the Kubernetes client: {e}")))?;
        Ok(Kubernetes {
            client,
            default_namespace,
            label: cfg.label.clone(),
            apps: apps.clone(),
            resolved: Mutex::new(HashMap::new()),
        })
    }

    async fn resolve(&self, t: &Target) -> Result<Resolved, ActError> {
        if let Some(r) = self.resolved.lock().await.get(&t.app) {
            return Ok(r.clone());
        }
        let r = match t.lookup(&self.apps) {
            Some(a) => Resolved {
                workload: match a.workload.as_deref() {
                    Some("StatefulSet") => Workload::StatefulSet,
                    _ => Workload::Deployment,
                },
                name: a.name.clone().unwrap_or_else(|| t.display().to_string()),
                namespace: a
                    .namespace
                    .clone()
                    .unwrap_or_else(|| self.default_namespace.clone()),
            },
            None => self.find_by_label(t).await?,
        };
        self.resolved.lock().await.insert(t.app.clone(), r.clone());
        Ok(r)
    }

    async fn find_by_label(&self, t: &Target) -> Result<Resolved, ActError> {
        let selector = format!("{}={}", self.label, t.display());
        let lp = ListParams::default().labels(&selector);
        let ns = &self.default_namespace;
        let deployments = Api::<Deployment>::namespaced(self.client.clone(), ns)
            .list(&lp)
            .await
            .map_err(|e| kube_error("list deployments", e))?;
        let mut found: Vec<Resolved> = deployments
            .items
            .iter()
            .filter_map(|d| d.metadata.name.clone())
            .map(|name| Resolved {
                workload: Workload::Deployment,
                name,
                namespace: ns.clone(),
            })
            .collect();
        if found.is_empty() {
            let sets = Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                .list(&lp)
                .await
                .map_err(|e| kube_error("list statefulsets", e))?;
            found.extend(
                sets.items
                    .iter()
                    .filter_map(|s| s.metadata.name.clone())
                    .map(|name| Resolved {
                        workload: Workload::StatefulSet,
                        name,
                        namespace: ns.clone(),
                    }),
            );
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(ActError::Permanent(format!(
                "no Deployment or StatefulSet in namespace {ns} has the label {selector}: label it or map the app in [orchestrator.apps]"
            ))),
            n => Err(ActError::Permanent(format!(
                "{n} workloads in namespace {ns} have the label {selector}: map the app in [orchestrator.apps]"
            ))),
        }
    }

    pub async fn instances(&self, t: &Target) -> Result<u32, ActError> {
        let r = self.resolve(t).await?;
        let scale = match r.workload {
            Workload::Deployment => {
                Api::<Deployment>::namespaced(self.client.clone(), &r.namespace)
                    .get_scale(&r.name)
                    .await
            }
            Workload::StatefulSet => {
                Api::<StatefulSet>::namespaced(self.client.clone(), &r.namespace)
                    .get_scale(&r.name)
                    .await
            }
        }
        .map_err(|e| kube_error("get scale", e))?;
        let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
        Ok(u32::try_from(replicas).unwrap_or(0))
    }

    pub async fn scale(&self, t: &Target, n: u32) -> Result<(), ActError> {
        let r = self.resolve(t).await?;
        let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": n } }));
        let pp = PatchParams::default();
        match r.workload {
            Workload::Deployment => {
                Api::<Deployment>::namespaced(self.client.clone(), &r.namespace)
                    .patch_scale(&r.name, &pp, &patch)
                    .await
            }
            Workload::StatefulSet => {
                Api::<StatefulSet>::namespaced(self.client.clone(), &r.namespace)
                    .patch_scale(&r.name, &pp, &patch)
                    .await
            }
        }
        .map(drop)
        .map_err(|e| kube_error("patch scale", e))
    }

    /// `instance` is the pod name (as the cAdvisor metrics name it).
    pub async fn restart(&self, t: &Target, instance: &str) -> Result<(), ActError> {
        let r = self.resolve(t).await?;
        Api::<Pod>::namespaced(self.client.clone(), &r.namespace)
            .delete(instance, &DeleteParams::default())
            .await
            .map(drop)
            .map_err(|e| kube_error("delete pod", e))
    }
}

fn kube_error(what: &str, e: kube::Error) -> ActError {
    match e {
        kube::Error::Api(status) => ActError::from_status(
            status.code,
            what,
            &format!("{} {}", status.reason, status.message),
        ),
        other => ActError::Transient(format!("{what}: {other}")),
    }
}
