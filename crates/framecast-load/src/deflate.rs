//! permessage-deflate (RFC 7692) negotiation on the client side: the offer `--deflate` sends in
//! the upgrade request, and the parse of the server's `Sec-WebSocket-Extensions` answer. What
//! the answer agrees to is how [`crate::inflate`] reads the server's compressed messages; the
//! load generator never compresses what it sends (RFC 7692 allows that).

use thiserror::Error;

/// The `Sec-WebSocket-Extensions` value offered with `--deflate`.
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// The upgrade request's header line offering [`OFFER`] (with `deflate`), or nothing.
pub fn offer_line(deflate: bool) -> &'static str {
    match deflate {
        true => "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        false => "",
    }
}

/// The extension's name.
const NAME: &str = "permessage-deflate";

/// The parameters the server accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Every server message is compressed alone (the inflater is reset per message).
    pub server_no_context_takeover: bool,
    /// The server asks the client to compress every message alone (recorded only).
    pub client_no_context_takeover: bool,
    /// The window the server compresses with, 8..=15 bits (15 when it does not say).
    pub server_max_window_bits: u8,
    /// The window the server wants the client's compressor to use (recorded only).
    pub client_max_window_bits: Option<u8>,
}

/// An answer RFC 7692 says the client must fail the connection for.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AnswerError {
    /// The server accepted an extension that was not offered.
    #[error("server accepted an extension that was not offered: {0}")]
    NotOffered(String),
    /// permessage-deflate appears more than once.
    #[error("permessage-deflate accepted twice")]
    Twice,
    /// A parameter appears more than once.
    #[error("permessage-deflate parameter {0} repeated")]
    Repeated(String),
    /// An unknown parameter, or one with a value where none belongs (or none where one does).
    #[error("unexpected permessage-deflate parameter `{0}`")]
    Unexpected(String),
    /// Window bits outside 8..=15.
    #[error("permessage-deflate window bits `{0}` (must be 8..15)")]
    WindowBits(String),
}

/// `server_max_window_bits` / `client_max_window_bits`: 8..=15, optionally quoted, no leading 0.
fn window_bits(value: &str) -> Result<u8, AnswerError> {
    let v = value.trim_matches('"');
    match v.parse::<u8>() {
        Ok(b) if (8..=15).contains(&b) && !v.starts_with('0') => Ok(b),
        _ => Err(AnswerError::WindowBits(value.to_string())),
    }
}

/// Parses the `Sec-WebSocket-Extensions` values of an upgrade response (several header lines
/// count as one list) to an offer of [`OFFER`] (`offered`) or to no offer. `Ok(None)`: no
/// extension is in use. Errors on what RFC 7692 says a client must fail the connection for: an
/// extension that was not offered (permessage-deflate included, when `offered` is false), more
/// than one permessage-deflate, unknown or repeated parameters, window bits outside 8..15.
pub fn parse_answer(values: &[&str], offered: bool) -> Result<Option<Params>, AnswerError> {
    let mut found: Option<Params> = None;
    for ext in values.iter().flat_map(|v| v.split(',')) {
        let mut parts = ext.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        if name.is_empty() {
            continue;
        }
        if !offered || !name.eq_ignore_ascii_case(NAME) {
            return Err(AnswerError::NotOffered(name.to_string()));
        }
        if found.is_some() {
            return Err(AnswerError::Twice);
        }
        let mut p = Params {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: None,
        };
        let mut seen: Vec<String> = Vec::new();
        for param in parts.filter(|p| !p.is_empty()) {
            let (key, value) = match param.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
                None => (param.to_ascii_lowercase(), None),
            };
            if seen.contains(&key) {
                return Err(AnswerError::Repeated(key));
            }
            match (key.as_str(), value) {
                ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
                ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
                ("server_max_window_bits", Some(v)) => p.server_max_window_bits = window_bits(v)?,
                ("client_max_window_bits", Some(v)) => {
                    p.client_max_window_bits = Some(window_bits(v)?);
                }
                _ => return Err(AnswerError::Unexpected(param.to_string())),
            }
            seen.push(key);
        }
        found = Some(p);
    }
    Ok(found)
}

/// The `Sec-WebSocket-Extensions` values among the header lines of an HTTP response head
/// (`head`: status line and headers, without the blank line).
pub fn extension_values(head: &str) -> Vec<&str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, v)| v.trim())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(nct: bool, bits: u8) -> Params {
        Params {
            server_no_context_takeover: nct,
            client_no_context_takeover: false,
            server_max_window_bits: bits,
            client_max_window_bits: None,
        }
    }

    #[test]
    fn an_accepted_offer_gives_the_servers_parameters() {
        assert_eq!(
            parse_answer(&["permessage-deflate"], true),
            Ok(Some(params(false, 15)))
        );
        // framecast's answer
        let p = parse_answer(
            &["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
            true,
        )
        .unwrap()
        .unwrap();
        assert!(p.server_no_context_takeover && p.client_no_context_takeover);
        assert_eq!(p.server_max_window_bits, 15);
        // any case, spaces, quoted values
        let p = parse_answer(
            &["PerMessage-Deflate ; server_max_window_bits=10;client_max_window_bits=\"9\""],
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (10, Some(9))
        );
        assert!(!p.server_no_context_takeover);
    }

    #[test]
    fn a_declined_offer_is_no_extension() {
        assert_eq!(parse_answer(&[], true), Ok(None));
        assert_eq!(parse_answer(&[""], true), Ok(None));
        assert_eq!(parse_answer(&[], false), Ok(None));
    }

    #[test]
    fn invalid_answers_fail_the_connection() {
        for bad in [
            "x-webkit-deflate-frame",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; foo",
        ] {
            assert!(parse_answer(&[bad], true).is_err(), "{bad}");
        }
        assert_eq!(
            parse_answer(&["permessage-deflate", "permessage-deflate"], true),
            Err(AnswerError::Twice),
            "two header lines are one list"
        );
        assert_eq!(
            parse_answer(&["permessage-deflate"], false),
            Err(AnswerError::NotOffered("permessage-deflate".into())),
            "enabled without an offer"
        );
    }

    #[test]
    fn extension_headers_are_found_in_any_case_on_several_lines() {
        let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                    sec-websocket-extensions: permessage-deflate; server_no_context_takeover\r\n\
                    Sec-WebSocket-Extensions:  x-other \r\nConnection: Upgrade";
        assert_eq!(
            extension_values(head),
            ["permessage-deflate; server_no_context_takeover", "x-other"]
        );
        assert!(extension_values("HTTP/1.1 101 OK\r\nUpgrade: websocket").is_empty());
    }
}
