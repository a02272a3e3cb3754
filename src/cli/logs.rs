//! `vane logs APP [-f]`: an app's log events from a running `vane run`'s API.

use std::io::Write;

use clap::Args;

use vane::api::client::Client;

#[derive(Args)]
pub struct LogsArgs {
    /// The app (id, or name as its log lines carry it).
    pub app: String,
    /// Keep following: print events as they complete.
    #[arg(short, long)]
    pub follow: bool,
    #[command(flatten)]
    pub api: super::ApiArgs,
    /// Print the ECS documents as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One event as a line (or several, for a stack trace): time, instance,
/// level, message.
pub fn format_event(doc: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let time = s(&doc["@timestamp"]);
    let level = s(&doc["log"]["level"]).to_uppercase();
    let instance = s(&doc["service"]["node"]["name"]);
    let message = s(&doc["message"]);
    let mut out = time;
    if !instance.is_empty() {
        out.push_str(&format!(" [{instance}]"));
    }
    if !level.is_empty() {
        out.push_str(&format!(" {level:<5}"));
    }
    out.push(' ');
    out.push_str(&message);
    out
}

pub fn execute(a: LogsArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = Client::new(&a.api.endpoint())?;
    let stdout = std::io::stdout();
    let print = |doc: serde_json::Value| -> bool {
        let line = if a.json {
            doc.to_string()
        } else {
            format_event(&doc)
        };
        let mut out = stdout.lock();
        // A closed pipe (`| head`) ends the tail quietly.
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    };
    rt.block_on(async {
        if a.follow {
            client.follow_logs(&a.app, print).await?;
        } else {
            for doc in client.recent_logs(&a.app).await? {
                if !print(doc) {
                    break;
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })
}
