//! The one way a pipeline is built from a validated [`Config`]. `vane run`,
//! `vane replay` and `vane backtest` all come through here, so the windows,
//! rules and outputs they set up — and the settings they accept — cannot
//! drift apart.

use std::path::Path;

use anyhow::Context;
use tracing::info;

use crate::config::{Config, ConfigError};
use crate::decode::Format;
use crate::pipeline::Pipeline;
use crate::rules::alert::Alerter;
use crate::rules::decider::Decider;
use crate::rules::health::HealthWatcher;
use crate::rules::{RuleSet, load_paths};
use crate::sinks::JsonlFile;
use crate::sources::Checkpoint;

/// Where a pipeline writes. Decisions and alert transitions are needed
/// with rules, app log events with an app-log source.
pub struct OutputFiles {
    pub windows: JsonlFile,
    pub dead_letters: JsonlFile,
    pub decisions: Option<JsonlFile>,
    pub alerts: Option<JsonlFile>,
    pub logs: Option<JsonlFile>,
}

impl OutputFiles {
    /// The files under `data_dir`, each cut back to the length the
    /// checkpoint recorded (what was written after it is written again).
    pub fn open(cfg: &Config, checkpoint: Option<&Checkpoint>) -> anyhow::Result<OutputFiles> {
        let open = |path: &Path, keep: Option<u64>| {
            JsonlFile::open(path, keep).with_context(|| format!("cannot open {}", path.display()))
        };
        let cp = checkpoint;
        let with_rules = !cfg.rules.is_empty();
        let app_logs = cfg
            .sources
            .iter()
            .any(|s| s.formats().contains(&Format::AppLog));
        Ok(OutputFiles {
            windows: open(&cfg.windows_path(), cp.map(|c| c.windows_file_len))?,
            dead_letters: open(
                &cfg.dead_letters_path(),
                cp.map(|c| c.dead_letters_file_len),
            )?,
            decisions: with_rules
                .then(|| open(&cfg.decisions_path(), cp.and_then(|c| c.decisions_file_len)))
                .transpose()?,
            alerts: with_rules
                .then(|| open(&cfg.alerts_path(), cp.and_then(|c| c.alerts_file_len)))
                .transpose()?,
            logs: app_logs
                .then(|| open(&cfg.logs_path(), cp.and_then(|c| c.logs_file_len)))
                .transpose()?,
        })
    }
}

/// The rule files a configuration names, loaded and validated as a whole
/// (`None` without rules).
pub fn load_rules(cfg: &Config) -> Result<Option<RuleSet>, Vec<String>> {
    if cfg.rules.is_empty() {
        return Ok(None);
    }
    let rules = load_paths(&cfg.rules)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    info!(
        policies = rules.policies.len(),
        alerts = rules.alerts.len(),
        health_rules = rules.health.len(),
        "rules loaded"
    );
    Ok(Some(rules))
}

/// The pipeline of `cfg`: its windows, the rules' decider, alerter and
/// health watcher (each given back what `restored` saved), app log events,
/// and the pinned apps. Sources are added by the caller, which knows where
/// its input comes from.
pub fn pipeline(
    cfg: &Config,
    rules: Option<&RuleSet>,
    files: OutputFiles,
    restored: Option<&Checkpoint>,
) -> Pipeline {
    let window = cfg.window.window_config();
    let mut p = Pipeline::new(window, files.windows, files.dead_letters);
    p.core.windows.set_limits(cfg.window.series_limits());
    p.core
        .set_max_future(i64::try_from(cfg.window.max_future.as_nanos()).unwrap_or(i64::MAX));
    if let (Some(rules), Some(decisions), Some(alerts)) = (rules, files.decisions, files.alerts) {
        let mut decider =
            Decider::new(rules.clone(), window.length_ns).with_labels(cfg.labels.clone());
        if let Some(state) = restored.and_then(|c| c.decider.clone()) {
            decider.state = state;
        }
        // Health and alert rules are evaluated even when there are none yet,
        // so that a reload can add them.
        let mut watcher = HealthWatcher::new(rules.health.clone()).with_labels(cfg.labels.clone());
        if let Some(saved) = restored.and_then(|c| c.health.clone()) {
            watcher.restore(saved);
        }
        let mut alerter = Alerter::new(rules.alerts.clone());
        if let Some(saved) = restored.and_then(|c| c.alerter.clone()) {
            alerter.restore(saved);
        }
        p = p
            .with_health(watcher)
            .with_alerts(alerter, alerts)
            .with_decisions(decider, decisions);
    }
    if let Some(logs) = files.logs {
        p = p.with_logs(logs);
        if let Some(saved) = restored.and_then(|c| c.log_assembler.clone()) {
            p.restore_log_assembler(saved);
        }
    }
    if let Some(cp) = restored {
        restore_windows(&mut p, cfg, cp);
        p.restore_stream_clocks(&cp.stream_clocks);
        p.restore_kafka_state(&cp.kafka_low_water, &cp.kafka_handoffs);
        p.core.counts = cp.counts;
        if let Some(saved) = &cp.time_guard {
            p.core.guard.restore_held(saved);
        }
    }
    for app in &cfg.window.apps {
        p.core.windows.register_app(app);
    }
    p
}

/// A configuration made of command-line flags (`vane replay`): the
/// defaults, changed by `set`, then the same validation a `vane.toml`
/// gets. Errors name the flag (`flag_of` maps a key to it).
pub fn config_from_flags(
    set: impl FnOnce(&mut Config),
    flag_of: impl Fn(&str) -> Option<&'static str>,
) -> Result<Config, String> {
    let origin = "the command line";
    let mut cfg = Config::from_toml("", origin).map_err(|e| e.to_string())?;
    set(&mut cfg);
    cfg.validate(origin).map_err(|e| match e {
        ConfigError::Invalid { key, message, .. } => {
            format!("{}: {message}", flag_of(&key).unwrap_or(key.as_str()))
        }
        other => other.to_string(),
    })?;
    Ok(cfg)
}

/// The checkpoint's windows, less any time further ahead of now than
/// `max_future` (a skewed clock saved before the time guard held it back).
fn restore_windows(p: &mut Pipeline, cfg: &Config, cp: &Checkpoint) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok());
    let reach = i64::try_from(cfg.window.max_future.as_nanos()).unwrap_or(i64::MAX);
    let Some(limit) = now.map(|n| n.saturating_add(reach)) else {
        p.core.windows.restore(&cp.windows);
        return;
    };
    let mut windows = cp.windows.clone();
    if windows.forget_future(limit) {
        tracing::warn!(
            "checkpoint: event times further ahead of now than window.max_future were forgotten (a skewed clock); windows it closed early may be written again"
        );
    }
    p.core.windows.restore(&windows);
}
