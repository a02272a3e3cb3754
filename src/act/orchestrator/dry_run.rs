//! The default orchestrator: acts on nothing, remembers what it was told, so
//! that the decision log reads as if the decisions had been applied.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Target;

#[derive(Debug, Default)]
pub struct DryRun {
    counts: Mutex<HashMap<String, u32>>,
}

impl DryRun {
    pub fn instances(&self, t: &Target) -> Option<u32> {
        self.counts.lock().ok()?.get(&t.app).copied()
    }

    pub fn scale(&self, t: &Target, n: u32) {
        tracing::debug!(app = t.display(), instances = n, "dry-run: would scale");
        if let Ok(mut c) = self.counts.lock() {
            c.insert(t.app.clone(), n);
        }
    }

    pub fn restart(&self, t: &Target, instance: &str) {
        tracing::debug!(app = t.display(), instance, "dry-run: would restart");
    }
}
