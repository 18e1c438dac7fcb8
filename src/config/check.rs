//! Rules that involve more than one key, and [`ValidConfig`]: a configuration that passed them.
//! The server starts only from a [`ValidConfig`].

use std::ops::Deref;

use super::{Access, Config, ConfigError};

/// A configuration that passed [`Config::check`]; read it through `Deref`.
#[derive(Clone, Debug)]
pub struct ValidConfig(Config);

impl Deref for ValidConfig {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.0
    }
}

impl ValidConfig {
    /// The configuration itself.
    pub fn into_inner(self) -> Config {
        self.0
    }
}

impl TryFrom<Config> for ValidConfig {
    type Error = ConfigError;

    fn try_from(config: Config) -> Result<ValidConfig, ConfigError> {
        config.check()
    }
}

impl Config {
    /// Checks the rules that involve more than one key (and the bounds of values an embedder
    /// set in code, which [`Config::set`] never saw); the error names the key.
    pub fn check(self) -> Result<ValidConfig, ConfigError> {
        if self.max_queued_bytes < self.max_message_bytes.min(64 * 1024) {
            return Err(ConfigError::invalid(
                "max_queued_bytes",
                "must be at least 64 KiB (or max_message_bytes when smaller)",
            ));
        }
        if !self.listen.ip().is_loopback() && self.api_key.is_none() && !self.insecure_api {
            return Err(ConfigError::invalid(
                "api_key",
                format!(
                    "refusing to serve the HTTP API on non-loopback address {} without an api_key; set api_key (or pass --insecure-api to accept an open API)",
                    self.listen
                ),
            ));
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "tls_key_file",
                    "tls_cert_file is set but tls_key_file is not: set both to serve wss://",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "tls_cert_file",
                    "tls_key_file is set but tls_cert_file is not: set both to serve wss://",
                ))
            }
            _ => {}
        }
        if !self.has_token_key() {
            self.check_without_key()?;
        }
        if self.ping_interval.is_zero() {
            return Err(ConfigError::invalid(
                "ping_interval",
                "must be greater than zero",
            ));
        }
        if self.max_channels > crate::limits::MAX_CHANNELS {
            return Err(ConfigError::invalid(
                "max_channels",
                format!(
                    "{} is above the server's hard cap of {} channels",
                    self.max_channels,
                    crate::limits::MAX_CHANNELS
                ),
            ));
        }
        if let Some(cluster) = &self.cluster {
            // A local namespace must be one whose channels can be named `ns:...`.
            let unknown = (cluster.local_namespaces.iter())
                .find(|ns| !self.namespaces.iter().any(|(name, _)| name == ns.as_str()));
            if let Some(ns) = unknown {
                return Err(ConfigError::invalid(
                    "cluster.local_namespaces",
                    format!("`{ns}` is not a configured namespace (add a [namespaces.{ns}] table)"),
                ));
            }
        }
        Ok(ValidConfig(self))
    }

    /// Whether a key to verify client tokens is configured.
    fn has_token_key(&self) -> bool {
        self.jwt_secret.is_some() || self.jwt_public_key_file.is_some()
    }

    /// Without a token key nobody can authenticate: refuse settings that would lock everyone out.
    fn check_without_key(&self) -> Result<(), ConfigError> {
        if self.allow_anonymous == Some(false) {
            return Err(ConfigError::invalid(
                "allow_anonymous",
                "false without jwt_secret or jwt_public_key_file: no client could ever connect; set a key",
            ));
        }
        // Exhaustive: a new `Access` variant must decide whether it needs a key.
        let needs_key = self.namespaces.iter().find_map(|(name, ns)| {
            let wants = match ns.subscribe {
                Access::Anonymous => return None,
                Access::Authenticated => "authenticated",
                Access::Token => "token",
            };
            Some((name, wants))
        });
        match needs_key {
            Some((name, wants)) => Err(ConfigError::invalid(
                &format!("namespaces.{name}.subscribe"),
                format!(
                    "\"{wants}\" needs jwt_secret or jwt_public_key_file: without a key no client can authenticate, so nobody could join this namespace"
                ),
            )),
            None => Ok(()),
        }
    }
}
