//! Which apps a rule applies to: one selector type for scaling policies,
//! alert rules and health rules, compiled once from the rule file's form.

use std::collections::{BTreeMap, BTreeSet};

use serde_saphyr::Spanned;

use super::model::Selector as SelectorSpec;

#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Exact app ids.
    pub apps: BTreeSet<String>,
    pub patterns: Vec<glob::Pattern>,
    pub labels: BTreeMap<String, String>,
}

impl Selector {
    /// Whether the selector picks the app with this id (and readable name).
    pub fn matches(
        &self,
        app: &str,
        name: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        let ids = std::iter::once(app).chain(name);
        let named = ids
            .into_iter()
            .any(|id| self.apps.contains(id) || self.patterns.iter().any(|p| matches(p, id)));
        let by_name = (self.apps.is_empty() && self.patterns.is_empty()) || named;
        by_name && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `*` (every app, the common alert and health selector) without the glob
/// machinery: selectors are matched per app and window, 10,000 apps a window.
fn matches(p: &glob::Pattern, id: &str) -> bool {
    p.as_str() == "*" || p.matches(id)
}

impl Selector {
    /// Compiles a rule file's selector. Names that are no valid glob are
    /// left out and returned, each with its message.
    pub fn compile(spec: &SelectorSpec) -> (Selector, Vec<(&Spanned<String>, String)>) {
        let mut selector = Selector {
            apps: spec.apps.iter().cloned().collect(),
            labels: spec.labels.clone(),
            ..Selector::default()
        };
        let mut bad = Vec::new();
        for n in &spec.names {
            match glob::Pattern::new(&n.value) {
                Ok(p) => selector.patterns.push(p),
                Err(e) => bad.push((
                    n,
                    format!("selector.names: `{}` is not a valid glob: {e}", n.value),
                )),
            }
        }
        (selector, bad)
    }
}
