//! Subcommands of the `vane` binary that are more than a few lines.

pub mod backtest;
pub mod logs;
pub mod sql;
pub mod top;

/// How `vane top` and `vane logs` reach a running `vane run`.
#[derive(clap::Args)]
pub struct ApiArgs {
    /// The API of the running `vane run`.
    #[arg(long, env = "VANE_API", default_value = "http://127.0.0.1:9464")]
    pub api: String,
    /// CA certificate (PEM) of an https API the system does not trust.
    #[arg(long, env = "VANE_API_CA_FILE")]
    pub api_ca_file: Option<std::path::PathBuf>,
    /// Bearer token of an API with `read_token_env` set (from the
    /// environment only: a command line is visible to every user).
    #[arg(skip = std::env::var("VANE_API_TOKEN").ok())]
    pub api_token: Option<String>,
}

impl ApiArgs {
    pub fn endpoint(&self) -> vane::api::client::Endpoint {
        vane::api::client::Endpoint {
            base: self.api.clone(),
            ca_file: self.api_ca_file.clone(),
            token: self.api_token.clone(),
        }
    }
}
