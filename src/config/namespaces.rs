//! Channel namespaces (`[namespaces.NAME]` tables): who may subscribe, whether clients may
//! publish, whether a publisher gets its own events, and a per-connection publish rate. A channel
//! `ns:rest` belongs to `ns`; a name without `:` to `default`.

use std::collections::BTreeMap;

use super::ConfigError;

/// Who may subscribe to a namespace's channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, including anonymous connections.
    Anonymous,
    /// Any authenticated connection.
    Authenticated,
    /// Only connections whose token's `channels` (or `publish`) claim matches the channel.
    Token,
}

/// One namespace's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// Who may subscribe.
    pub subscribe: Access,
    /// Whether clients may publish (the HTTP API and embedding always may).
    pub publish: bool,
    /// Whether a publishing client receives its own events.
    pub echo: bool,
    /// Client publications per second per connection (0 = unlimited).
    pub publish_rate: u32,
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace {
            subscribe: Access::Anonymous,
            publish: true,
            echo: true,
            publish_rate: 0,
        }
    }
}

/// All configured namespaces; an unconfigured one behaves as `default` does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespaces(BTreeMap<String, Namespace>);

impl Namespaces {
    /// The namespace a channel belongs to (its options).
    pub fn of(&self, channel: &str) -> &Namespace {
        static DEFAULT: std::sync::OnceLock<Namespace> = std::sync::OnceLock::new();
        let name = channel.split_once(':').map_or("default", |(ns, _)| ns);
        self.0
            .get(name)
            .or_else(|| self.0.get("default"))
            .unwrap_or_else(|| DEFAULT.get_or_init(Namespace::default))
    }

    /// Whether anything differs from the all-open defaults.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the `[namespaces]` table; unknown options are errors naming them.
    pub fn from_toml(table: &toml::Table) -> Result<Namespaces, ConfigError> {
        let mut out = BTreeMap::new();
        for (name, value) in table {
            let key = |k: &str| format!("namespaces.{name}.{k}");
            let invalid = |k: &str, message: String| ConfigError::Invalid {
                key: key(k),
                message,
            };
            let Some(options) = value.as_table() else {
                return Err(invalid("", "must be a table like [namespaces.NAME]".into()));
            };
            if !crate::wire::channel::is_valid(name) || name.contains(':') {
                return Err(invalid(
                    "",
                    format!("`{name}` is not a valid namespace name"),
                ));
            }
            let mut ns = Namespace::default();
            for (k, v) in options {
                match (k.as_str(), v) {
                    ("subscribe", toml::Value::String(s)) => {
                        ns.subscribe = match s.as_str() {
                            "anonymous" => Access::Anonymous,
                            "authenticated" => Access::Authenticated,
                            "token" => Access::Token,
                            other => {
                                return Err(invalid(
                                    k,
                                    format!("`{other}` is not anonymous, authenticated or token"),
                                ))
                            }
                        }
                    }
                    ("publish", toml::Value::Boolean(b)) => ns.publish = *b,
                    ("echo", toml::Value::Boolean(b)) => ns.echo = *b,
                    ("publish_rate", toml::Value::Integer(n)) if (0..=1_000_000).contains(n) => {
                        ns.publish_rate = *n as u32
                    }
                    ("subscribe" | "publish" | "echo" | "publish_rate", other) => {
                        return Err(invalid(k, format!("unexpected value {other}")))
                    }
                    (other, _) => return Err(ConfigError::UnknownKey(key(other))),
                }
            }
            out.insert(name.clone(), ns);
        }
        Ok(Namespaces(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Namespaces, ConfigError> {
        let t: toml::Table = text.parse().unwrap();
        Namespaces::from_toml(t["namespaces"].as_table().unwrap())
    }

    #[test]
    fn channels_map_to_their_namespace_or_default() {
        let ns =
            parse("[namespaces.session]\necho = false\n[namespaces.default]\npublish = false\n")
                .unwrap();
        assert!(!ns.of("session:w1").echo);
        assert!(!ns.of("plain").publish);
        assert!(
            !ns.of("unknown:x").publish,
            "unconfigured namespaces follow default"
        );
        assert!(Namespaces::default().of("x").publish);
    }

    #[test]
    fn unknown_or_bad_options_name_the_key() {
        let err = parse("[namespaces.s]\ncolour = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("namespaces.s.colour"), "{err}");
        let err = parse("[namespaces.s]\nsubscribe = \"everyone\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("namespaces.s.subscribe"), "{err}");
    }
}
