//! The HTTP API of `vane run` (axum): `/metrics` in the Prometheus text
//! format, `/healthz`, `/readyz`, and `/api/v1/…` to look at apps,
//! decisions and alerts, tail app logs, reload rules and scale by hand.
//!
//! The run loop owns the pipeline. It publishes a [`Snapshot`] and feeds the
//! [`LiveView`] once per tick; read handlers only read those, so a slow
//! client never holds the pipeline. What changes something (reload, scale)
//! is sent to the run loop as a [`Command`] and answered when it is done.
//! Those endpoints need the bearer token of `api.token_env` (or
//! `token_file`); without one configured they are refused. Reads can be
//! guarded by a token too (`read_token_env`), and the listener can speak
//! TLS (`api.tls`).

mod auth;
pub mod client;
mod listener;
pub mod metrics;
pub mod view;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{info, warn};

use crate::core::{Counts, SourceCounts};
use crate::logs::LogEvent;
use crate::model::Decision;
use crate::time::Timestamp;
pub use view::{AppView, LiveView, RulesStatus};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Where to listen; loopback unless said otherwise.
    #[serde(default = "listen")]
    pub listen: String,
    /// Environment variable holding the bearer token of the endpoints that
    /// change something (reload, scale). Unset: those endpoints are off.
    #[serde(default)]
    pub token_env: Option<String>,
    /// The same from a file (a mounted secret).
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
    /// A bearer token every read needs too (`/metrics` and `/api/v1/…`:
    /// app logs, decisions with orchestrator errors), from a variable or a
    /// file. The probes `/healthz` and `/readyz` stay open; the write
    /// token reads as well.
    #[serde(default)]
    pub read_token_env: Option<String>,
    #[serde(default)]
    pub read_token_file: Option<std::path::PathBuf>,
    /// Serve https: `tls = { cert_file = "…", key_file = "…" }`, with
    /// `client_ca_file` to ask clients for a certificate.
    #[serde(default)]
    pub tls: Option<crate::tls::ServerTls>,
    /// The most instances anyone may ask for by hand, `force` or not: a
    /// typo of a few digits must not reach the platform.
    #[serde(default = "max_manual_instances")]
    pub max_manual_instances: u32,
}

fn max_manual_instances() -> u32 {
    1000
}

fn listen() -> String {
    "127.0.0.1:9464".into()
}

/// Per external sink: what it delivered and how often it had to retry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkStats {
    /// Requests acknowledged.
    pub batches: u64,
    pub delivered: u64,
    pub retries: u64,
    pub rejected: u64,
    pub pending: bool,
}

/// One source's counters, labelled.
#[derive(Debug, Clone, Default)]
pub struct SourceStats {
    pub name: String,
    pub format: &'static str,
    pub counts: SourceCounts,
    /// A file source waiting for its file (`wait_for_file`).
    pub waiting: bool,
}

/// What the run loop publishes every tick.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub counts: Counts,
    pub sources: Vec<SourceStats>,
    /// Consumer lag by Kafka `topic/partition`.
    pub kafka_lag: BTreeMap<String, i64>,
    /// The Kafka partitions this replica owns, and where each stands.
    pub partitions: Vec<PartitionStatus>,
    /// Records of apps whose windows another partition's clock closes.
    pub cross_partition: u64,
    /// Series held, and records counted under `__overflow__` (series limits).
    pub series: usize,
    pub overflow: u64,
    /// Container metric samples for windows already closed.
    pub late_metrics: u64,
    pub sinks: BTreeMap<&'static str, SinkStats>,
    /// Finished orchestrator actions by (app, action, result).
    pub actions: BTreeMap<(String, &'static str, &'static str), u64>,
    /// Sources started and the checkpoint restored.
    pub ready: bool,
}

/// A Kafka partition this replica owns: its lag and its own event clock
/// (windows close per partition).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PartitionStatus {
    /// `topic/partition`
    pub partition: String,
    pub source: String,
    /// Records between the next offset and the fetched high watermark.
    pub lag: Option<i64>,
    /// Next offset to read.
    pub next_offset: Option<i64>,
    /// Series (apps and instances) whose windows this partition closes.
    pub series: usize,
    pub watermark: Option<Timestamp>,
    /// End of the newest window this partition closed.
    pub closed_through: Option<Timestamp>,
}

/// What an endpoint asks of the run loop.
#[derive(Debug)]
pub enum Command {
    /// Load the rule files again; answered with the status or the errors.
    Reload(oneshot::Sender<Result<RulesStatus, Vec<String>>>),
    /// Pause (or resume) an app's decisions; answers whether that changed anything.
    Pause {
        app: String,
        paused: bool,
        reply: oneshot::Sender<Result<bool, ScaleRefused>>,
    },
    /// Scale an app by hand, through the actuator.
    Scale {
        app: String,
        instances: u32,
        force: bool,
        reply: oneshot::Sender<Result<Decision, ScaleRefused>>,
    },
}

