//! Client-to-server payload unmasking (RFC 6455 §5.3), word-wise in safe code, checked against a
//! byte-wise reference.

/// XORs `buf` with the 4-byte `mask`, starting at mask offset 0.
pub(crate) fn unmask(buf: &mut [u8], mask: [u8; 4]) {
    let word = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // Whole 8-byte chunks keep the mask phase at 0, so the tail restarts at mask[0].
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// The byte-wise reference the fast path must match.
#[cfg(test)]
fn unmask_reference(buf: &mut [u8], mask: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_unmask_matches_reference_for_every_length_and_offset() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..200u8).collect();
        for start in 0..8 {
            for len in 0..(data.len() - start) {
                let mut fast = data[start..start + len].to_vec();
                let mut slow = fast.clone();
                unmask(&mut fast, mask);
                unmask_reference(&mut slow, mask);
                assert_eq!(fast, slow, "start {start} len {len}");
            }
        }
    }
}
