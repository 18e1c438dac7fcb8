//! Configuration: one typed, already-checked [`Config`] built from defaults, a TOML file,
//! `FRAMECAST_*` environment variables and command-line flags (later sources win).
//!
//! Every key is parsed from text by one function per key ([`Config::set`]), whatever the source,
//! so an invalid value always fails with a [`ConfigError`] that names the key.

pub mod namespaces;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

pub use namespaces::{Access, Delivery, Namespace, Namespaces};
use values::{parse_bool_flag, parse_bytes, parse_duration, parse_number};

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

/// Every configuration key with its default, in the order `--help` and the docs list them.
pub const KEYS: &[(&str, &str)] = &[
    ("listen", "127.0.0.1:8080"),
    ("shards", "number of cores"),
    ("io", "auto"),
    ("tick_hz", "60"),
    ("max_message_bytes", "65536"),
    ("max_queued_bytes", "4194304"),
    ("max_connections", "100000"),
    ("ping_interval", "30s"),
    ("pong_timeout", "10s"),
    ("handshake_timeout", "10s"),
    ("drain_timeout", "10s"),
    ("echo_path", "(off)"),
    ("pin_cores", "true"),
    ("api_key", "(none)"),
    ("insecure_api", "false"),
    ("max_http_body_bytes", "1048576"),
    ("status_interval", "5s"),
    ("heartbeat_interval", "10s"),
    ("default_channels", "(none)"),
    ("welcome", "(none)"),
    ("jwt_secret", "(none)"),
    ("jwt_public_key_file", "(none)"),
    ("allow_anonymous", "true without a key, else false"),
    ("auth_timeout", "5s"),
    ("allowed_origins", "(any)"),
    ("cors_origins", "(none)"),
    ("max_subscriptions", "1000"),
    ("max_channels", "100000"),
];

/// The checked configuration of one server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address every shard listens on (SO_REUSEPORT); port 0 picks a free port.
    pub listen: SocketAddr,
    /// Number of shards (threads, each with its own loop and listener).
    pub shards: usize,
    /// I/O backend.
    pub io: IoBackend,
    /// Frame clock rate in ticks per second; 0 is immediate mode.
    pub tick_hz: u32,
    /// Largest client message (after reassembly); bigger closes with 1009.
    pub max_message_bytes: usize,
    /// Cap on bytes queued for one connection; past it the connection is closed with 1008.
    pub max_queued_bytes: usize,
    /// Connections accepted at once server-wide; beyond, upgrades get HTTP 503.
    pub max_connections: usize,
    /// How often the server pings each connection.
    pub ping_interval: Duration,
    /// How long a ping may stay unanswered before the connection is closed.
    pub pong_timeout: Duration,
    /// How long a new connection may take to complete its HTTP upgrade.
    pub handshake_timeout: Duration,
    /// How long a graceful shutdown waits for connections to close.
    pub drain_timeout: Duration,
    /// Path of the echo endpoint for conformance suites; `None` disables it.
    pub echo_path: Option<String>,
    /// Pin shard threads to cores with core_affinity.
    pub pin_cores: bool,
    /// Bearer key required by `/api/v1/*` and `/metrics`; `None` leaves them open.
    pub api_key: Option<String>,
    /// Allow serving the HTTP API without `api_key` on a non-loopback address.
    pub insecure_api: bool,
    /// Largest HTTP request body; bigger is 413.
    pub max_http_body_bytes: usize,
    /// Period of the built-in `system.status` channel; zero disables it.
    pub status_interval: Duration,
    /// Period of the built-in `heartbeat` channel; zero disables it.
    pub heartbeat_interval: Duration,
    /// Channels every native connection is subscribed to on connect.
    pub default_channels: Vec<String>,
    /// Text of a `notification` sent right after `connected`, if set.
    pub welcome: Option<String>,
    /// HS256 shared secret for client tokens.
    pub jwt_secret: Option<String>,
    /// PEM public key (RSA → RS256, EC P-256 → ES256) for client tokens.
    pub jwt_public_key_file: Option<PathBuf>,
    /// Whether connections without a token are allowed; `None` = allowed when no key is set.
    pub allow_anonymous: Option<bool>,
    /// How long a connection that must authenticate has to send `{"type":"auth"}`.
    pub auth_timeout: Duration,
    /// Browser origins allowed to connect (empty = any); others get HTTP 403.
    pub allowed_origins: Vec<String>,
    /// Browser origins that may call the HTTP API (CORS; `*` = any; empty = no CORS headers).
    pub cors_origins: Vec<String>,
    /// Subscriptions per connection.
    pub max_subscriptions: usize,
    /// Channels server-wide that clients may create by subscribing.
    pub max_channels: usize,
    /// `[namespaces.NAME]` tables (TOML file only).
    pub namespaces: Namespaces,
    /// The TOML file this configuration was read from, if any (for the startup line).
    pub config_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            io: IoBackend::Auto,
            tick_hz: 60,
            max_message_bytes: 64 * 1024,
            max_queued_bytes: 4 * 1024 * 1024,
            max_connections: 100_000,
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            echo_path: None,
            pin_cores: true,
            api_key: None,
            insecure_api: false,
            max_http_body_bytes: 1024 * 1024,
            status_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(10),
            default_channels: Vec::new(),
            welcome: None,
            jwt_secret: None,
            jwt_public_key_file: None,
            allow_anonymous: None,
            auth_timeout: Duration::from_secs(5),
            allowed_origins: Vec::new(),
            cors_origins: Vec::new(),
            max_subscriptions: 1000,
            max_channels: 100_000,
            namespaces: Namespaces::default(),
            config_file: None,
        }
    }
}

