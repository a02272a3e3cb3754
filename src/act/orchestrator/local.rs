//! `local`: an embedded supervisor that runs N copies of a configured command
//! per app, each with its own `PORT` — scaling you can watch with `ps` on one
//! machine, for demos and end-to-end tests. Instance i always has port
//! `base_port + i`; scaling down stops the highest indexes first, like Cloud
//! Foundry. Each instance's output goes to `DATA_DIR/local/APP-INDEX.log`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::{ActError, AppTarget, Target};

pub struct LocalSupervisor {
    apps: BTreeMap<String, AppTarget>,
    log_dir: PathBuf,
    /// Running copies per configured app key, index = position.
    running: Mutex<BTreeMap<String, Vec<Child>>>,
}

impl LocalSupervisor {
    /// Starts every app's `initial` copies (1 unless configured).
    pub fn start(apps: &BTreeMap<String, AppTarget>, log_dir: &Path) -> Result<Self, ActError> {
        std::fs::create_dir_all(log_dir).map_err(|e| {
            ActError::Permanent(format!("cannot create {}: {e}", log_dir.display()))
        })?;
        let mut running = BTreeMap::new();
        for (key, app) in apps {
            let mut copies = Vec::new();
            for i in 0..app.initial.unwrap_or(1) {
                copies.push(spawn(key, app, i, log_dir)?);
            }
            running.insert(key.clone(), copies);
        }
        Ok(LocalSupervisor {
            apps: apps.clone(),
            log_dir: log_dir.to_path_buf(),
            running: Mutex::new(running),
        })
    }

    fn key_of(&self, t: &Target) -> Result<String, ActError> {
        if self.apps.contains_key(&t.app) {
            return Ok(t.app.clone());
        }
        match &t.name {
            Some(n) if self.apps.contains_key(n) => Ok(n.clone()),
            _ => Err(ActError::Permanent(format!(
                "app {} has no [orchestrator.apps] entry for the local orchestrator",
                t.display()
            ))),
        }
    }

    /// Copies still running.
    pub async fn instances(&self, t: &Target) -> Result<u32, ActError> {
        let key = self.key_of(t)?;
        let mut running = self.running.lock().await;
        let copies = running.entry(key.clone()).or_default();
        reap(&key, copies);
        Ok(copies
            .iter_mut()
            .map(Child::try_wait)
            .filter(|w| matches!(w, Ok(None)))
            .count() as u32)
    }

    pub async fn scale(&self, t: &Target, n: u32) -> Result<(), ActError> {
        let key = self.key_of(t)?;
        let Some(app) = self.apps.get(&key) else {
            return Err(ActError::Permanent(format!("app {key} is not configured")));
        };
        let mut running = self.running.lock().await;
        let copies = running.entry(key.clone()).or_default();
        reap(&key, copies);
        // A copy that exited below the top is started again in its slot.
        for (i, c) in copies.iter_mut().enumerate().take(n as usize) {
            if matches!(c.try_wait(), Ok(Some(_))) {
                *c = spawn(&key, app, i as u32, &self.log_dir)?;
            }
        }
        while copies.len() < n as usize {
            let i = copies.len() as u32;
            copies.push(spawn(&key, app, i, &self.log_dir)?);
        }
        while copies.len() > n as usize {
            if let Some(mut c) = copies.pop() {
                stop(&mut c).await;
            }
        }
        info!(app = %key, instances = n, "local: scaled");
        Ok(())
    }

    /// Stops instance `instance` (an index) and starts it again on the same port.
    pub async fn restart(&self, t: &Target, instance: &str) -> Result<(), ActError> {
        let key = self.key_of(t)?;
        let Some(app) = self.apps.get(&key) else {
            return Err(ActError::Permanent(format!("app {key} is not configured")));
        };
        let index: usize = instance
            .rsplit(['/', '-', ':'])
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                ActError::Permanent(format!("instance `{instance}` is not an instance index"))
            })?;
        let mut running = self.running.lock().await;
        let copies = running.entry(key.clone()).or_default();
        let Some(child) = copies.get_mut(index) else {
            return Err(ActError::Permanent(format!(
                "app {key} has no instance {index} ({} running)",
                copies.len()
            )));
        };
        stop(child).await;
        *child = spawn(&key, app, index as u32, &self.log_dir)?;
        info!(app = %key, index, "local: restarted");
        Ok(())
    }

    /// Process ids of an app's copies, by index (for tests and `ps`).
    pub async fn pids(&self, key: &str) -> Vec<Option<u32>> {
        let running = self.running.lock().await;
        running
            .get(key)
            .map(|c| c.iter().map(Child::id).collect())
            .unwrap_or_default()
    }

    /// Stops every copy (also done when the supervisor is dropped).
    pub async fn shutdown(&self) {
        let mut running = self.running.lock().await;
        for copies in running.values_mut() {
            while let Some(mut c) = copies.pop() {
                stop(&mut c).await;
            }
        }
    }
}

fn spawn(key: &str, app: &AppTarget, index: u32, log_dir: &Path) -> Result<Child, ActError> {
    let Some((program, args)) = app.command.split_first() else {
        return Err(ActError::Permanent(format!(
            "app {key} has an empty command"
        )));
    };
    let port = app.base_port.map_or(0, |p| p.saturating_add(index as u16));
    let log_path = log_dir.join(format!("{}-{index}.log", file_safe(key)));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| ActError::Permanent(format!("cannot open {}: {e}", log_path.display())))?;
    let err_log = log
        .try_clone()
        .map_err(|e| ActError::Permanent(format!("cannot open {}: {e}", log_path.display())))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("PORT", port.to_string())
        .env("INSTANCE_INDEX", index.to_string())
        .env("VANE_APP", key)
        .envs(&app.env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err_log))
        .kill_on_drop(true);
    if let Some(dir) = &app.workdir {
        cmd.current_dir(dir);
    }
    let child = cmd
        .spawn()
        .map_err(|e| ActError::Permanent(format!("cannot start `{program}` for {key}: {e}")))?;
    info!(app = %key, index, port, pid = child.id(), "local: started instance");
    Ok(child)
}

async fn stop(child: &mut Child) {
    if let Err(e) = child.kill().await {
        warn!(error = %e, "local: could not stop an instance");
    }
}

/// Drops copies that exited on their own from the top (the engine scales back
/// up if it still wants them). Indexes stay stable: an exited copy below a
/// running one keeps its slot until the next scale or restart starts it again.
fn reap(key: &str, copies: &mut Vec<Child>) {
    let before = copies.len();
    while copies
        .last_mut()
        .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    {
        copies.pop();
    }
    if copies.len() < before {
        warn!(app = %key, exited = before - copies.len(), "local: instances exited");
    }
}

fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
