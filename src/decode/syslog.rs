//! RFC 5424 syslog messages as Cloud Foundry's syslog drains write them:
//!
//! ```text
//! <14>1 2017-10-05T15:00:55.432180389Z org.space.app 3e0b1150-… [APP/PROC/WEB/0] - - the line
//! ```
//!
//! APP-NAME is the app GUID; PROCID says who wrote the line: `[RTR/N]` is
//! the router (the message is a gorouter access log line), `[APP/PROC/WEB/N]`
//! the app's instance N, anything else (`[STG/0]`, `[API/1]`) the platform
//! about the app. Structured data is skipped (CF puts tags there).

use super::DecodeError;

/// What one syslog message carried, as Vane routes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogLine {
    /// APP-NAME: the app GUID (`-` when absent).
    pub app: String,
    /// The index at the end of PROCID (`[APP/PROC/WEB/2]` → `2`).
    pub instance: Option<String>,
    /// TIMESTAMP, when given.
    pub time_ns: Option<i64>,
    /// The router's access log line (`[RTR/N]`), not the app's output.
    pub router: bool,
    pub message: String,
}

fn bad(field: &'static str, column: usize, reason: &'static str) -> DecodeError {
    DecodeError::new(field, column, reason)
}

/// Splits off the next space-separated header field.
fn field<'a>(
    rest: &mut &'a str,
    at: &mut usize,
    name: &'static str,
) -> Result<&'a str, DecodeError> {
    let (head, tail) = rest
        .split_once(' ')
        .ok_or_else(|| bad(name, *at, "is missing: the header has fewer than 7 fields"))?;
    if head.is_empty() {
        return Err(bad(name, *at, "is empty (two spaces in a row)"));
    }
    *at += head.len() + 1;
    *rest = tail;
    Ok(head)
}

/// Skips STRUCTURED-DATA (`-` or `[id k="v" …]…`), honouring `\]` and
/// quoted values; returns what follows it.
fn skip_structured(rest: &str, at: usize) -> Result<&str, DecodeError> {
    if let Some(tail) = rest.strip_prefix('-') {
        return Ok(tail);
    }
    let bytes = rest.as_bytes();
    let mut i = 0;
    while bytes.get(i) == Some(&b'[') {
        let mut quoted = false;
        i += 1;
        loop {
            match bytes.get(i) {
                None => return Err(bad("structured_data", at + i, "is not closed by `]`")),
                Some(b'\\') => i += 2,
                Some(b'"') => {
                    quoted = !quoted;
                    i += 1;
                }
                Some(b']') if !quoted => {
                    i += 1;
                    break;
                }
                Some(_) => i += 1,
            }
        }
    }
    if i == 0 {
        return Err(bad("structured_data", at, "is neither `-` nor `[…]`"));
    }
    Ok(rest.get(i..).unwrap_or_default())
}

pub fn parse(line: &str) -> Result<SyslogLine, DecodeError> {
    let body = line
        .strip_prefix('<')
        .ok_or_else(|| bad("pri", 0, "must start with `<`"))?;
    let (pri, rest) = body
        .split_once('>')
        .ok_or_else(|| bad("pri", 1, "is not closed by `>`"))?;
    if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("pri", 1, "must be 1 to 3 digits"));
    }
    let mut at = pri.len() + 2;
    let mut rest = rest;
    let version = field(&mut rest, &mut at, "version")?;
    if version != "1" {
        return Err(bad("version", at, "must be 1 (RFC 5424)"));
    }
    let timestamp = field(&mut rest, &mut at, "timestamp")?;
    let time_ns = match timestamp {
        "-" => None,
        t => Some(
            t.parse::<crate::time::Timestamp>()
                .map_err(|_| bad("timestamp", at, "is not an RFC 3339 time"))?
                .nanos(),
        ),
    };
    let _hostname = field(&mut rest, &mut at, "hostname")?;
    let app = field(&mut rest, &mut at, "app_name")?.to_string();
    let procid = field(&mut rest, &mut at, "procid")?;
    let _msgid = field(&mut rest, &mut at, "msgid")?;
    let rest = skip_structured(rest, at)?;
    let message = rest.strip_prefix(' ').unwrap_or(rest);
    // A BOM may lead the message (RFC 5424 6.4).
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    let source = procid.trim_start_matches('[').trim_end_matches(']');
    let instance = source
        .rsplit_once('/')
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string);
    Ok(SyslogLine {
        app,
        instance,
        time_ns,
        router: source == "RTR" || source.starts_with("RTR/"),
        message: message.trim_end_matches(['\n', '\r']).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cloud_foundry_drain_message() {
        let m = parse("<14>1 2017-10-05T15:00:55.432180389Z cf-lamb.development.dripspinner 3e0b1150-14b8-4a20-a1c5-d9e296f198ae [APP/PROC/WEB/2] - - msg 1 LogSpinner Log Message\n").unwrap();
        assert_eq!(m.app, "3e0b1150-14b8-4a20-a1c5-d9e296f198ae");
        assert_eq!(m.instance.as_deref(), Some("2"));
        assert!(!m.router);
        assert_eq!(m.message, "msg 1 LogSpinner Log Message");
        assert_eq!(m.time_ns, Some(1_507_215_655_432_180_389));
    }

    #[test]
    fn router_lines_structured_data_and_nil_values() {
        let m = parse(r#"<14>1 - org.space.app guid [RTR/1] - [tags@47450 source_type="RTR" note="a \"]\" b"] host - [t] "GET / HTTP/1.1" 200"#).unwrap();
        assert!(m.router);
        assert_eq!(m.instance.as_deref(), Some("1"));
        assert_eq!(m.time_ns, None);
        assert_eq!(m.message, r#"host - [t] "GET / HTTP/1.1" 200"#);
        let m = parse("<14>1 - h guid [STG/0] - -").unwrap();
        assert_eq!((m.message.as_str(), m.router), ("", false));
    }

    #[test]
    fn malformed_messages_name_the_field() {
        for (line, field) in [
            ("14>1 - h a p - - m", "pri"),
            ("<14>2 - h a p - - m", "version"),
            ("<14>1 yesterday h a p - - m", "timestamp"),
            ("<14>1 - h a", "app_name"),
            ("<14>1 - h a p - [unclosed m", "structured_data"),
            ("<14>1 - h a p - x m", "structured_data"),
        ] {
            assert_eq!(parse(line).unwrap_err().field, field, "{line}");
        }
    }
}
