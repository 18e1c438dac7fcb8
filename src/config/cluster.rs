//! The `[cluster]` table: which NATS JetStream servers this node commits to and follows, how
//! the node is named, how the streams are created, and the bounds of waiting on the broker.
//! Without the table framecast runs alone (single-node mode) and never opens a connection.

use std::path::PathBuf;
use std::time::Duration;

use super::values::{parse_bytes, parse_duration};
use super::ConfigError;

/// Where a stream keeps its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// On disk (survives a broker restart).
    File,
    /// In memory (lost when the broker restarts).
    Memory,
}

/// The checked `[cluster]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:port`), tried in turn.
    pub urls: Vec<String>,
    /// A NATS `.creds` file (JWT + nkey seed), if the servers require one.
    pub credentials_file: Option<PathBuf>,
    /// This node's name (status, `system.status`, message ids).
    pub node: String,
    /// Stream name prefix: `<STREAM>_EV` and `<STREAM>_SNAP`, subjects `<stream>.ev.*`.
    pub stream: String,
    /// Stream replicas (3 in production).
    pub replicas: usize,
    /// Stream storage.
    pub storage: Storage,
    /// How long a publication may wait for its commit (broker outage included) before it is
    /// answered `UNAVAILABLE`.
    pub commit_timeout: Duration,
    /// Bytes of publications that may wait for a commit; beyond, new ones get `UNAVAILABLE`.
    pub max_pending_bytes: usize,
    /// Events behind the stream past which the node reports not ready.
    pub max_lag: u64,
    /// Namespaces whose channels stay on this node (not committed, not shared).
    pub local_namespaces: Vec<String>,
    /// Batches the events stream keeps per channel at least (beyond `history_size`), so a node
    /// that pauses can catch up instead of losing events.
    pub retained_batches: u32,
}

impl ClusterConfig {
    /// The defaults for everything but `urls`.
    fn with_urls(urls: Vec<String>) -> ClusterConfig {
        ClusterConfig {
            urls,
            credentials_file: None,
            node: default_node_name(),
            stream: "framecast".into(),
            replicas: 1,
            storage: Storage::File,
            commit_timeout: Duration::from_secs(2),
            max_pending_bytes: 16 << 20,
            max_lag: 10_000,
            local_namespaces: Vec::new(),
            retained_batches: 3600,
        }
    }

    /// Parses and checks a `[cluster]` table; the error names the key (`cluster.replicas`).
    pub fn from_toml(table: &toml::Table) -> Result<ClusterConfig, ConfigError> {
        let invalid =
            |key: &str, message: String| ConfigError::invalid(&format!("cluster.{key}"), message);
        let urls = match table.get("urls") {
            Some(v) => strings(v)
                .ok_or_else(|| invalid("urls", "must be a string or an array of strings".into()))?,
            None => {
                return Err(invalid(
                    "urls",
                    "is required: the NATS server URLs, e.g. [\"nats://127.0.0.1:4222\"]".into(),
                ))
            }
        };
        if urls.is_empty() {
            return Err(invalid("urls", "must name at least one NATS server".into()));
        }
        for url in &urls {
            check_url(url).map_err(|m| invalid("urls", m))?;
        }
        let mut c = ClusterConfig::with_urls(urls);
        for (key, value) in table {
            let text = || {
                value
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| value.as_integer().map(|i| i.to_string()))
                    .ok_or_else(|| {
                        invalid(
                            key,
                            format!("expected a string or number, found {}", value.type_str()),
                        )
                    })
            };
            match key.as_str() {
                "urls" => {}
                "credentials_file" => {
                    let path = PathBuf::from(text()?);
                    let creds = std::fs::read_to_string(&path)
                        .map_err(|e| invalid(key, format!("{}: {e}", path.display())))?;
                    if !(creds.contains("BEGIN NATS USER JWT")
                        && creds.contains("BEGIN USER NKEY SEED"))
                    {
                        return Err(invalid(
                            key,
                            format!("{} is not a NATS .creds file (a user JWT and an nkey seed, as `nsc generate creds` writes)", path.display()),
                        ));
                    }
                    c.credentials_file = Some(path);
                }
                "node" => c.node = name(&text()?).map_err(|m| invalid(key, m))?,
                "stream" => c.stream = name(&text()?).map_err(|m| invalid(key, m))?,
                "replicas" => {
                    c.replicas = match value.as_integer() {
                        Some(n @ 1..=5) => n as usize,
                        _ => return Err(invalid(key, "must be an integer from 1 to 5".into())),
                    }
                }
                "storage" => {
                    c.storage = match value.as_str() {
                        Some("file") => Storage::File,
                        Some("memory") => Storage::Memory,
                        _ => return Err(invalid(key, "must be \"file\" or \"memory\"".into())),
                    }
                }
                "commit_timeout" => {
                    c.commit_timeout = parse_duration(&text()?).map_err(|m| invalid(key, m))?;
                    if c.commit_timeout < Duration::from_millis(100) {
                        return Err(invalid(key, "must be at least 100ms".into()));
                    }
                }
                "max_pending_bytes" => {
                    c.max_pending_bytes =
                        parse_bytes(&text()?, 64 * 1024, 1 << 34).map_err(|m| invalid(key, m))?
                }
                "max_lag" => {
                    c.max_lag = match value.as_integer() {
                        Some(n) if n >= 1 => n as u64,
                        _ => {
                            return Err(invalid(key, "must be a positive integer (events)".into()))
                        }
                    }
                }
                "retained_batches" => {
                    c.retained_batches = match value.as_integer() {
                        Some(n @ 1..=10_000_000) => n as u32,
                        _ => {
                            return Err(invalid(
                                key,
                                "must be an integer from 1 to 10000000 (batches per channel)"
                                    .into(),
                            ))
                        }
                    }
                }
                "local_namespaces" => {
                    c.local_namespaces = strings(value)
                        .ok_or_else(|| invalid(key, "must be an array of namespace names".into()))?
                }
                other => {
                    return Err(ConfigError::UnknownKey(format!("cluster.{other}")));
                }
            }
        }
        Ok(c)
    }
}