impl Config {
    /// Sets one key from its text form, checking it; the error names the key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            key: key.to_string(),
            message,
        };
        match key {
            "listen" => {
                self.listen = value.parse().map_err(|_| {
                    invalid(format!("`{value}` is not an address like 127.0.0.1:8080"))
                })?
            }
            "shards" => self.shards = parse_number(value, 1, 1024).map_err(invalid)?,
            "io" => {
                self.io = match value {
                    "auto" => IoBackend::Auto,
                    "uring" | "io_uring" => IoBackend::Uring,
                    "epoll" => IoBackend::Epoll,
                    _ => {
                        return Err(invalid(format!(
                            "`{value}` is not one of auto, uring, epoll"
                        )))
                    }
                }
            }
            "tick_hz" => self.tick_hz = parse_number(value, 0, 10_000).map_err(invalid)?,
            "max_message_bytes" => {
                self.max_message_bytes = parse_bytes(value, 125, 1 << 30).map_err(invalid)?
            }
            "max_queued_bytes" => {
                self.max_queued_bytes = parse_bytes(value, 1024, 1 << 40).map_err(invalid)?
            }
            "max_connections" => {
                self.max_connections = parse_number(value, 1, 100_000_000).map_err(invalid)?
            }
            "ping_interval" => self.ping_interval = parse_duration(value).map_err(invalid)?,
            "pong_timeout" => self.pong_timeout = parse_duration(value).map_err(invalid)?,
            "handshake_timeout" => {
                self.handshake_timeout = parse_duration(value).map_err(invalid)?
            }
            "drain_timeout" => self.drain_timeout = parse_duration(value).map_err(invalid)?,
            "echo_path" => {
                self.echo_path = match value {
                    "" => None,
                    p if p.starts_with('/') => Some(p.to_string()),
                    _ => return Err(invalid(format!("`{value}` must start with `/`"))),
                }
            }
            "pin_cores" => self.pin_cores = parse_bool_flag(value).map_err(invalid)?,
            "api_key" => {
                self.api_key = match value {
                    "" => None,
                    k if k.len() < 16 => return Err(invalid("use at least 16 characters".into())),
                    k => Some(k.to_string()),
                }
            }
            "insecure_api" => self.insecure_api = parse_bool_flag(value).map_err(invalid)?,
            "max_http_body_bytes" => {
                self.max_http_body_bytes = parse_bytes(value, 64, 1 << 30).map_err(invalid)?
            }
            "status_interval" => self.status_interval = parse_duration(value).map_err(invalid)?,
            "heartbeat_interval" => {
                self.heartbeat_interval = parse_duration(value).map_err(invalid)?
            }
            "default_channels" => {
                let mut list = Vec::new();
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    if !crate::wire::channel::is_valid(name) {
                        return Err(invalid(format!("`{name}` is not a valid channel name")));
                    }
                    list.push(name.to_string());
                }
                self.default_channels = list;
            }
            "welcome" => self.welcome = (!value.is_empty()).then(|| value.to_string()),
            "jwt_secret" => {
                self.jwt_secret = match value {
                    "" => None,
                    k if k.len() < 16 => return Err(invalid("use at least 16 characters".into())),
                    k => Some(k.to_string()),
                }
            }
            "jwt_public_key_file" => {
                self.jwt_public_key_file = (!value.is_empty()).then(|| PathBuf::from(value))
            }
            "allow_anonymous" => {
                self.allow_anonymous = Some(parse_bool_flag(value).map_err(invalid)?)
            }
            "auth_timeout" => self.auth_timeout = parse_duration(value).map_err(invalid)?,
            "allowed_origins" => self.allowed_origins = origin_list(value),
            "cors_origins" => {
                let list = origin_list(value);
                if let Some(bad) = list.iter().find(|o| !is_origin_pattern(o)) {
                    return Err(invalid(format!(
                        "`{bad}` is not an origin (scheme://host[:port], or * for any)"
                    )));
                }
                self.cors_origins = list
            }
            "max_subscriptions" => {
                self.max_subscriptions = parse_number(value, 1, 1_000_000).map_err(invalid)?
            }
            "max_channels" => {
                // Bounded by the registry's hard cap: a larger value would be capped silently.
                let max = crate::limits::MAX_CHANNELS as u64;
                self.max_channels = parse_number(value, 1, max).map_err(invalid)?
            }
            other => return Err(ConfigError::UnknownKey(other.to_string())),
        }
        Ok(())
    }

    /// Applies every key of a TOML document; unknown keys are errors.
    pub fn apply_toml(&mut self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: origin.to_string(),
                message: e.to_string(),
            })?;
        for (key, value) in &table {
            if key == "namespaces" {
                let Some(t) = value.as_table() else {
                    return Err(ConfigError::Invalid {
                        key: key.clone(),
                        message: "must be tables like [namespaces.NAME]".into(),
                    });
                };
                self.namespaces = Namespaces::from_toml(t)?;
                continue;
            }
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => items
                    .iter()
                    .filter_map(toml::Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(ConfigError::Invalid {
                        key: key.clone(),
                        message: format!(
                            "expected a string, number or boolean, found {}",
                            other.type_str()
                        ),
                    })
                }
            };
            self.set(key, &text)?;
        }
        Ok(())
    }

    /// Reads and applies a TOML configuration file.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.apply_toml(&text, &path.display().to_string())?;
        self.config_file = Some(path.to_path_buf());
        Ok(())
    }

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

    /// Checks rules that involve more than one key.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.max_queued_bytes < self.max_message_bytes.min(64 * 1024) {
            return Err(ConfigError::Invalid {
                key: "max_queued_bytes".into(),
                message: "must be at least 64 KiB (or max_message_bytes when smaller)".into(),
            });
        }
        if !self.listen.ip().is_loopback() && self.api_key.is_none() && !self.insecure_api {
            return Err(ConfigError::Invalid {
                key: "api_key".into(),
                message: format!(
                    "refusing to serve the HTTP API on non-loopback address {} without an api_key; set api_key (or pass --insecure-api to accept an open API)",
                    self.listen
                ),
            });
        }
        let has_key = self.jwt_secret.is_some() || self.jwt_public_key_file.is_some();
        if !has_key {
            if self.allow_anonymous == Some(false) {
                return Err(ConfigError::Invalid {
                    key: "allow_anonymous".into(),
                    message: "false without jwt_secret or jwt_public_key_file: no client could ever connect; set a key".into(),
                });
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
            if let Some((name, wants)) = needs_key {
                return Err(ConfigError::Invalid {
                    key: format!("namespaces.{name}.subscribe"),
                    message: format!(
                        "\"{wants}\" needs jwt_secret or jwt_public_key_file: without a key no client can authenticate, so nobody could join this namespace"
                    ),
                });
            }
        }
        if self.ping_interval.is_zero() {
            return Err(ConfigError::Invalid {
                key: "ping_interval".into(),
                message: "must be greater than zero".into(),
            });
        }
        if self.max_channels > crate::limits::MAX_CHANNELS {
            // Also for a `Config` built in code, which `set` never saw.
            return Err(ConfigError::Invalid {
                key: "max_channels".into(),
                message: format!(
                    "{} is above the server's hard cap of {} channels",
                    self.max_channels,
                    crate::limits::MAX_CHANNELS
                ),
            });
        }
        Ok(())
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

/// A comma-separated list of origins, blanks dropped.
fn origin_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect()
}

/// `*`, or an origin as browsers send it: `scheme://host[:port]` with no path.
fn is_origin_pattern(o: &str) -> bool {
    o == "*"
        || o.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !rest.is_empty()
                && !rest.contains(['/', '?', '#', ' '])
        })
}
