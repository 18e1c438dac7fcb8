//! TLS record framing on the receive side: received bytes cut into whole records, with the one
//! record a read split kept until the rest arrives. Whole records are what make a handover to
//! kernel TLS possible at any moment: rustls is fed complete records only, so it never holds
//! half a record when its secrets are taken, and the record opener after the handover starts at
//! a record boundary.

/// Bytes in a record header: content type, legacy version (2), body length (2).
pub(crate) const HEADER: usize = 5;
/// Largest record body accepted: TLS 1.2's ciphertext limit, 2^14 + 2048 (TLS 1.3's is
/// 2^14 + 256; rustls and the opener reject what their version does not allow).
const MAX_BODY: usize = (1 << 14) + 2048;

/// What the bytes at the start of a buffer are.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// A record of this many bytes, header included (maybe not all received yet).
    Record(usize),
    /// Not enough bytes for a header yet.
    Short,
    /// Not a TLS record header (a plain HTTP client, a scanner).
    NotTls,
}

fn framing(data: &[u8]) -> Framing {
    if data.len() < HEADER {
        // What there is must still look like a record header (a plain-text client is told
        // at once rather than waiting for more bytes).
        let plausible = data.first().is_none_or(|t| (20..=23).contains(t))
            && data.get(1).is_none_or(|v| *v == 3);
        return if plausible {
            Framing::Short
        } else {
            Framing::NotTls
        };
    }
    let len = usize::from(u16::from_be_bytes([data[3], data[4]]));
    if !(20..=23).contains(&data[0]) || data[1] != 3 || len > MAX_BODY {
        return Framing::NotTls;
    }
    Framing::Record(HEADER + len)
}

/// One piece of received bytes, as [`Reassembly::split`] hands them on.
#[derive(Debug)]
pub(crate) enum Piece<'a> {
    /// One whole record, header first.
    Record(&'a mut [u8]),
    /// Bytes that are not TLS records: everything from there on (the caller fails the session).
    NotTls(&'a mut [u8]),
}

/// The record a read split, kept until the rest arrives (empty, and no memory, otherwise).
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    head: Vec<u8>,
}

impl Reassembly {
    /// Hands `each` the whole records of what was kept plus `data`, in order, and keeps an
    /// incomplete last one. `each` returns `Ok(false)` to stop (the peer closed): the rest is
    /// dropped. The first error stops it too.
    pub(crate) fn split<E>(
        &mut self,
        mut data: &mut [u8],
        mut each: impl FnMut(Piece<'_>) -> Result<bool, E>,
    ) -> Result<(), E> {
        if !self.head.is_empty() {
            loop {
                let total = match framing(&self.head) {
                    Framing::Record(total) => total,
                    Framing::Short => HEADER,
                    Framing::NotTls => {
                        self.head.extend_from_slice(data);
                        let mut rest = std::mem::take(&mut self.head);
                        each(Piece::NotTls(&mut rest))?;
                        return Ok(());
                    }
                };
                let take = (total - self.head.len()).min(data.len());
                self.head.extend_from_slice(&data[..take]);
                data = &mut data[take..];
                if self.head.len() < total {
                    return Ok(()); // still incomplete: wait for more
                }
                if matches!(framing(&self.head), Framing::Record(t) if t == self.head.len()) {
                    break;
                }
            }
            let mut record = std::mem::take(&mut self.head);
            if !each(Piece::Record(&mut record))? {
                return Ok(());
            }
        }
        while !data.is_empty() {
            match framing(data) {
                Framing::Record(total) if total <= data.len() => {
                    let (record, rest) = data.split_at_mut(total);
                    if !each(Piece::Record(record))? {
                        return Ok(());
                    }
                    data = rest;
                }
                Framing::Record(_) | Framing::Short => {
                    self.head.extend_from_slice(data);
                    return Ok(());
                }
                Framing::NotTls => {
                    each(Piece::NotTls(data))?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Whether part of a record is kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    /// Every piece `split` hands on, over `reads`, as (is a record, bytes).
    fn pieces(reads: &[&[u8]]) -> Vec<(bool, Vec<u8>)> {
        let mut r = Reassembly::default();
        let mut out = Vec::new();
        for read in reads {
            let mut read = read.to_vec();
            r.split(&mut read, |p| {
                out.push(match p {
                    Piece::Record(b) => (true, b.to_vec()),
                    Piece::NotTls(b) => (false, b.to_vec()),
                });
                Ok::<_, ()>(true)
            })
            .unwrap();
        }
        out
    }

    #[test]
    fn whole_records_come_out_whole_however_the_reads_cut_them() {
        let a = record(23, b"first");
        let b = record(23, &[7; 300]);
        let all = [a.clone(), b.clone()].concat();
        for cut in 0..=all.len() {
            for cut2 in cut..=all.len() {
                let got = pieces(&[&all[..cut], &all[cut..cut2], &all[cut2..]]);
                assert_eq!(
                    got,
                    vec![(true, a.clone()), (true, b.clone())],
                    "{cut} {cut2}"
                );
            }
        }
    }

    #[test]
    fn plain_text_is_named_not_tls_at_once() {
        let got = pieces(&[b"GET / HTTP/1.1\r\n"]);
        assert_eq!(got, vec![(false, b"GET / HTTP/1.1\r\n".to_vec())]);
        let got = pieces(&[b"G"]);
        assert_eq!(got, vec![(false, b"G".to_vec())]);
    }

    #[test]
    fn an_oversized_length_is_not_tls() {
        let got = pieces(&[&[23, 3, 3, 0xff, 0xff, 0]]);
        assert!(matches!(got.as_slice(), [(false, _)]));
    }

    #[test]
    fn stopping_drops_the_rest_and_keeps_nothing() {
        let all = [record(21, &[1, 0]), record(23, b"after")].concat();
        let mut r = Reassembly::default();
        let mut seen = 0;
        r.split(&mut all.clone(), |_| {
            seen += 1;
            Ok::<_, ()>(false)
        })
        .unwrap();
        assert_eq!(seen, 1);
        assert!(r.is_empty());
    }
}
