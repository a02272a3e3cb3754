//! `vane sql FILE.sql`: one roll-up query on demand, over the records the
//! configured `vane run` wrote (cut into segments first, up to the last
//! checkpoint), printed.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use vane::config::Config;
use vane::rollup::segments::SegmentStore;
use vane::rollup::{Records, output, query};

#[derive(Clone, Copy, ValueEnum)]
pub enum SqlFormat {
    Table,
    Csv,
    Json,
}

#[derive(Args)]
pub struct SqlArgs {
    /// The query (polars SQL over the tables `windows` and `decisions`).
    pub file: PathBuf,
    /// Configuration file (for `data_dir`). Default: ./vane.toml, else the built-in default.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: SqlFormat,
}

pub fn execute(a: SqlArgs) -> anyhow::Result<()> {
    let (cfg, _) = Config::load_or_default(a.config.as_deref())?;
    let sql = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let records = Records::from_config(&cfg);
    let store = SegmentStore::new(&records.data_dir);
    records.ingest(&store)?;
    let df = query(&store, &sql, &a.file.display().to_string())?;
    let text = match a.format {
        SqlFormat::Table => output::to_table(&df),
        SqlFormat::Csv => output::to_csv(&df),
        SqlFormat::Json => output::to_json_lines(&df),
    };
    print!("{text}");
    Ok(())
}
