//! Reading rule files: every `*.yaml`/`*.yml` under the given paths, each
//! document validated; all errors are returned together, each with
//! file:line:column, what is wrong and a hint.

use std::path::{Path, PathBuf};

use serde_saphyr::Location;

use super::alert::{self, AlertDocument, AlertRule};
use super::error::{RuleError, hint_for_serde_message};
use super::health::{self, HealthDocument, HealthRule};
use super::model::RuleDocument;
use super::policy::{Policy, compile};

/// An app's labels (`team = "shop"`), from the configuration's `[labels]`.
pub type Labels = std::collections::BTreeMap<String, String>;

/// A complete, valid set of policies.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub policies: Vec<Policy>,
    pub alerts: Vec<AlertRule>,
    pub health: Vec<HealthRule>,
}

impl RuleSet {
    /// The first policy (in file order) that selects the app.
    pub fn policy_for(&self, app: &str, name: Option<&str>, labels: &Labels) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| p.selector.matches(app, name, labels))
    }
}

/// Parses one file's text: its scaling policies.
pub fn load_str(text: &str, file: &str) -> Result<Vec<Policy>, Vec<RuleError>> {
    load_str_all(text, file).map(|(policies, _)| policies)
}

/// Only what every document has, to tell its kind.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    kind: Option<serde_saphyr::Spanned<String>>,
}

fn yaml_error(e: serde_saphyr::Error, file: &str) -> RuleError {
    let loc = e.location().unwrap_or(Location::UNKNOWN);
    let message = first_line(&e.without_snippet().to_string());
    let mut err = RuleError::at(file, loc, None, message.clone());
    err.hint = hint_for_serde_message(&message);
    err
}

/// The documents of a YAML stream, each padded with blank lines so that
/// positions in it are positions in the file.
fn documents(text: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            docs.push(std::mem::replace(&mut current, "\n".repeat(i + 1)));
            current.push_str(line.trim_start_matches('-'));
            current.push('\n');
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push(current);
    docs.retain(|d| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// Parses one file's text: scaling policies and alert rules, by `kind`.
pub fn load_str_all(
    text: &str,
    file: &str,
) -> Result<(Vec<Policy>, Vec<AlertRule>), Vec<RuleError>> {
    load_str_set(text, file).map(|s| (s.policies, s.alerts))
}

/// Parses one file's text: scaling policies, alert rules and health rules, by `kind`.
pub fn load_str_set(text: &str, file: &str) -> Result<RuleSet, Vec<RuleError>> {
    let mut policies = Vec::new();
    let mut alerts = Vec::new();
    let mut healths = Vec::new();
    let mut errors = Vec::new();
    for doc in documents(text) {
        let header: Header = match serde_saphyr::from_str(&doc) {
            Ok(h) => h,
            Err(e) => {
                errors.push(yaml_error(e, file));
                continue;
            }
        };
        match header.kind.as_ref().map(|k| k.value.as_str()) {
            Some("AlertRule") => match serde_saphyr::from_str::<AlertDocument>(&doc) {
                Ok(d) => match alert::compile(&d, file) {
                    Ok(a) => alerts.push(a),
                    Err(e) => errors.extend(e),
                },
                Err(e) => errors.push(yaml_error(e, file)),
            },
            Some("HealthRule") => match serde_saphyr::from_str::<HealthDocument>(&doc) {
                Ok(d) => match health::compile(&d, file) {
                    Ok(h) => healths.push(h),
                    Err(e) => errors.extend(e),
                },
                Err(e) => errors.push(yaml_error(e, file)),
            },
            // ScalingPolicy, and anything else, which compile() reports with a hint.
            _ => match serde_saphyr::from_str::<RuleDocument>(&doc) {
                Ok(d) => match compile(&d, file) {
                    Ok(p) => policies.push(p),
                    Err(e) => errors.extend(e),
                },
                Err(e) => errors.push(yaml_error(e, file)),
            },
        }
    }
    if errors.is_empty() {
        Ok(RuleSet {
            policies,
            alerts,
            health: healths,
        })
    } else {
        Err(errors)
    }
}

/// serde-saphyr's message, without its own location prefix (we print ours).
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s);
    let line = line.strip_prefix("error: ").unwrap_or(line);
    let line = match line.split_once(": ") {
        Some((prefix, rest)) if prefix.starts_with("line ") => rest,
        _ => line,
    };
    // The position is printed in front, as file:line:column.
    match line.rfind(" at line ") {
        Some(i) => line[..i].to_string(),
        None => line.to_string(),
    }
}

/// The rule files under `path` (a file, or a folder searched recursively), sorted.
/// Hidden entries are skipped: a Kubernetes ConfigMap volume holds its files
/// twice more under `..data/` and `..2026_…/` (the symlinked current
/// version), which would load every rule three times.
pub fn rule_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(path)? {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            out.extend(rule_files(&p)?);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") && !is_test_file(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Rule unit tests (`*.test.yaml`) sit beside the rules; they are not rules.
pub fn is_test_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".test.yaml") || n.ends_with(".test.yml"))
}

/// Loads every rule file under `paths` as one set; all errors of all files.
pub fn load_paths(paths: &[PathBuf]) -> Result<RuleSet, Vec<RuleError>> {
    let mut set = RuleSet::default();
    let mut errors = Vec::new();
    for root in paths {
        let files = match rule_files(root) {
            Ok(f) => f,
            Err(e) => {
                errors.push(RuleError::at(
                    &root.display().to_string(),
                    Location::UNKNOWN,
                    None,
                    format!("cannot read: {e}"),
                ));
                continue;
            }
        };
        for f in files {
            let name = f.display().to_string();
            match std::fs::read_to_string(&f) {
                Ok(text) => match load_str_set(&text, &name) {
                    Ok(s) => {
                        set.policies.extend(s.policies);
                        set.alerts.extend(s.alerts);
                        set.health.extend(s.health);
                    }
                    Err(e) => errors.extend(e),
                },
                Err(e) => errors.push(RuleError::at(
                    &name,
                    Location::UNKNOWN,
                    None,
                    format!("cannot read: {e}"),
                )),
            }
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for p in &set.policies {
        if let Some(first) = seen.insert(p.name.clone(), p.file.clone()) {
            errors.push(RuleError {
                file: p.file.clone(),
                line: 0,
                column: 0,
                policy: Some(p.name.clone()),
                message: format!("a policy with this name is already defined in {first}"),
                hint: Some("policy names must be unique".into()),
            });
        }
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}
