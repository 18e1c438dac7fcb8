//! Token verification with `jsonwebtoken`: HS256 with a shared secret, RS256 or ES256 with a
//! PEM public key. Claims: `sub` (becomes the user id), `exp` (enforced when present, no
//! leeway), `channels` and `publish` (channel patterns).

use std::path::Path;

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use thiserror::Error;

use crate::config::ConfigError;

/// Who a connection is, from its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`.
    pub user_id: String,
    /// The token's `exp` (seconds since the epoch), if any.
    pub expires_at: Option<u64>,
    /// Channel patterns the user may subscribe to (`None`: no restriction from the token).
    pub channels: Option<Vec<String>>,
    /// Channel patterns the user may publish to.
    pub publish: Option<Vec<String>>,
}

/// Why a token was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The server has no key configured, so it cannot check tokens.
    #[error("this server does not accept tokens (no key configured)")]
    NoKey,
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// Bad signature, wrong algorithm, malformed token or missing `sub`.
    #[error("invalid token: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: Option<u64>,
    channels: Option<Vec<String>>,
    publish: Option<Vec<String>>,
}

/// A configured key and algorithm.
pub(crate) struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .finish()
    }
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = 0;
    v.validate_exp = false; // checked below against the caller's clock, so it is testable
    v.required_spec_claims = ["sub".to_string()].into_iter().collect();
    v
}

impl Verifier {
    /// HS256 with a shared secret.
    pub(crate) fn hs256(secret: &[u8]) -> Verifier {
        Verifier {
            key: DecodingKey::from_secret(secret),
            validation: validation(Algorithm::HS256),
        }
    }

    /// RS256 (RSA key) or ES256 (EC P-256 key) from a PEM public key file.
    pub(crate) fn from_public_key_file(path: &Path) -> Result<Verifier, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            key: "jwt_public_key_file".into(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
            return Ok(Verifier {
                key,
                validation: validation(Algorithm::RS256),
            });
        }
        if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
            return Ok(Verifier {
                key,
                validation: validation(Algorithm::ES256),
            });
        }
        Err(invalid(format!(
            "{} is neither an RSA nor an EC public key in PEM",
            path.display()
        )))
    }

    /// Checks signature and claims at `now_unix`.
    pub(crate) fn verify(&self, token: &str, now_unix: u64) -> Result<Identity, AuthError> {
        let data = decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let c = data.claims;
        if c.exp.is_some_and(|exp| exp <= now_unix) {
            return Err(AuthError::Expired);
        }
        Ok(Identity {
            user_id: c.sub,
            expires_at: c.exp,
            channels: c.channels,
            publish: c.publish,
        })
    }
}
