//! The Cloud Foundry and Kubernetes adapters against a loopback HTTP server
//! that records every request: the tests assert the exact methods, paths,
//! headers and bodies of the real APIs (Cloud Foundry v3 + UAA; the Kubernetes
//! `scale` subresource, label lookup and pod deletion). No real Cloud
//! Controller or Kubernetes API server is available on the test machine, so
//! this is the evidence that the calls are the documented ones; the retry,
//! token and error paths are driven by the server's answers.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::scripted::{Request, ScriptedServer};
use vane::act::actuator::{Action, Actuator};
use vane::act::orchestrator::cloudfoundry::CloudFoundry;
use vane::act::orchestrator::kubernetes::Kubernetes;
use vane::act::orchestrator::{
    ActError, AppTarget, KubernetesConfig, Orchestrator, OrchestratorConfig, RetryPolicy, Target,
};
use vane::rules::{Decision, DecisionSource, Direction};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const QUICK: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    backoff: Duration::from_millis(10),
};

/// A Cloud Controller + UAA: tokens `tok-1`, `tok-2`, ...; one app `shop`.
fn cloud_controller(
    route: impl Fn(&Request, usize) -> Option<(u16, String)> + Send + 'static,
) -> ScriptedServer {
    let tokens = std::sync::atomic::AtomicUsize::new(0);
    ScriptedServer::start(move |req, n| {
        if let Some(answer) = route(req, n) {
            return answer;
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/oauth/token") => {
                let t = tokens.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                (
                    200,
                    format!(r#"{{"access_token":"tok-{t}","token_type":"bearer","expires_in":3600,"scope":"cloud_controller.admin","jti":"x"}}"#),
                )
            }
            ("GET", "/v3/apps?names=shop&space_guids=space-1") => (
                200,
                r#"{"pagination":{"total_results":1},"resources":[{"guid":"app-guid-1","name":"shop","state":"STARTED"}]}"#.into(),
            ),
            ("GET", "/v3/apps/app-guid-1/processes/web") => (
                200,
                r#"{"guid":"proc-guid-1","type":"web","instances":2,"memory_in_mb":256}"#.into(),
            ),
            ("POST", "/v3/processes/proc-guid-1/actions/scale") => (
                202,
                r#"{"guid":"proc-guid-1","type":"web","instances":5}"#.into(),
            ),
            ("DELETE", "/v3/processes/proc-guid-1/instances/1") => (204, String::new()),
            _ => (404, r#"{"errors":[{"code":10010,"title":"CF-ResourceNotFound","detail":"not found"}]}"#.into()),
        }
    })
}

fn plain_client() -> reqwest::Client {
    vane::tls::http::client(&vane::tls::TlsConfig::default(), CloudFoundry::timeouts()).unwrap()
}

fn cf(server: &ScriptedServer) -> CloudFoundry {
    CloudFoundry::new(
        &server.url,
        &server.url,
        "vane-client",
        "s3cret",
        Some("space-1".into()),
        BTreeMap::new(),
        plain_client(),
    )
}

/// The same calls over https, built from the configuration as `vane run`
/// builds them: Cloud Controller and UAA behind TLS with a CA the test
/// made, the client secret from a file.
#[test]
fn cloud_foundry_and_uaa_over_https_with_the_secret_from_a_file() {
    use vane::act::orchestrator::CloudFoundryConfig;
    let pki = common::tls::Pki::new();
    let server = cloud_controller(|_, _| None);
    let upstream = server.url.trim_start_matches("http://").parse().unwrap();
    let front = common::tls::terminator(&pki, upstream, false);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let base = format!("https://localhost:{}", front.port());
    let cfg = CloudFoundryConfig {
        api: base.clone(),
        uaa: base,
        client_id: "vane-client".into(),
        client_secret_env: None,
        client_secret_file: Some(secret),
        space_guid: Some("space-1".into()),
        tls: vane::tls::TlsConfig {
            ca_file: Some(pki.ca.clone()),
            ..Default::default()
        },
    };
    let cf = CloudFoundry::from_config(&cfg, &BTreeMap::new()).unwrap();
    let shop = Target::new("shop", None);
    rt().block_on(async {
        assert_eq!(cf.instances(&shop).await, Ok(2));
        cf.scale(&shop, 5).await.unwrap();
    });
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4, "{:?}", server.lines());
    assert_eq!(
        reqs[0].header("authorization"),
        Some("Basic dmFuZS1jbGllbnQ6czNjcmV0"),
        "the secret as the file holds it, without its newline"
    );
    // Without the CA: no request gets through, and the error says why.
    let untrusting = CloudFoundryConfig {
        tls: vane::tls::TlsConfig::default(),
        ..cfg
    };
    let cf = CloudFoundry::from_config(&untrusting, &BTreeMap::new()).unwrap();
    let e = rt().block_on(cf.instances(&shop)).unwrap_err();
    assert!(format!("{e:?}").contains("UnknownIssuer"), "{e:?}");
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn cloud_foundry_reads_scales_and_restarts_with_the_v3_api() {
    let server = cloud_controller(|_, _| None);
    let cf = cf(&server);
    let shop = Target::new("shop", None);
    rt().block_on(async {
        assert_eq!(cf.instances(&shop).await, Ok(2));
        cf.scale(&shop, 5).await.unwrap();
        cf.restart(&shop, "1").await.unwrap();
    });
    assert_eq!(
        server.lines(),
        [
            "POST /oauth/token",
            "GET /v3/apps?names=shop&space_guids=space-1",
            "GET /v3/apps/app-guid-1/processes/web",
            "POST /v3/processes/proc-guid-1/actions/scale",
            "DELETE /v3/processes/proc-guid-1/instances/1",
        ],
        "one token for every call, the process GUID learnt once"
    );
    let reqs = server.requests();
    let token = &reqs[0];
    // base64("vane-client:s3cret")
    assert_eq!(
        token.header("authorization"),
        Some("Basic dmFuZS1jbGllbnQ6czNjcmV0")
    );
    assert_eq!(
        token.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(token.body, "grant_type=client_credentials");
    for r in &reqs[1..] {
        assert_eq!(r.header("authorization"), Some("Bearer tok-1"), "{r:?}");
    }
    let scale = &reqs[3];
    assert_eq!(scale.header("content-type"), Some("application/json"));
    assert_eq!(scale.json(), serde_json::json!({"instances": 5}));
    assert_eq!(reqs[4].body, "");
}

#[test]
fn cloud_foundry_uses_the_configured_guid_without_a_lookup() {
    let server = cloud_controller(|_, _| None);
    let mut apps = BTreeMap::new();
    apps.insert(
        "shop".to_string(),
        AppTarget {
            guid: Some("app-guid-1".into()),
            ..AppTarget::default()
        },
    );
    let cf = CloudFoundry::new(
        &server.url,
        &server.url,
        "vane-client",
        "s3cret",
        None,
        apps,
        plain_client(),
    );
    rt().block_on(async {
        assert_eq!(
            cf.instances(&Target::new("9f3c", Some("shop"))).await,
            Ok(2)
        );
    });
    assert_eq!(
        server.lines(),
        ["POST /oauth/token", "GET /v3/apps/app-guid-1/processes/web"]
    );
}

#[test]
fn cloud_foundry_renews_a_rejected_token_and_retries_server_errors() {
    // The first scale is answered 401 (token revoked), the second 503, the third works.
    let scale_calls = std::sync::atomic::AtomicUsize::new(0);
    let server = cloud_controller(move |req, _| {
        if req.path == "/v3/processes/proc-guid-1/actions/scale" {
            match scale_calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => {
                    return Some((
                        401,
                        r#"{"errors":[{"code":1000,"title":"CF-InvalidAuthToken"}]}"#.into(),
                    ));
                }
                1 => {
                    return Some((
                        503,
                        r#"{"errors":[{"title":"CF-ServiceUnavailable"}]}"#.into(),
                    ));
                }
                _ => {}
            }
        }
        None
    });
    let cf = cf(&server);
    let shop = Target::new("shop", None);
    let (result, attempts) = rt().block_on(async {
        cf.instances(&shop).await.unwrap();
        QUICK.run(|| cf.scale(&shop, 5)).await
    });
    assert_eq!(result, Ok(()));
    assert_eq!(attempts, 3);
    let reqs = server.requests();
    let scales: Vec<&Request> = reqs
        .iter()
        .filter(|r| r.path.ends_with("/actions/scale"))
        .collect();
    assert_eq!(scales.len(), 3);
    assert_eq!(scales[0].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(
        scales[1].header("authorization"),
        Some("Bearer tok-2"),
        "a new token after the 401"
    );
    assert_eq!(scales[2].header("authorization"), Some("Bearer tok-2"));
    assert_eq!(reqs.iter().filter(|r| r.path == "/oauth/token").count(), 2);
}

#[test]
fn cloud_foundry_client_errors_are_not_retried() {
    let server = cloud_controller(|req, _| {
        (req.path == "/v3/processes/proc-guid-1/actions/scale").then(|| {
            (422, r#"{"errors":[{"code":10008,"title":"CF-UnprocessableEntity","detail":"memory quota exceeded"}]}"#.into())
        })
    });
    let cf = cf(&server);
    let shop = Target::new("shop", None);
    let (result, attempts) = rt().block_on(async {
        cf.instances(&shop).await.unwrap();
        QUICK.run(|| cf.scale(&shop, 50)).await
    });
    assert_eq!(attempts, 1);
    let err = result.unwrap_err();
    assert!(matches!(err, ActError::Permanent(_)), "{err:?}");
    assert!(
        err.to_string().contains("HTTP 422") && err.to_string().contains("memory quota exceeded"),
        "{err}"
    );
}

#[test]
fn cloud_foundry_unknown_app_names_the_fix() {
    let server = cloud_controller(|req, _| {
        req.path.starts_with("/v3/apps?names=").then(|| {
            (
                200,
                r#"{"pagination":{"total_results":0},"resources":[]}"#.into(),
            )
        })
    });
    let cf = cf(&server);
    let err = rt()
        .block_on(cf.instances(&Target::new("nope", None)))
        .unwrap_err();
    assert!(
        err.to_string().contains("[orchestrator.apps.nope] guid"),
        "{err}"
    );
}

/// A failed action reaches the decision log as a record with the error, and
/// the count read back afterwards is the real one.
#[test]
fn a_failed_action_is_a_decision_record_with_the_error() {
    let server = cloud_controller(|req, _| {
        (req.path == "/v3/processes/proc-guid-1/actions/scale").then(|| {
            (
                503,
                r#"{"errors":[{"title":"CF-ServiceUnavailable"}]}"#.into(),
            )
        })
    });
    let orch = Orchestrator::CloudFoundry(cf(&server));
    let outcomes = rt().block_on(async {
        let mut a = Actuator::new(orch, QUICK, Duration::from_secs(60));
        a.submit(&decision("shop", 2, 5));
        a.settle(Duration::from_secs(10)).await
    });
    assert_eq!(outcomes.len(), 1);
    let o = &outcomes[0];
    assert_eq!(o.attempts, 3);
    assert_eq!(
        o.instances,
        Some(2),
        "the count was read back after the failure"
    );
    let rec = o.failure_record("cloudfoundry").expect("a record");
    assert_eq!(rec.source, DecisionSource::Actuator);
    assert_eq!((rec.current, rec.recommended, rec.desired), (2, 5, 2));
    assert!(rec.error.as_deref().is_some_and(|e| e.contains("HTTP 503")));
    assert!(
        rec.reason
            .starts_with("shop: could not scale to 5 through cloudfoundry after 3 attempts")
            && rec.reason.ends_with("it has 2 instances."),
        "{}",
        rec.reason
    );
    assert!(matches!(o.action, Action::Scale { to: 5, .. }));
}

/// One action in flight per app: decisions arriving meanwhile collapse into
/// the latest, and nothing is sent for a count the app already has.
#[test]
fn one_action_in_flight_per_app_and_the_latest_wins() {
    let server = cloud_controller(|req, _| {
        if req.path == "/v3/processes/proc-guid-1/actions/scale" {
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    });
    let orch = Orchestrator::CloudFoundry(cf(&server));
    rt().block_on(async {
        let mut a = Actuator::new(orch, QUICK, Duration::from_secs(60));
        a.submit(&decision("shop", 2, 3));
        tokio::time::sleep(Duration::from_millis(50)).await;
        a.submit(&decision("shop", 3, 4));
        a.submit(&decision("shop", 4, 6));
        let outcomes = a.settle(Duration::from_secs(10)).await;
        assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    });
    let scales: Vec<serde_json::Value> = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/actions/scale"))
        .map(Request::json)
        .collect();
    assert_eq!(
        scales,
        [
            serde_json::json!({"instances": 3}),
            serde_json::json!({"instances": 6})
        ]
    );
}

fn decision(app: &str, current: u32, desired: u32) -> Decision {
    Decision {
        time: "2026-01-01T00:00:10Z".parse().unwrap(),
        app: app.into(),
        name: None,
        policy: "p".into(),
        algorithm: "target-tracking".into(),
        current,
        recommended: desired,
        desired,
        direction: if desired > current {
            Direction::Up
        } else {
            Direction::Down
        },
        observed: Vec::new(),
        recommendations: Vec::new(),
        constraints: Vec::new(),
        reason: String::new(),
        source: DecisionSource::Policy,
        error: None,
        action: None,
        instance: None,
        forecast: None,
    }
}

// Kubernetes

const SCALE_WEB: &str = r#"{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"web","namespace":"shop","uid":"1","resourceVersion":"7"},"spec":{"replicas":3},"status":{"replicas":3,"selector":"app=web"}}"#;

fn api_server() -> ScriptedServer {
    ScriptedServer::start(|req, _| {
        match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/apis/apps/v1/namespaces/shop/deployments/web/scale") => (200, SCALE_WEB.into()),
        ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web/scale?") => {
            let n = req.json()["spec"]["replicas"].clone();
            (200, SCALE_WEB.replace(r#""spec":{"replicas":3}"#, &format!(r#""spec":{{"replicas":{n}}}"#)))
        }
        ("GET", "/apis/apps/v1/namespaces/data/statefulsets/db/scale") => (
            200,
            r#"{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"db","namespace":"data"},"spec":{"replicas":2},"status":{"replicas":2}}"#.into(),
        ),
        ("GET", p) if p.starts_with("/apis/apps/v1/namespaces/apps/deployments?") && p.ends_with("%3Dcatalog") => (
            200,
            r#"{"kind":"DeploymentList","apiVersion":"apps/v1","metadata":{"resourceVersion":"9"},"items":[{"metadata":{"name":"catalog-v2","namespace":"apps"},"spec":{"selector":{"matchLabels":{"app":"catalog"}},"template":{}}}]}"#.into(),
        ),
        ("GET", p) if p.starts_with("/apis/apps/v1/namespaces/apps/deployments?") || p.starts_with("/apis/apps/v1/namespaces/apps/statefulsets?") => (
            200,
            r#"{"kind":"List","apiVersion":"apps/v1","metadata":{"resourceVersion":"9"},"items":[]}"#.into(),
        ),
        ("GET", "/apis/apps/v1/namespaces/apps/deployments/catalog-v2/scale") => (
            200,
            r#"{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"catalog-v2","namespace":"apps"},"spec":{"replicas":4},"status":{"replicas":4}}"#.into(),
        ),
        ("DELETE", p) if p.starts_with("/api/v1/namespaces/shop/pods/web-7d9c-x2x4q") => (
            200,
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-7d9c-x2x4q","namespace":"shop"}}"#.into(),
        ),
        ("GET", "/apis/apps/v1/namespaces/shop/deployments/broken/scale") => (
            503,
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcd timeout","reason":"ServiceUnavailable","code":503}"#.into(),
        ),
        _ => (
            404,
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"not found","reason":"NotFound","code":404}"#.into(),
        ),
    }
    })
}

/// The Kubernetes keys and the apps of the tests' `[orchestrator]`.
fn k8s_config() -> (KubernetesConfig, BTreeMap<String, AppTarget>) {
    let k8s = KubernetesConfig {
        namespace: Some("apps".into()),
        ..KubernetesConfig::default()
    };
    let mut cfg = OrchestratorConfig::default();
    let target = |workload: &str, name: &str, ns: &str| AppTarget {
        workload: Some(workload.into()),
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..AppTarget::default()
    };
    cfg.apps
        .insert("web".into(), target("Deployment", "web", "shop"));
    cfg.apps
        .insert("db".into(), target("StatefulSet", "db", "data"));
    cfg.apps
        .insert("broken".into(), target("Deployment", "broken", "shop"));
    (k8s, cfg.apps)
}

#[test]
fn kubernetes_reads_and_patches_the_scale_subresource() {
    let server = api_server();
    let web = Target::new("web", None);
    rt().block_on(async {
        let k = Kubernetes::for_url(&server.url, &k8s_config().0, &k8s_config().1)
            .await
            .unwrap();
        assert_eq!(k.instances(&web).await, Ok(3));
        k.scale(&web, 5).await.unwrap();
        assert_eq!(k.instances(&Target::new("db", None)).await, Ok(2));
    });
    let reqs = server.requests();
    let lines: Vec<String> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        lines[0],
        "GET /apis/apps/v1/namespaces/shop/deployments/web/scale"
    );
    // kube always appends the (here empty) query string.
    assert_eq!(
        lines[1],
        "PATCH /apis/apps/v1/namespaces/shop/deployments/web/scale?"
    );
    assert_eq!(
        lines[2],
        "GET /apis/apps/v1/namespaces/data/statefulsets/db/scale"
    );
    let patch = &reqs[1];
    assert_eq!(
        patch.header("content-type"),
        Some("application/merge-patch+json")
    );
    assert_eq!(patch.json(), serde_json::json!({"spec": {"replicas": 5}}));
}

#[test]
fn kubernetes_finds_unmapped_apps_by_label() {
    let server = api_server();
    let n = rt()
        .block_on(async {
            let k = Kubernetes::for_url(&server.url, &k8s_config().0, &k8s_config().1)
                .await
                .unwrap();
            k.instances(&Target::new("0f1e", Some("catalog"))).await
        })
        .unwrap();
    assert_eq!(n, 4);
    assert_eq!(
        server.lines(),
        [
            "GET /apis/apps/v1/namespaces/apps/deployments?&labelSelector=app.kubernetes.io%2Fname%3Dcatalog",
            "GET /apis/apps/v1/namespaces/apps/deployments/catalog-v2/scale",
        ]
    );
}

#[test]
fn kubernetes_restarts_an_instance_by_deleting_its_pod() {
    let server = api_server();
    rt().block_on(async {
        let k = Kubernetes::for_url(&server.url, &k8s_config().0, &k8s_config().1)
            .await
            .unwrap();
        k.restart(&Target::new("web", None), "web-7d9c-x2x4q").await
    })
    .unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "DELETE");
    assert!(
        reqs[0]
            .path
            .starts_with("/api/v1/namespaces/shop/pods/web-7d9c-x2x4q"),
        "{}",
        reqs[0].path
    );
}

#[test]
fn kubernetes_errors_are_classified() {
    let server = api_server();
    rt().block_on(async {
        let k = Kubernetes::for_url(&server.url, &k8s_config().0, &k8s_config().1)
            .await
            .unwrap();
        let e = k.instances(&Target::new("broken", None)).await.unwrap_err();
        assert!(e.is_transient(), "503 is worth retrying: {e}");
        assert!(e.to_string().contains("etcd timeout"), "{e}");
        let e = k
            .instances(&Target::new("nolabel", None))
            .await
            .unwrap_err();
        assert!(!e.is_transient(), "{e}");
        assert!(
            e.to_string().contains("app.kubernetes.io/name=nolabel"),
            "{e}"
        );
    });
}

/// (API group, resource, verb) of a request to the Kubernetes API, by its
/// conventions: `/api/v1/…` is the core group, `/apis/{group}/{version}/…`
/// the others; GET of a collection is `list`.
fn rbac_of(method: &str, path: &str) -> (String, String, String) {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => (group.to_string(), rest),
        _ => panic!("not a Kubernetes API path: {path}"),
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] => rest,
        other => other,
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        other => panic!("unexpected resource path {other:?}"),
    };
    let verb = match (method, named) {
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", _) => "delete",
        ("POST", _) => "create",
        other => panic!("unexpected method {other:?}"),
    };
    (group, resource, verb.to_string())
}

