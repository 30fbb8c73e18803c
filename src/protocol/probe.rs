//! The bounds check a request frame passes before `kafka-protocol` decodes it.
//!
//! `kafka-protocol` decodes an array by reserving room for the length the frame claims
//! (`Vec::with_capacity`) and then reading the elements. A 64-byte Fetch request claiming
//! 2^31 partitions asks the allocator for hundreds of GB, which it refuses, and Rust aborts
//! the process (found by tests/fuzz.rs, docs/FUZZING.md). The broker cannot change the
//! dependency, so it decodes every frame twice: first through [`Probe`], a buffer that
//! shrinks every 32-bit integer and every multi-byte unsigned varint it serves to at most
//! one more than the bytes left after it, then, if that decode succeeded, for real.
//!
//! Why that is enough: an array element takes at least one byte, so a frame whose arrays
//! are all real claims no more elements than it has bytes left; the probe changes none of
//! its lengths and decodes the same structure (the values it shrinks are plain fields such
//! as timeouts and offsets, which steer nothing). A frame claiming more elements than bytes
//! left gets one more than the bytes left in the probe, which cannot be read: the probe's
//! decode fails and the frame is refused as malformed, which its real decode would have been
//! too, after the reservation. So a frame the probe accepts reserves at most as many
//! elements, in every array, as it has bytes. The probe's own reservations are bounded the
//! same way, and it copies nothing (byte fields are slices of the frame).

use bytes::{Buf, Bytes, TryGetError};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use kafka_protocol::protocol::buf::ByteBuf;

/// Decodes `header` and `body` as [`decode_request`](super::decode_request) will, through a
/// [`Probe`]: an error means the frame is malformed, or claims more elements than it holds.
pub(super) fn check(
    api_key: ApiKey,
    version: i16,
    header_version: i16,
    frame: &Bytes,
) -> anyhow::Result<()> {
    let mut probe = Probe::new(frame.clone());
    RequestHeader::decode(&mut probe, header_version)?;
    body(api_key, &mut probe, version)
}

/// A frame served to a decoder with its length fields bounded by the bytes that follow.
pub(super) struct Probe {
    frame: Bytes,
    at: usize,
    /// The varint being served: where it starts, its bytes as served, its length, and how
    /// many of them were served.
    varint: Option<Varint>,
}

/// A varint as [`Probe`] serves it.
#[derive(Clone, Copy)]
struct Varint {
    start: usize,
    bytes: [u8; 5],
    len: usize,
    served: usize,
}

impl Probe {
    pub(super) fn new(frame: Bytes) -> Self {
        Probe {
            frame,
            at: 0,
            varint: None,
        }
    }
}

impl Buf for Probe {
    fn remaining(&self) -> usize {
        self.frame.len() - self.at
    }

    fn chunk(&self) -> &[u8] {
        &self.frame[self.at..]
    }

    fn advance(&mut self, cnt: usize) {
        assert!(
            cnt <= self.remaining(),
            "advance past the end of a probed frame"
        );
        self.at += cnt;
    }

    fn try_get_i32(&mut self) -> Result<i32, TryGetError> {
        let Some(bytes) = self.frame.get(self.at..self.at + 4) else {
            return Err(TryGetError {
                requested: 4,
                available: self.remaining(),
            });
        };
        let value = i32::from_be_bytes(bytes.try_into().expect("four bytes"));
        self.at += 4;
        Ok(bound(i64::from(value), self.remaining() + 1) as i32)
    }

    /// Varints are read a byte at a time. At the first byte of one, the whole varint is
    /// looked at (as the decoder will read it: at most five bytes) and served with its value
    /// bounded, in the same number of bytes (a padded encoding), so the decoder stays
    /// aligned; its next bytes are served from that. A byte the decoder reads alone (a
    /// boolean) may look like the start of a varint: the field after it, if a varint, then
    /// lies inside the one looked at and ends where it ends, so its value is at most that
    /// one's (shifted), which is bounded; the fifth byte is served without its
    /// continuation bit so that nothing read from inside runs past the end.
    fn try_get_u8(&mut self) -> Result<u8, TryGetError> {
        if self.at >= self.frame.len() {
            return Err(TryGetError {
                requested: 1,
                available: 0,
            });
        }
        let varint = match self.varint {
            Some(v) if v.start + v.served == self.at && v.served < v.len => v,
            _ => self.look_at_varint(),
        };
        let byte = varint.bytes[varint.served];
        let served = varint.served + 1;
        self.varint = (served < varint.len).then_some(Varint { served, ..varint });
        self.at += 1;
        Ok(byte)
    }
}