/// Why a manual scale was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleRefused {
    #[error("no orchestrator: vane acts only with rules configured")]
    NoActuator,
    #[error("{0}")]
    Invalid(String),
    #[error("no app `{0}`: neither seen in traffic nor configured for the orchestrator")]
    UnknownApp(String),
}

/// State shared by the handlers.
pub struct Api {
    pub snapshot: RwLock<Snapshot>,
    pub view: RwLock<LiveView>,
    /// App log events as they complete, for live tails.
    pub logs: broadcast::Sender<Arc<LogEvent>>,
    commands: mpsc::Sender<Command>,
    tokens: auth::Tokens,
    max_manual_instances: u32,
}

/// The running server: where it listens, what to publish into, and the
/// commands its clients sent.
pub struct Server {
    pub addr: SocketAddr,
    pub api: Arc<Api>,
    pub commands: mpsc::Receiver<Command>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Secret(String),
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Starts the server on `cfg.listen` (port 0 picks a free one).
pub async fn serve(cfg: &ApiConfig) -> Result<Server, ServeError> {
    let tokens = auth::Tokens::from_config(cfg).map_err(ServeError::Secret)?;
    let tls = match &cfg.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            t.server_config()?,
        ))),
        None => None,
    };
    let (tx, rx) = mpsc::channel(16);
    let api = Arc::new(Api {
        snapshot: RwLock::default(),
        view: RwLock::default(),
        logs: broadcast::channel(4096).0,
        commands: tx,
        tokens,
        max_manual_instances: cfg.max_manual_instances,
    });
    let tcp = tokio::net::TcpListener::bind(&cfg.listen).await?;
    let addr = tcp.local_addr()?;
    let listener = listener::CappedListener::new(tcp, listener::MAX_CONNECTIONS);
    let app = router(Arc::clone(&api));
    let scheme = if tls.is_some() { "https" } else { "http" };
    match tls {
        Some(acceptor) => {
            let listener = listener::TlsListener::new(listener, acceptor);
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    warn!(error = %e, "https server stopped");
                }
            });
        }
        None => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    warn!(error = %e, "http server stopped");
                }
            });
        }
    }
    info!(%addr, scheme, "api listening");
    Ok(Server {
        addr,
        api,
        commands: rx,
    })
}

fn router(api: Arc<Api>) -> Router {
    // Reads need the read token when one is configured; writes check the
    // write token in their handlers; the probes are always open.
    let reads = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/apps", get(apps))
        .route("/api/v1/apps/{app}", get(one_app))
        .route("/api/v1/apps/{app}/logs", get(logs))
        .route("/api/v1/decisions", get(decisions))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/partitions", get(partitions))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&api),
            auth::require_read,
        ));
    Router::new()
        .merge(reads)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/api/v1/apps/{app}/scale", post(scale))
        .route("/api/v1/apps/{app}/pause", post(pause))
        .route("/api/v1/apps/{app}/resume", post(resume))
        .route("/api/v1/reload", post(reload))
        .with_state(api)
}

type Shared = State<Arc<Api>>;

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json(status, &serde_json::json!({ "error": message.into() }))
}

async fn ready(State(api): Shared) -> impl IntoResponse {
    let ok = api.snapshot.read().map(|s| s.ready).unwrap_or(false);
    if ok {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

async fn metrics(State(api): Shared) -> impl IntoResponse {
    let body = match (api.snapshot.read(), api.view.read()) {
        (Ok(snap), Ok(view)) => metrics::render(&snap, &view),
        _ => String::new(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

async fn apps(State(api): Shared) -> Response {
    match api.view.read() {
        Ok(v) => json(StatusCode::OK, &v.apps()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "view unavailable"),
    }
}

async fn partitions(State(api): Shared) -> Response {
    match api.snapshot.read() {
        Ok(s) => json(StatusCode::OK, &s.partitions),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "snapshot unavailable"),
    }
}

async fn one_app(State(api): Shared, Path(app): Path<String>) -> Response {
    match api.view.read() {
        Ok(v) => match v.app(&app) {
            Some(a) => json(StatusCode::OK, a),
            None => error(StatusCode::NOT_FOUND, format!("no app {app} seen")),
        },
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "view unavailable"),
    }
}

#[derive(Debug, Deserialize)]
struct DecisionQuery {
    app: Option<String>,
    limit: Option<usize>,
}

async fn decisions(State(api): Shared, Query(q): Query<DecisionQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(view::DECISIONS_KEPT);
    match api.view.read() {
        Ok(v) => json(StatusCode::OK, &v.decisions(q.app.as_deref(), limit)),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "view unavailable"),
    }
}

async fn alerts(State(api): Shared) -> Response {
    match api.view.read() {
        Ok(v) => json(
            StatusCode::OK,
            &serde_json::json!({
                "active": v.active_alerts,
                "recent": v.alert_events().collect::<Vec<_>>(),
            }),
        ),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "view unavailable"),
    }
}

async fn rules(State(api): Shared) -> Response {
    match api.view.read() {
        Ok(v) => json(StatusCode::OK, &v.rules),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "view unavailable"),
    }
}

