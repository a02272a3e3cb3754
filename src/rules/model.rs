//! The rule-file format (`rules/*.yaml`, `apiVersion: vane/v1`), as plain data.
//!
//! A file holds one or more YAML documents; each is one policy:
//!
//! ```yaml
//! apiVersion: vane/v1
//! kind: ScalingPolicy
//! metadata: {name: web}
//! spec:
//!   selector: {names: ["web.*"]}
//!   min: 2
//!   max: 20
//!   targets:
//!     - {metric: rps_per_instance, value: 120}
//! ```
//!
//! Values that later checks may reject are `Spanned`, so errors point at them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

/// A default value, which has no place in the file.
pub fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned {
        value,
        referenced: Location::UNKNOWN,
        defined: Location::UNKNOWN,
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleDocument {
    pub api_version: Spanned<String>,
    pub kind: Spanned<String>,
    pub metadata: Metadata,
    pub spec: PolicySpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpec {
    pub selector: Selector,
    pub min: Spanned<u32>,
    pub max: Spanned<u32>,
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Target tracking: desired = ceil(current × value ÷ target), largest over metrics.
    #[serde(default)]
    pub targets: Vec<Target>,
    /// Relative change below which target tracking leaves the count alone.
    #[serde(default = "default_tolerance")]
    pub tolerance: Spanned<f64>,
    /// Step rules: threshold, breach duration and adjustment.
    #[serde(default)]
    pub steps: Vec<StepRule>,
    #[serde(default)]
    pub behavior: Behavior,
    #[serde(default)]
    pub schedules: Vec<Schedule>,
    #[serde(default)]
    pub missing_data: MissingData,
    /// Knative decider settings for `algorithm: kpa`.
    #[serde(default)]
    pub kpa: Option<KpaSettings>,
    /// Decisions are recorded with the reason `paused` and nothing is
    /// carried out (like KEDA's paused replicas).
    #[serde(default)]
    pub paused: bool,
    /// Predictive scaling from a forecast of the app's own history.
    #[serde(default)]
    pub predictive: Option<PredictiveSettings>,
}

/// `spec.predictive`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PredictiveSettings {
    /// `forecast-only` (default: recorded beside each decision, nothing acts
    /// on it) or `enabled` (the forecast raises the floor ahead of time).
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    /// How far ahead the floor is raised: the start-up time plus a buffer
    /// (default: `scaleUp.lookahead` + 60 s).
    #[serde(default)]
    pub lead_time: Option<Spanned<String>>,
    /// The most wMAPE at the lead time a forecast may have and be acted on.
    #[serde(default)]
    pub max_error: Option<Spanned<f64>>,
    /// How often the forecast is refitted (default 1h).
    #[serde(default)]
    pub refresh: Option<Spanned<String>>,
}

/// `algorithm: kpa` settings (Knative's names; defaults are Knative's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KpaSettings {
    #[serde(default)]
    pub panic_threshold: Option<Spanned<f64>>,
    #[serde(default)]
    pub stable_window: Option<Spanned<String>>,
    #[serde(default)]
    pub scale_down_delay: Option<Spanned<String>>,
    #[serde(default)]
    pub max_scale_up_rate: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_scale_down_rate: Option<Spanned<f64>>,
    #[serde(default)]
    pub target_burst_capacity: Option<Spanned<f64>>,
    #[serde(default)]
    pub activation_scale: Option<Spanned<u32>>,
}

fn default_tolerance() -> Spanned<f64> {
    unspanned(0.1)
}

/// Which apps a policy applies to. An app matches when any list matches it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Exact app ids (the window key: gorouter `app_id`, or the mapped app).
    #[serde(default)]
    pub apps: Vec<String>,
    /// Glob patterns (`*`, `?`) matched against the app id.
    #[serde(default)]
    pub names: Vec<Spanned<String>>,
    /// Labels an app must carry (all of them); labels come from the app catalogue.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    #[default]
    TargetTracking,
    Step,
    /// The Kubernetes HPA: its replica calculator over the instances' values
    /// and its default behavior (5 min scale-down stabilization, scale-up
    /// limited to max(4 instances, 100 %) per 15 s).
    Hpa,
    /// Knative's KPA: stable (60 s) and panic windows, rate limits per
    /// decision, optional scale-down delay.
    Kpa,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::TargetTracking => "target-tracking",
            Algorithm::Step => "step",
            Algorithm::Hpa => "hpa",
            Algorithm::Kpa => "kpa",
        }
    }
}

