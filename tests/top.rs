//! `vane top` draws what a running Vane serves: the apps of a replayed file
//! (their newest windows) and recent decisions, rendered into ratatui's test
//! backend from the real API.

mod common;

use common::store::get;
use common::{vane, wait_for, write_config};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use vane::api::client::Client;
use vane::top::{TopState, buffer_text, draw};

#[test]
fn top_shows_the_apps_of_a_replayed_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gen.log");
    let out = vane()
        .args([
            "generate", "--lines", "4000", "--apps", "3", "--seed", "5", "--out",
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success());
    let hosts: std::collections::BTreeSet<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let cfg = write_config(
        dir.path(),
        &format!(
            "rules = [\"{rules}\"]\n[[sources]]\ntype = \"file\"\npath = \"{log}\"\nformat = \"gorouter\"\n[run]\npoll_interval = \"50ms\"\nidle_timeout = \"1s\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n",
            rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules"),
            log = log.display()
        ),
    );
    let mut child = common::spawn_run(&cfg);
    wait_for("the three apps with windows", || {
        let apps: serde_json::Value =
            serde_json::from_str(&get(&format!("{url}/api/v1/apps"))).unwrap_or_default();
        apps.as_array()
            .is_some_and(|a| a.iter().filter(|app| !app["window"].is_null()).count() == 3)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = Client::plain(&url).unwrap();
    let state = TopState {
        source: url.clone(),
        apps: rt.block_on(client.apps()).unwrap(),
        decisions: rt.block_on(client.decisions(50)).unwrap(),
        error: None,
    };
    let mut terminal = Terminal::new(TestBackend::new(160, 40)).unwrap();
    terminal.draw(|f| draw(f, &state)).unwrap();
    let screen = buffer_text(terminal.backend().buffer());
    assert!(screen.contains("3 apps"), "{screen}");
    for host in &hosts {
        assert!(screen.contains(host.as_str()), "{host} missing:\n{screen}");
    }
    // Each app's row shows its newest window's rate.
    for app in &state.apps {
        let w = app.window.as_ref().unwrap();
        let label = app.name.clone().unwrap_or_else(|| app.app.clone());
        let row = screen.lines().find(|l| l.contains(&label)).unwrap();
        assert!(row.contains(&format!("{:.1}", w.rps)), "{row}");
    }
    // Recent decisions, when the rules decided on these apps.
    if let Some(d) = state.decisions.last() {
        assert!(screen.contains(&d.time.to_string()), "{screen}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
