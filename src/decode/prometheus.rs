//! Prometheus text exposition (as served by cAdvisor and the kubelet's
//! `/metrics/cadvisor` and `/metrics/resource`), and the container view Vane
//! takes of it: CPU from `container_cpu_usage_seconds_total` counter rates
//! (cores, and percent of the limit from `container_spec_cpu_quota` /
//! `_period`), memory from `container_memory_working_set_bytes` and
//! `container_spec_memory_limit_bytes`. Pod-level series (no container
//! name) and pause containers (`POD`) are skipped. A pod named like a
//! Deployment's (`web-5d9c7b8f4-x2x7k`) belongs to app `namespace/web`.

use std::collections::BTreeMap;

use super::DecodeError;
use crate::model::ContainerMetric;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    pub fn label(&self, k: &str) -> &str {
        self.labels.get(k).map_or("", String::as_str)
    }
}

fn err(column: usize, reason: &'static str) -> DecodeError {
    DecodeError::new("sample", column, reason)
}

/// Parses one line; `Ok(None)` for comments and blank lines.
pub fn parse_line(line: &str) -> Result<Option<Sample>, DecodeError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(err(
            0,
            "metric name is missing or has characters outside [a-zA-Z0-9_:]",
        ));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut s = inner;
        loop {
            s = s.trim_start_matches([' ', ',']);
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = s
                .find('=')
                .ok_or_else(|| err(line.len() - s.len(), "label without `=`"))?;
            let key = s[..eq].trim().to_string();
            let v = s[eq + 1..]
                .strip_prefix('"')
                .ok_or_else(|| err(line.len() - s.len() + eq + 1, "label value is not quoted"))?;
            let mut value = String::new();
            let mut chars = v.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err(err(line.len(), "label value ends in `\\`")),
                    },
                    Some((_, c)) => value.push(c),
                    None => return Err(err(line.len(), "label value is never closed")),
                }
            };
            labels.insert(key, value);
            s = &v[end + 1..];
        }
    }
    let mut parts = rest.split_whitespace();
    let value = match parts.next() {
        Some("+Inf") => f64::INFINITY,
        Some("-Inf") => f64::NEG_INFINITY,
        Some(v) => v
            .parse::<f64>()
            .map_err(|_| err(line.len() - rest.len(), "sample value is not a number"))?,
        None => return Err(err(line.len(), "sample has no value")),
    };
    let timestamp_ms = match parts.next() {
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| err(line.len(), "timestamp is not milliseconds"))?,
        ),
        None => None,
    };
    if parts.next().is_some() {
        return Err(err(line.len(), "unexpected text after the timestamp"));
    }
    Ok(Some(Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    }))
}

/// Parses a whole exposition; errors carry their 1-based line number.
pub fn parse(text: &str) -> Result<Vec<Sample>, (usize, DecodeError)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(s) = parse_line(line).map_err(|e| (i + 1, e))? {
            out.push(s);
        }
    }
    Ok(out)
}

