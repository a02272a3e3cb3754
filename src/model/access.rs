use std::borrow::Cow;

/// One HTTP request as seen by a router (gorouter, nginx, ingress-nginx, Apache).
///
/// Fields borrow from the input line wherever the line holds them verbatim, so a
/// decoder allocates only when it has to unescape a quoted string. Anything the
/// line does not carry is `None` (or empty for strings), never invented.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessRecord<'a> {
    /// Event time: when the router logged the request, in nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// The window key: gorouter `app_id`, or the app a mapping assigned.
    pub app: Cow<'a, str>,
    /// The `Host` the request was addressed to (gorouter's first field, nginx `$host`).
    pub host: &'a str,
    /// Instance identity inside the app (the window key): gorouter `app_index`,
    /// or the mapped backend address.
    pub instance: Option<Cow<'a, str>>,
    /// The instance's own id where the router logs one (gorouter `instance_id`,
    /// the container GUID); empty otherwise.
    pub instance_id: &'a str,
    pub method: &'a str,
    pub path: Cow<'a, str>,
    pub protocol: &'a str,
    /// HTTP status; 0 when the router logged none (ingress 400s before routing, gorouter 0).
    pub status: u16,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Time the router spent on the request, in microseconds; `None` when logged as `-`.
    pub response_time_us: Option<u64>,
    pub remote_addr: &'a str,
    /// Backend (upstream) address; with retries, the last one tried.
    pub backend_addr: &'a str,
    pub request_id: &'a str,
}