/// The Role shipped in `deploy/kubernetes/vane.yaml` grants exactly what
/// the adapter calls (every code path: read, scale of both workload kinds,
/// label lookup of both, restart), no more and no less.
#[test]
fn the_deployed_role_grants_exactly_what_the_adapter_calls() {
    let server = api_server();
    rt().block_on(async {
        let k = Kubernetes::for_url(&server.url, &k8s_config().0, &k8s_config().1)
            .await
            .unwrap();
        let web = Target::new("web", None);
        let db = Target::new("db", None);
        let _ = k.instances(&web).await;
        let _ = k.scale(&web, 4).await;
        let _ = k.instances(&db).await;
        let _ = k.scale(&db, 3).await;
        let _ = k.instances(&Target::new("0f1e", Some("catalog"))).await;
        // No Deployment has the label: StatefulSets are searched too.
        let _ = k.instances(&Target::new("9a9a", Some("ghost"))).await;
        let _ = k.restart(&web, "web-7d9c-x2x4q").await;
    });
    let used: std::collections::BTreeSet<(String, String, String)> = server
        .requests()
        .iter()
        .map(|r| rbac_of(&r.method, &r.path))
        .collect();

    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/vane.yaml"),
    )
    .unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let role = docs
        .iter()
        .find(|d| d["kind"] == "Role")
        .expect("a Role in the manifests");
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(role.clone()).unwrap();
    let mut granted = std::collections::BTreeSet::new();
    for rule in role.rules.unwrap_or_default() {
        for g in rule.api_groups.unwrap_or_default() {
            for r in rule.resources.clone().unwrap_or_default() {
                for v in &rule.verbs {
                    granted.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    assert_eq!(granted, used);
    // And the binding gives that Role to the ServiceAccount the Deployment runs as.
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "RoleBinding")
            .unwrap()
            .clone(),
    )
    .unwrap();
    let deployment: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "Deployment")
            .unwrap()
            .clone(),
    )
    .unwrap();
    let account = deployment
        .spec
        .template
        .spec
        .and_then(|s| s.service_account_name)
        .unwrap();
    assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());
    assert!(
        binding
            .subjects
            .unwrap_or_default()
            .iter()
            .any(|s| s.kind == "ServiceAccount" && s.name == account)
    );
}