/// A string or an array of strings.
fn strings(value: &toml::Value) -> Option<Vec<String>> {
    match value {
        toml::Value::String(s) => Some(vec![s.clone()]),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

/// `nats://host:port`, `tls://host:port` or `host:port`.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))
        .unwrap_or(url);
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err(format!("`{url}` is not a NATS URL like nats://host:4222")),
    }
}

/// A node or stream name: 1-64 of `A-Z a-z 0-9 _ -` (safe in subjects and stream names).
fn name(text: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` must be 1-64 characters of A-Z, a-z, 0-9, `_` and `-`"
        ))
    }
}

/// The host name, made a valid node name (`node` when there is none).
fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cleaned: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "node".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClusterConfig, ConfigError> {
        ClusterConfig::from_toml(&text.parse::<toml::Table>().unwrap())
    }

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { key, .. } => key,
            ConfigError::UnknownKey(key) => key,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_minimal_table_takes_the_defaults() {
        let c = parse("urls = \"nats://127.0.0.1:4222\"\nnode = \"a\"").unwrap();
        assert_eq!(c.urls, vec!["nats://127.0.0.1:4222"]);
        assert_eq!(
            (c.node.as_str(), c.replicas, c.storage),
            ("a", 1, Storage::File)
        );
        assert_eq!(c.commit_timeout, Duration::from_secs(2));
    }

    #[test]
    fn every_invalid_value_names_its_key() {
        let base = "urls = [\"nats://h:4222\"]\n";
        for (extra, key) in [
            ("replicas = 9", "cluster.replicas"),
            ("storage = \"disk\"", "cluster.storage"),
            ("node = \"a.b\"", "cluster.node"),
            ("stream = \"\"", "cluster.stream"),
            ("commit_timeout = \"1ms\"", "cluster.commit_timeout"),
            ("max_pending_bytes = \"1\"", "cluster.max_pending_bytes"),
            ("max_lag = 0", "cluster.max_lag"),
            (
                "credentials_file = \"/nonexistent/x.creds\"",
                "cluster.credentials_file",
            ),
            // Exists, but is no .creds file (tests run from the package root).
            (
                "credentials_file = \"Cargo.toml\"",
                "cluster.credentials_file",
            ),
            ("local_namespaces = 3", "cluster.local_namespaces"),
            ("retained_batches = 0", "cluster.retained_batches"),
            ("colour = \"red\"", "cluster.colour"),
        ] {
            let e = parse(&format!("{base}{extra}")).unwrap_err();
            assert_eq!(key_of(e), key, "{extra}");
        }
        for urls in [
            "urls = []",
            "urls = [\"nats://nohost\"]",
            "urls = 4",
            "node = \"a\"",
        ] {
            assert_eq!(key_of(parse(urls).unwrap_err()), "cluster.urls", "{urls}");
        }
    }
}
