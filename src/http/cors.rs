//! Cross-origin access to the HTTP API for browser apps (CORS): which origins may call it
//! (`cors_origins`), and the headers that tell the browser so, on preflights and responses.

use super::Response;
use crate::protocol::handshake::HttpRequest;

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE_S: u32 = 600;

/// The request's `Origin`, if `allowed` lists it (or holds `*`).
pub(crate) fn allowed<'r>(req: &'r HttpRequest, allowed: &[String]) -> Option<&'r str> {
    let origin = req.origin.as_deref()?;
    allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
        .then_some(origin)
}

/// Adds the CORS headers for `origin` (echoed, never `*`, so `Authorization` may be sent), and
/// for a preflight the methods, headers and cache time it may use.
pub(crate) fn allow(response: &mut Response, origin: &str, preflight: bool) {
    if origin.contains(['\r', '\n']) {
        return; // never reflect a header break (httparse refuses them anyway)
    }
    let h = &mut response.headers;
    h.push(format!("Access-Control-Allow-Origin: {origin}"));
    h.push("Vary: Origin".into());
    if preflight {
        h.push("Access-Control-Allow-Methods: GET, POST, OPTIONS".into());
        h.push("Access-Control-Allow-Headers: Authorization, Content-Type".into());
        h.push(format!("Access-Control-Max-Age: {PREFLIGHT_MAX_AGE_S}"));
    }
}
