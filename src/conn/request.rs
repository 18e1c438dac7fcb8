//! The HTTP phase of a connection: reading requests until the upgrade (or answering plain HTTP
//! requests on a keep-alive connection), refusing bad ones, and lingering after the last
//! response so the peer reads it instead of a reset.

use std::time::Instant;

use bytes::Bytes;

use super::{
    Admission, AppEvent, CloseReason, Conn, ConnSettings, Outbox, Phase, Timer, UpgradeRequest,
};
use crate::limits::MAX_HTTP_HEAD_BYTES;
use crate::protocol::handshake::{error_response, parse_request, Endpoint, RequestOutcome};
use crate::protocol::message::CloseCode;

impl Conn {
    pub(super) fn handle_request(
        &mut self,
        head: &mut Vec<u8>,
        mut answered: u32,
        now: Instant,
        settings: &ConnSettings,
        app: &mut impl FnMut(&mut Outbox, AppEvent<'_>),
    ) {
        loop {
            match parse_request(head, &settings.routes) {
                RequestOutcome::Partial => {
                    debug_assert!(head.len() <= MAX_HTTP_HEAD_BYTES + settings.routes.max_body);
                    self.phase = Phase::Http {
                        head: std::mem::take(head),
                        answered,
                        owed: None,
                    };
                    return;
                }
                RequestOutcome::Http(request) => {
                    let mut owed = false;
                    app(
                        &mut self.outbox,
                        AppEvent::Http {
                            request: &request,
                            owed: &mut owed,
                        },
                    );
                    answered += 1;
                    head.drain(..request.consumed);
                    // The request timer restarts for the next request.
                    self.timers
                        .set(Timer::Handshake, now + settings.handshake_timeout);
                    if owed {
                        self.phase = Phase::Http {
                            head: std::mem::take(head),
                            answered,
                            owed: Some(request.keep_alive),
                        };
                        return;
                    }
                    if !request.keep_alive {
                        self.reason = Some(CloseReason::HttpDone);
                        self.linger(now);
                        return;
                    }
                }
                RequestOutcome::Reject { response, .. } => return self.reject(response, now),
                RequestOutcome::Upgrade {
                    endpoint,
                    response,
                    consumed,
                    query,
                    authorization,
                    origin,
                    deflate,
                } => {
                    // The 101 below says whether permessage-deflate was agreed.
                    if deflate.is_some() {
                        self.deflate = deflate;
                        self.reader.accept_deflate();
                    }
                    if let Admission::Full { goodbye } = &self.admission {
                        self.outbox.push_unchecked(response);
                        if endpoint == Endpoint::Native {
                            self.outbox.push_unchecked(goodbye.clone());
                        }
                        self.phase = Phase::Open;
                        self.endpoint = Some(endpoint);
                        return self.close(
                            CloseCode::TRY_AGAIN_LATER,
                            "server is at max_connections",
                            CloseReason::Rejected,
                            now,
                        );
                    }
                    if endpoint == Endpoint::Native {
                        let mut request = UpgradeRequest {
                            query: query.clone(),
                            authorization,
                            origin,
                            refusal: None,
                        };
                        app(&mut self.outbox, AppEvent::Upgrade(&mut request));
                        if let Some(refusal) = request.refusal {
                            let response = error_response(refusal.status, &refusal.message);
                            return self.reject(response, now);
                        }
                    }
                    self.outbox.push_unchecked(response);
                    self.phase = Phase::Open;
                    self.endpoint = Some(endpoint);
                    self.timers.stop(Timer::Handshake);
                    self.timers.set(Timer::Ping, now + settings.ping_interval);
                    if endpoint == Endpoint::Native {
                        app(
                            &mut self.outbox,
                            AppEvent::Opened {
                                query: query.as_deref(),
                                deflate: deflate.is_some(),
                            },
                        );
                    }
                    if head.len() > consumed {
                        let mut tail = head.split_off(consumed);
                        self.read_frames(&mut tail, now, settings, app);
                    }
                    return;
                }
            }
        }
    }

    pub(super) fn reject(&mut self, response: Bytes, now: Instant) {
        self.outbox.push_unchecked(response);
        self.reason = Some(CloseReason::Rejected);
        self.linger(now);
    }

    pub(super) fn linger(&mut self, now: Instant) {
        self.phase = Phase::Lingering { write_shut: false };
        self.start_close_timer(now);
    }

    /// Whether the driver should now shut down the write side (the final response is out).
    pub fn wants_write_shutdown(&self) -> bool {
        matches!(
            self.phase,
            Phase::Lingering {
                write_shut: false,
                ..
            }
        ) && self.outbox.is_empty()
    }

    /// Records that the write side was shut down.
    pub fn handle_write_shutdown(&mut self) {
        if let Phase::Lingering { write_shut, .. } = &mut self.phase {
            *write_shut = true;
        }
    }
}
