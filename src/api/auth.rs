//! Bearer tokens of the API: one for what changes something, one (when
//! configured) for reads. Compared in constant time, length included: both
//! sides are hashed first, so the comparison always runs over 32 bytes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{Api, ApiConfig};

/// A token as its digest: the token itself is not kept.
#[derive(Clone, Copy)]
struct Token([u8; 32]);

impl Token {
    fn new(text: &str) -> Self {
        Token(Sha256::digest(text.trim().as_bytes()).into())
    }

    fn matches(&self, given: &str) -> bool {
        let given = Token::new(given);
        self.0
            .iter()
            .zip(given.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[derive(Clone, Copy, Default)]
pub struct Tokens {
    write: Option<Token>,
    read: Option<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No token is configured for this kind of request.
    Off,
    Refused,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

impl Tokens {
    /// Both tokens; a variable or file that is named but missing or empty
    /// is an error (running on would leave the endpoints unguarded or off).
    pub fn from_config(cfg: &ApiConfig) -> Result<Tokens, String> {
        let write = crate::secret::read(
            cfg.token_env.as_deref(),
            cfg.token_file.as_deref(),
            "api.token",
        )?;
        let read = crate::secret::read(
            cfg.read_token_env.as_deref(),
            cfg.read_token_file.as_deref(),
            "api.read_token",
        )?;
        Ok(Tokens {
            write: write.as_deref().map(Token::new),
            read: read.as_deref().map(Token::new),
        })
    }

    pub fn write(&self, headers: &HeaderMap) -> Verdict {
        match (self.write, bearer(headers)) {
            (None, _) => Verdict::Off,
            (Some(t), Some(given)) if t.matches(given) => Verdict::Allowed,
            _ => Verdict::Refused,
        }
    }

    /// Reads are open unless a read token is set; the write token reads too.
    pub fn read(&self, headers: &HeaderMap) -> Verdict {
        let Some(read) = self.read else {
            return Verdict::Allowed;
        };
        match bearer(headers) {
            Some(given) if read.matches(given) || self.write.is_some_and(|w| w.matches(given)) => {
                Verdict::Allowed
            }
            _ => Verdict::Refused,
        }
    }
}

pub async fn require_read(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    match api.tokens.read(request.headers()) {
        Verdict::Allowed => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong bearer token (api.read_token_env is set)\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn tokens_match_exactly_whatever_their_length() {
        let t = Token::new("s3cret");
        assert!(t.matches("s3cret"));
        for wrong in ["", "s", "s3cre", "s3cret!", "S3CRET", "s3cret s3cret"] {
            assert!(!t.matches(wrong), "{wrong}");
        }
    }

    #[test]
    fn reads_are_open_until_a_read_token_is_set_and_the_write_token_reads_too() {
        let open = Tokens {
            write: Some(Token::new("w")),
            read: None,
        };
        assert_eq!(open.read(&HeaderMap::new()), Verdict::Allowed);
        let guarded = Tokens {
            write: Some(Token::new("w")),
            read: Some(Token::new("r")),
        };
        assert_eq!(guarded.read(&HeaderMap::new()), Verdict::Refused);
        assert_eq!(guarded.read(&with("x")), Verdict::Refused);
        assert_eq!(guarded.read(&with("r")), Verdict::Allowed);
        assert_eq!(guarded.read(&with("w")), Verdict::Allowed);
        assert_eq!(
            guarded.write(&with("r")),
            Verdict::Refused,
            "reading is not writing"
        );
        assert_eq!(guarded.write(&with("w")), Verdict::Allowed);
        assert_eq!(Tokens::default().write(&with("w")), Verdict::Off);
    }
}
