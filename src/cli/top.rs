//! `vane top`: the live terminal view (see `vane::top`).

use std::time::{Duration, Instant};

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyModifiers};

use vane::api::client::Client;
use vane::time::parse_duration;
use vane::top::{TopState, draw};

#[derive(Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub api: super::ApiArgs,
    /// How often to refresh.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
}

async fn fetch(client: &Client, state: &mut TopState) {
    match (client.apps().await, client.decisions(50).await) {
        (Ok(apps), Ok(decisions)) => {
            state.apps = apps;
            state.decisions = decisions;
            state.error = None;
        }
        (Err(e), _) | (_, Err(e)) => state.error = Some(e.to_string()),
    }
}

pub fn execute(a: TopArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = Client::new(&a.api.endpoint())?;
    let mut state = TopState {
        source: a.api.api.clone(),
        ..TopState::default()
    };
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        let mut next = Instant::now();
        loop {
            if Instant::now() >= next {
                rt.block_on(fetch(&client, &mut state));
                terminal.draw(|f| draw(f, &state))?;
                next = Instant::now() + a.interval;
            }
            let wait = next.saturating_duration_since(Instant::now());
            if event::poll(wait)?
                && let Event::Key(k) = event::read()?
            {
                let ctrl_c =
                    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                    return Ok(());
                }
            }
        }
    })();
    ratatui::restore();
    result
}