impl Probe {
    /// The varint starting here, as it is to be served.
    fn look_at_varint(&self) -> Varint {
        let rest = &self.frame[self.at..];
        let len = varint_len(rest);
        let mut bytes = [0u8; 5];
        bytes[..len].copy_from_slice(&rest[..len]);
        // Computed without the decoder's truncation to 32 bits, so that a varint whose
        // high bits fall off (and reads as small) still counts as large.
        let value: u64 = bytes[..len]
            .iter()
            .enumerate()
            .map(|(i, b)| u64::from(b & 0x7f) << (7 * i))
            .sum();
        // A compact array stores its length plus one: the bound is one more again.
        let left = self.frame.len() - self.at - len;
        let max = u64::try_from(left + 2).unwrap_or(u64::MAX);
        // One byte is at most 127: served as it is (booleans are single bytes too).
        if len > 1 && value > max {
            bytes = padded_uvarint(max as u32, len);
        }
        bytes[len - 1] &= 0x7f;
        Varint {
            start: self.at,
            bytes,
            len,
            served: 0,
        }
    }
}

impl ByteBuf for Probe {
    fn peek_bytes(&mut self, r: std::ops::Range<usize>) -> Bytes {
        self.frame.slice(self.at + r.start..self.at + r.end)
    }

    fn get_bytes(&mut self, size: usize) -> Bytes {
        let bytes = self.frame.slice(self.at..self.at + size);
        self.at += size;
        bytes
    }
}

/// `value` if it is at most `max` (or negative: -1 means null), else `max`.
fn bound(value: i64, max: usize) -> i64 {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    if value > max { max } else { value }
}

/// Length of the unsigned varint at the start of `bytes` (not empty) as `kafka-protocol`
/// reads it: up to the first byte without the continuation bit, at most five bytes, at most
/// what is there.
fn varint_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take(5)
        .position(|b| b & 0x80 == 0)
        .map_or(bytes.len().min(5), |at| at + 1)
}

/// `value` as an unsigned varint of exactly `len` bytes (continuation bits on all but the
/// last, which `len` allows because `value` is smaller than the value it replaces).
fn padded_uvarint(value: u32, len: usize) -> [u8; 5] {
    let mut out = [0u8; 5];
    let mut rest = value;
    for (i, byte) in out.iter_mut().enumerate().take(len) {
        *byte = (rest & 0x7f) as u8;
        rest >>= 7;
        if i + 1 < len {
            *byte |= 0x80;
        }
    }
    out
}

