//! The `vane` command line: a thin layer over the library. Exit codes: 0 done,
//! 1 failed (the error is printed), 2 usage error (from clap).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

mod cli;

use vane::config::Config;
use vane::decode::{Format, Mapping};
use vane::generate::{ErrorBurst, Spike, TrafficSpec, generate};
use vane::lockfile::DataDirLock;
use vane::pipeline::replay;
use vane::run::{RunOptions, build, run};
use vane::sinks::JsonlFile;
use vane::time::parse_duration;

#[derive(Parser)]
#[command(
    name = "vane",
    version,
    about = "Telemetry and autoscaling stream processor for container PaaS platforms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Follow the configured sources and write window aggregates continuously.
    Run {
        /// Configuration file (TOML). Default: ./vane.toml, else the built-in default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Close every window and exit once no input has arrived for this long (e.g. `5s`).
        #[arg(long, value_parser = parse_duration)]
        exit_when_idle: Option<Duration>,
    },
    /// Process files as fast as possible in event time and print the windows.
    Replay(ReplayArgs),
    /// Write synthetic router traffic (for examples, tests and benchmarks).
    Generate(GenerateArgs),
    /// Rehearse policies on recorded or generated demand against a simulated
    /// orchestrator, and compare them (rules, vane, hpa, kpa).
    Backtest(cli::backtest::BacktestArgs),
    /// Validate rule files: every error with file:line:column and a hint; exit 1 on any.
    /// With --config (or a `.toml` path), the configuration too, as `vane run` reads
    /// it, and the rules it names.
    Check {
        /// Rule files or folders (default: rules/, or the configuration's `rules`).
        paths: Vec<PathBuf>,
        /// A configuration to validate exactly as `vane run` would.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Convert a Cloud Foundry App Autoscaler policy (JSON) into a Vane rule file (YAML on stdout).
    ImportCf {
        /// The policy JSON.
        policy: PathBuf,
        /// Name of the Vane policy.
        #[arg(long)]
        name: String,
        /// The app it applies to (app GUID or route host).
        #[arg(long)]
        app: String,
    },
    /// Print an app's log events from a running `vane run` (its API); `-f` follows.
    Logs(cli::logs::LogsArgs),
    /// Run one roll-up query (polars SQL over `windows` and `decisions`) and print the result.
    Sql(cli::sql::SqlArgs),
    /// A live terminal view of a running `vane run` (its API): apps, windows, decisions.
    Top(cli::top::TopArgs),
    /// Run rule unit tests (`*.test.yaml`): input window series, expected decisions.
    Test {
        /// Test files or folders (default: rules/).
        paths: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct ReplayArgs {
    /// Input format; `auto` detects it from the first line.
    #[arg(long, default_value = "auto")]
    format: Format,
    /// Where the windows go (JSON lines); `-` is stdout.
    #[arg(long, default_value = "-")]
    out: String,
    /// Where undecodable lines go, with their reasons (JSON lines).
    #[arg(long, default_value = "data/dead-letters.jsonl")]
    dead_letters: PathBuf,
    /// Window length.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    window: Duration,
    /// How far behind the newest event time a record may arrive and still count.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    allowed_lateness: Duration,
    /// Forget a series after this long without traffic (event time).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    idle_expiry: Duration,
    /// App name for lines that name no app or host (combined format).
    #[arg(long, default_value = "unknown")]
    default_app: String,
    /// Rule files or folders: decide (dry-run) and evaluate alerts on every window.
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// Where decisions go, with --rules.
    #[arg(long, default_value = "data/decisions.jsonl")]
    decisions: PathBuf,
    /// Where alert transitions go, with --rules.
    #[arg(long, default_value = "data/alerts.jsonl")]
    alerts: PathBuf,
    /// Input files, read in order; `-` is stdin.
    #[arg(required = true)]
    files: Vec<String>,
}

#[derive(Args)]
struct GenerateArgs {
    #[arg(long, default_value = "gorouter")]
    format: Format,
    #[arg(long, default_value_t = 10_000)]
    lines: u64,
    #[arg(long, default_value_t = 5)]
    apps: usize,
    /// Total instances over all apps.
    #[arg(long, default_value_t = 12)]
    instances: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean requests per second over all apps.
    #[arg(long, default_value_t = 100.0)]
    rps: f64,
    /// Event time of the first line, Unix seconds.
    #[arg(long, default_value_t = 1_764_547_200)]
    start: i64,
    /// Spike of the first app: `FROM_S,TO_S,FACTOR` in seconds from the start.
    #[arg(long)]
    spike: Option<String>,
    /// 5xx burst of the second app: `FROM_S,TO_S,RATIO`.
    #[arg(long)]
    error_burst: Option<String>,
    /// Largest disorder between lines, in milliseconds.
    #[arg(long, default_value_t = 300)]
    jitter_ms: u64,
    /// Output file; default stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Instead of log lines, a rate series (CSV `time,rps`, one row per
    /// second) of this traffic shape, for `vane backtest`.
    #[arg(long)]
    shape: Option<vane::backtest::series::Shape>,
}

fn triple(s: &str, what: &str) -> anyhow::Result<(f64, f64, f64)> {
    let parts: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--{what} takes three numbers FROM_S,TO_S,VALUE, got `{s}`"))?;
    match parts.as_slice() {
        [a, b, c] => Ok((*a, *b, *c)),
        _ => anyhow::bail!("--{what} takes three numbers FROM_S,TO_S,VALUE, got `{s}`"),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VANE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .init();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            config,
            exit_when_idle,
        } => {
            let (cfg, origin) = Config::load_or_default(config.as_deref())?;
            if origin == vane::config::BUILT_IN_ORIGIN {
                let missing = cfg.missing_paths();
                if !missing.is_empty() {
                    anyhow::bail!(
                        "no vane.toml here, and the built-in default reads the repository's bundled rules and example input, which are not in {}: missing {}. Run `vane run` from the repository root, or write a vane.toml (README, \"Configuration\") or pass --config FILE",
                        std::env::current_dir()
                            .map(|d| d.display().to_string())
                            .unwrap_or_else(|_| "this directory".into()),
                        missing
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
            tracing::info!(config = %origin, data_dir = %cfg.data_dir.display(), "starting");
            // Multi-thread: notifiers, the API, the RLP stream and roll-ups
            // run on the workers while the run loop works through input.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let opts = RunOptions { exit_when_idle };
            let report = rt.block_on(run(&cfg, &opts, shutdown_signal()))?;
            let counts = report.counts;
            eprintln!(
                "run: input read in {:.3} s, {:.0} lines/s | {} checkpoints in {:.3} s, {:.3} s of CPU | slowest tick closing windows {:.3} s",
                report.input_seconds,
                counts.lines as f64 / report.input_seconds.max(1e-9),
                report.checkpoints,
                report.checkpoint_seconds,
                report.checkpoint_cpu_seconds,
                report.slowest_closing_tick_seconds
            );
            eprintln!(
                "lines {} decoded {} late {} dead_letters {} windows_written {}",
                counts.lines,
                counts.decoded,
                counts.late,
                counts.dead_letters,
                counts.windows_written
            );
            if let Some(lost) = vane::losses::summary() {
                eprintln!("{lost}");
            }
            Ok(())
        }
        Command::Replay(a) => replay_cmd(a),
        Command::Check { paths, config } => {
            // `vane check vane.toml`: a configuration, not a rule file.
            let (configs, rules): (Vec<PathBuf>, Vec<PathBuf>) = paths
                .into_iter()
                .partition(|p| p.extension().is_some_and(|e| e == "toml"));
            match config.or_else(|| configs.into_iter().next()) {
                Some(path) => check_config_cmd(&path, rules),
                None => check_cmd(default_rules(rules)),
            }
        }
        Command::Test { paths } => test_cmd(default_rules(paths)),
        Command::ImportCf { policy, name, app } => {
            let json = std::fs::read_to_string(&policy)
                .with_context(|| format!("cannot read {}", policy.display()))?;
            match vane::rules::cf::convert(&json, &name, &app) {
                Ok(yaml) => {
                    // Validate what we print with the same checks `vane check` runs.
                    if let Err(errors) = vane::rules::load_str(&yaml, &policy.display().to_string())
                    {
                        for e in &errors {
                            eprintln!("{e}");
                        }
                        return Err(Reported(format!(
                            "{} cannot be used as it is",
                            policy.display()
                        ))
                        .into());
                    }
                    print!("{yaml}");
                    Ok(())
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{}: {e}", policy.display());
                    }
                    Err(Reported(format!("{} could not be converted", policy.display())).into())
                }
            }
        }
        Command::Generate(a) => generate_cmd(a),
        Command::Backtest(a) => cli::backtest::execute(a),
        Command::Logs(a) => cli::logs::execute(a),
        Command::Sql(a) => cli::sql::execute(a),
        Command::Top(a) => cli::top::execute(a),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn default_rules(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from("rules")]
    } else {
        paths
    }
}

/// An error already reported to the user; only the exit code is left to set.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Reported(String);

fn check_cmd(paths: Vec<PathBuf>) -> anyhow::Result<()> {
    match vane::rules::load_paths(&paths) {
        Ok(set) => {
            let count =
                |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            println!(
                "{}, {} and {} OK",
                count(set.policies.len(), "policy").replace("policys", "policies"),
                count(set.alerts.len(), "alert rule"),
                count(set.health.len(), "health rule")
            );
            Ok(())
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            Err(Reported(format!("{} error(s) in rule files", errors.len())).into())
        }
    }
}

/// `vane check --config FILE`: the configuration with the validation
/// `vane run` uses, the files it follows, then the rules it names (or those
/// given).
fn check_config_cmd(path: &std::path::Path, rules: Vec<PathBuf>) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let missing = cfg.missing_files();
    if !missing.is_empty() {
        for m in &missing {
            eprintln!(
                "{}: file source {}: no such file (fix the path, or set `wait_for_file = true` on the source to wait for it)",
                path.display(),
                m.display()
            );
        }
        return Err(Reported(format!("{} missing file(s)", missing.len())).into());
    }
    println!("{}: OK ({} source(s))", path.display(), cfg.sources.len());
    let rules = if rules.is_empty() {
        cfg.rules.clone()
    } else {
        rules
    };
    if rules.is_empty() {
        return Ok(());
    }
    check_cmd(rules)
}

fn test_cmd(paths: Vec<PathBuf>) -> anyhow::Result<()> {
    let files = vane::rules::unittest::test_files(&paths)?;
    let (mut passed, mut failed) = (0, 0);
    for f in &files {
        match vane::rules::unittest::run_file(f) {
            Ok(cases) => {
                for c in cases {
                    if c.failures.is_empty() {
                        passed += 1;
                        println!("PASS {}: {}", c.file, c.name);
                    } else {
                        failed += 1;
                        println!("FAIL {}: {}", c.file, c.name);
                        for m in &c.failures {
                            println!("    {m}");
                        }
                    }
                }
            }
            Err(errors) => {
                failed += 1;
                for e in &errors {
                    eprintln!("{e}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        return Err(Reported(format!("{failed} rule test(s) failed")).into());
    }
    Ok(())
}

/// The configuration key a `vane replay` flag sets, for error messages.
fn replay_flag(key: &str) -> Option<&'static str> {
    match key {
        "window.length" => Some("--window"),
        "window.allowed_lateness" => Some("--allowed-lateness"),
        "window.idle_expiry" => Some("--idle-expiry"),
        _ => None,
    }
}

/// A new, empty output (one replay's results, not appended to an older
/// one's): truncated, never removed, so a device or FIFO stays what it is;
/// and never in the data dir of a running `vane run`.
fn fresh(p: &std::path::Path) -> anyhow::Result<JsonlFile> {
    let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
    DataDirLock::check_free(dir.unwrap_or(std::path::Path::new(".")))
        .with_context(|| format!("replay would overwrite {}", p.display()))?;
    JsonlFile::create(p).with_context(|| format!("cannot open {}", p.display()))
}

fn replay_cmd(a: ReplayArgs) -> anyhow::Result<()> {
    // The flags are a configuration like any other: the same defaults, the
    // same validation and the same build as `vane run`.
    let cfg = build::config_from_flags(
        |c| {
            c.window.length = a.window;
            c.window.allowed_lateness = a.allowed_lateness;
            c.window.idle_expiry = a.idle_expiry;
            c.rules.clone_from(&a.rules);
        },
        replay_flag,
    )
    .map_err(anyhow::Error::msg)?;
    let rules = build::load_rules(&cfg).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        Reported(format!("{} error(s) in rule files", errors.len()))
    })?;
    let out = if a.out == "-" {
        JsonlFile::writer(io::stdout())
    } else {
        fresh(std::path::Path::new(&a.out))?
    };
    // App logs: the output receives their events (ECS documents), not windows.
    let app_logs = a.format == Format::AppLog;
    let (windows, logs) = if app_logs {
        (JsonlFile::writer(io::sink()), Some(out))
    } else {
        (out, None)
    };
    let files = build::OutputFiles {
        windows,
        dead_letters: fresh(&a.dead_letters)?,
        decisions: rules.as_ref().map(|_| fresh(&a.decisions)).transpose()?,
        alerts: rules.as_ref().map(|_| fresh(&a.alerts)).transpose()?,
        logs,
    };
    let mut pipeline = build::pipeline(&cfg, rules.as_ref(), files, None);
    let mapping = Mapping {
        default_app: a.default_app,
        ..Mapping::new()
    };
    // With `auto`, each file is its own source (its own format, merged with the
    // others by event time); with an explicit format, the files are consecutive
    // parts of one stream (rotated logs).
    let inputs: Vec<(usize, String)> = if a.format == Format::Auto && a.files.len() > 1 {
        a.files
            .iter()
            .map(|f| (pipeline.add_source(a.format, mapping.clone()), f.clone()))
            .collect()
    } else {
        let src = pipeline.add_source(a.format, mapping);
        a.files.iter().map(|f| (src, f.clone())).collect()
    };
    let summary = replay(&mut pipeline, &inputs)?;
    let c = summary.counts;
    eprintln!(
        "replay: lines {} decoded {} late {} dead_letters {} windows {} decisions {} alert_transitions {} log_events {} | {:.3} s, {:.0} lines/s, {:.1} MB/s",
        c.lines,
        c.decoded,
        c.late,
        c.dead_letters,
        c.windows_written,
        c.decisions,
        c.alert_events,
        c.log_events,
        summary.seconds,
        summary.lines_per_sec(),
        c.bytes as f64 / 1e6 / summary.seconds.max(1e-9)
    );
    if c.dead_letters > 0 {
        eprintln!(
            "replay: dead letters with reasons in {}",
            a.dead_letters.display()
        );
    }
    Ok(())
}

fn generate_cmd(a: GenerateArgs) -> anyhow::Result<()> {
    if let Some(shape) = a.shape {
        let series = shape.series(a.seed, a.start.saturating_mul(1_000_000_000), 1);
        let mut out: Box<dyn Write> = match &a.out {
            Some(p) => Box::new(io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            )),
            None => Box::new(io::BufWriter::new(io::stdout().lock())),
        };
        vane::backtest::series::write_csv(&series, &mut out)?;
        out.flush()?;
        return Ok(());
    }
    anyhow::ensure!(
        a.rps.is_finite() && a.rps > 0.0,
        "--rps must be a positive number"
    );
    anyhow::ensure!(
        (0..7_000_000_000).contains(&a.start),
        "--start must be a Unix time between 1970 and 2191"
    );
    let spike = a
        .spike
        .as_deref()
        .map(|s| {
            triple(s, "spike").map(|(from_s, to_s, factor)| Spike {
                from_s,
                to_s,
                factor,
            })
        })
        .transpose()?;
    let error_burst = a
        .error_burst
        .as_deref()
        .map(|s| {
            triple(s, "error-burst").map(|(from_s, to_s, ratio)| ErrorBurst {
                from_s,
                to_s,
                ratio,
            })
        })
        .transpose()?;
    let spec = TrafficSpec {
        format: a.format,
        lines: a.lines,
        apps: a.apps,
        instances: a.instances,
        seed: a.seed,
        start_unix_s: a.start,
        rps: a.rps,
        spike,
        error_burst,
        jitter_ms: a.jitter_ms,
    };
    match a.out {
        Some(p) => {
            let mut w = io::BufWriter::new(
                std::fs::File::create(&p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            );
            generate(&spec, &mut w)?;
            w.flush()?;
        }
        None => {
            let mut w = io::BufWriter::new(io::stdout().lock());
            generate(&spec, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}
