use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Who a request belongs to, for formats that carry no app id (nginx, Apache,
/// ingress-nginx) and for gorouter lines without one (unknown routes).
///
/// - app: the `hosts` table maps a `Host` to an app; an unmapped host is its
///   own app; a line with no host at all (Apache combined) gets `default_app`.
/// - instance: the `instances` table maps a backend address to an instance
///   name; an unmapped address is its own instance name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(default)]
    pub hosts: HashMap<String, String>,
    #[serde(default)]
    pub instances: HashMap<String, String>,
    /// The app of lines that name neither an app nor a host.
    #[serde(default = "default_app")]
    pub default_app: String,
    /// The instance of app log lines that name none (a source's `instance`).
    #[serde(default)]
    pub default_instance: Option<String>,
}

fn default_app() -> String {
    "unknown".to_string()
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            hosts: HashMap::new(),
            instances: HashMap::new(),
            default_app: default_app(),
            default_instance: None,
        }
    }
}

impl Mapping {
    pub fn new() -> Self {
        Mapping::default()
    }

    pub fn app_for_host<'a>(&'a self, host: &'a str) -> Cow<'a, str> {
        if host.is_empty() || host == "-" {
            return Cow::Borrowed(&self.default_app);
        }
        match self.hosts.get(host) {
            Some(app) => Cow::Borrowed(app),
            None => Cow::Borrowed(host),
        }
    }

    pub fn instance_for_backend<'a>(&'a self, addr: &'a str) -> Option<Cow<'a, str>> {
        if addr.is_empty() || addr == "-" {
            return None;
        }
        Some(Cow::Borrowed(
            self.instances.get(addr).map_or(addr, String::as_str),
        ))
    }
}
