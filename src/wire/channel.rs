//! Channel names: 1 to 200 bytes of ASCII letters, digits and `_-.:/@`. Checked once where a
//! name enters (client command, HTTP, embedding API), so they never need JSON escaping. The part
//! before the first `:` names the channel's namespace (its options, see `config::namespaces`).

/// Longest channel name in bytes.
pub const MAX_CHANNEL_NAME: usize = 200;

/// The channel the observer publishes the server's status on.
pub const STATUS_CHANNEL: &str = "system.status";
/// The channel the observer publishes a heartbeat on.
pub const HEARTBEAT_CHANNEL: &str = "heartbeat";

/// Whether `name` is one of the built-in channels: each node's own, never shared in a cluster.
pub fn is_built_in(name: &str) -> bool {
    name == STATUS_CHANNEL || name == HEARTBEAT_CHANNEL
}

/// Whether `name` is a valid channel name.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_NAME
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/' | b'@')
        })
}

/// The namespace `name` belongs to: the part before the first `:`, or `default` for a name
/// without one (`chat:lobby` → `chat`, `metrics` → `default`).
pub fn namespace(name: &str) -> &str {
    name.split_once(':').map_or("default", |(ns, _)| ns)
}

/// The one wording of "this name breaks the rules", for every path a name enters by.
pub fn invalid_name_message(name: &str) -> String {
    format!(
        "invalid channel name `{}`: use 1-{MAX_CHANNEL_NAME} bytes of letters, digits and _-.:/@",
        name.chars().take(64).collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(is_valid("a"));
        assert!(is_valid("session:world_1/avatars@v2.x-y"));
        assert!(is_valid(&"a".repeat(200)));
    }

    #[test]
    fn the_namespace_is_the_part_before_the_first_colon() {
        assert_eq!(namespace("chat:lobby:7"), "chat");
        assert_eq!(namespace("metrics"), "default");
        assert_eq!(namespace(":x"), "");
    }

    #[test]
    fn rejects_empty_long_and_foreign_bytes() {
        assert!(!is_valid(""));
        assert!(!is_valid(&"a".repeat(201)));
        assert!(!is_valid("with space"));
        assert!(!is_valid("quote\""));
        assert!(!is_valid("é"));
    }
}
