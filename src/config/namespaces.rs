//! Channel namespaces (`[namespaces.NAME]` tables): who may subscribe, whether clients may
//! publish, whether a publisher gets its own events, a per-connection publish rate, and how
//! events are delivered (class, history, snapshot). A channel `ns:rest` belongs to `ns`; a name
//! without `:` to `default`.

use std::collections::BTreeMap;
use std::time::Duration;

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

/// How a namespace's events reach subscribers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Every event, in order; a client over its queue cap is closed (and can recover).
    Reliable,
    /// Per tick only the newest event per channel (or per `key`); lagging clients are stepped
    /// down to every 2nd, 4th... tick with `gap` notices instead of being closed.
    Conflated,
    /// Best effort: no history; a client whose queue is full misses events (told by `gap`).
    Volatile,
}

impl Delivery {
    /// The name used in config and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Reliable => "reliable",
            Delivery::Conflated => "conflated",
            Delivery::Volatile => "volatile",
        }
    }
}

/// Events kept per channel when only `history_ttl` is given (history always has a count cap).
pub const TTL_ONLY_HISTORY_SIZE: u32 = 10_000;

/// Largest `history_size` accepted.
pub const MAX_HISTORY_SIZE: u32 = 1_000_000;

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
    /// Delivery class.
    pub delivery: Delivery,
    /// Events kept per channel for recovery (0 = none).
    pub history_size: u32,
    /// How long a kept event stays recoverable (zero = until pushed out by `history_size`).
    pub history_ttl: Duration,
    /// Keep the newest event per channel (or per `key`) and send it first to new subscribers.
    pub snapshot: bool,
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace {
            subscribe: Access::Anonymous,
            publish: true,
            echo: true,
            publish_rate: 0,
            delivery: Delivery::Reliable,
            history_size: 0,
            history_ttl: Duration::ZERO,
            snapshot: false,
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
        self.0
            .get(crate::wire::channel::namespace(channel))
            .or_else(|| self.0.get("default"))
            .unwrap_or_else(|| DEFAULT.get_or_init(Namespace::default))
    }

    /// Whether anything differs from the all-open defaults.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every configured namespace with its options.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Namespace)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
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
                    ("delivery", toml::Value::String(s)) => {
                        ns.delivery = match s.as_str() {
                            "reliable" => Delivery::Reliable,
                            "conflated" => Delivery::Conflated,
                            "volatile" => Delivery::Volatile,
                            other => {
                                return Err(invalid(
                                    k,
                                    format!("`{other}` is not reliable, conflated or volatile"),
                                ))
                            }
                        }
                    }
                    ("history_size", toml::Value::Integer(n))
                        if (0..=i64::from(MAX_HISTORY_SIZE)).contains(n) =>
                    {
                        ns.history_size = *n as u32
                    }
                    ("history_ttl", toml::Value::Integer(n)) if *n >= 0 => {
                        ns.history_ttl = Duration::from_secs(*n as u64)
                    }
                    ("history_ttl", toml::Value::String(s)) => {
                        ns.history_ttl = super::values::parse_duration(s)
                            .map_err(|message| invalid(k, message))?
                    }
                    ("snapshot", toml::Value::Boolean(b)) => ns.snapshot = *b,
                    (
                        "subscribe" | "publish" | "echo" | "publish_rate" | "delivery"
                        | "history_size" | "history_ttl" | "snapshot",
                        other,
                    ) => return Err(invalid(k, format!("unexpected value {other}"))),
                    (other, _) => return Err(ConfigError::UnknownKey(key(other))),
                }
            }
            if ns.delivery == Delivery::Volatile
                && (ns.history_size > 0 || !ns.history_ttl.is_zero())
            {
                return Err(invalid(
                    if ns.history_size > 0 {
                        "history_size"
                    } else {
                        "history_ttl"
                    },
                    "a volatile namespace keeps no history; use reliable or conflated".into(),
                ));
            }
            if !ns.history_ttl.is_zero() && ns.history_size == 0 {
                // History by age alone still needs a cap on memory.
                ns.history_size = TTL_ONLY_HISTORY_SIZE;
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

    /// The message of the error `text` is refused with.
    fn parse_error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
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
        let err = parse_error("[namespaces.s]\ncolour = 1\n");
        assert!(err.contains("namespaces.s.colour"), "{err}");
        let err = parse_error("[namespaces.s]\nsubscribe = \"everyone\"\n");
        assert!(err.contains("namespaces.s.subscribe"), "{err}");
        let err = parse_error("[namespaces.s]\ndelivery = \"sometimes\"\n");
        assert!(err.contains("namespaces.s.delivery"), "{err}");
    }

    #[test]
    fn delivery_options_parse_with_durations() {
        let ns = parse(
            "[namespaces.pos]\ndelivery = \"conflated\"\nsnapshot = true\n\
             [namespaces.chat]\nhistory_size = 500\nhistory_ttl = \"5m\"\n",
        )
        .unwrap();
        assert_eq!(ns.of("pos:x").delivery, Delivery::Conflated);
        assert!(ns.of("pos:x").snapshot);
        assert_eq!(ns.of("chat:x").history_size, 500);
        assert_eq!(ns.of("chat:x").history_ttl, Duration::from_secs(300));
        assert_eq!(ns.of("other").delivery, Delivery::Reliable);
    }

    #[test]
    fn volatile_namespace_with_history_is_refused_naming_the_key() {
        let err = parse_error("[namespaces.v]\ndelivery = \"volatile\"\nhistory_size = 10\n");
        assert!(err.contains("namespaces.v.history_size"), "{err}");
        let err = parse_error("[namespaces.v]\ndelivery = \"volatile\"\nhistory_ttl = 30\n");
        assert!(err.contains("namespaces.v.history_ttl"), "{err}");
        let ttl_only = parse("[namespaces.h]\nhistory_ttl = 30\n").unwrap();
        assert_eq!(ttl_only.of("h:x").history_size, TTL_ONLY_HISTORY_SIZE);
    }
}
