//! A broadcast answered once its events are numbered: `POST /api/v1/broadcast` replies 202 with
//! each channel's `seq` only when the distributor (or, in cluster mode, the stream) has given
//! them, so a publisher that waits for the reply keeps its order even across nodes. The shard
//! holds one of these per connection waiting, and settles it from the `published` outcomes that
//! arrive in tick batches.

use bytes::Bytes;
use serde_json::json;

use super::Response;
use crate::distributor::AckOutcome;

/// A broadcast waiting for its channels' outcomes.
#[derive(Debug)]
pub struct PendingBroadcast {
    channels: Vec<String>,
    /// Per channel: `None` until settled, then its seq (`Some(None)`: superseded).
    seqs: Vec<Option<Option<u64>>>,
    left: usize,
    /// The first failure, if any (answered instead of the seqs).
    failure: Option<(u16, &'static str, String)>,
    keep_alive: bool,
    cors_origin: Option<String>,
}

impl PendingBroadcast {
    /// Waits for one outcome per channel of `channels`.
    pub fn new(
        channels: Vec<String>,
        keep_alive: bool,
        cors_origin: Option<String>,
    ) -> PendingBroadcast {
        PendingBroadcast {
            seqs: vec![None; channels.len()],
            left: channels.len(),
            channels,
            failure: None,
            keep_alive,
            cors_origin,
        }
    }

    /// Records `channel`'s outcome; the complete response once every channel has one.
    pub fn settle(&mut self, channel: &str, outcome: AckOutcome) -> Option<Bytes> {
        let i = (0..self.channels.len())
            .find(|&i| self.channels[i] == channel && self.seqs[i].is_none())?;
        self.left -= 1;
        self.seqs[i] = Some(match outcome {
            AckOutcome::Numbered { seq, .. } => Some(seq),
            AckOutcome::Superseded { .. } => None,
            AckOutcome::ChannelLimit => {
                let why = format!("channel `{channel}` could not be created: the server holds the most channels it can");
                self.failure.get_or_insert((503, "limit_exceeded", why));
                None
            }
            AckOutcome::Unavailable => {
                let why = format!("channel `{channel}`: the cluster is unreachable, the event was not committed nor delivered; publish again");
                self.failure.get_or_insert((503, "unavailable", why));
                None
            }
        });
        (self.left == 0).then(|| self.response())
    }

    fn response(&self) -> Bytes {
        let mut r = match &self.failure {
            Some((status, code, message)) => Response::error(*status, code, message),
            None => {
                let seqs: Vec<Option<u64>> = self.seqs.iter().map(|s| s.flatten()).collect();
                Response::json(
                    202,
                    &json!({"status": "published", "channels": self.channels, "seqs": seqs}),
                )
            }
        };
        if let Some(origin) = &self.cors_origin {
            super::cors::allow(&mut r, origin, false);
        }
        r.encode(self.keep_alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(b: &Bytes) -> serde_json::Value {
        let text = std::str::from_utf8(b).unwrap();
        serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap()
    }

    #[test]
    fn the_reply_waits_for_every_channel_and_lists_seqs_in_request_order() {
        let mut p = PendingBroadcast::new(vec!["a".into(), "b".into(), "a".into()], true, None);
        assert!(p
            .settle("b", AckOutcome::Numbered { seq: 7, frame: 1 })
            .is_none());
        assert!(p
            .settle("a", AckOutcome::Numbered { seq: 3, frame: 1 })
            .is_none());
        let done = p
            .settle("a", AckOutcome::Numbered { seq: 4, frame: 1 })
            .unwrap();
        assert!(done.starts_with(b"HTTP/1.1 202"));
        assert_eq!(body(&done)["seqs"], json!([3, 7, 4]));
        assert!(
            p.settle("a", AckOutcome::Numbered { seq: 5, frame: 1 })
                .is_none(),
            "nothing more is owed"
        );
    }

    #[test]
    fn an_uncommitted_channel_makes_it_a_503() {
        let mut p = PendingBroadcast::new(vec!["a".into()], false, Some("https://x".into()));
        let done = p.settle("a", AckOutcome::Unavailable).unwrap();
        let text = String::from_utf8_lossy(&done);
        assert!(
            text.starts_with("HTTP/1.1 503")
                && text.contains("Access-Control-Allow-Origin: https://x")
        );
        assert_eq!(body(&done)["error"], "unavailable");
    }
}
