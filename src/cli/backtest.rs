//! `vane backtest`: reads demand (access logs, a rate CSV, or generated
//! shapes), runs each contender against the simulated orchestrator, and
//! prints a table (or JSON), optionally a PNG per input and app.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use vane::backtest::series::{self, Shape};
use vane::backtest::{self as bt, Aim, Contender, Run, SimSettings};
use vane::decode::{Format, Mapping};
use vane::model::WindowStats;
use vane::pipeline::replay;
use vane::rules::RuleSet;
use vane::run::build;
use vane::sinks::JsonlFile;
use vane::time::parse_duration;

#[derive(Args)]
pub struct BacktestArgs {
    /// Recorded access logs (any format Vane decodes) or rate series (`.csv`: `time,rps[,app]`).
    files: Vec<PathBuf>,
    /// Generated traffic shapes to run as well (comma-separated).
    #[arg(long, value_delimiter = ',')]
    shape: Vec<Shape>,
    /// Seed of the generated shapes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Format of the non-CSV files (`auto` detects it).
    #[arg(long, default_value = "auto")]
    format: Format,
    /// Rule files or folders (the `rules` contender, and the metric, target
    /// and bounds of the others for the apps they select).
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// Policies to compare (comma-separated). Default: rules (with --rules),
    /// vane, hpa, hpa-ideal, kpa, and vane-predictive with --train.
    #[arg(long, value_delimiter = ',')]
    compare: Vec<Contender>,
    /// Metric of the generated policies for apps no rule selects.
    #[arg(long, default_value = "rps_per_instance")]
    metric: String,
    /// Its target (default: 70 % of --capacity, for rps_per_instance).
    #[arg(long)]
    target: Option<f64>,
    #[arg(long, default_value_t = 1)]
    min: u32,
    #[arg(long, default_value_t = 200)]
    max: u32,
    /// Requests/s one ready instance serves.
    #[arg(long, default_value_t = 50.0)]
    capacity: f64,
    /// Time from asking for an instance to it serving.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    startup: Duration,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    window: Duration,
    /// The `hpa` contender's sync period (kube-controller-manager default 15 s).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    hpa_sync: Duration,
    /// The window the `hpa` contender's metric is averaged over (the metrics
    /// pipeline's rate window; `hpa-ideal` uses Vane's window).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    hpa_metric_window: Duration,
    /// Train on this much of each input first (the forecaster's history,
    /// every policy's state) and score only the rest.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    train: Duration,
    /// App of CSV rows without an app column.
    #[arg(long, default_value = "app")]
    app: String,
    /// Mean response time assumed for rate series (sets concurrency and latency).
    #[arg(long, default_value_t = 100.0)]
    latency_ms: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Write every decision that changed a count, with its reasons, to this
    /// file as JSON lines (`input`, `contender` and the decision record).
    #[arg(long)]
    decisions: Option<PathBuf>,
    /// Draw demand and instances over time to this PNG (one input and app:
    /// this name; several: `NAME-INPUT-APP.png`).
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// One input's apps, each with its window rows and its demand per second
/// (from the first window's start).
struct Input {
    name: String,
    apps: BTreeMap<String, (Vec<WindowStats>, Vec<f64>)>,
}

/// Rows and per-second demand of one app's rate series.
fn from_series(
    app: &str,
    s: &series::Series,
    window_ns: i64,
    latency_ms: f64,
) -> (Vec<WindowStats>, Vec<f64>) {
    let rows = series::windows(app, s, window_ns, latency_ms);
    let origin = s
        .first()
        .map_or(0, |p| p.0.div_euclid(window_ns) * window_ns);
    let seconds = (rows.len() as i64 * window_ns / 1_000_000_000) as usize;
    (rows, bt::per_second(s, origin, seconds))
}

#[derive(Serialize)]
struct AppResult {
    input: String,
    app: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    windows: usize,
    runs: Vec<Run>,
}

pub fn execute(a: BacktestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !a.files.is_empty() || !a.shape.is_empty(),
        "nothing to replay: give files (access logs or .csv rate series) or --shape diurnal,step,sawtooth"
    );
    anyhow::ensure!(a.capacity > 0.0, "--capacity must be more than 0");
    anyhow::ensure!(!a.window.is_zero(), "--window must be more than 0");
    let window_ns = a.window.as_nanos() as i64;
    let sim = SimSettings {
        startup_ns: a.startup.as_nanos() as i64,
        capacity_rps: a.capacity,
        score_from_ns: i64::MIN,
    };
    let rules: Option<RuleSet> = if a.rules.is_empty() {
        None
    } else {
        Some(vane::rules::load_paths(&a.rules).map_err(|errors| {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid rules:\n{}", list.join("\n"))
        })?)
    };
    let contenders = if a.compare.is_empty() {
        let mut c = Vec::new();
        if rules.is_some() {
            c.push(Contender::Rules);
        }
        c.extend([
            Contender::Vane,
            Contender::Hpa,
            Contender::HpaIdeal,
            Contender::Kpa,
        ]);
        if !a.train.is_zero() {
            c.insert(c.len() - 3, Contender::VanePredictive);
        }
        c
    } else {
        a.compare.clone()
    };
    let fallback = Aim {
        metric: a.metric.clone(),
        target: a.target.unwrap_or(a.capacity * 0.7),
        min: a.min,
        max: a.max,
        startup_s: a.startup.as_secs(),
    };