/// `web-5d9c7b8f4-x2x7k` → `web` (Deployment pods: ReplicaSet hash + suffix);
/// `db-0` → `db` (StatefulSet ordinal); anything else is its own name.
pub fn workload_of(pod: &str) -> &str {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    let is_hash =
        |s: &str| (5..=10).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric());
    match parts.as_slice() {
        [suffix, hash, base] if suffix.len() == 5 && is_hash(hash) && !base.is_empty() => base,
        [ordinal, _, ..] if !ordinal.is_empty() && ordinal.chars().all(|c| c.is_ascii_digit()) => {
            &pod[..pod.len() - ordinal.len() - 1]
        }
        _ => pod,
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Container {
    cpu_seconds: Option<f64>,
    cpu_time_ms: Option<i64>,
    memory: Option<f64>,
    memory_limit: Option<f64>,
    quota: Option<f64>,
    period: Option<f64>,
}

/// Turns successive scrapes into container metrics; keeps the previous CPU
/// counter of each container to compute its rate (a counter that went down
/// was reset, and gives no rate for that scrape).
#[derive(Debug, Default)]
pub struct ContainerScrapes {
    previous: BTreeMap<(String, String, String), (f64, i64)>,
}

impl ContainerScrapes {
    /// Containers whose CPU counter is remembered for the next rate.
    pub fn tracked(&self) -> usize {
        self.previous.len()
    }

    /// One scrape taken at `scrape_ms` (used where samples carry no timestamp).
    pub fn scrape(&mut self, samples: &[Sample], scrape_ms: i64) -> Vec<ContainerMetric> {
        let mut by: BTreeMap<(String, String, String), Container> = BTreeMap::new();
        for s in samples {
            let container = if s.labels.contains_key("container") {
                s.label("container")
            } else {
                s.label("name")
            };
            if container.is_empty() || container == "POD" || s.label("image").contains("pause") {
                continue;
            }
            let pod = if s.labels.contains_key("pod") {
                s.label("pod")
            } else {
                s.label("pod_name")
            };
            let key = (
                s.label("namespace").to_string(),
                pod.to_string(),
                container.to_string(),
            );
            let c = by.entry(key).or_default();
            let ts = s.timestamp_ms.unwrap_or(scrape_ms);
            match s.name.as_str() {
                // cAdvisor reports one series per CPU; their sum is the container's.
                "container_cpu_usage_seconds_total" => {
                    c.cpu_seconds = Some(c.cpu_seconds.unwrap_or(0.0) + s.value);
                    c.cpu_time_ms = Some(c.cpu_time_ms.map_or(ts, |t| t.max(ts)));
                }
                "container_memory_working_set_bytes" => c.memory = Some(s.value),
                "container_spec_memory_limit_bytes" if s.value > 0.0 => {
                    c.memory_limit = Some(s.value)
                }
                "container_spec_cpu_quota" if s.value > 0.0 => c.quota = Some(s.value),
                "container_spec_cpu_period" if s.value > 0.0 => c.period = Some(s.value),
                _ => {}
            }
        }
        // Containers this target no longer reports are gone (pods churn):
        // their counters go with them, so the map holds what runs now.
        self.previous.retain(|k, _| by.contains_key(k));
        let mut out = Vec::new();
        for (key, c) in by {
            let (namespace, pod, container) = &key;
            let mut cpu_cores = None;
            if let (Some(total), Some(t)) = (c.cpu_seconds, c.cpu_time_ms)
                && let Some((prev, prev_t)) = self.previous.insert(key.clone(), (total, t))
                && let Some(elapsed_ms) = t.checked_sub(prev_t).filter(|&d| d > 0)
                && total >= prev
            {
                cpu_cores = Some((total - prev) / (elapsed_ms as f64 / 1000.0));
            }
            if cpu_cores.is_none() && c.memory.is_none() {
                continue;
            }
            let limit_cores = c.quota.zip(c.period).map(|(q, p)| q / p);
            // Timestamps outside the years Vane accepts are dropped, not wrapped.
            let Ok(time_ns) = crate::time::check_range(
                c.cpu_time_ms.unwrap_or(scrape_ms).saturating_mul(1_000_000),
            ) else {
                continue;
            };
            let workload = if pod.is_empty() {
                container.as_str()
            } else {
                workload_of(pod)
            };
            out.push(ContainerMetric {
                time_ns,
                app: if namespace.is_empty() {
                    workload.to_string()
                } else {
                    format!("{namespace}/{workload}")
                },
                instance: Some(if pod.is_empty() {
                    container.clone()
                } else {
                    pod.clone()
                }),
                // Percent of the CPU limit where there is one, else of one core.
                cpu_pct: cpu_cores.map(|c| c / limit_cores.unwrap_or(1.0) * 100.0),
                memory_bytes: c.memory,
                memory_quota_bytes: c.memory_limit,
                disk_bytes: None,
                disk_quota_bytes: None,
                node: None,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(rel: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../shared/data/container-metrics/{rel}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn kubelet_resource_sample_matches_metrics_server_expectations() {
        let samples = parse(&shared("kubelet_metrics_resource_sample.prom")).unwrap();
        let expected: serde_json::Value =
            serde_json::from_str(&shared("kubelet_metrics_resource_sample.expected.json")).unwrap();
        let node_cpu = samples
            .iter()
            .find(|s| s.name == "node_cpu_usage_seconds_total")
            .unwrap();
        let want = &expected["nodes"]["node1"];
        assert_eq!(
            (node_cpu.value * 1e9).round() as i64,
            want["cumulative_cpu_used_ns"].as_i64().unwrap()
        );
        let node_mem = samples
            .iter()
            .find(|s| s.name == "node_memory_working_set_bytes")
            .unwrap();
        assert_eq!(
            node_mem.value as i64,
            want["memory_usage_bytes"].as_i64().unwrap()
        );
        let c = &expected["pods"]["kube-system/coredns-558bd4d5db-4dpjz"]["containers"]["coredns"];
        let cpu = samples
            .iter()
            .find(|s| s.name == "container_cpu_usage_seconds_total")
            .unwrap();
        assert_eq!(
            (
                cpu.label("namespace"),
                cpu.label("pod"),
                cpu.label("container")
            ),
            ("kube-system", "coredns-558bd4d5db-4dpjz", "coredns")
        );
        assert_eq!(
            (cpu.value * 1e9).round() as i64,
            c["cumulative_cpu_used_ns"].as_i64().unwrap()
        );
        assert_eq!(
            cpu.timestamp_ms,
            Some(1_633_253_812_125),
            "{}",
            c["timestamp"]
        );
        let mem = samples
            .iter()
            .find(|s| s.name == "container_memory_working_set_bytes")
            .unwrap();
        assert_eq!(mem.value as i64, c["memory_usage_bytes"].as_i64().unwrap());

        // Two scrapes 10 s apart: the counter rate is the CPU use.
        let mut scrapes = ContainerScrapes::default();
        let first = scrapes.scrape(&samples, 0);
        assert_eq!(first.len(), 1, "pod-level series are skipped");
        assert_eq!(first[0].app, "kube-system/coredns");
        assert_eq!(
            first[0].instance.as_deref(),
            Some("coredns-558bd4d5db-4dpjz")
        );
        assert_eq!(
            (first[0].cpu_pct, first[0].memory_bytes),
            (None, Some(12_533_760.0))
        );
        let later: Vec<Sample> = samples
            .iter()
            .cloned()
            .map(|mut s| {
                if s.name == "container_cpu_usage_seconds_total" {
                    s.value += 2.5; // 2.5 core-seconds in 10 s
                    s.timestamp_ms = s.timestamp_ms.map(|t| t + 10_000);
                }
                s
            })
            .collect();
        let second = scrapes.scrape(&later, 0);
        assert!(
            (second[0].cpu_pct.unwrap() - 25.0).abs() < 1e-9,
            "{:?}",
            second[0].cpu_pct
        );
    }

    #[test]
    fn cadvisor_golden_file_parses_and_sums_per_cpu_series() {
        let text = shared("cadvisor_prometheus_metrics.prom");
        let samples = parse(&text).unwrap();
        assert_eq!(
            samples.len(),
            text.lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .count()
        );
        let mut scrapes = ContainerScrapes::default();
        scrapes.scrape(&samples, 0);
        let later: Vec<Sample> = samples
            .iter()
            .cloned()
            .map(|mut s| {
                if s.name == "container_cpu_usage_seconds_total" {
                    s.value += 0.25; // four CPUs: 1 core-second in total
                    s.timestamp_ms = s.timestamp_ms.map(|t| t + 10_000);
                }
                s
            })
            .collect();
        let m = scrapes.scrape(&later, 0);
        let c = m
            .iter()
            .find(|m| m.instance.as_deref() == Some("testcontaineralias"))
            .unwrap();
        // 0.1 core/s against a limit of 10000/100000 = 0.1 core: 100 % of the limit.
        assert!((c.cpu_pct.unwrap() - 100.0).abs() < 1e-6, "{:?}", c.cpu_pct);
        assert_eq!(c.memory_bytes, Some(9.0));
    }

    #[test]
    fn sample_times_at_the_ends_of_i64_give_no_rate_and_no_panic() {
        let at = |t: i64| {
            format!(
                "container_cpu_usage_seconds_total{{namespace=\"a\",pod=\"p-0\",container=\"c\"}} 1 {t}\n"
            )
        };
        let mut scrapes = ContainerScrapes::default();
        for t in [i64::MIN, i64::MAX, i64::MIN, 1_000, 11_000] {
            if let Ok(samples) = parse(&at(t)) {
                for m in scrapes.scrape(&samples, 0) {
                    assert!(m.cpu_pct.is_none_or(f64::is_finite), "{m:?}");
                }
            }
        }
    }

    #[test]
    fn counters_of_pods_that_are_gone_are_forgotten() {
        let pod = |name: &str, cpu: f64| {
            format!(
                "container_cpu_usage_seconds_total{{namespace=\"shop\",pod=\"{name}\",container=\"web\"}} {cpu} 1000\n"
            )
        };
        let mut scrapes = ContainerScrapes::default();
        // A thousand pods come and go, two at a time.
        for i in 0..1000 {
            let text = pod(&format!("web-5d9c7b8f4-{i}"), 1.0) + &pod("web-5d9c7b8f4-keep", 1.0);
            scrapes.scrape(&parse(&text).unwrap(), 0);
            assert!(scrapes.tracked() <= 2, "{} tracked", scrapes.tracked());
        }
        // The one that stayed still gets its rate.
        let text = "container_cpu_usage_seconds_total{namespace=\"shop\",pod=\"web-5d9c7b8f4-keep\",container=\"web\"} 3 11000\n";
        let m = scrapes.scrape(&parse(text).unwrap(), 0);
        assert_eq!(m.len(), 1);
        assert!(
            (m[0].cpu_pct.unwrap() - 20.0).abs() < 1e-9,
            "{:?}",
            m[0].cpu_pct
        );
    }

    #[test]
    fn pod_names_map_to_workloads() {
        assert_eq!(workload_of("web-5d9c7b8f4-x2x7k"), "web");
        assert_eq!(workload_of("coredns-558bd4d5db-4dpjz"), "coredns");
        assert_eq!(workload_of("db-0"), "db");
        assert_eq!(workload_of("standalone"), "standalone");
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for bad in [
            "{a=\"b\"} 1",
            "m{a=b} 1",
            "m{a=\"b} 1",
            "m 1 2 3",
            "m notanumber",
            "m{a=\"\\",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
        assert!(parse_line("# HELP x").unwrap().is_none());
        assert_eq!(parse_line("up 1").unwrap().unwrap().value, 1.0);
    }
}