/// Refuses a request without the configured write token (boxed: a
/// response is large, and this is the unusual path).
fn authorize(api: &Api, headers: &HeaderMap) -> Result<(), Box<Response>> {
    match api.tokens.write(headers) {
        auth::Verdict::Allowed => Ok(()),
        auth::Verdict::Off => Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "this endpoint is off: set api.token_env or api.token_file to a token",
        ))),
        auth::Verdict::Refused => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ))),
    }
}

async fn ask<T>(api: &Api, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    api.commands.send(make(tx)).await.ok()?;
    rx.await.ok()
}

async fn reload(State(api): Shared, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&api, &headers) {
        return *r;
    }
    match ask(&api, Command::Reload).await {
        Some(Ok(status)) => json(StatusCode::OK, &status),
        Some(Err(errors)) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({
                "error": "rules rejected; the previous rules stay in force",
                "errors": errors,
            }),
        ),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "vane is stopping"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleRequest {
    instances: u32,
    #[serde(default)]
    force: bool,
}

async fn scale(
    State(api): Shared,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = authorize(&api, &headers) {
        return *r;
    }
    let req: ScaleRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"instances\": N, \"force\": false}}: {e}"),
            );
        }
    };
    if req.instances > api.max_manual_instances {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "{} instances is more than api.max_manual_instances ({}) allows, force or not",
                req.instances, api.max_manual_instances
            ),
        );
    }
    let answer = ask(&api, |reply| Command::Scale {
        app,
        instances: req.instances,
        force: req.force,
        reply,
    })
    .await;
    match answer {
        Some(Ok(decision)) => json(StatusCode::ACCEPTED, &decision),
        Some(Err(e @ ScaleRefused::NoActuator)) => error(StatusCode::CONFLICT, e.to_string()),
        Some(Err(e @ ScaleRefused::UnknownApp(_))) => error(StatusCode::NOT_FOUND, e.to_string()),
        Some(Err(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "vane is stopping"),
    }
}

async fn pause(State(api): Shared, Path(app): Path<String>, headers: HeaderMap) -> Response {
    set_paused(&api, app, true, &headers).await
}

async fn resume(State(api): Shared, Path(app): Path<String>, headers: HeaderMap) -> Response {
    set_paused(&api, app, false, &headers).await
}

/// Pauses or resumes an app's decisions: `{"app": …, "paused": …, "changed": …}`.
async fn set_paused(api: &Api, app: String, paused: bool, headers: &HeaderMap) -> Response {
    if let Err(r) = authorize(api, headers) {
        return *r;
    }
    let answer = ask(api, |reply| Command::Pause {
        app: app.clone(),
        paused,
        reply,
    })
    .await;
    match answer {
        Some(Ok(changed)) => json(
            StatusCode::OK,
            &serde_json::json!({"app": app, "paused": paused, "changed": changed}),
        ),
        Some(Err(e @ ScaleRefused::UnknownApp(_))) => error(StatusCode::NOT_FOUND, e.to_string()),
        Some(Err(e @ ScaleRefused::NoActuator)) => error(StatusCode::CONFLICT, e.to_string()),
        Some(Err(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "vane is stopping"),
    }
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    #[serde(default)]
    follow: bool,
}

/// An app's log events: the newest kept ones, and with `follow=true` every
/// new one as a server-sent event (`event: log`, data = the ECS document).
async fn logs(State(api): Shared, Path(app): Path<String>, Query(q): Query<LogQuery>) -> Response {
    // Subscribe before reading what is kept, so nothing falls in between.
    let live = api.logs.subscribe();
    let recent = match api.view.read() {
        Ok(v) => v.recent_logs(&app),
        Err(_) => Vec::new(),
    };
    if !q.follow {
        let docs: Vec<_> = recent.iter().map(crate::logs::ecs::to_ecs).collect();
        return json(StatusCode::OK, &docs);
    }
    let backlog = recent.into_iter().map(Arc::new).collect::<Vec<_>>();
    let stream = futures_util::stream::unfold(
        (backlog.into_iter(), live, app),
        |(mut backlog, mut live, app)| async move {
            if let Some(ev) = backlog.next() {
                return Some((Ok::<_, Infallible>(log_event(&ev)), (backlog, live, app)));
            }
            loop {
                match live.recv().await {
                    Ok(ev) if ev.app == app => {
                        return Some((Ok(log_event(&ev)), (backlog, live, app)));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let e = Event::default()
                            .event("lagged")
                            .data(format!("{n} events skipped: this client read too slowly"));
                        return Some((Ok(e), (backlog, live, app)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn log_event(ev: &LogEvent) -> Event {
    let doc = crate::logs::ecs::to_ecs(ev);
    Event::default().event("log").data(doc.to_string())
}
