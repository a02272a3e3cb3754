/// Resource usage of one app instance at one moment, as a container runtime
/// reports it (Cloud Foundry Loggregator gauges, cAdvisor). Absent values are
/// `None`, never zero.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerMetric {
    /// Event time, Unix nanoseconds.
    pub time_ns: i64,
    /// The window key (Loggregator `source_id`: the app GUID).
    pub app: String,
    /// Instance index.
    pub instance: Option<String>,
    /// CPU use in percent of one core (Loggregator `cpu`).
    pub cpu_pct: Option<f64>,
    pub memory_bytes: Option<f64>,
    pub memory_quota_bytes: Option<f64>,
    pub disk_bytes: Option<f64>,
    pub disk_quota_bytes: Option<f64>,
    /// Where the instance runs (Cloud Foundry: the Diego cell's `ip` tag;
    /// Kubernetes: the scraped kubelet), for node-level health checks.
    pub node: Option<String>,
}

impl ContainerMetric {
    /// Memory in percent of the quota, when both are known and the quota is not 0.
    pub fn memory_pct(&self) -> Option<f64> {
        match (self.memory_bytes, self.memory_quota_bytes) {
            (Some(m), Some(q)) if q > 0.0 => Some(m / q * 100.0),
            _ => None,
        }
    }
}
