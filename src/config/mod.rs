//! Configuration: a [`Config`] built from defaults, a TOML file, `FRAMECAST_*` environment
//! variables and command-line flags (later sources win), then checked into a [`ValidConfig`].
//!
//! Every key is declared once, in `keys.rs` (name, type, default, parser, docs); the struct, its
//! defaults, [`Config::set`] (the one text → value path of every source, so an invalid value
//! always fails with a [`ConfigError`] naming the key), the flags ([`KeyFlags`]) and the
//! documentation tables ([`docs`]) are derived from that table. `[namespaces.NAME]` tables keep
//! their own typed shape ([`namespaces`]).

mod check;
pub mod cluster;
pub mod docs;
mod file;
mod flags;
mod keys;
pub mod namespaces;
mod schema;
mod values;

use std::time::Duration;

use thiserror::Error;

pub use check::ValidConfig;
pub use cluster::{ClusterConfig, Storage};
pub use flags::KeyFlags;
pub use keys::{Config, KEYS};
pub use namespaces::{Access, Delivery, Namespace, Namespaces};
pub use schema::{FlagForm, Key, KeyDefault};

/// Which I/O backend each shard drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring where the kernel allows it, else epoll with a warning.
    Auto,
    /// io_uring only; starting fails if the kernel or a seccomp profile refuses it.
    Uring,
    /// epoll (through mio); works everywhere, including containers that block io_uring.
    Epoll,
}

/// A configuration value that could not be used; the message names the key.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key's value is not valid for that key.
    #[error("invalid value for `{key}`: {message}")]
    Invalid {
        /// The key, as written in the TOML file (`tick_hz`).
        key: String,
        /// What is wrong with the value.
        message: String,
    },
    /// The TOML file has a key framecast does not know.
    #[error("unknown configuration key `{0}`")]
    UnknownKey(String),
    /// The configuration file could not be read or is not valid TOML.
    #[error("configuration file {path}: {message}")]
    File {
        /// The file given with `--config`.
        path: String,
        /// The reader's or parser's message.
        message: String,
    },
}

impl ConfigError {
    /// A key's value is not valid for it.
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl Config {
    /// How clients authenticate, in words for the startup line.
    pub fn auth_mode(&self) -> String {
        let key = match (&self.jwt_secret, &self.jwt_public_key_file) {
            (Some(_), _) => "JWT (HS256 secret)",
            (None, Some(_)) => "JWT (RS256/ES256 public key)",
            (None, None) => return "none (every client is anonymous)".into(),
        };
        if self.anonymous_allowed() {
            format!("{key}, anonymous clients allowed")
        } else {
            format!("{key} required")
        }
    }

    /// Whether connections without a token are allowed (default: when no key is configured).
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous
            .unwrap_or(self.jwt_secret.is_none() && self.jwt_public_key_file.is_none())
    }

    /// The frame clock period, or `None` in immediate mode (`tick_hz = 0`).
    pub fn tick_period(&self) -> Option<Duration> {
        (self.tick_hz > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(self.tick_hz)))
    }
}

#[cfg(test)]
mod tests;
