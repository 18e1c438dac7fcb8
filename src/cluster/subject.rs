//! Channel names and snapshot keys as NATS subjects. A channel name's alphabet is NATS-safe
//! except `.` (the subject separator), which becomes `%` (never valid in a channel name), so
//! the mapping is reversible; a snapshot key is free text and goes hex-encoded.

/// The events subject of `channel` in stream `prefix`: `<prefix>.ev.<channel>`.
pub(crate) fn event_subject(prefix: &str, channel: &str) -> String {
    format!("{prefix}.ev.{}", channel.replace('.', "%"))
}

/// The channel an events subject names, if it is one of `prefix`'s.
pub(crate) fn channel_of(prefix: &str, subject: &str) -> Option<String> {
    let token = subject.strip_prefix(prefix)?.strip_prefix(".ev.")?;
    let name = token.replace('%', ".");
    crate::wire::channel::is_valid(&name).then_some(name)
}

/// The snapshot subject of `key` (a JSON string literal, or none) in `channel`.
pub(crate) fn snapshot_subject(prefix: &str, channel: &str, key: Option<&[u8]>) -> String {
    let key = key.map_or_else(|| "_".to_string(), hex);
    format!("{prefix}.snap.{}.{key}", channel.replace('.', "%"))
}

/// The channel a snapshot subject names.
pub(crate) fn snapshot_channel_of(prefix: &str, subject: &str) -> Option<String> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix(".snap.")?;
    let (token, _key) = rest.rsplit_once('.')?;
    let name = token.replace('%', ".");
    crate::wire::channel::is_valid(&name).then_some(name)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2 + 1);
    out.push('k');
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_name_survives_the_round_trip() {
        for name in ["a", "chat:lobby", "session:w_1/av@v2.x-y", "a.b.c"] {
            let subject = event_subject("fc", name);
            assert!(!subject["fc.ev.".len()..].contains('.'), "{subject}");
            assert_eq!(channel_of("fc", &subject).as_deref(), Some(name));
        }
        assert_eq!(channel_of("other", &event_subject("fc", "a")), None);
    }

    #[test]
    fn snapshot_keys_are_single_tokens() {
        let s = snapshot_subject("fc", "pos:a.b", Some(b"\"k.1 *>\""));
        assert_eq!(s.matches('.').count(), 3, "{s}");
        assert_eq!(snapshot_channel_of("fc", &s).as_deref(), Some("pos:a.b"));
        assert_ne!(s, snapshot_subject("fc", "pos:a.b", None));
    }
}
