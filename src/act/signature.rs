//! Webhook signatures a receiver can check for age as well as origin: the
//! Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`).
//! The timestamp is of the attempt, so a retry is signed afresh and a
//! receiver may refuse anything older than a few minutes: a captured
//! delivery cannot be replayed later, and one id is delivered once.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Standard Webhooks secrets are written `whsec_<base64 key>`.
const PREFIX: &str = "whsec_";

#[derive(Clone)]
pub struct StandardSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for StandardSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StandardSigner(…)") // never the key
    }
}

impl StandardSigner {
    /// A `whsec_…` secret is the base64 of the key, as Standard Webhooks
    /// libraries read it; any other secret is the key itself.
    pub fn from_secret(secret: &[u8]) -> Result<Self, String> {
        let key = match secret.strip_prefix(PREFIX.as_bytes()) {
            Some(encoded) => STANDARD
                .decode(encoded)
                .map_err(|e| format!("a `whsec_` secret must be base64 after the prefix: {e}"))?,
            None => secret.to_vec(),
        };
        if key.is_empty() {
            return Err("the signing secret is empty".into());
        }
        Ok(StandardSigner { key })
    }

    /// `v1,<base64>` for one attempt.
    pub fn signature(&self, id: &str, unix_seconds: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(unix_seconds.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The three headers of one attempt.
    pub fn headers(&self, id: &str, unix_seconds: i64, body: &[u8]) -> [(String, String); 3] {
        [
            ("webhook-id".into(), id.to_string()),
            ("webhook-timestamp".into(), unix_seconds.to_string()),
            (
                "webhook-signature".into(),
                self.signature(id, unix_seconds, body),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference libraries' own test vector.
    #[test]
    fn signs_as_the_reference_libraries_do() {
        let signer =
            StandardSigner::from_secret(b"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            signer.signature(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn a_bad_whsec_secret_is_an_error_and_a_plain_one_is_the_key() {
        assert!(StandardSigner::from_secret(b"whsec_not base64!").is_err());
        assert!(StandardSigner::from_secret(b"whsec_").is_err());
        let plain = StandardSigner::from_secret(b"s3cret").unwrap();
        assert_eq!(plain.key, b"s3cret");
        assert_eq!(format!("{plain:?}"), "StandardSigner(…)");
    }
}
