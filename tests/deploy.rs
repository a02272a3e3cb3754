//! What `deploy/` ships is usable as it is: the Kubernetes manifests are
//! valid objects, the configuration in the ConfigMap is a valid Vane
//! configuration and its rule files are valid rules. (The Role's rights are
//! checked against the adapter's real calls in `orchestrator_http.rs`.)

use std::path::Path;

fn manifests() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/vane.yaml"),
    )
    .unwrap();
    serde_saphyr::from_multiple(&text).unwrap()
}

fn config_map(docs: &[serde_json::Value], name: &str) -> k8s_openapi::api::core::v1::ConfigMap {
    let doc = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no ConfigMap {name}"));
    serde_json::from_value(doc.clone()).unwrap()
}

#[test]
fn the_manifests_are_valid_kubernetes_objects() {
    use k8s_openapi::api::{apps, core, rbac};
    let docs = manifests();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "Service"
        ]
    );
    for d in &docs {
        let v = d.clone();
        let ok = match d["kind"].as_str() {
            Some("ServiceAccount") => serde_json::from_value::<core::v1::ServiceAccount>(v).is_ok(),
            Some("Role") => serde_json::from_value::<rbac::v1::Role>(v).is_ok(),
            Some("RoleBinding") => serde_json::from_value::<rbac::v1::RoleBinding>(v).is_ok(),
            Some("ConfigMap") => serde_json::from_value::<core::v1::ConfigMap>(v).is_ok(),
            Some("Deployment") => serde_json::from_value::<apps::v1::Deployment>(v).is_ok(),
            Some("Service") => serde_json::from_value::<core::v1::Service>(v).is_ok(),
            _ => false,
        };
        assert!(ok, "{d}");
    }
    // The probes and the Service point at the API the configuration opens.
    let deployment: apps::v1::Deployment = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "Deployment")
            .unwrap()
            .clone(),
    )
    .unwrap();
    let pod = deployment.spec.template.spec.unwrap();
    let container = &pod.containers[0];
    let port = container.ports.as_ref().unwrap()[0].container_port;
    let cfg = config_map(&docs, "vane-config").data.unwrap()["vane.toml"].clone();
    let cfg = vane::config::Config::from_toml(&cfg, "vane.toml").unwrap();
    let api = cfg.api.expect("the API is on in the cluster");
    assert!(api.listen.ends_with(&format!(":{port}")), "{}", api.listen);
    let probe = container.readiness_probe.as_ref().unwrap();
    assert_eq!(
        probe.http_get.as_ref().unwrap().path.as_deref(),
        Some("/readyz")
    );
    outlasts_the_stop(pod.termination_grace_period_seconds);
    logs_through_vane_log(container);
}

/// The pod is given longer to stop than Vane's stop can take (otherwise
/// the kubelet kills it while sinks still drain).
fn outlasts_the_stop(grace_seconds: Option<i64>) {
    let grace = grace_seconds.unwrap_or(30);
    let stop = vane::run::LONGEST_STOP.as_secs() as i64;
    assert!(grace > stop, "grace {grace} s, stop up to {stop} s");
}

/// The log level is set through the variable Vane reads.
fn logs_through_vane_log(container: &k8s_openapi::api::core::v1::Container) {
    let names: Vec<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert!(names.contains(&"VANE_LOG"), "{names:?}");
    assert!(!names.contains(&"RUST_LOG"), "{names:?}");
}

#[test]
fn the_configured_rules_are_valid() {
    let docs = manifests();
    let rules = config_map(&docs, "vane-rules").data.unwrap();
    assert!(!rules.is_empty());
    for (file, text) in &rules {
        vane::rules::load::load_str_set(text, file).unwrap_or_else(|errors| {
            panic!(
                "{}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
    }
}

#[test]
fn the_systemd_unit_runs_vane_and_reloads_with_sighup() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/vane.service"),
    )
    .unwrap();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}"))
    };
    let exec: Vec<&str> = value("ExecStart").split_whitespace().collect();
    assert_eq!(exec[1..3], ["run", "--config"]);
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(value("StateDirectory"), "vane");
    assert_eq!(value("Environment"), "VANE_LOG=info");
    let stop: u64 = value("TimeoutStopSec").parse().unwrap();
    assert!(stop > vane::run::LONGEST_STOP.as_secs(), "{stop}");
}

/// The scale-out StatefulSet: valid objects, a valid configuration whose
/// Kafka source takes its static membership id from the pod name the
/// StatefulSet puts into `POD_NAME`.
#[test]
fn the_scale_out_set_names_each_replica_in_the_group() {
    use k8s_openapi::api::{apps, core};
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/vane-scale-out.yaml"),
    )
    .unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "StatefulSet", "Service"]);
    let set: apps::v1::StatefulSet = serde_json::from_value(docs[1].clone()).unwrap();
    let _: core::v1::Service = serde_json::from_value(docs[2].clone()).unwrap();
    let spec = set.spec;
    assert!(spec.replicas.unwrap_or(1) > 1);
    let pod = spec.template.spec.unwrap();
    outlasts_the_stop(pod.termination_grace_period_seconds);
    let container = &pod.containers[0];
    logs_through_vane_log(container);
    let pod_name = container
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "POD_NAME")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.clone());
    assert_eq!(pod_name.as_deref(), Some("metadata.name"));
    let cfg = config_map(&docs, "vane-scale-out-config").data.unwrap()["vane.toml"].clone();
    let cfg = vane::config::Config::from_toml(&cfg, "vane.toml").unwrap();
    let ids: Vec<Option<String>> = cfg
        .sources
        .iter()
        .map(|s| match s {
            vane::config::SourceConfig::Kafka { instance_id, .. } => instance_id.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(ids, [Some("${POD_NAME}".to_string())]);
}