/// Decodes the body of `api_key` at `version` from `buf`, for every API the broker answers
/// (`SUPPORTED_APIS`).
fn body(api_key: ApiKey, buf: &mut Probe, version: i16) -> anyhow::Result<()> {
    macro_rules! decode_as {
        ($($key:ident => $request:ty),* $(,)?) => {
            match api_key {
                $(ApiKey::$key => <$request>::decode(buf, version).map(drop),)*
                other => Err(anyhow::anyhow!("no bounds check for {other:?}")),
            }
        };
    }
    decode_as!(
        Produce => ProduceRequest,
        Fetch => FetchRequest,
        ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest,
        ApiVersions => ApiVersionsRequest,
        CreateTopics => CreateTopicsRequest,
        InitProducerId => InitProducerIdRequest,
        DescribeConfigs => DescribeConfigsRequest,
        FindCoordinator => FindCoordinatorRequest,
        JoinGroup => JoinGroupRequest,
        SyncGroup => SyncGroupRequest,
        Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest,
        OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest,
        DescribeGroups => DescribeGroupsRequest,
        ListGroups => ListGroupsRequest,
        DeleteGroups => DeleteGroupsRequest,
        OffsetDelete => OffsetDeleteRequest,
        OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
        DescribeCluster => DescribeClusterRequest,
        DeleteRecords => DeleteRecordsRequest,
        DeleteTopics => DeleteTopicsRequest,
        AlterConfigs => AlterConfigsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        CreatePartitions => CreatePartitionsRequest,
        DescribeLogDirs => DescribeLogDirsRequest,
        ElectLeaders => ElectLeadersRequest,
        DescribeProducers => DescribeProducersRequest,
        AddPartitionsToTxn => AddPartitionsToTxnRequest,
        AddOffsetsToTxn => AddOffsetsToTxnRequest,
        EndTxn => EndTxnRequest,
        TxnOffsetCommit => TxnOffsetCommitRequest,
        DescribeTransactions => DescribeTransactionsRequest,
        ListTransactions => ListTransactionsRequest,
        SaslHandshake => SaslHandshakeRequest,
        SaslAuthenticate => SaslAuthenticateRequest,
        DescribeUserScramCredentials => DescribeUserScramCredentialsRequest,
        AlterUserScramCredentials => AlterUserScramCredentialsRequest,
        CreateAcls => CreateAclsRequest,
        DescribeAcls => DescribeAclsRequest,
        DeleteAcls => DeleteAclsRequest,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SUPPORTED_APIS;

    #[test]
    fn every_supported_api_is_checked() {
        for (api_key, _, max) in SUPPORTED_APIS {
            let err = body(*api_key, &mut Probe::new(Bytes::new()), *max)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!err.contains("no bounds check"), "{api_key:?}: {err}");
        }
    }

    #[test]
    fn lengths_over_the_bytes_left_are_bounded_and_others_kept() {
        // An i32 of 1000 with 2 bytes after it reads as 3; 2 stays 2; -1 stays -1.
        let mut probe = Probe::new(Bytes::from_static(&[0, 0, 3, 232, 9, 9]));
        assert_eq!(probe.try_get_i32().unwrap(), 3);
        let mut probe = Probe::new(Bytes::from_static(&[0, 0, 0, 2, 9, 9]));
        assert_eq!(probe.try_get_i32().unwrap(), 2);
        let mut probe = Probe::new(Bytes::from_static(&[255, 255, 255, 255]));
        assert_eq!(probe.try_get_i32().unwrap(), -1);
        // A varint of 300 (two bytes) with one byte after it reads as 3, in two bytes.
        let mut probe = Probe::new(Bytes::from_static(&[0xac, 0x02, 7]));
        let (a, b) = (probe.try_get_u8().unwrap(), probe.try_get_u8().unwrap());
        assert_eq!((a, b), (0x83, 0x00));
        assert_eq!(probe.try_get_u8().unwrap(), 7);
        // A one-byte varint is served as it is, as is a byte that is not a varint.
        let mut probe = Probe::new(Bytes::from_static(&[0x7f]));
        assert_eq!(probe.try_get_u8().unwrap(), 0x7f);
    }

    /// kafka-protocol's unsigned varint, read from `probe`.
    fn read_varint(probe: &mut Probe) -> u32 {
        let mut value = 0u32;
        for i in 0..5 {
            let b = u32::from(probe.try_get_u8().unwrap());
            value |= (b & 0x7f).wrapping_shl(7 * i);
            if b < 0x80 {
                break;
            }
        }
        value
    }

    #[test]
    fn no_varint_read_at_any_alignment_exceeds_the_bound() {
        // Found by cargo-fuzz: a varint of five bytes whose first bytes were served while
        // the probe looked at a new varint from its fifth, whose rewritten first byte
        // became the fifth of the first: 0xC0000000 elements.
        let frame: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 0, 0];
        for skip in 0..frame.len() - 1 {
            // `skip` bytes read alone (booleans), then a varint.
            let mut probe = Probe::new(Bytes::from_static(frame));
            for _ in 0..skip {
                probe.try_get_u8().unwrap();
            }
            let left_after_start = frame.len() - skip;
            let value = read_varint(&mut probe);
            assert!(
                value as usize <= left_after_start + 2,
                "skip {skip}: {value:#x}"
            );
        }
        // High bits that fall off the decoder's 32 bits do not hide a large value inside.
        let frame: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x70, 0x80, 0x80, 0x80, 0x7f, 0];
        for skip in 0..4 {
            let mut probe = Probe::new(Bytes::from_static(frame));
            for _ in 0..skip {
                probe.try_get_u8().unwrap();
            }
            let value = read_varint(&mut probe);
            assert!(value as usize <= frame.len() + 2, "skip {skip}: {value:#x}");
        }
    }

    #[test]
    fn padded_varints_decode_to_their_value() {
        for (value, len) in [(0u32, 2usize), (3, 2), (200, 3), (1 << 20, 5)] {
            let bytes = padded_uvarint(value, len);
            assert_eq!(varint_len(&bytes[..len]), len);
            // Followed by enough bytes for the value to stand.
            let mut frame = bytes[..len].to_vec();
            frame.resize(len + value as usize, 0);
            let mut probe = Probe::new(Bytes::from(frame));
            assert_eq!(read_varint(&mut probe), value);
        }
    }
}