    let mut inputs = Vec::new();
    for shape in &a.shape {
        let s = shape.series(a.seed, 1_767_225_600_000_000_000, 1);
        inputs.push(Input {
            name: shape.name().to_string(),
            apps: BTreeMap::from([(
                shape.name().to_string(),
                from_series(shape.name(), &s, window_ns, a.latency_ms),
            )]),
        });
    }
    for f in &a.files {
        inputs.push(read_input(f, &a, window_ns)?);
    }

    let total: u64 = inputs
        .iter()
        .flat_map(|i| i.apps.values())
        .map(|(r, _)| r.len() as u64 * contenders.len() as u64)
        .sum();
    let progress = indicatif::ProgressBar::new(total);
    if total < 50_000 {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut results = Vec::new();
    for input in &inputs {
        for (app, (rows, per_second)) in &input.apps {
            let name = rows.iter().find_map(|r| r.name.clone());
            let first_rps = rows.first().map_or(0.0, |r| r.rps);
            let origin = rows.first().map_or(0, |r| r.start.nanos());
            let train_ns = i64::try_from(a.train.as_nanos()).unwrap_or(i64::MAX);
            let sim = SimSettings {
                score_from_ns: origin.saturating_add(train_ns),
                ..sim
            };
            let mut runs = Vec::new();
            for &c in &contenders {
                let Some(policy) =
                    bt::policy_for(c, rules.as_ref(), app, name.as_deref(), Some(&fallback))?
                else {
                    continue;
                };
                let aim = Aim::of(&policy).unwrap_or_else(|| fallback.clone());
                let initial = if aim.metric == "rps_per_instance" {
                    (first_rps / aim.target).ceil().max(1.0) as u32
                } else {
                    bt::initial_instances(first_rps, &sim)
                };
                let cadence = if c == Contender::Hpa {
                    bt::Cadence {
                        sync_ns: a.hpa_sync.as_nanos() as i64,
                        metric_window_ns: a.hpa_metric_window.as_nanos() as i64,
                    }
                } else {
                    bt::Cadence::EVERY_WINDOW
                };
                let tally =
                    bt::simulate(&policy, rows, per_second, &sim, window_ns, cadence, initial);
                progress.inc(rows.len() as u64);
                runs.push(Run {
                    contender: c.name().to_string(),
                    policy: policy.name.clone(),
                    algorithm: policy.algorithm.name().to_string(),
                    tally,
                });
            }
            results.push(AppResult {
                input: input.name.clone(),
                app: app.clone(),
                name,
                windows: rows.len(),
                runs,
            });
        }
    }
    progress.finish_and_clear();

    if let Some(plot) = &a.plot {
        let single = results.len() == 1;
        for r in &results {
            let path = if single {
                plot.clone()
            } else {
                suffixed(plot, &r.input, r.name.as_deref().unwrap_or(&r.app))
            };
            let title = format!(
                "{} — {}: demand and instances (capacity {} req/s per instance, start-up {} s)",
                r.input,
                r.name.as_deref().unwrap_or(&r.app),
                a.capacity,
                a.startup.as_secs()
            );
            bt::plot::draw(&path, &title, &r.runs, &sim, fallback.target)
                .map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))?;
            eprintln!("plot: {}", path.display());
        }
    }

    if let Some(path) = &a.decisions {
        write_decisions(path, &results)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &results)?;
        writeln!(out)?;
    } else {
        for r in &results {
            print_table(&mut out, r)?;
        }
    }
    Ok(())
}

