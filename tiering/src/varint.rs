//! Kafka's zigzag varints and the bounds-checked reader of record fields, shared by the
//! batch header and marker code (`batch`) and the record iterator (`records`). Every input is
//! untrusted: errors, never panics.

/// Why the records of a batch cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad record in batch: {reason}")]
pub struct RecordError {
    pub reason: &'static str,
}

pub(crate) fn bad(reason: &'static str) -> RecordError {
    RecordError { reason }
}

/// Reads record fields from untrusted bytes without panicking (also the transaction
/// markers of `batch`).
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if n > self.bytes.len() {
            return Err(bad("record truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// A zigzag varint of at most 10 bytes (a varlong; varints are the same up to 5 bytes).
    pub(crate) fn varint(&mut self) -> Result<i64, RecordError> {
        let mut value = 0u64;
        for index in 0..10 {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(bad("varint longer than 10 bytes"))
    }
}

/// Appends `value` as a zigzag varint (Kafka's record fields; `varlong` is the same encoding).
/// Public for `batch::test_support` (tests of other crates write records by hand); without
/// the `testing` feature nothing outside the crate reaches it.
#[cfg_attr(not(any(test, feature = "testing")), allow(unreachable_pub))]
pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (zigzag & 0x7f) as u8;
        zigzag >>= 7;
        if zigzag == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
