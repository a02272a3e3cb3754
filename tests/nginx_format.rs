//! The nginx `log_format` shipped in deploy/ produces lines Vane decodes: the
//! template is filled in the way nginx would (escape=json) and decoded.

use std::collections::HashMap;

use vane::decode::{Format, Mapping, decode};

fn template() -> String {
    let conf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/nginx/vane-json.conf"
    ))
    .unwrap();
    let body = conf
        .split("log_format vane_json escape=json")
        .nth(1)
        .unwrap();
    // Concatenate the single-quoted pieces up to the closing `;`.
    body.split(';')
        .next()
        .unwrap()
        .split('\'')
        .skip(1)
        .step_by(2)
        .collect()
}

fn fill(template: &str, values: &HashMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let name_len = rest[i + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap();
        let name = &rest[i + 1..i + 1 + name_len];
        let v = values.get(name).copied().unwrap_or("");
        // escape=json
        out.push_str(&v.replace('\\', "\\\\").replace('"', "\\\""));
        rest = &rest[i + 1 + name_len..];
    }
    out.push_str(rest);
    out
}

#[test]
fn shipped_log_format_decodes() {
    let t = template();
    assert!(t.starts_with('{') && t.ends_with('}'), "{t}");
    let values: HashMap<&str, &str> = [
        ("msec", "1764547200.250"),
        ("host", "shop.example.com"),
        ("remote_addr", "203.0.113.9"),
        ("request_method", "GET"),
        ("request_uri", "/search?q=\"boots\""),
        ("server_protocol", "HTTP/2.0"),
        ("status", "503"),
        ("request_length", "412"),
        ("body_bytes_sent", "0"),
        ("request_time", "1.204"),
        ("upstream_addr", "10.1.0.4:8080, 10.1.0.5:8080"),
        ("upstream_status", "502, 503"),
        ("upstream_response_time", "0.600, 0.604"),
        ("request_id", "5f2b"),
        ("http_user_agent", "curl/8.4.0"),
    ]
    .into();
    let line = fill(&t, &values);
    let mapping = Mapping {
        hosts: [("shop.example.com".into(), "shop".into())].into(),
        ..Mapping::new()
    };
    let r = decode(Format::NginxJson, &line, &mapping).unwrap();
    assert_eq!(r.time_ns, 1_764_547_200_250_000_000);
    assert_eq!(r.app, "shop");
    assert_eq!(r.instance.as_deref(), Some("10.1.0.5:8080"));
    assert_eq!(r.path, "/search?q=\"boots\"");
    assert_eq!(
        (r.status, r.bytes_received, r.bytes_sent, r.response_time_us),
        (503, 412, 0, Some(1_204_000))
    );
    assert_eq!(
        (r.method, r.protocol, r.request_id),
        ("GET", "HTTP/2.0", "5f2b")
    );
    assert_eq!(vane::decode::detect(&line), Some(Format::NginxJson));
}
