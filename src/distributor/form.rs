//! The forms one event is encoded in, each once, by the distributor: the plain JSON text frame,
//! its permessage-deflate twin (while some connection agreed to compression) and, for a binary
//! event, its binary frame. A connection's [`Form`] says which it takes; history and snapshots
//! keep every form an event has, so a replay matches what that connection gets live.

use std::sync::Arc;

use bytes::Bytes;

use super::Exclusion;

/// Which encoding of shared frames a connection takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Form {
    /// It agreed to permessage-deflate: compressed twins where they exist.
    pub deflate: bool,
    /// It opened with `?binary=1`: binary events as binary frames.
    pub binary: bool,
}

impl Form {
    /// A distinct number per form, `0..4` (snapshot caches).
    pub(crate) fn index(self) -> usize {
        usize::from(self.deflate) | usize::from(self.binary) << 1
    }
}

/// One event's encodings (`deflated` and `binary` empty where it has none).
#[derive(Clone, Debug, Default)]
pub struct EventForms {
    /// The JSON text frame (a binary event's payload in base64).
    pub plain: Bytes,
    /// Its compressed twin.
    pub deflated: Bytes,
    /// A binary event's binary frame.
    pub binary: Bytes,
}

impl EventForms {
    /// Bytes held by all its encodings.
    pub fn len(&self) -> usize {
        self.plain.len() + self.deflated.len() + self.binary.len()
    }

    /// Whether it holds no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoding a connection of `form` takes: binary, then compressed, where the event has
    /// them, else plain.
    pub fn pick(&self, form: Form) -> &Bytes {
        if form.binary && !self.binary.is_empty() {
            &self.binary
        } else if form.deflate && !self.deflated.is_empty() {
            &self.deflated
        } else {
            &self.plain
        }
    }
}

/// The same events as a tick's plain frames in another encoding (compressed, or with binary
/// events as binary frames), with the `echo = false` ranges mapped onto it.
#[derive(Clone, Debug)]
pub struct Twin {
    /// The events, joined, in the same order as the plain frames.
    pub frames: Bytes,
    /// `echo = false`: the byte ranges of `frames` each publisher must not get back.
    pub exclusions: Option<Arc<[Exclusion]>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_gets_the_richest_form_the_event_has() {
        let forms = EventForms {
            plain: Bytes::from_static(b"p"),
            deflated: Bytes::from_static(b"d"),
            binary: Bytes::new(),
        };
        let both = Form {
            deflate: true,
            binary: true,
        };
        assert_eq!(
            &forms.pick(both)[..],
            b"d",
            "a JSON event has no binary form"
        );
        assert_eq!(&forms.pick(Form::default())[..], b"p");
        let binary = EventForms {
            binary: Bytes::from_static(b"b"),
            ..forms
        };
        assert_eq!(&binary.pick(both)[..], b"b");
        let forms = [0, 1, 2, 3].map(|i| Form {
            deflate: i & 1 == 1,
            binary: i & 2 == 2,
        });
        assert!(forms.iter().enumerate().all(|(i, f)| f.index() == i));
    }
}
