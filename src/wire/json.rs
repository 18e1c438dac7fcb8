//! JSON as framecast receives it, on every path (WebSocket commands, HTTP bodies): the message
//! is validated once, its nesting is bounded, and each top-level field is kept as the exact
//! bytes the client sent. Nothing is re-encoded, so `data` reaches subscribers byte for byte
//! (floats that do not round-trip through `f64`, integers beyond 64 bits and all), and a
//! hostile message cannot recurse deeper than [`MAX_DEPTH`].
//!
//! One rule for duplicate fields everywhere: a message naming the same top-level field twice
//! is refused (a proxy and framecast could otherwise read different values). Inside `data`
//! nothing is interpreted, so duplicates there reach subscribers as sent.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

/// Deepest nesting of arrays and objects accepted in one message (the top level counts as 1).
pub(crate) const MAX_DEPTH: usize = 128;

/// Why a message is not acceptable JSON.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonError {
    /// The message does not start with `{`.
    #[error("message must be a JSON object, got {found} at byte {at}")]
    NotAnObject {
        /// What was found instead, described for a person.
        found: String,
        /// Byte offset of it.
        at: usize,
    },
    /// Arrays and objects nest deeper than [`MAX_DEPTH`].
    #[error("JSON nested deeper than {MAX_DEPTH} levels (at byte {at})")]
    TooDeep {
        /// Byte offset where the limit was passed.
        at: usize,
    },
    /// A top-level field appears twice.
    #[error("field `{0}` appears twice: each field may be given once")]
    DuplicateField(String),
    /// Anything else the JSON parser refused, with its position.
    #[error("message is not valid JSON: {0}")]
    Syntax(String),
}

/// A JSON string that borrows from the message when it holds no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The top-level fields of one JSON object, in order, each as its raw JSON text.
#[derive(Debug)]
pub struct Fields<'a> {
    entries: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Fields<'a> {
    /// Parses `message` as one JSON object: checks the nesting bound, validates the whole text
    /// and refuses duplicate top-level fields.
    pub fn parse(message: &'a [u8]) -> Result<Fields<'a>, JsonError> {
        let start = message
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(message.len());
        if message.get(start) != Some(&b'{') {
            return Err(JsonError::NotAnObject {
                found: describe(&message[start..]),
                at: start,
            });
        }
        check_depth(message)?;
        let fields: FieldList<'a> = serde_json::from_slice(message).map_err(syntax)?;
        Ok(Fields { entries: fields.0? })
    }

    /// The raw JSON text of field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }

    /// Every field, in the order sent.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the object has no field.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Parses a nested object (already validated as part of its message) the same way.
pub(crate) fn object(raw: &RawValue) -> Result<Fields<'_>, JsonError> {
    Fields::parse(raw.get().as_bytes())
}

/// Deserializes a small field value (a string, a number, a list of strings).
pub(crate) fn value<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok()
}

fn syntax(e: serde_json::Error) -> JsonError {
    JsonError::Syntax(e.to_string())
}

/// The visitor's result: the entries, or the first duplicate (kept apart from serde's error
/// type so the duplicate is reported as itself, not as a syntax error).
struct FieldList<'a>(Result<Vec<(Cow<'a, str>, &'a RawValue)>, JsonError>);

impl<'de> Deserialize<'de> for FieldList<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldList<'de>, A::Error> {
                let mut entries: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
                while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(FieldList(match first_duplicate(&entries) {
                    Some(name) => Err(JsonError::DuplicateField(name.chars().take(64).collect())),
                    None => Ok(entries),
                }))
            }
        }
        d.deserialize_map(V)
    }
}

/// The first key given twice: a scan for the few fields of a command, a set for big objects
/// (a `since` map of 1000 channels), so no object costs quadratic time.
fn first_duplicate<'e>(entries: &'e [(Cow<'_, str>, &RawValue)]) -> Option<&'e str> {
    if entries.len() <= 16 {
        return entries
            .iter()
            .enumerate()
            .find(|(i, (k, _))| entries[..*i].iter().any(|(seen, _)| seen == k))
            .map(|(_, (k, _))| k.as_ref());
    }
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    entries
        .iter()
        .map(|(k, _)| k.as_ref())
        .find(|k| !seen.insert(*k))
}

/// Refuses nesting deeper than [`MAX_DEPTH`], in one pass without recursion. Brackets inside
/// strings do not count; the text is validated afterwards by the parser, so malformed input
/// only has to terminate here, not be judged.
pub(crate) fn check_depth(text: &[u8]) -> Result<(), JsonError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(JsonError::TooDeep { at: i });
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    Ok(())
}

/// A short, printable description of what starts `rest` (for "expected an object" errors).
fn describe(rest: &[u8]) -> String {
    match rest.first() {
        None => "nothing".into(),
        Some(b'[') => "an array".into(),
        Some(b'"') => "a string".into(),
        Some(b'-' | b'0'..=b'9') => "a number".into(),
        Some(_) => {
            let word: String = String::from_utf8_lossy(&rest[..rest.len().min(16)])
                .chars()
                .take_while(|c| !c.is_whitespace())
                .take(16)
                .collect();
            format!("`{}`", word.escape_debug())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_the_exact_bytes_sent() {
        let msg = br#"{"data": {"x":1.1099999999999999, "big":123456789012345678901234567890, "e":"\u00e9"} , "id":7}"#;
        let f = Fields::parse(msg).unwrap();
        assert_eq!(
            f.get("data").unwrap().get(),
            r#"{"x":1.1099999999999999, "big":123456789012345678901234567890, "e":"\u00e9"}"#
        );
        assert_eq!(f.get("id").unwrap().get(), "7");
        assert!(f.get("nope").is_none());
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        for open in [b'[', b'{'] {
            let mut deep = br#"{"data":"#.to_vec();
            // 100k levels: far past any stack if parsed recursively.
            deep.extend(std::iter::repeat_n(open, 100_000));
            assert!(matches!(
                Fields::parse(&deep),
                Err(JsonError::TooDeep { .. })
            ));
        }
        let mut ok = b"{\"data\":".to_vec();
        ok.extend(std::iter::repeat_n(b'[', MAX_DEPTH - 1));
        ok.extend(std::iter::repeat_n(b']', MAX_DEPTH - 1));
        ok.push(b'}');
        assert!(Fields::parse(&ok).is_ok());
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let mut msg = b"{\"data\":\"".to_vec();
        msg.extend(std::iter::repeat_n(b'[', 1000));
        msg.extend_from_slice(b"\\\"[\"}");
        assert!(Fields::parse(&msg).is_ok());
    }

    #[test]
    fn duplicate_top_level_fields_are_refused() {
        let e = Fields::parse(br#"{"channel":"a","channel":"b"}"#).unwrap_err();
        assert_eq!(e, JsonError::DuplicateField("channel".into()));
        // Inside data nothing is interpreted.
        assert!(Fields::parse(br#"{"data":{"k":1,"k":2}}"#).is_ok());
    }

    #[test]
    fn a_non_object_says_what_was_expected() {
        let e = Fields::parse(b"not json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "message must be a JSON object, got `not` at byte 0"
        );
        let e = Fields::parse(b"  [1]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "message must be a JSON object, got an array at byte 2"
        );
        assert!(matches!(
            Fields::parse(b"{\"a\":}"),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(
            Fields::parse(b"{\"a\":1} x"),
            Err(JsonError::Syntax(_))
        ));
    }
}