/// A metric read from the app's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Requests per second per instance.
    RpsPerInstance,
    /// Requests in flight per instance (sum of response times ÷ window ÷ instances).
    ConcurrencyPerInstance,
    /// 95th percentile latency of the app, ms.
    P95Ms,
    /// 99th percentile latency of the app, ms.
    P99Ms,
    /// 5xx ÷ requests.
    ErrorRatio,
    /// Mean CPU use per instance, percent of a core (container metrics).
    CpuPct,
    /// Mean memory per instance, percent of its quota (container metrics).
    MemoryPct,
    /// Mean memory per instance in MB (container metrics; Cloud Foundry's `memoryused`).
    MemoryMb,
    /// Requests per second of the whole app (Cloud Foundry's `throughput`).
    Rps,
    /// Mean response time in ms (Cloud Foundry's `responsetime`).
    ResponseTimeMs,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::RpsPerInstance => "rps/instance",
            Metric::ConcurrencyPerInstance => "concurrency/instance",
            Metric::P95Ms => "p95 ms",
            Metric::P99Ms => "p99 ms",
            Metric::ErrorRatio => "error ratio",
            Metric::CpuPct => "cpu %",
            Metric::MemoryPct => "memory %",
            Metric::MemoryMb => "memory MB",
            Metric::Rps => "rps",
            Metric::ResponseTimeMs => "response time ms",
        }
    }

    /// The window metric it reads (`model::metrics`), and whether the app
    /// row's value is divided by the instances running (a sum over them).
    pub fn source(self) -> (&'static str, bool) {
        match self {
            Metric::RpsPerInstance => ("rps", true),
            Metric::ConcurrencyPerInstance => ("concurrency", true),
            Metric::P95Ms => ("p95_ms", false),
            Metric::P99Ms => ("p99_ms", false),
            Metric::ErrorRatio => ("error_ratio", false),
            // App rows hold the mean over instances.
            Metric::CpuPct => ("cpu_pct", false),
            Metric::MemoryPct => ("memory_pct", false),
            // The app row holds the sum over instances.
            Metric::MemoryMb => ("memory_mb", true),
            Metric::Rps => ("rps", false),
            Metric::ResponseTimeMs => ("response_time_ms", false),
        }
    }

    /// Whether the metric is a load per instance, which more instances dilute
    /// (so target tracking is proportional); latency and error ratio are not.
    pub fn is_per_instance(self) -> bool {
        matches!(
            self,
            Metric::RpsPerInstance | Metric::ConcurrencyPerInstance
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub metric: Metric,
    pub value: Spanned<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRule {
    pub metric: Metric,
    /// `>`, `>=`, `<`, `<=`.
    pub operator: Spanned<String>,
    pub threshold: Spanned<f64>,
    /// How long the condition must hold (a multiple of the window length).
    #[serde(rename = "for", default = "zero")]
    pub breach: Spanned<String>,
    /// `+N`, `-N`, `+N%`, `-N%`.
    pub adjust: Spanned<String>,
}

fn zero() -> Spanned<String> {
    unspanned("0s".to_string())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Behavior {
    #[serde(default)]
    pub scale_up: Option<DirectionBehavior>,
    #[serde(default)]
    pub scale_down: Option<DirectionBehavior>,
    /// After an action, no further action for this long.
    #[serde(default)]
    pub cooldown: Option<Spanned<String>>,
    /// React within one window when load exceeds `factor` × capacity.
    #[serde(default)]
    pub burst: Option<Burst>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DirectionBehavior {
    /// Use the most conservative recommendation seen in this window of time.
    #[serde(default)]
    pub stabilization: Option<Spanned<String>>,
    /// At most this many instances per `period`.
    #[serde(default)]
    pub max_instances: Option<Spanned<u32>>,
    /// At most this percentage of the current count per `period`.
    #[serde(default)]
    pub max_percent: Option<Spanned<f64>>,
    /// Scale-down only: steps smaller than this percentage of the current
    /// count wait (at least one instance always may go).
    #[serde(default)]
    pub min_percent: Option<Spanned<f64>>,
    #[serde(default)]
    pub period: Option<Spanned<String>>,
    /// Scale-up only: size for the load expected this far ahead, from the
    /// rising trend of the last windows (set it to the app's start-up time).
    #[serde(default)]
    pub lookahead: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    #[serde(default = "default_burst")]
    pub factor: Spanned<f64>,
}

fn default_burst() -> Spanned<f64> {
    unspanned(2.0)
}

/// Overrides of `min`/`max`: recurring (`cron` + `timezone` + `duration`) or a
/// fixed range (`from`, `to`, RFC 3339).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub cron: Option<Spanned<String>>,
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    #[serde(default)]
    pub duration: Option<Spanned<String>>,
    /// A fixed range (`from` and `to`), or, with `cron`, the dates between
    /// which the recurring schedule applies.
    #[serde(default)]
    pub from: Option<Spanned<String>>,
    #[serde(default)]
    pub to: Option<Spanned<String>>,
    #[serde(default)]
    pub min: Option<Spanned<u32>>,
    #[serde(default)]
    pub max: Option<Spanned<u32>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MissingData {
    /// Use this many instances after `fallbackAfter` windows without data.
    #[serde(default)]
    pub fallback: Option<Spanned<u32>>,
    #[serde(default)]
    pub fallback_after: Option<Spanned<u32>>,
}
