//! Credentials come from an environment variable (`*_env`) or a file
//! (`*_file`, as Kubernetes mounts secrets), never from the TOML itself.
//! One that is named but missing or empty is an error at start: running on
//! without it would only fail later, or connect without authentication.

use std::path::Path;

/// The credential named by `env` or `file` (the variable wins when both
/// are set), `None` when neither is. `key` is how the config names it,
/// for the message (`influxdb.token`).
pub fn read(env: Option<&str>, file: Option<&Path>, key: &str) -> Result<Option<String>, String> {
    let (value, source) = match (env, file) {
        (Some(var), _) => (
            std::env::var(var)
                .map_err(|_| format!("environment variable {var} ({key}_env) is not set"))?,
            format!("environment variable {var}"),
        ),
        (None, Some(path)) => (from_file(path, key)?, format!("file {}", path.display())),
        (None, None) => return Ok(None),
    };
    if value.trim().is_empty() {
        return Err(format!("{source} ({key}) is empty"));
    }
    Ok(Some(value))
}

/// A secret file, without the trailing newline editors and `echo` add.
/// Read again by callers whose secret rotates (a projected service
/// account token).
pub fn from_file(path: &Path, key: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| format!("cannot read {key}_file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_secret_must_exist_and_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        assert_eq!(read(None, None, "x.token"), Ok(None));
        let e = read(Some("VANE_TEST_SURELY_UNSET"), None, "x.token").unwrap_err();
        assert_eq!(
            e,
            "environment variable VANE_TEST_SURELY_UNSET (x.token_env) is not set"
        );
        let e = read(None, Some(&file), "x.token").unwrap_err();
        assert!(e.starts_with("cannot read x.token_file"), "{e}");
        std::fs::write(&file, "\n").unwrap();
        let e = read(None, Some(&file), "x.token").unwrap_err();
        assert!(e.ends_with("(x.token) is empty"), "{e}");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(
            read(None, Some(&file), "x.token"),
            Ok(Some("s3cret".into()))
        );
    }
}
