//! Synthetic but realistic router traffic, deterministic for a seed: the bundled
//! example input, benchmark corpora, and test inputs of any size.
//!
//! Traffic: apps with Zipf-like popularity, instances spread over the apps, a
//! daily-looking slow wave, optional spike and error burst, log-normal-ish
//! latencies, and the small disorder of several routers writing one stream.

use std::io::{self, Write};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::decode::Format;
use crate::time::{NANOS_PER_SEC, civil_from_days};

/// What to generate.
#[derive(Debug, Clone)]
pub struct TrafficSpec {
    pub format: Format,
    pub lines: u64,
    pub apps: usize,
    /// Total instances over all apps (at least one per app).
    pub instances: usize,
    pub seed: u64,
    /// Event time of the first line, Unix seconds.
    pub start_unix_s: i64,
    /// Mean requests per second over all apps.
    pub rps: f64,
    /// Multiply app 0's traffic by `factor` between these offsets (seconds).
    pub spike: Option<Spike>,
    /// Raise app 1's 5xx ratio to `ratio` between these offsets (seconds).
    pub error_burst: Option<ErrorBurst>,
    /// Maximum disorder, in milliseconds (records written up to this much out of order).
    pub jitter_ms: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct Spike {
    pub from_s: f64,
    pub to_s: f64,
    pub factor: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct ErrorBurst {
    pub from_s: f64,
    pub to_s: f64,
    pub ratio: f64,
}

impl Default for TrafficSpec {
    fn default() -> Self {
        TrafficSpec {
            format: Format::Gorouter,
            lines: 10_000,
            apps: 5,
            instances: 12,
            seed: 1,
            start_unix_s: 1_764_547_200, // 2025-12-01T00:00:00Z
            rps: 100.0,
            spike: None,
            error_burst: None,
            jitter_ms: 300,
        }
    }
}

const PATHS: [&str; 8] = [
    "/",
    "/api/v1/orders",
    "/api/v1/orders/8812",
    "/api/v1/cart",
    "/static/app.js",
    "/healthz",
    "/login",
    "/search?q=blue+shoes",
];
const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "curl/8.4.0",
    "Java/17.0.9",
];

struct App {
    guid: String,
    host: String,
    weight: f64,
    instances: usize,
    base_latency_ms: f64,
}

fn guid(rng: &mut SmallRng) -> String {
    let a: u128 = rng.random();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn apps(spec: &TrafficSpec, rng: &mut SmallRng) -> Vec<App> {
    let n = spec.apps.max(1);
    let names = [
        "web", "checkout", "search", "auth", "catalog", "api", "images", "billing",
    ];
    let mut out: Vec<App> = (0..n)
        .map(|i| App {
            guid: guid(rng),
            host: if i < names.len() {
                format!("{}.apps.example.com", names[i])
            } else {
                format!("app-{i}.apps.example.com")
            },
            weight: 1.0 / ((i + 1) as f64).powf(0.8),
            instances: 1,
            base_latency_ms: 8.0 + rng.random::<f64>() * 40.0,
        })
        .collect();
    // Spread the remaining instances in proportion to popularity.
    let total_w: f64 = out.iter().map(|a| a.weight).sum();
    let extra = spec.instances.saturating_sub(n);
    for a in &mut out {
        a.instances += ((a.weight / total_w) * extra as f64).round() as usize;
    }
    out
}

fn pick(rng: &mut SmallRng, cumulative: &[f64]) -> usize {
    let x = rng.random::<f64>() * cumulative.last().copied().unwrap_or(1.0);
    cumulative
        .partition_point(|&c| c < x)
        .min(cumulative.len() - 1)
}

/// Writes `spec.lines` lines to `out`.
pub fn generate(spec: &TrafficSpec, out: &mut impl Write) -> io::Result<()> {
    let mut rng = SmallRng::seed_from_u64(spec.seed);
    let apps = apps(spec, &mut rng);
    if spec.format == Format::Loggregator {
        return container_metrics(spec, &apps, &mut rng, out);
    }
    let mut t_ns = spec.start_unix_s * NANOS_PER_SEC;
    let start_ns = t_ns;
    let mut line = String::with_capacity(600);
    let mut cumulative = vec![0.0; apps.len()];
    for i in 0..spec.lines {
        let offset_s = (t_ns - start_ns) as f64 / NANOS_PER_SEC as f64;
        // Slow wave (one period per hour of event time) and the spike.
        let wave = 1.0 + 0.5 * (offset_s / 3600.0 * std::f64::consts::TAU).sin();
        let spike = spec
            .spike
            .filter(|s| offset_s >= s.from_s && offset_s < s.to_s);
        if i % 256 == 0 || i == 0 {
            let mut acc = 0.0;
            for (k, a) in apps.iter().enumerate() {
                acc += a.weight
                    * if k == 0 {
                        spike.map_or(1.0, |s| s.factor)
                    } else {
                        1.0
                    };
                cumulative[k] = acc;
            }
        }
        let rate = spec.rps
            * wave
            * spike.map_or(1.0, |s| {
                1.0 + (s.factor - 1.0) * apps[0].weight / cumulative.last().copied().unwrap_or(1.0)
            });
        let gap_s = -(1.0 - rng.random::<f64>()).ln() / rate.max(1e-9);
        t_ns += (gap_s * NANOS_PER_SEC as f64) as i64;
        let jitter = if spec.jitter_ms > 0 {
            rng.random_range(0..=spec.jitter_ms) as i64 * 1_000_000
        } else {
            0
        };
        let event_ns = t_ns - jitter;

        let k = pick(&mut rng, &cumulative);
        let app = &apps[k];
        let index = rng.random_range(0..app.instances);
        let burst = spec
            .error_burst
            .filter(|b| k == 1 % apps.len() && offset_s >= b.from_s && offset_s < b.to_s);
        let r: f64 = rng.random();
        let status: u16 = match burst {
            Some(b) if r < b.ratio => 503,
            _ if r < 0.004 => 500,
            _ if r < 0.03 => 404,
            _ if r < 0.05 => 302,
            _ => 200,
        };
        let u: f64 = rng.random::<f64>().max(1e-12);
        let slow = if spike.is_some() && k == 0 { 3.0 } else { 1.0 };
        let latency_s = app.base_latency_ms * slow * (-u.ln()).powf(1.3) / 1000.0 + 0.0004;
        let req = Request {
            time_ns: event_ns,
            app,
            index,
            method: METHODS[rng.random_range(0..METHODS.len())],
            path: PATHS[rng.random_range(0..PATHS.len())],
            status,
            bytes_in: if rng.random_bool(0.2) {
                rng.random_range(100..4000)
            } else {
                0
            },
            bytes_out: rng.random_range(200..40_000),
            latency_s,
            agent: AGENTS[rng.random_range(0..AGENTS.len())],
            client: [
                rng.random_range(1..224u8),
                rng.random(),
                rng.random(),
                rng.random_range(1..255u8),
            ],
            request_id: rng.random(),
        };
        line.clear();
        req.render(spec.format, &mut line);
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Loggregator container-metric envelopes, one per instance every 5 s: CPU
/// follows the app's share of the traffic (and its spike), memory drifts.
fn container_metrics(
    spec: &TrafficSpec,
    apps: &[App],
    rng: &mut SmallRng,
    out: &mut impl Write,
) -> io::Result<()> {
    let total_w: f64 = apps.iter().map(|a| a.weight).sum();
    let mut written = 0;
    let mut t_s = 0.0f64;
    while written < spec.lines {
        let wave = 1.0 + 0.5 * (t_s / 3600.0 * std::f64::consts::TAU).sin();
        for (k, app) in apps.iter().enumerate() {
            let spike = spec
                .spike
                .filter(|s| k == 0 && t_s >= s.from_s && t_s < s.to_s)
                .map_or(1.0, |s| s.factor);
            let rps_per_instance =
                spec.rps * wave * spike * app.weight / total_w / app.instances as f64;
            for i in 0..app.instances {
                if written >= spec.lines {
                    return Ok(());
                }
                let cpu = (2.0
                    + rps_per_instance * app.base_latency_ms * 0.08
                    + rng.random::<f64>() * 3.0)
                    .min(400.0);
                let memory = 180_000_000.0
                    + 40_000_000.0 * (i as f64 / app.instances as f64)
                    + rng.random::<f64>() * 20_000_000.0;
                let ts = (spec.start_unix_s as f64 + t_s) * 1e9
                    + f64::from(rng.random_range(0..1_000_000_000u32));
                writeln!(
                    out,
                    "{{\"timestamp\":\"{ts:.0}\",\"source_id\":\"{}\",\"instance_id\":\"{i}\",\"tags\":{{\"app_name\":\"{}\",\"origin\":\"rep\"}},\"gauge\":{{\"metrics\":{{\"cpu\":{{\"unit\":\"percentage\",\"value\":{cpu:.4}}},\"memory\":{{\"unit\":\"bytes\",\"value\":{memory:.0}}},\"memory_quota\":{{\"unit\":\"bytes\",\"value\":536870912}},\"disk\":{{\"unit\":\"bytes\",\"value\":94371840}},\"disk_quota\":{{\"unit\":\"bytes\",\"value\":1073741824}}}}}}}}",
                    app.guid,
                    app.host.split('.').next().unwrap_or("app"),
                )?;
                written += 1;
            }
        }
        t_s += 5.0;
    }
    Ok(())
}

struct Request<'a> {
    time_ns: i64,
    app: &'a App,
    index: usize,
    method: &'a str,
    path: &'a str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    latency_s: f64,
    agent: &'a str,
    client: [u8; 4],
    request_id: u128,
}

impl Request<'_> {
    fn backend(&self) -> String {
        let n = self.index + 16 * (self.app.guid.as_bytes()[0] as usize % 8);
        format!("10.0.{}.{}:{}", n / 200, n % 200 + 10, 61000 + self.index)
    }

    fn render(&self, format: Format, s: &mut String) {
        use std::fmt::Write as _;
        let secs = self.time_ns.div_euclid(NANOS_PER_SEC);
        let nanos = self.time_ns.rem_euclid(NANOS_PER_SEC);
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let (h, mi, se) = (sod / 3600, sod / 60 % 60, sod % 60);
        let [a, b, c, dd] = self.client;
        let rid = self.request_id;
        let rid = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (rid >> 96) as u32,
            (rid >> 80) as u16,
            (rid >> 64) as u16,
            (rid >> 48) as u16,
            (rid & 0xffff_ffff_ffff) as u64
        );
        let _ = match format {
            Format::Gorouter | Format::Auto | Format::Loggregator | Format::AppLog => write!(
                s,
                "{host} - [{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}.{nanos:09}Z] \"{m} {p} HTTP/1.1\" {st} {bi} {bo} \"-\" \"{ua}\" \"{a}.{b}.{c}.{dd}:{port}\" \"{backend}\" x_forwarded_for:\"{a}.{b}.{c}.{dd}\" x_forwarded_proto:\"https\" vcap_request_id:\"{rid}\" response_time:{rt:.9} gorouter_time:0.000{g:03} app_id:\"{app}\" app_index:\"{idx}\" instance_id:\"{iid:08x}-0000-4000-8000-000000000000\" x_b3_traceid:\"{tr:016x}\" x_b3_spanid:\"{tr:016x}\" x_b3_parentspanid:\"-\" b3:\"{tr:016x}-{tr:016x}\"",
                host = self.app.host,
                m = self.method,
                p = self.path,
                st = self.status,
                bi = self.bytes_in,
                bo = self.bytes_out,
                ua = self.agent,
                port = 40000 + (rid.len() * 997 + self.index) % 20000,
                backend = self.backend(),
                rt = self.latency_s,
                g = (self.request_id % 900) as u32 + 100,
                app = self.app.guid,
                idx = self.index,
                iid = (self.request_id >> 32) as u32 ^ self.index as u32,
                tr = self.request_id as u64,
            ),
            Format::NginxJson => write!(
                s,
                "{{\"msec\":\"{secs}.{ms:03}\",\"host\":\"{host}\",\"remote_addr\":\"{a}.{b}.{c}.{dd}\",\"request_method\":\"{m}\",\"request_uri\":\"{p}\",\"server_protocol\":\"HTTP/1.1\",\"status\":\"{st}\",\"request_length\":\"{bi}\",\"body_bytes_sent\":\"{bo}\",\"request_time\":\"{rt:.3}\",\"upstream_addr\":\"{backend}\",\"upstream_status\":\"{st}\",\"upstream_response_time\":\"{rt:.3}\",\"request_id\":\"{rid}\",\"http_referer\":\"\",\"http_user_agent\":\"{ua}\"}}",
                ms = nanos / 1_000_000,
                host = self.app.host,
                m = self.method,
                p = self.path,
                st = self.status,
                bi = self.bytes_in,
                bo = self.bytes_out,
                rt = self.latency_s,
                backend = self.backend(),
                ua = self.agent,
            ),
            Format::Combined => write!(
                s,
                "{a}.{b}.{c}.{dd} - - [{d:02}/{mon}/{y:04}:{h:02}:{mi:02}:{se:02} +0000] \"{m} {p} HTTP/1.1\" {st} {bo} \"-\" \"{ua}\" {rt:.3}",
                mon = MONTH_NAMES[(mo - 1) as usize],
                m = self.method,
                p = self.path,
                st = self.status,
                bo = self.bytes_out,
                ua = self.agent,
                rt = self.latency_s,
            ),
            Format::IngressNginx => write!(
                s,
                "{a}.{b}.{c}.{dd} - - [{d:02}/{mon}/{y:04}:{h:02}:{mi:02}:{se:02} +0000] \"{m} {p} HTTP/1.1\" {st} {bo} \"-\" \"{ua}\" {bi} {rt:.3} [default-{name}-8080] [] {backend} {bo} {rt:.3} {st} {rid32:032x}",
                mon = MONTH_NAMES[(mo - 1) as usize],
                m = self.method,
                p = self.path,
                st = self.status,
                bo = self.bytes_out,
                bi = self.bytes_in + 300,
                ua = self.agent,
                rt = self.latency_s,
                name = self.app.host.split('.').next().unwrap_or("app"),
                backend = self.backend(),
                rid32 = self.request_id,
            ),
        };
    }
}

const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Mapping, decode, detect};

    #[test]
    fn every_format_generates_lines_its_decoder_reads() {
        for format in Format::CONCRETE {
            let spec = TrafficSpec {
                format,
                lines: 500,
                ..TrafficSpec::default()
            };
            let mut buf = Vec::new();
            generate(&spec, &mut buf).unwrap();
            let text = String::from_utf8(buf).unwrap();
            let m = Mapping::new();
            for line in text.lines() {
                assert_eq!(detect(line), Some(format), "{line}");
                decode(format, line, &m).unwrap_or_else(|e| panic!("{format}: {e}\n{line}"));
            }
        }
    }

    #[test]
    fn container_metrics_decode_and_share_app_ids_with_the_traffic() {
        use crate::decode::decode_loggregator;
        let spec = TrafficSpec {
            format: Format::Loggregator,
            lines: 120,
            ..TrafficSpec::default()
        };
        let mut buf = Vec::new();
        generate(&spec, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let mut apps = std::collections::BTreeSet::new();
        for line in text.lines() {
            assert_eq!(detect(line), Some(Format::Loggregator));
            let m = decode_loggregator(line).unwrap();
            assert_eq!(m.len(), 1);
            assert!(m[0].cpu_pct.is_some() && m[0].memory_pct().is_some());
            apps.insert(m[0].app.clone());
        }
        let mut traffic = Vec::new();
        generate(
            &TrafficSpec {
                lines: 2000,
                ..TrafficSpec::default()
            },
            &mut traffic,
        )
        .unwrap();
        let traffic = String::from_utf8(traffic).unwrap();
        assert!(
            apps.iter().all(|a| traffic.contains(a.as_str())),
            "same seed, same app ids"
        );
    }

    #[test]
    fn same_seed_same_bytes() {
        let spec = TrafficSpec {
            lines: 200,
            ..TrafficSpec::default()
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        generate(&spec, &mut a).unwrap();
        generate(&spec, &mut b).unwrap();
        assert_eq!(a, b);
    }
}
