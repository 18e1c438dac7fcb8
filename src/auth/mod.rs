//! Identity and permissions: client tokens (JWT) become an [`Identity`]; the [`Policy`] decides,
//! per channel namespace, who may subscribe and publish, and which browser origins may connect.
#![forbid(unsafe_code)]

pub(crate) mod jwt;

use std::sync::Arc;

use crate::config::{Access, Config, ConfigError, Namespace, Namespaces};
pub(crate) use jwt::{AuthError, Identity, Verifier};

/// The personal channel prefix: `user:<id>` is only for the connection whose user is `<id>`.
pub(crate) const PERSONAL_PREFIX: &str = "user:";

/// Everything that decides what a connection may do.
#[derive(Debug)]
pub struct Policy {
    verifier: Option<Verifier>,
    /// Whether connections without a token are allowed.
    pub anonymous: bool,
    /// Namespace options.
    pub namespaces: Arc<Namespaces>,
    /// Browser origins allowed (empty = any).
    pub allowed_origins: Vec<String>,
    /// Subscriptions per connection.
    pub max_subscriptions: usize,
    /// Channels server-wide clients may create.
    pub max_channels: usize,
}

impl Policy {
    /// Builds the policy, loading the public key file if one is configured.
    pub fn from_config(config: &Config) -> Result<Policy, ConfigError> {
        let verifier = match (&config.jwt_secret, &config.jwt_public_key_file) {
            (Some(secret), _) => Some(Verifier::hs256(secret.as_bytes())),
            (None, Some(path)) => Some(Verifier::from_public_key_file(path)?),
            (None, None) => None,
        };
        Ok(Policy {
            verifier,
            anonymous: config.anonymous_allowed(),
            namespaces: Arc::new(config.namespaces.clone()),
            allowed_origins: config.allowed_origins.clone(),
            max_subscriptions: config.max_subscriptions,
            max_channels: config.max_channels,
        })
    }

    /// Verifies a token (`AuthError::NoKey` when no key is configured).
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Identity, AuthError> {
        self.verifier
            .as_ref()
            .ok_or(AuthError::NoKey)?
            .verify(token, now_unix)
    }

    /// Whether a browser with this `Origin` may connect.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(o) => {
                self.allowed_origins.is_empty()
                    || self
                        .allowed_origins
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(o))
            }
        }
    }

    /// The namespace of a channel.
    pub fn namespace(&self, channel: &str) -> &Namespace {
        self.namespaces.of(channel)
    }

    /// Whether `who` may subscribe to `channel`.
    pub fn can_subscribe(&self, who: Option<&Identity>, channel: &str) -> bool {
        if let Some(owner) = channel.strip_prefix(PERSONAL_PREFIX) {
            return who.is_some_and(|w| w.user_id == owner);
        }
        match self.namespace(channel).subscribe {
            Access::Anonymous => true,
            Access::Authenticated => {
                who.is_some_and(|w| w.channels.as_ref().is_none_or(|p| matches_any(p, channel)))
            }
            Access::Token => who
                .and_then(|w| w.channels.as_ref())
                .is_some_and(|p| matches_any(p, channel)),
        }
    }

    /// Whether `who` may publish to `channel` as a client.
    pub fn can_publish(&self, who: Option<&Identity>, channel: &str) -> bool {
        if channel.starts_with(PERSONAL_PREFIX) {
            return false;
        }
        let ns = self.namespace(channel);
        if !ns.publish {
            return false;
        }
        match ns.subscribe {
            Access::Anonymous => {
                who.is_none_or(|w| w.publish.as_ref().is_none_or(|p| matches_any(p, channel)))
            }
            Access::Authenticated => {
                who.is_some_and(|w| w.publish.as_ref().is_none_or(|p| matches_any(p, channel)))
            }
            Access::Token => who
                .and_then(|w| w.publish.as_ref())
                .is_some_and(|p| matches_any(p, channel)),
        }
    }
}

/// Whether `channel` matches a pattern: an exact name, or a prefix ending in `*`.
pub(crate) fn pattern_matches(pattern: &str, channel: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => channel.starts_with(prefix),
        None => pattern == channel,
    }
}

fn matches_any(patterns: &[String], channel: &str) -> bool {
    patterns.iter().any(|p| pattern_matches(p, channel))
}

#[cfg(test)]
mod tests;
