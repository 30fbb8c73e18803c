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
    /// A varint being served rewritten: (start, bytes, length).
    rewritten: Option<(usize, [u8; 5], usize)>,
}

impl Probe {
    pub(super) fn new(frame: Bytes) -> Self {
        Probe {
            frame,
            at: 0,
            rewritten: None,
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

    /// Varints are read a byte at a time: at the first byte of one, the whole varint is
    /// looked at and, when its value is over the bound, served rewritten with the same
    /// length (a padded encoding of the bound), so the decoder stays aligned.
    fn try_get_u8(&mut self) -> Result<u8, TryGetError> {
        if self.at >= self.frame.len() {
            return Err(TryGetError {
                requested: 1,
                available: 0,
            });
        }
        if let Some((start, bytes, len)) = self.rewritten
            && (start..start + len).contains(&self.at)
        {
            let byte = bytes[self.at - start];
            self.at += 1;
            return Ok(byte);
        }
        self.rewritten = None;
        if let Some((value, len)) = peek_uvarint(&self.frame[self.at..])
            && len > 1
        {
            // A compact array stores its length plus one: the bound is one more again.
            let left = self.frame.len() - self.at - len;
            let bounded = bound(i64::from(value), left + 2) as u32;
            if bounded != value {
                let bytes = padded_uvarint(bounded, len);
                self.rewritten = Some((self.at, bytes, len));
                self.at += 1;
                return Ok(bytes[0]);
            }
        }
        let byte = self.frame[self.at];
        self.at += 1;
        Ok(byte)
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

/// The unsigned varint at the start of `bytes` as `kafka-protocol` reads it (at most five
/// bytes, the fifth's high bits dropped): its value and length.
fn peek_uvarint(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value = 0u32;
    for (i, byte) in bytes.iter().take(5).enumerate() {
        value |= u32::from(byte & 0x7f).wrapping_shl(7 * i as u32);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    // Five bytes with the high bit set: the decoder stops after five anyway.
    (bytes.len() >= 5).then_some((value, 5))
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

    #[test]
    fn padded_varints_decode_to_their_value() {
        for (value, len) in [(0u32, 2usize), (3, 2), (200, 3), (1 << 20, 5)] {
            let bytes = padded_uvarint(value, len);
            assert_eq!(peek_uvarint(&bytes[..len]), Some((value, len)));
        }
    }
}
