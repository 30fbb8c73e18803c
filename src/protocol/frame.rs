//! A response frame made of segments: the encoded fields in one buffer, and the record
//! bytes of a Fetch response spliced in by reference, so the chunk bytes the cache holds go
//! to the socket without being copied into the frame.
//!
//! `kafka-protocol` encodes every bytes field with `put_slice`. [`SplicingBuf`] is the
//! buffer it encodes into: a `put_slice` of exactly the memory of one of the `Bytes` it was
//! told about (same pointer and length: the field's own bytes, not equal content elsewhere)
//! records a splice instead of copying. Anything else is copied as usual.

use std::collections::HashMap;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Byte fields shorter than this are copied: a splice costs a segment (an I/O vector entry).
const SPLICE_MIN_BYTES: usize = 4096;

/// An encoded response: its segments in order (the first starts with the length prefix).
#[derive(Debug, Default)]
pub struct Frame {
    pub segments: Vec<Bytes>,
}

impl Frame {
    /// Total length, length prefix included.
    pub fn len(&self) -> usize {
        self.segments.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame as one buffer (tests, and writers without vectored writes).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for segment in &self.segments {
            out.extend_from_slice(segment);
        }
        out
    }
}

/// The buffer a response is encoded into; see the module docs.
pub struct SplicingBuf {
    head: BytesMut,
    /// Segments spliced in, by the position in `head` they come before.
    splices: Vec<(usize, Bytes)>,
    spliced_len: usize,
    /// The `Bytes` that may be spliced, by the address of their first byte.
    candidates: HashMap<usize, Bytes>,
}

impl SplicingBuf {
    /// A buffer that splices `candidates` (those of at least [`SPLICE_MIN_BYTES`]) instead
    /// of copying them.
    pub fn new(capacity: usize, candidates: impl IntoIterator<Item = Bytes>) -> Self {
        let candidates = candidates
            .into_iter()
            .filter(|bytes| bytes.len() >= SPLICE_MIN_BYTES)
            .map(|bytes| (bytes.as_ptr() as usize, bytes))
            .collect();
        Self {
            head: BytesMut::with_capacity(capacity),
            splices: Vec::new(),
            spliced_len: 0,
            candidates,
        }
    }

    /// Copies the spliced segments into `head` (so offsets are plain again). Only reached
    /// if an encoder seeks back over a splice, which message encoding never does.
    fn flatten(&mut self) {
        if self.splices.is_empty() {
            return;
        }
        let mut flat = BytesMut::with_capacity(self.head.len() + self.spliced_len);
        let mut from = 0;
        for (at, segment) in self.splices.drain(..) {
            flat.extend_from_slice(&self.head[from..at]);
            flat.extend_from_slice(&segment);
            from = at;
        }
        flat.extend_from_slice(&self.head[from..]);
        self.head = flat;
        self.spliced_len = 0;
    }

    /// Mutable access to the head's first bytes (the length prefix), which no splice
    /// precedes.
    pub fn prefix_mut(&mut self, len: usize) -> &mut [u8] {
        &mut self.head[..len]
    }

    pub fn into_frame(self) -> Frame {
        let head = self.head.freeze();
        let mut segments = Vec::with_capacity(2 * self.splices.len() + 1);
        let mut from = 0;
        for (at, segment) in self.splices {
            if at > from {
                segments.push(head.slice(from..at));
            }
            segments.push(segment);
            from = at;
        }
        if head.len() > from || segments.is_empty() {
            segments.push(head.slice(from..));
        }
        Frame { segments }
    }
}

// `BufMut` is an unsafe trait; this is one of the two places the workspace allows `unsafe`
// (see the root Cargo.toml; the other is `mallopt` in main.rs): copying Fetch records into
// responses cost 13% of broker CPU.
// SAFETY: every method delegates to `head`, a `BytesMut`, whose `BufMut` implementation
// upholds the trait's contract; `put_slice` either delegates or writes nothing to `head`.
#[allow(unsafe_code)]
unsafe impl BufMut for SplicingBuf {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded under the caller's guarantee, to the buffer `chunk_mut` exposed.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= SPLICE_MIN_BYTES
            && let Some(bytes) = self.candidates.get(&(src.as_ptr() as usize))
            && bytes.len() == src.len()
        {
            self.splices.push((self.head.len(), bytes.clone()));
            self.spliced_len += src.len();
            return;
        }
        self.head.extend_from_slice(src);
    }
}

impl ByteBufMut for SplicingBuf {
    fn offset(&self) -> usize {
        self.head.len() + self.spliced_len
    }

    fn seek(&mut self, offset: usize) {
        self.flatten();
        self.head.seek(offset);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        self.flatten();
        self.head.range(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize, seed: u8) -> Bytes {
        Bytes::from(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn candidates_are_spliced_and_everything_else_copied() {
        let big = bytes(10_000, 1);
        let small = bytes(100, 2);
        let mut buf = SplicingBuf::new(64, [big.clone(), small.clone()]);
        buf.put_i32(0);
        buf.put_slice(&small);
        buf.put_slice(&big);
        // Equal content elsewhere is not the candidate: copied.
        let copy = big.to_vec();
        buf.put_slice(&copy);
        // A part of a candidate is not the candidate either.
        buf.put_slice(&big[..SPLICE_MIN_BYTES]);
        buf.put_u8(7);
        buf.put_slice(&big);
        assert_eq!(buf.offset(), 4 + 100 + 3 * 10_000 + SPLICE_MIN_BYTES + 1);
        buf.prefix_mut(4).copy_from_slice(&1i32.to_be_bytes());
        let frame = buf.into_frame();
        assert_eq!(frame.segments.len(), 4);
        assert!(frame.segments[1].as_ptr() == big.as_ptr());
        assert!(frame.segments[3].as_ptr() == big.as_ptr());
        let mut expected = 1i32.to_be_bytes().to_vec();
        expected.extend_from_slice(&small);
        expected.extend_from_slice(&big);
        expected.extend_from_slice(&copy);
        expected.extend_from_slice(&big[..SPLICE_MIN_BYTES]);
        expected.push(7);
        expected.extend_from_slice(&big);
        assert_eq!(frame.to_vec(), expected);
        assert_eq!(frame.len(), expected.len());
    }

    #[test]
    fn seeking_back_over_a_splice_flattens_first() {
        let big = bytes(5000, 3);
        let mut buf = SplicingBuf::new(0, [big.clone()]);
        let gap = buf.put_gap(4);
        buf.put_slice(&big);
        buf.put_u8(9);
        buf.gap_buf(gap).copy_from_slice(&[1, 2, 3, 4]);
        let frame = buf.into_frame();
        let mut expected = vec![1, 2, 3, 4];
        expected.extend_from_slice(&big);
        expected.push(9);
        assert_eq!(frame.to_vec(), expected);
    }
}