fn write_decisions(path: &Path, results: &[AppResult]) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Line<'a> {
        input: &'a str,
        contender: &'a str,
        #[serde(flatten)]
        decision: &'a vane::model::Decision,
    }
    let mut out = io::BufWriter::new(std::fs::File::create(path)?);
    for r in results {
        for run in &r.runs {
            for decision in &run.tally.decisions {
                let line = Line {
                    input: &r.input,
                    contender: &run.contender,
                    decision,
                };
                serde_json::to_writer(&mut out, &line)?;
                writeln!(out)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn suffixed(path: &Path, input: &str, app: &str) -> PathBuf {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("backtest");
    path.with_file_name(format!("{stem}-{}-{}.png", clean(input), clean(app)))
}

fn read_input(path: &Path, a: &BacktestArgs, window_ns: i64) -> anyhow::Result<Input> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let all = series::parse_csv(&text, &path.display().to_string(), &a.app)?;
        let apps = all
            .into_iter()
            .map(|(app, s)| {
                let both = from_series(&app, &s, window_ns, a.latency_ms);
                (app, both)
            })
            .collect();
        return Ok(Input { name, apps });
    }
    let rows = log_windows(path, a.format, window_ns)?;
    // The same logs in one-second windows: the demand second by second.
    let seconds = bt::by_app(log_windows(path, a.format, 1_000_000_000)?);
    let apps = bt::by_app(rows)
        .into_iter()
        .map(|(app, rows)| {
            let origin = rows.first().map_or(0, |r| r.start.nanos());
            let n = (rows.len() as i64 * window_ns / 1_000_000_000) as usize;
            let mut demand = vec![0.0; n];
            for r in seconds.get(&app).into_iter().flatten() {
                let i = (r.start.nanos() - origin).div_euclid(1_000_000_000);
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| demand.get_mut(i)) {
                    *slot = r.rps;
                }
            }
            (app, (rows, demand))
        })
        .collect();
    Ok(Input { name, apps })
}

