//! Subcommands of the `vane` binary that are more than a few lines.

pub mod backtest;
pub mod logs;
pub mod sql;
pub mod top;