/// Access logs through the same decoders and windows as `vane run`, into memory.
fn log_windows(path: &Path, format: Format, window_ns: i64) -> anyhow::Result<Vec<WindowStats>> {
    let buf = SharedBuf::default();
    // The same build as `vane run` and `vane replay`, at this window length.
    let length = std::time::Duration::from_nanos(u64::try_from(window_ns).unwrap_or(0));
    let cfg = build::config_from_flags(|c| c.window.length = length, |_| Some("--window"))
        .map_err(anyhow::Error::msg)?;
    let files = build::OutputFiles {
        windows: JsonlFile::writer(buf.clone()),
        dead_letters: JsonlFile::writer(io::sink()),
        decisions: None,
        alerts: None,
        logs: None,
    };
    let mut pipeline = build::pipeline(&cfg, None, files, None);
    let src = pipeline.add_source(format, Mapping::new());
    let summary = replay(&mut pipeline, &[(src, path.display().to_string())])?;
    if summary.counts.dead_letters > 0 && window_ns > 1_000_000_000 {
        eprintln!(
            "{}: {} of {} lines could not be decoded and were left out",
            path.display(),
            summary.counts.dead_letters,
            summary.counts.lines
        );
    }
    let bytes = buf.0.lock().map(|b| b.clone()).unwrap_or_default();
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn print_table(out: &mut impl Write, r: &AppResult) -> io::Result<()> {
    let label = r.name.as_deref().unwrap_or(&r.app);
    writeln!(out, "{} / {} ({} windows)", r.input, label, r.windows)?;
    // Columns as wide as the longest contender and algorithm name.
    let pw = r
        .runs
        .iter()
        .map(|x| x.contender.chars().count())
        .chain([6])
        .max()
        .unwrap_or(6);
    let aw = r
        .runs
        .iter()
        .map(|x| x.algorithm.chars().count())
        .chain([9])
        .max()
        .unwrap_or(9);
    writeln!(
        out,
        "  {:<pw$} {:<aw$} {:>13} {:>13} {:>13} {:>13} {:>7} {:>16}",
        "policy",
        "algorithm",
        "instance-s",
        "under inst-s",
        "over inst-s",
        "req over cap",
        "actions",
        "to capacity s"
    )?;
    for run in &r.runs {
        let t = &run.tally;
        writeln!(
            out,
            "  {:<pw$} {:<aw$} {:>13.0} {:>13.0} {:>13.0} {:>13.0} {:>7} {:>16}",
            run.contender,
            run.algorithm,
            t.instance_seconds,
            t.under_provisioned_instance_seconds,
            t.over_provisioned_instance_seconds,
            t.requests_over_capacity,
            t.scale_actions,
            to_capacity(&t.step_response_s)
        )?;
    }
    let find = |n: &str| r.runs.iter().find(|x| x.contender == n);
    for opponent in ["hpa", "hpa-ideal"] {
        if let (Some(v), Some(h)) = (find("vane"), find(opponent)) {
            writeln!(out, "  {}", versus(v, h))?;
        }
    }
    if let (Some(p), Some(v)) = (find("vane-predictive"), find("vane")) {
        writeln!(out, "  {}", versus(p, v))?;
    }
    for run in &r.runs {
        if let Some(e) = run.tally.forecast_wmape {
            writeln!(
                out,
                "  {}: forecast wMAPE at the lead time {:.1}% (last day)",
                run.contender,
                e * 100.0
            )?;
        }
        if let Some(why) = &run.tally.forecast_refused {
            writeln!(
                out,
                "  {}: forecast refused ({why}): reactive",
                run.contender
            )?;
        }
    }
    writeln!(
        out,
        "  (to capacity: mean / max seconds from a load step to ready capacity ≥ demand)"
    )?;
    writeln!(out)
}

/// The step-response column: mean / max seconds of the steps met, and how
/// many were never met within the input.
fn to_capacity(steps: &[Option<f64>]) -> String {
    let met: Vec<f64> = steps.iter().flatten().copied().collect();
    let unmet = steps.len() - met.len();
    if steps.is_empty() {
        return "-".to_string();
    }
    if met.is_empty() {
        return format!("{unmet} unmet");
    }
    let mean = met.iter().sum::<f64>() / met.len() as f64;
    let max = met.iter().copied().fold(0.0, f64::max);
    let mut s = format!("{mean:.0} / {max:.0}");
    if unmet > 0 {
        s.push_str(&format!(" +{unmet} unmet"));
    }
    s
}

/// One line of a contender against an opponent, in percent of the opponent.
fn versus(v: &Run, h: &Run) -> String {
    let pct = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.0}%", a / b * 100.0)
        } else if a > 0.0 {
            "more (it had 0)".into()
        } else {
            "0 (both 0)".into()
        }
    };
    format!(
        "{} vs {}: under-provisioned {}, instance-seconds {}, actions {} vs {}",
        v.contender,
        h.contender,
        pct(
            v.tally.under_provisioned_instance_seconds,
            h.tally.under_provisioned_instance_seconds
        ),
        pct(v.tally.instance_seconds, h.tally.instance_seconds),
        v.tally.scale_actions,
        h.tally.scale_actions
    )
}
